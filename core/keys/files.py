"""Small files holding wrapped keys: private, atomic, versioned."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.platform.file_lock import lock_fd, unlock_fd
from core.platform.files import fsync_dir


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created, mode 0600) for the block: serialises
    processes that create or replace the same files. POSIX: ``flock``; Windows:
    ``msvcrt.locking`` on the first byte (see :mod:`core.platform.file_lock`). Either is
    released if the process dies."""
    # A folder made for key files is the owner's alone: its names and sizes (which
    # files exist, how large the failed sign-ins have grown) are not for other users.
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        lock_fd(fd)
        try:
            yield
        finally:
            unlock_fd(fd)
    finally:
        os.close(fd)


def write_private_temp(directory: Path, data: bytes, prefix: str) -> str:
    """``data`` in a new mode-0600 temp file in ``directory``, fsync'd; returns its path."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        if hasattr(os, "fchmod"):  # mkstemp made it 0600 already; Windows lacks fchmod (<3.13)
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def replace_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600): temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as in exclusive_lock
    tmp = write_private_temp(path.parent, data, f".{path.name}-")
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def parse_versioned_json(
    raw: bytes, fmt: str, version: int, where: str, error: type[Exception], kind: str
) -> dict[str, Any]:
    """Parse a ``{"format": fmt, "version": version, ...}`` file; ``error`` names the problem."""
    try:
        data: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise error(f"{where} is not valid JSON (damaged?)") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{where} is not a Careline {kind}")
    if data.get("version") != version:
        raise error(
            f"{where} has format version {data.get('version')!r}; "
            f"this Careline reads version {version}"
        )
    return data
