"""Key material in locked, non-dumpable, guarded memory.

What this protects: the bytes inside a :class:`SecureMemory` buffer live in an anonymous
mapping that is locked in RAM (kept out of swap), marked ``MADV_DONTDUMP`` (left out of
core dumps, Linux only), and overwritten with zeros on :meth:`SecureMemory.close` and at
interpreter exit. The key's pages sit between two inaccessible guard pages and are
read-only except while the buffer itself writes them (:meth:`SecureMemory.from_bytes`,
:meth:`SecureMemory.wipe`), so a stray write into a key, or a read or write running past
its end, kills the process (SIGSEGV) instead of silently leaking or corrupting it.

Per platform (:mod:`core.platform.memory` holds the calls): Linux gets all of the above;
macOS all but ``MADV_DONTDUMP``; Windows locks with ``VirtualLock`` and protects with
``VirtualProtect``; any other platform gets a plain zeroed buffer (no lock, no guard
pages; a warning, or an error when locking is required).

What Python cannot protect, stated plainly:

* Every ``bytes`` or ``str`` made from the buffer (``read()``, ``hex()``, the SQLCipher
  ``PRAGMA key = "x'…'"`` statement, a password typed into a widget, a secret returned by
  ``keyring``) is an immutable object. CPython gives no way to wipe it; it lingers in the
  heap until the allocator reuses the memory. Callers keep such copies short-lived.
* The C libraries we hand keys to (OpenSSL via ``cryptography``, SQLCipher) keep their own
  copies. SQLCipher wipes its copy on close and mlocks it where allowed; OpenSSL clears its
  key schedule when the context is freed.
* Guard pages and read-only pages catch faulty *writes* and over-long reads through raw
  pointers (ctypes, C extensions). They do nothing against code that reads the key the
  ordinary way (this process may always read its own memory) or against someone who can
  read the process's memory from outside.
* Locking is bounded (``RLIMIT_MEMLOCK`` on POSIX, the working-set minimum on Windows). By
  default (the desktop) when the limit is hit we warn and carry on with unlocked memory
  rather than refuse to open the clinic's records. The server chooses with
  ENABLE_MEMORY_LOCKING (:func:`set_memory_locking`): a failure to lock is then an error,
  or locking is skipped altogether.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import mmap
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Literal

from core.errors import CarelineError
from core.platform.memory import PAGE_CALLS, POSIX_LIMIT_HINT, Access, forbid_core_dumps

_PAGE = mmap.PAGESIZE


class MemoryLockWarning(UserWarning):
    """Locking failed (usually RLIMIT_MEMLOCK); the key may be swapped to disk."""


class MemoryLockError(CarelineError, OSError):
    """Locking failed while memory locking is required (ENABLE_MEMORY_LOCKING=true)."""

    plain_template = "{detail}"


LockPolicy = Literal["warn", "require", "off"]
_policy: LockPolicy = "warn"

RAISE_LIMIT_HINT = POSIX_LIMIT_HINT


def set_memory_locking(policy: LockPolicy) -> None:
    """How key buffers made from now on treat ``mlock``: ``warn`` on failure and carry on
    (the default), ``require`` it (a failure raises :class:`MemoryLockError`), or ``off``
    (no locking attempted; the caller warns once). Guard pages and read-only protection do
    not depend on this choice."""
    global _policy  # one process-wide choice, made at start-up from the settings
    _policy = policy


def memory_locking() -> LockPolicy:
    """The current policy (see :func:`set_memory_locking`)."""
    return _policy


_LIVE: weakref.WeakSet[SecureMemory] = weakref.WeakSet()


def disable_core_dumps() -> None:
    """Turn off core dumps for this process (RLIMIT_CORE=0, and PR_SET_DUMPABLE=0 on Linux).

    Call once at start-up, before any key is loaded. ``PR_SET_DUMPABLE=0`` also stops
    other processes of the same user from attaching a debugger to read memory. What other
    platforms get: see :func:`core.platform.memory.forbid_core_dumps` (on Windows, nothing).
    """
    forbid_core_dumps()


class SecureMemory:
    """A fixed-size buffer for key material: locked, not dumped, zeroed on close, between
    guard pages, read-only except while written.

    Layout: one inaccessible guard page, the data pages, another guard page. The key is
    placed at the *end* of the data pages (``size`` need not be a page multiple), so its
    last byte touches the trailing guard page: touching even one byte past ``size`` faults.
    The slack before the key (the rest of its first page) is not guarded against reads;
    it holds only zeros. Each buffer costs ``2 + ceil(size / page)`` pages of address
    space, of which only the data pages are locked.

    :attr:`guarded` says whether the guard pages and read-only protection are in place
    (False where the platform offers no calls for them, see :mod:`core.platform.memory`).
    Making a buffer raises OSError if the system refuses to protect its pages (it can run
    out of memory mappings: each buffer is three). Creating, reading and closing one costs
    about 85 µs on Linux, twice what it did without the guards.
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("SecureMemory size must be positive")
        self._size = size
        self._length = ((size + _PAGE - 1) // _PAGE) * _PAGE  # the data pages
        total = self._length + 2 * _PAGE
        self._mutex = threading.Lock()
        self._map: mmap.mmap | None = mmap.mmap(-1, total)
        self._cbuf: ctypes.Array[ctypes.c_char] | None = (ctypes.c_char * total).from_buffer(
            self._map
        )
        self._pages = ctypes.addressof(self._cbuf) + _PAGE
        self._addr = self._pages + self._length - size  # the key's first byte
        self.guarded = False
        self.locked = False
        try:
            self.guarded = self._guard()
            self.locked = self._lock()
        except BaseException:
            self._release()
            raise
        if hasattr(mmap, "MADV_DONTDUMP"):
            self._map.madvise(mmap.MADV_DONTDUMP)
        _LIVE.add(self)

    def _guard(self) -> bool:
        if PAGE_CALLS is None:
            return False
        PAGE_CALLS.protect(self._pages - _PAGE, _PAGE, Access.NONE)
        PAGE_CALLS.protect(self._pages + self._length, _PAGE, Access.NONE)
        PAGE_CALLS.protect(self._pages, self._length, Access.READ)
        return True

    def _lock(self) -> bool:
        if _policy == "off":
            return False
        if PAGE_CALLS is None:
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
        reason = PAGE_CALLS.lock(self._pages, self._length)
        if reason is None:
            return True
        if _policy == "require":
            raise MemoryLockError(
                f"could not lock key memory in RAM ({reason}; {PAGE_CALLS.lock_limit()}): "
                f"{PAGE_CALLS.raise_limit_hint}, or set ENABLE_MEMORY_LOCKING=false "
                "to run with keys that may be swapped to disk"
            )
        warnings.warn(
            f"could not lock key memory ({reason}); the key may be swapped to disk. "
            f"To fix this, {PAGE_CALLS.raise_limit_hint}.",
            MemoryLockWarning,
            stacklevel=3,
        )
        return False

    @contextlib.contextmanager
    def _writable(self) -> Iterator[None]:
        """The data pages writable for the block, read-only again after it. The guard pages
        stay inaccessible throughout, so an overrun while writing still faults. Callers
        hold ``_mutex``: another thread's window closing must not cut this one short."""
        if self.guarded:
            assert PAGE_CALLS is not None
            PAGE_CALLS.protect(self._pages, self._length, Access.READ_WRITE)
        try:
            yield
        finally:
            if self.guarded:
                assert PAGE_CALLS is not None
                PAGE_CALLS.protect(self._pages, self._length, Access.READ)

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
        with mem._mutex, mem._writable():
            if isinstance(data, bytearray):
                # A ctypes view on the bytearray's storage (no copy), released before
                # returning so the caller may resize the bytearray again.
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
        with self._mutex:  # not while another thread closes (unmaps) it
            if self._cbuf is None:
                raise ValueError("SecureMemory is closed")
            return ctypes.string_at(self._addr, self._size)

    def hex(self) -> str:
        """Hex form for SQLCipher's raw-key PRAGMA; the returned ``str`` cannot be wiped."""
        return self.read().hex()

    def wipe(self) -> None:
        """Overwrite the whole buffer with zeros."""
        with self._mutex:
            self._wipe()

    def _wipe(self) -> None:
        if self._cbuf is not None:
            with self._writable():
                ctypes.memset(self._pages, 0, self._length)

    def close(self) -> None:
        """Zero, unlock and release the buffer. Safe to call twice."""
        with self._mutex:
            if self._map is None:
                return
            self._wipe()
            if self.locked and PAGE_CALLS is not None:
                PAGE_CALLS.unlock(self._pages, self._length)
            self._release()
        _LIVE.discard(self)

    def _release(self) -> None:
        # The ctypes view holds an export of the mmap; drop it before closing the map.
        # Unmapping frees the guard pages too, whatever their protection.
        self._cbuf = None
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> SecureMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_map", None) is not None:  # __init__ got as far as mapping
            self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<SecureMemory closed>"
        return f"<SecureMemory {self._size} bytes, locked={self.locked}, guarded={self.guarded}>"


@atexit.register
def _wipe_all() -> None:
    for mem in list(_LIVE):
        mem.close()
