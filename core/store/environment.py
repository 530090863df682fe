"""Telling the computer's problems (a read-only folder, a full disk, missing permission)
apart from damage to the database, so that a healthy file is never called damaged.

SQLite reports these conditions in its own words ("unable to open database file", "disk
I/O error", "database or disk is full", "attempt to write a readonly database"), which are
the same words some damage produces. Before a failure is blamed on the file, the folder
and the disk are looked at directly.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from core.store.errors import StoreEnvironmentError

# Below this much free space a failed write is put down to the full disk: SQLite needs room
# for WAL frames and a page or two of the shared-memory index.
LOW_SPACE_BYTES = 1024 * 1024


def _existing(folder: Path) -> Path:
    """``folder``, or its nearest ancestor that exists (a folder about to be created)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def read_only_reason(folder: Path) -> str | None:
    """Why nothing can be written in ``folder`` (or where it would be created), or None."""
    where = _existing(folder)
    try:
        read_only_fs = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # statvfs is POSIX-only
        read_only_fs = False
    if read_only_fs:
        return f"the folder {where} is read-only (its file system is mounted read-only)"
    if not os.access(where, os.W_OK):
        return f"permission denied: Careline cannot write in the folder {where}"
    return None


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk holding ``folder`` (None if it cannot be asked)."""
    try:
        return shutil.disk_usage(_existing(folder)).free
    except OSError:
        return None


def disk_full_reason(folder: Path) -> str | None:
    """``the disk is full`` naming the free space, when it is (nearly) full; else None."""
    free = free_bytes(folder)
    if free is not None and free < LOW_SPACE_BYTES:
        return f"the disk holding {_existing(folder)} is full ({free} bytes free)"
    return None


def diagnose(path: Path) -> StoreEnvironmentError | None:
    """The environment problem that explains a failure to open or write the database at
    ``path``, or None when the folder is writable and the disk has room (then the file
    itself is the suspect)."""
    folder = path.parent
    reason = read_only_reason(folder)
    if reason is None and path.exists() and not os.access(path, os.W_OK):
        reason = f"permission denied: Careline cannot write to {path}"
    if reason is not None:
        # SQLite writes its journal beside the file even to read it.
        return StoreEnvironmentError(
            f"{reason}; Careline needs to write there, even to read the clinic"
        )
    reason = disk_full_reason(folder)
    return None if reason is None else StoreEnvironmentError(reason)


def from_os_error(exc: OSError, folder: Path | None = None) -> StoreEnvironmentError | None:
    """An OSError from writing files (in ``folder``, when known), named for what it means
    (None: not an environment problem Careline recognises)."""
    name = str(exc.filename) if exc.filename else None
    where = Path(name).parent if name else folder
    label = name or (str(folder) if folder is not None else "the clinic's folder")
    if exc.errno == errno.EROFS:
        return StoreEnvironmentError(
            f"the folder {where or label} is read-only (read-only file system)"
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        free = free_bytes(where) if where is not None else None
        tail = f" ({free} bytes free)" if free is not None else ""
        what = "the file size limit was reached" if exc.errno == errno.EFBIG else "the disk is full"
        return StoreEnvironmentError(f"{what}{tail}: could not write in {label}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StoreEnvironmentError(f"permission denied: {label}")
    return None
