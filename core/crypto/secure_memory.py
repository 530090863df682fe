"""Key material in locked, non-dumpable memory.

What this protects: the bytes inside a :class:`SecureMemory` buffer live in an anonymous
mapping that is ``mlock``'d (kept out of swap), marked ``MADV_DONTDUMP`` (left out of core
dumps), and overwritten with zeros on :meth:`SecureMemory.close` and at interpreter exit.

What Python cannot protect, stated plainly:

* Every ``bytes`` or ``str`` made from the buffer (``read()``, ``hex()``, the SQLCipher
  ``PRAGMA key = "x'…'"`` statement, a password typed into a widget, a secret returned by
  ``keyring``) is an immutable object. CPython gives no way to wipe it; it lingers in the
  heap until the allocator reuses the memory. Callers keep such copies short-lived.
* The C libraries we hand keys to (OpenSSL via ``cryptography``, SQLCipher) keep their own
  copies. SQLCipher wipes its copy on close and mlocks it where allowed; OpenSSL clears its
  key schedule when the context is freed.
* ``mlock`` is bounded by ``RLIMIT_MEMLOCK``. By default (the desktop) when the limit is
  hit we warn and carry on with unlocked memory rather than refuse to open the clinic's
  records. The server chooses with ENABLE_MEMORY_LOCKING (:func:`set_memory_locking`):
  a failure to lock is then an error, or locking is skipped altogether.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import mmap
import os
import resource
import sys
import warnings
import weakref
from typing import Literal

from core.errors import CarelineError

_PAGE = mmap.PAGESIZE
_PR_SET_DUMPABLE = 4


class MemoryLockWarning(UserWarning):
    """mlock failed (usually RLIMIT_MEMLOCK); the key may be swapped to disk."""


class MemoryLockError(CarelineError, OSError):
    """mlock failed while memory locking is required (ENABLE_MEMORY_LOCKING=true)."""

    plain_template = "{detail}"


LockPolicy = Literal["warn", "require", "off"]
_policy: LockPolicy = "warn"

RAISE_LIMIT_HINT = (
    "raise the locked-memory limit RLIMIT_MEMLOCK (`ulimit -l` in the shell that starts it, "
    "LimitMEMLOCK= in its systemd unit, memlock in /etc/security/limits.conf; root needs "
    "CAP_IPC_LOCK)"
)


def set_memory_locking(policy: LockPolicy) -> None:
    """How key buffers made from now on treat ``mlock``: ``warn`` on failure and carry on
    (the default), ``require`` it (a failure raises :class:`MemoryLockError`), or ``off``
    (no locking attempted; the caller warns once)."""
    global _policy  # one process-wide choice, made at start-up from the settings
    _policy = policy


def memory_locking() -> LockPolicy:
    """The current policy (see :func:`set_memory_locking`)."""
    return _policy


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") and sys.platform != "darwin":
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    lib = ctypes.CDLL(name, use_errno=True)
    # Declare the prototypes: without argtypes ctypes would truncate 64-bit pointers to int.
    lib.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.mlock.restype = ctypes.c_int
    lib.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.munlock.restype = ctypes.c_int
    if sys.platform.startswith("linux"):
        lib.prctl.argtypes = [
            ctypes.c_int,
            ctypes.c_ulong,
            ctypes.c_ulong,
            ctypes.c_ulong,
            ctypes.c_ulong,
        ]
        lib.prctl.restype = ctypes.c_int
    return lib


_LIBC = _libc()
_LIVE: weakref.WeakSet[SecureMemory] = weakref.WeakSet()


def disable_core_dumps() -> None:
    """Turn off core dumps for this process (RLIMIT_CORE=0, and PR_SET_DUMPABLE=0 on Linux).

    Call once at start-up, before any key is loaded. ``PR_SET_DUMPABLE=0`` also stops
    other processes of the same user from attaching a debugger to read memory.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if _LIBC is not None and sys.platform.startswith("linux"):
        _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


class SecureMemory:
    """A fixed-size buffer for key material: mlock'd, not dumped, zeroed on close."""

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("SecureMemory size must be positive")
        self._size = size
        self._length = ((size + _PAGE - 1) // _PAGE) * _PAGE
        self._map: mmap.mmap | None = mmap.mmap(-1, self._length)
        self._cbuf: ctypes.Array[ctypes.c_char] | None = (ctypes.c_char * self._length).from_buffer(
            self._map
        )
        self._addr = ctypes.addressof(self._cbuf)
        try:
            self.locked = self._lock()
        except MemoryLockError:
            self._cbuf = None
            self._map.close()
            self._map = None
            raise
        if hasattr(mmap, "MADV_DONTDUMP"):
            self._map.madvise(mmap.MADV_DONTDUMP)
        _LIVE.add(self)

    def _lock(self) -> bool:
        if _policy == "off":
            return False
        if _LIBC is None:
            if _policy == "require":
                raise MemoryLockError(
                    "memory locking is not available on this platform; set "
                    "ENABLE_MEMORY_LOCKING=false to run without it"
                )
            warnings.warn(
                "memory locking is not available on this platform; keys may reach swap",
                MemoryLockWarning,
                stacklevel=3,
            )
            return False
        if _LIBC.mlock(self._addr, self._length) == 0:
            return True
        err = ctypes.get_errno()
        if _policy == "require":
            raise MemoryLockError(
                f"could not lock key memory in RAM ({os.strerror(err)}; RLIMIT_MEMLOCK is "
                f"{_limit_text()}): {RAISE_LIMIT_HINT}, or set ENABLE_MEMORY_LOCKING=false "
                "to run with keys that may be swapped to disk"
            )
        warnings.warn(
            f"could not lock key memory ({os.strerror(err)}); the key may be swapped to disk. "
            "Raise the memlock limit (ulimit -l / LimitMEMLOCK=) to fix this.",
            MemoryLockWarning,
            stacklevel=3,
        )
        return False

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> SecureMemory:
        """Copy ``data`` straight into the locked buffer; a ``bytearray`` source is then zeroed.

        No intermediate Python object is made: the bytes go from the source's own storage to
        the locked mapping with ``memmove``. Copies that remain, out of reach here:

        * a ``bytes`` source itself: immutable, it stays in the heap until the allocator
          reuses its memory. Prefer a ``bytearray`` the caller filled in place.
        * whatever the source was made from: ``bytearray(some_bytes)`` zeroes only the
          bytearray, not ``some_bytes`` (an ``os.urandom`` or decryption result, say).
        * old storage of a ``bytearray`` that grew or shrank before this call: the resize
          freed it without wiping it.
        """
        size = len(data)
        mem = cls(size)
        if isinstance(data, bytearray):
            # A ctypes view on the bytearray's storage (no copy), released before returning
            # so the caller may resize the bytearray again.
            source = (ctypes.c_char * size).from_buffer(data)
            try:
                ctypes.memmove(mem._addr, source, size)
                ctypes.memset(source, 0, size)
            finally:
                del source
        else:
            # ctypes passes a bytes object's own buffer as the pointer: no copy either.
            ctypes.memmove(mem._addr, data, size)
        return mem

    @property
    def size(self) -> int:
        """Number of meaningful bytes."""
        return self._size

    @property
    def closed(self) -> bool:
        """True once the buffer has been wiped and released."""
        return self._map is None

    def read(self) -> bytes:
        """Return a copy of the contents. The copy is an immutable ``bytes`` Python cannot wipe."""
        if self._cbuf is None:
            raise ValueError("SecureMemory is closed")
        return ctypes.string_at(self._addr, self._size)

    def hex(self) -> str:
        """Hex form for SQLCipher's raw-key PRAGMA; the returned ``str`` cannot be wiped."""
        return self.read().hex()

    def wipe(self) -> None:
        """Overwrite the whole buffer with zeros."""
        if self._cbuf is not None:
            ctypes.memset(self._addr, 0, self._length)

    def close(self) -> None:
        """Zero, unlock and release the buffer. Safe to call twice."""
        if self._map is None:
            return
        self.wipe()
        if self.locked and _LIBC is not None:
            _LIBC.munlock(self._addr, self._length)
        # The ctypes view holds an export of the mmap; drop it before closing the map.
        self._cbuf = None
        self._map.close()
        self._map = None
        _LIVE.discard(self)

    def __enter__(self) -> SecureMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._size} bytes, locked={self.locked}"
        return f"<SecureMemory {state}>"


def _limit_text() -> str:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return "unlimited" if soft == resource.RLIM_INFINITY else f"{soft} bytes"


@atexit.register
def _wipe_all() -> None:
    for mem in list(_LIVE):
        mem.close()
