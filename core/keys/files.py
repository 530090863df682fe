"""Small files holding wrapped keys: private, atomic, versioned."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised only on Windows
    import msvcrt

    def _lock_fd(fd: int) -> None:
        # Lock the file's first byte; LK_LOCK gives up after about ten seconds, so retry:
        # the holder releases it when done (or when its process ends).
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created, mode 0600) for the block: serialises
    processes that create or replace the same files. POSIX: ``flock``; Windows:
    ``msvcrt.locking`` on the first byte. Either is released if the process dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        _lock_fd(fd)
        try:
            yield
        finally:
            _unlock_fd(fd)
    finally:
        os.close(fd)


def write_private_temp(directory: Path, data: bytes, prefix: str) -> str:
    """``data`` in a new mode-0600 temp file in ``directory``, fsync'd; returns its path."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
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
    path.parent.mkdir(parents=True, exist_ok=True)
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
