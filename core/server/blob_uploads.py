"""Resumable uploads of client-encrypted attachments, verified without the key.

A workstation encrypts a file itself (:mod:`core.crypto.streaming`, under its clinic's
attachment key, which the server never holds), names it by its keyed content id, and sends
the ciphertext here in one or more pieces: each request says where its bytes start, and
:meth:`BlobUploads.offset` tells a client that lost its connection where to carry on. The
partial file lives in ``<data dir>/uploads/<clinic id>/`` beside a small JSON file holding
what the client declared (total size and ciphertext SHA-256). When the last byte arrives
the server checks the SHA-256 of everything received against the declaration and the chunk
framing against the size (:func:`core.crypto.attachment_framing.check_framing`), and only
then stores the blob under its id. Anything else is refused with a message naming the fault,
and the partial file is dropped so the next attempt starts clean.

Scale-out (several server processes sharing PostgreSQL and S3): the partial file is on the
disk of the process that received the upload's start, not in the shared store. A resumed
upload that the load balancer sends to another process is told there to start at byte 0
(HTTP 409 with ``Upload-Offset: 0``, logged as ``attachment.upload_restarted``), and the
client starts again at once, so the upload completes, at the cost of sending the bytes
again. The partial file left on the first process stays until that process's uploads
folder is cleared.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.crypto.attachment_framing import check_framing
from core.crypto.errors import DecryptionError
from core.crypto.streaming import HEADER_SIZE
from core.errors import CarelineError
from core.platform.file_lock import lock_fd
from core.store.blobs import BlobNotFoundError, BlobStore, validate_blob_id
from core.store.blobs.base import copy_stream

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger("careline.server")


def _sha_id(blob_id: str) -> str:
    """Where a blob's checked ciphertext SHA-256 is kept (a name of the same form)."""
    return hashlib.sha256(f"careline/blob-sha256|{blob_id}".encode()).hexdigest()


class UploadRefusedError(CarelineError, ValueError):
    """The upload does not match what was declared, or is not a well-framed attachment."""


class UploadOffsetError(CarelineError, ValueError):
    """The piece does not start where the stored part ends; ``offset`` says where it does."""

    def __init__(self, offset: int, got: int) -> None:
        super().__init__(f"this upload continues at byte {offset}, not at byte {got}")
        self.offset = offset


@dataclass(frozen=True)
class UploadState:
    """How far an upload got: bytes the server holds and whether the blob is stored."""

    offset: int
    size: int | None
    complete: bool
    sha256: str | None = None  # of the stored ciphertext, as its uploader declared and we checked


class BlobUploads:
    """Partial uploads of one clinic, finished into its blob store."""

    def __init__(self, folder: Path, store: BlobStore, max_bytes: int) -> None:
        self.folder = folder
        self.store = store
        self.max_bytes = max_bytes

    def _paths(self, blob_id: str) -> tuple[Path, Path]:
        validate_blob_id(blob_id)
        return self.folder / f"{blob_id}.part", self.folder / f"{blob_id}.json"

    def _declared(self, blob_id: str) -> tuple[int, str] | None:
        _, meta = self._paths(blob_id)
        try:
            value = json.loads(meta.read_text("utf-8"))
            return int(value["size"]), str(value["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @contextlib.contextmanager
    def _locked(self, blob_id: str) -> Iterator[None]:
        """One request at a time per upload, across server processes: an offset asked for
        after a dropped connection waits until the cut-off request has written its part."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(
            self.folder / f"{validate_blob_id(blob_id)}.lock", os.O_RDWR | os.O_CREAT, 0o600
        )
        try:
            lock_fd(fd)
            yield
        finally:
            os.close(fd)  # releases the lock

    def offset(self, blob_id: str) -> UploadState:
        """Where an upload of ``blob_id`` stands (``complete`` once the blob is stored)."""
        with self._locked(blob_id):
            return self._offset(blob_id)

    def _offset(self, blob_id: str) -> UploadState:
        part, _ = self._paths(blob_id)
        if self.store.exists(blob_id):
            return UploadState(0, None, True, self.stored_sha256(blob_id))
        declared = self._declared(blob_id)
        if declared is None or not part.exists():
            return UploadState(0, None, False)
        return UploadState(part.stat().st_size, declared[0], False)

    def discard(self, blob_id: str) -> None:
        """Drop a partial upload."""
        for path in self._paths(blob_id):
            path.unlink(missing_ok=True)

    def append(
        self, blob_id: str, *, start: int, size: int, sha256: str, src: BinaryIO
    ) -> UploadState:
        """Write ``src`` at byte ``start`` of the upload declared as ``size`` bytes with
        ciphertext SHA-256 ``sha256``; finish it when the last byte is in.

        A new declaration (other size or hash) replaces a partial upload of the same id.
        """
        with self._locked(blob_id):
            return self._append(blob_id, start=start, size=size, sha256=sha256, src=src)

    def _append(
        self, blob_id: str, *, start: int, size: int, sha256: str, src: BinaryIO
    ) -> UploadState:
        if SHA256_PATTERN.fullmatch(sha256) is None:
            raise UploadRefusedError("the ciphertext SHA-256 must be 64 lowercase hex digits")
        if not HEADER_SIZE <= size <= self.max_bytes:
            raise UploadRefusedError(
                f"declared size {size} is outside {HEADER_SIZE}..{self.max_bytes} bytes"
            )
        part, meta = self._paths(blob_id)
        if self.store.exists(blob_id):
            # Content-addressed: already here. Say what is stored, so an uploader whose
            # file differs (another device stored other bytes under this id) notices.
            return UploadState(size, size, True, self.stored_sha256(blob_id))
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._declared(blob_id) != (size, sha256):
            self.discard(blob_id)
            meta.write_text(json.dumps({"size": size, "sha256": sha256}), "utf-8")
        held = part.stat().st_size if part.exists() else 0
        if start != held:
            if held == 0 and start > 0:
                # Partial uploads live on each server process's own disk: behind a load
                # balancer, a resumed upload may reach a process that never saw its start.
                # The client is told to start again at byte 0 (and does, at once).
                log.warning(json.dumps({
                    "event": "attachment.upload_restarted", "blob": blob_id,
                    "asked_offset": start, "held_offset": 0,
                    "reason": "this server process holds no partial upload of this blob "
                              "(another process received its start, or it was discarded); "
                              "the client restarts from byte 0",
                }))  # fmt: skip
            raise UploadOffsetError(held, start)
        with part.open("ab") as out:
            written = copy_stream(src, out.write, limit=size - held)
            out.flush()
            os.fsync(out.fileno())
        if src.read(1):
            self.discard(blob_id)
            raise UploadRefusedError(f"the upload is longer than the declared {size} bytes")
        held += written
        if held < size:
            return UploadState(held, size, False)
        try:
            self._finish(blob_id, part, size, sha256)
        finally:
            self.discard(blob_id)
        return UploadState(size, size, True, sha256)

    def _finish(self, blob_id: str, part: Path, size: int, sha256: str) -> None:
        digest = hashlib.sha256()
        with part.open("rb") as src:
            header = src.read(HEADER_SIZE)
            digest.update(header)
            copy_stream(src, digest.update)
        if not hmac.compare_digest(digest.hexdigest(), sha256):
            raise UploadRefusedError(
                f"the ciphertext that arrived has SHA-256 {digest.hexdigest()}, not the "
                f"declared {sha256}: damaged in transit or a different file"
            )
        try:
            check_framing(header, size)
        except DecryptionError as exc:
            raise UploadRefusedError(f"not a well-formed encrypted attachment: {exc}") from exc
        with part.open("rb") as src:
            self.store.put(blob_id, src)
        self.store.put(_sha_id(blob_id), io.BytesIO(sha256.encode("ascii")))

    def stored_sha256(self, blob_id: str) -> str | None:
        """The checked ciphertext SHA-256 kept beside a stored blob (None: stored before
        it was kept)."""
        try:
            with self.store.get(_sha_id(blob_id)) as src:
                value = src.read(64).decode("ascii", "replace")
        except BlobNotFoundError:
            return None
        return value if SHA256_PATTERN.fullmatch(value) else None

    def open(self, blob_id: str, start: int = 0) -> BinaryIO:
        """The stored ciphertext from byte ``start`` (for resumed downloads)."""
        stream = self.store.get(blob_id)
        try:
            if start:
                seek = getattr(stream, "seekable", None)
                if seek is not None and seek():
                    stream.seek(start)
                else:
                    copy_stream(stream, lambda _v: None, limit=start)
        except BaseException:
            with contextlib.suppress(Exception):
                stream.close()
            raise
        return stream
