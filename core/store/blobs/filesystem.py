"""Blobs as files under a root directory: ``root/<first two hex digits>/<blob id>``.

Writes are atomic: the blob goes to a temporary file (mode 0600) in the same directory, is
flushed and fsync'd, then renamed over the final name, and the directory is fsync'd, so a
crash leaves the old blob or the new one, never part of one. Directories are made 0700.
Leftover ``.tmp-*`` files from a crash are never mistaken for blobs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from core.store.blobs.base import BlobStore, copy_stream, validate_blob_id
from core.store.blobs.errors import BlobNotFoundError, BlobStoreError

_TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # a directory cannot be opened to fsync; NTFS journals renames
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore(BlobStore):
    """A :class:`BlobStore` on a local filesystem, with atomic, fsync'd writes."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self._fsync = fsync
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BlobStoreError("", f"cannot create blob directory {self.root}: {exc}") from exc

    def path_for(self, blob_id: str) -> Path:
        """Where the blob lives (after validating the id; nothing else can reach a path)."""
        validate_blob_id(blob_id)
        return self.root / blob_id[:2] / blob_id

    def put(self, blob_id: str, stream: BinaryIO) -> int:
        """Write ``stream`` to a temporary file, fsync it, rename it into place; return size.

        Errors of the store (disk full, permissions) become BlobStoreError; an error raised
        by ``stream`` itself propagates unchanged. Either way the temporary file is removed.
        """
        path = self.path_for(blob_id)

        def failed(exc: OSError) -> BlobStoreError:
            return BlobStoreError(blob_id, f"could not write {path}: {exc}")

        tmp: str | None = None
        try:
            try:
                path.parent.mkdir(mode=0o700, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)  # mode 0600
                out = os.fdopen(fd, "wb")
            except OSError as exc:
                raise failed(exc) from exc
            with out:

                def write(view: memoryview) -> None:
                    try:
                        out.write(view)
                    except OSError as exc:
                        raise failed(exc) from exc

                size = copy_stream(stream, write)
                try:
                    out.flush()
                    if self._fsync:
                        os.fsync(out.fileno())
                except OSError as exc:
                    raise failed(exc) from exc
            try:
                os.replace(tmp, path)
                tmp = None
                if self._fsync:
                    _fsync_dir(path.parent)
            except OSError as exc:
                raise failed(exc) from exc
            return size
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def get(self, blob_id: str) -> BinaryIO:
        """Open the blob file for reading."""
        path = self.path_for(blob_id)
        try:
            return path.open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(blob_id, f"not found (no file {path})") from exc
        except OSError as exc:
            raise BlobStoreError(blob_id, f"could not open {path}: {exc}") from exc

    def exists(self, blob_id: str) -> bool:
        """True if the blob file exists."""
        path = self.path_for(blob_id)
        try:
            return path.is_file()
        except OSError as exc:
            raise BlobStoreError(blob_id, f"could not check {path}: {exc}") from exc

    def delete(self, blob_id: str) -> None:
        """Remove the blob file if present."""
        path = self.path_for(blob_id)
        try:
            path.unlink(missing_ok=True)
            if self._fsync and path.parent.exists():
                _fsync_dir(path.parent)
        except OSError as exc:
            raise BlobStoreError(blob_id, f"could not delete {path}: {exc}") from exc
