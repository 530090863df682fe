"""Exclusive locks on open files, between processes; released when the holder unlocks,
closes the file, or dies.

* POSIX (Linux, macOS): ``flock`` on the descriptor.
* Windows: ``msvcrt.locking`` on the file's first byte, retried until free (``LK_LOCK``
  alone gives up after about ten seconds). Windows locks are mandatory: while held, other
  processes cannot read or write that byte. Not yet run on Windows (no Windows CI).
* Anywhere else: :class:`FileLockUnavailable` when a lock is asked for. Modules that lock
  files still import there; they fail, naming the problem, only when they need the lock.
"""

from __future__ import annotations

import errno
import os
import sys

from core.errors import CarelineError


class FileLockUnavailable(CarelineError, OSError):
    """This platform offers neither ``flock`` nor ``msvcrt.locking``."""

    plain_template = "{detail}"

    def __init__(self) -> None:
        problem = "file locking is not available on this platform (no fcntl or msvcrt)"
        super().__init__(problem)
        self.errno, self.strerror = errno.ENOSYS, problem


if sys.platform == "win32":  # pragma: no cover - exercised only on Windows

    def lock_fd(fd: int) -> None:
        """Wait for, then hold, an exclusive lock on the open file ``fd``."""
        try:
            import msvcrt
        except ImportError:
            raise FileLockUnavailable from None
        # The lock covers bytes from the current position: always the same byte, 0.
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue  # the holder releases it when done, or when its process ends

    def try_lock_fd(fd: int) -> bool:
        """Take an exclusive lock on the open file ``fd`` if it is free; whether it was."""
        try:
            import msvcrt
        except ImportError:
            raise FileLockUnavailable from None
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock_fd(fd: int) -> None:
        """Release the lock :func:`lock_fd` took."""
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:

    def lock_fd(fd: int) -> None:
        """Wait for, then hold, an exclusive lock on the open file ``fd``."""
        try:
            import fcntl
        except ImportError:
            raise FileLockUnavailable from None
        fcntl.flock(fd, fcntl.LOCK_EX)

    def try_lock_fd(fd: int) -> bool:
        """Take an exclusive lock on the open file ``fd`` if it is free; whether it was."""
        try:
            import fcntl
        except ImportError:
            raise FileLockUnavailable from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock_fd(fd: int) -> None:
        """Release the lock :func:`lock_fd` took."""
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
