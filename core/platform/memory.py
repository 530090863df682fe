"""The operating system's calls for key memory: keep pages in RAM, set their access, and
keep the process out of core dumps.

Chosen once, at import, from the running platform:

* Linux and macOS: ``mlock``/``munlock``/``mprotect`` from libc, through ctypes.
* Windows: ``VirtualLock``/``VirtualUnlock``/``VirtualProtect`` from kernel32. Locked
  memory there is bounded by the process's minimum working-set size, not by a limit the
  user sets in the shell.
* Anything else, or a library that cannot be loaded: :data:`PAGE_CALLS` is None. Key
  buffers are then neither locked nor protected; :mod:`core.crypto.secure_memory` warns
  or, when locking is required, refuses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import os
import sys
from typing import Protocol

_PR_SET_DUMPABLE = 4

POSIX_LIMIT_HINT = (
    "raise the locked-memory limit RLIMIT_MEMLOCK (`ulimit -l` in the shell that starts it, "
    "LimitMEMLOCK= in its systemd unit, memlock in /etc/security/limits.conf; root needs "
    "CAP_IPC_LOCK)"
)
WINDOWS_LIMIT_HINT = (
    "VirtualLock is bounded by the process's minimum working-set size "
    "(SetProcessWorkingSetSize), which Careline does not change"
)


class Access(enum.Enum):
    """What the process may do with a range of pages."""

    NONE = "none"
    READ = "read"
    READ_WRITE = "read-write"


# PROT_NONE, PROT_READ, PROT_WRITE: the same values on Linux and macOS (Python's mmap
# module exports the last two only, and not on Windows).
_PROT = {Access.NONE: 0, Access.READ: 1, Access.READ_WRITE: 1 | 2}
# PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE.
_PAGE_PROTECTION = {Access.NONE: 0x01, Access.READ: 0x02, Access.READ_WRITE: 0x04}


class PageCalls(Protocol):
    """Locking and protecting whole pages of this process's memory."""

    raise_limit_hint: str
    """How to let the process lock more memory, for messages."""

    def lock(self, address: int, length: int) -> str | None:
        """Keep the pages in RAM: None when done, else the system's reason for refusing."""

    def unlock(self, address: int, length: int) -> None:
        """Let the pages be swapped again."""

    def protect(self, address: int, length: int, access: Access) -> None:
        """Give the pages ``access``; OSError when the system refuses."""

    def lock_limit(self) -> str:
        """The limit on locked memory, for messages (``RLIMIT_MEMLOCK is 0 bytes``)."""


class _PosixCalls:
    """libc's ``mlock``/``munlock``/``mprotect`` (Linux, macOS)."""

    raise_limit_hint = POSIX_LIMIT_HINT

    def __init__(self, libc: ctypes.CDLL) -> None:
        # Declare the prototypes: without argtypes ctypes would truncate 64-bit pointers.
        for name in ("mlock", "munlock"):
            fn = getattr(libc, name)
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            fn.restype = ctypes.c_int
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.mprotect.restype = ctypes.c_int
        self._libc = libc

    def lock(self, address: int, length: int) -> str | None:
        """``mlock``; None when done, else strerror."""
        if self._libc.mlock(address, length) == 0:
            return None
        return os.strerror(ctypes.get_errno())

    def unlock(self, address: int, length: int) -> None:
        """``munlock``."""
        self._libc.munlock(address, length)

    def protect(self, address: int, length: int, access: Access) -> None:
        """``mprotect``; OSError naming the reason when refused."""
        if self._libc.mprotect(address, length, _PROT[access]) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mprotect refused to make key memory {access.value}")

    def lock_limit(self) -> str:
        """RLIMIT_MEMLOCK's soft limit."""
        try:
            import resource
        except ImportError:
            return "RLIMIT_MEMLOCK is unknown"
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        return "RLIMIT_MEMLOCK is " + (
            "unlimited" if soft == resource.RLIM_INFINITY else f"{soft} bytes"
        )


if sys.platform == "win32":  # pragma: no cover - exercised only on Windows
    from ctypes import wintypes

    class _WindowsCalls:
        """kernel32's ``VirtualLock``/``VirtualUnlock``/``VirtualProtect``."""

        raise_limit_hint = WINDOWS_LIMIT_HINT

        def __init__(self, kernel32: ctypes.WinDLL) -> None:
            for name in ("VirtualLock", "VirtualUnlock"):
                fn = getattr(kernel32, name)
                fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
                fn.restype = wintypes.BOOL
            kernel32.VirtualProtect.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                wintypes.DWORD,
                ctypes.POINTER(wintypes.DWORD),
            ]
            kernel32.VirtualProtect.restype = wintypes.BOOL
            self._kernel32 = kernel32

        def lock(self, address: int, length: int) -> str | None:
            """``VirtualLock``; None when done, else the system's message."""
            if self._kernel32.VirtualLock(address, length):
                return None
            return ctypes.FormatError(ctypes.get_last_error()).strip()

        def unlock(self, address: int, length: int) -> None:
            """``VirtualUnlock``."""
            self._kernel32.VirtualUnlock(address, length)

        def protect(self, address: int, length: int, access: Access) -> None:
            """``VirtualProtect``; OSError naming the reason when refused."""
            old = wintypes.DWORD()
            if not self._kernel32.VirtualProtect(
                address, length, _PAGE_PROTECTION[access], ctypes.byref(old)
            ):
                raise ctypes.WinError(ctypes.get_last_error())

        def lock_limit(self) -> str:
            """Windows has no user-set limit: the working-set minimum bounds it."""
            return "the bound is the process's minimum working-set size"


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") and sys.platform != "darwin":
        return None
    name = ctypes.util.find_library("c")
    try:
        return None if name is None else ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def _load(libc: ctypes.CDLL | None) -> PageCalls | None:
    if sys.platform == "win32":  # pragma: no cover - exercised only on Windows
        try:
            return _WindowsCalls(ctypes.WinDLL("kernel32", use_last_error=True))
        except (AttributeError, OSError):  # no kernel32 (or not really Windows)
            return None
    if libc is None:
        return None
    try:
        return _PosixCalls(libc)
    except AttributeError:  # a libc without these calls
        return None


_LIBC = _libc()
PAGE_CALLS: PageCalls | None = _load(_LIBC)


def forbid_core_dumps() -> None:
    """Keep this process's memory out of core dumps, as far as the platform allows.

    * POSIX (``resource`` present): ``RLIMIT_CORE`` = 0, so a crash writes no core file.
    * Linux: also ``PR_SET_DUMPABLE`` = 0, which also stops other processes of the same
      user from attaching a debugger (ptrace) to read memory.
    * macOS: only the limit; attaching a debugger is left to the system's own rules.
    * Windows: no core dumps in the POSIX sense, so nothing is done. A crash can still
      leave a Windows Error Reporting minidump where an administrator configured one
      (LocalDumps); turning that off is outside what Careline changes.
    """
    try:
        import resource
    except ImportError:
        pass
    else:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if _LIBC is not None and sys.platform.startswith("linux"):
        prctl = _LIBC.prctl
        prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        prctl.restype = ctypes.c_int
        prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
