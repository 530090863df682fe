"""Client-encrypted attachments to and from the clinic server, resumable both ways.

The workstation encrypts a file before it leaves (:mod:`core.sync.attachments`); this
module only moves ciphertext. :func:`push` asks the server how much of the blob it already
holds (``GET /v1/blobs/{id}/upload``) and sends the rest (``PUT /v1/blobs/{id}`` with
``Upload-Offset``), so an upload cut off by a dropped connection, or by the workstation
being switched off, carries on where it stopped. :func:`fetch` appends to a partial file
and asks for the rest with ``Range: bytes=N-``; the finished file must have the ciphertext
SHA-256 the attachment record names, else it is deleted and refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import httpx

from core.platform.file_lock import try_lock_fd
from core.sync.attachments_client import (
    TIMEOUT,
    AttachmentError,
    BlobDamagedError,
    _client,
    _refusal,
)
from core.sync.enroll import ServerCredential

PIECE = 1024 * 1024
# A download reports progress (where a caller may stop it) at each read: 64 KiB is a
# fraction of a second even on a slow clinic line, where 1 MiB could take most of a minute.
READ = 64 * 1024
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def _no_progress(done: int, total: int) -> None:
    """Progress sink that ignores reports."""


def _pieces(src: BinaryIO, sent: list[int], total: int, progress: Progress) -> Iterator[bytes]:
    while piece := src.read(PIECE):
        sent[0] += len(piece)
        progress(sent[0], total)
        yield piece


def upload_offset(credential: ServerCredential, blob_id: str) -> tuple[int, bool]:
    """(bytes the server holds, whether the blob is complete there)."""
    offset, complete, _ = upload_state(credential, blob_id)
    return offset, complete


def upload_state(credential: ServerCredential, blob_id: str) -> tuple[int, bool, str | None]:
    """(bytes the server holds, whether the blob is complete there, the stored
    ciphertext's SHA-256 once complete)."""
    try:
        with _client(credential) as client:
            response = client.get(f"/v1/blobs/{blob_id}/upload")
    except httpx.HTTPError as exc:
        raise AttachmentError(f"cannot reach {credential.server_url}: {exc}") from exc
    if response.status_code != 200:
        raise _refusal(response, f"upload state of attachment {blob_id}")
    body = response.json()
    stored = body.get("sha256")
    return int(body["offset"]), bool(body["complete"]), str(stored) if stored else None


def push(
    credential: ServerCredential,
    blob_id: str,
    path: Path,
    sha256: str,
    progress: Progress = _no_progress,
) -> int:
    """Send the encrypted file at ``path`` as blob ``blob_id``, resuming a partial upload;
    returns the bytes sent by this call. Raises AttachmentError if the connection drops
    (call again to carry on) or the server refuses the file (the message says why)."""
    size = path.stat().st_size
    offset, complete, stored = upload_state(credential, blob_id)
    if complete:
        if stored is not None and not hmac.compare_digest(stored, sha256):
            raise AttachmentError(
                f"the server holds other bytes under attachment id {blob_id} (ciphertext "
                f"SHA-256 {stored}, this file's is {sha256}); ask the administrator to "
                "remove that blob"
            )
        progress(size, size)
        return 0
    response = _send_from(credential, blob_id, path, size, sha256, offset, progress)
    if response.status_code == 409:
        # The server holds less than it said (behind a load balancer, another server
        # process may answer: partial uploads live on each one's disk). Carry on from what
        # this one holds, once; usually byte 0, as its log says.
        held = _header_offset(response)
        if held is not None and held < offset:
            offset = held
            response = _send_from(credential, blob_id, path, size, sha256, offset, progress)
    if response.status_code not in (201, 202):
        raise _refusal(response, f"upload of attachment {blob_id} refused")
    if response.status_code == 202:
        raise AttachmentError(f"upload of attachment {blob_id} ended early; will resume")
    return size - offset


def _header_offset(response: httpx.Response) -> int | None:
    try:
        return int(response.headers.get("Upload-Offset", ""))
    except ValueError:
        return None


def _send_from(
    credential: ServerCredential,
    blob_id: str,
    path: Path,
    size: int,
    sha256: str,
    offset: int,
    progress: Progress,
) -> httpx.Response:
    """One ``PUT`` of the file's bytes from ``offset``; the server's answer."""
    with path.open("rb") as src:
        src.seek(offset)
        sent = [offset]
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size - offset),
            "Upload-Offset": str(offset),
            "Upload-Length": str(size),
            "X-Ciphertext-SHA256": sha256,
        }
        try:
            with _client(credential) as client:
                return client.put(
                    f"/v1/blobs/{blob_id}",
                    content=_pieces(src, sent, size, progress),
                    headers=headers,
                )
        except httpx.HTTPError as exc:
            raise AttachmentError(
                f"upload of attachment {blob_id} was cut off after {sent[0]} of {size} bytes "
                f"(the next sync carries on from what the server received): {exc}"
            ) from exc


def fetch(
    credential: ServerCredential,
    blob_id: str,
    dest: Path,
    sha256: str,
    progress: Progress = _no_progress,
    size: int | None = None,
    timeout: httpx.Timeout = TIMEOUT,
) -> None:
    """Download blob ``blob_id`` into ``dest`` (via ``dest.part``, resumed if present).

    The whole file must have ciphertext SHA-256 ``sha256``; otherwise the partial file is
    deleted and BlobDamagedError says so. A dropped connection leaves the part for the next
    call to continue, and so does an exception raised by ``progress`` (a caller stopping).
    ``timeout``: how long a silent server is waited for (the prefetch waits less, so it
    stops promptly when the network drops).
    """
    total = size or 0
    with locked_part(dest, lambda: progress(0, total)) as held:
        if held is None:  # another process fetched it meanwhile
            return
        out, have = held
        part = dest.with_name(dest.name + ".part")
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with (
                _client(credential, timeout) as client,
                client.stream("GET", f"/v1/blobs/{blob_id}", headers=headers) as response,
            ):
                if response.status_code not in (200, 206):
                    response.read()
                    raise _refusal(response, f"download of attachment {blob_id}")
                if response.status_code == 200 and have:
                    out.truncate(0)  # the server sent it all again
                    have = 0
                if not total:  # the whole file's size, for the progress shown
                    with contextlib.suppress(ValueError):
                        total = have + int(response.headers.get("Content-Length", ""))
                done = have
                for piece in response.iter_bytes(READ):
                    out.write(piece)
                    done += len(piece)
                    progress(done, total or done)
        except httpx.HTTPError as exc:
            raise AttachmentError(
                f"download of attachment {blob_id} was cut off (the next try continues): {exc}"
            ) from exc
        out.flush()
        os.fsync(out.fileno())
        finish_part(part, dest, blob_id, sha256)


@contextmanager
def locked_part(
    dest: Path, waiting: Callable[[], None] = lambda: None
) -> Iterator[tuple[BinaryIO, int] | None]:
    """``dest.part`` opened for appending, with a lock between processes (the app's
    prefetch and ``careline sync --prefetch`` or ``careline attachment get`` beside it
    never append to the same partial file), and its size; None when ``dest`` arrived
    meanwhile (another process finished it). Held until the block ends, so the finished
    part is moved into place under the lock. ``waiting`` is called every 100 ms while
    another process holds it (a caller stopping raises from it, as from its progress)."""
    part = dest.with_name(dest.name + ".part")
    while True:
        if dest.exists():
            yield None
            return
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        out = os.fdopen(fd, "ab")
        try:
            while not try_lock_fd(fd):  # another process downloads into it
                waiting()
                time.sleep(0.1)
            try:
                current = os.stat(part)
            except FileNotFoundError:
                current = None
            held = os.fstat(fd)
            if current is None or (current.st_ino, current.st_dev) != (held.st_ino, held.st_dev):
                continue  # finished (moved into place) or dropped while we waited: look again
            yield out, held.st_size
            return
        finally:
            out.close()  # releases the lock


def finish_part(part: Path, dest: Path, blob_id: str, sha256: str) -> None:
    """Move a whole download into place if its ciphertext has SHA-256 ``sha256``; else
    delete it and raise BlobDamagedError."""
    digest = hashlib.sha256()
    with part.open("rb") as src:
        while piece := src.read(PIECE):
            digest.update(piece)
    if not hmac.compare_digest(digest.hexdigest(), sha256):
        part.unlink(missing_ok=True)
        raise BlobDamagedError(
            f"attachment {blob_id} arrived damaged or is not the file its record names "
            f"(ciphertext SHA-256 {digest.hexdigest()}, expected {sha256}); it was discarded"
        )
    os.replace(part, dest)
