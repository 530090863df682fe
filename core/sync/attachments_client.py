"""Attachments to and from the clinic server, streamed over HTTPS (httpx).

:func:`upload` sends a file as it is read (one chunk in memory at a time) to
``POST /v1/attachments``; the server encrypts it as it arrives and answers with the blob id
to put into the attachment record. :func:`download` streams ``GET /v1/attachments/{id}``
into a private temporary file beside the destination and renames it into place only when
the whole body arrived (and, if asked, matched the expected BLAKE3 digest), so a cut-off or
refused download never leaves a partial file under the destination's name.

Both authenticate with the device's bearer token and trust the server as the credential
says (the CA pinned at enrollment, else the system CAs). A refused or revoked device raises
:class:`~core.sync.http_transport.DeviceRejectedError`; everything else that goes wrong
raises :class:`AttachmentError` (or a subclass) naming the problem.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import blake3
import httpx

from core.store.blobs import BLOB_ID_PATTERN
from core.sync.enroll import ServerCredential, tls_trust
from core.sync.http_transport import DeviceRejectedError
from core.sync.transport import TransportError

CHUNK_SIZE = 1024 * 1024
TIMEOUT = httpx.Timeout(60.0, connect=15.0)


class AttachmentError(TransportError):
    """An upload or download failed; the message says why."""


class AttachmentNotFoundError(AttachmentError):
    """The server has no attachment with that id for this device's clinic."""


class BlobDamagedError(AttachmentError):
    """A download arrived whole but is not the file its record names (its ciphertext
    SHA-256 differs); it was discarded."""


class AttachmentTooLargeError(AttachmentError):
    """The server refused the file as larger than its limit."""


@dataclass(frozen=True)
class Downloaded:
    """What arrived: plaintext size and its BLAKE3 digest (hex), as upload reported them."""

    size: int
    digest: str


def _client(credential: ServerCredential, timeout: httpx.Timeout = TIMEOUT) -> httpx.Client:
    return httpx.Client(
        base_url=credential.server_url.rstrip("/"),
        headers={"Authorization": f"Bearer {credential.token}"},
        verify=tls_trust(credential.server_ca_pem),
        timeout=timeout,
    )


def _detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail or f"HTTP {response.status_code}")


def _refusal(response: httpx.Response, what: str) -> TransportError:
    detail = _detail(response)
    if response.status_code == 401:
        return DeviceRejectedError(detail)
    if response.status_code == 404:
        return AttachmentNotFoundError(f"{what}: {detail}")
    if response.status_code == 413:
        return AttachmentTooLargeError(f"{what}: {detail}")
    return AttachmentError(f"{what}: the server answered {response.status_code}: {detail}")


def _chunks(src: BinaryIO) -> Iterator[bytes]:
    while chunk := src.read(CHUNK_SIZE):
        yield chunk


def upload(credential: ServerCredential, path: str | os.PathLike[str]) -> str:
    """Send the file at ``path`` to the server; returns its blob id (64 hex digits)."""
    source = Path(path)
    try:
        src = source.open("rb")
    except OSError as exc:
        raise AttachmentError(f"cannot read {source}: {exc.strerror or exc}") from exc
    with src:
        size = os.fstat(src.fileno()).st_size
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        try:
            with _client(credential) as client:
                response = client.post("/v1/attachments", content=_chunks(src), headers=headers)
        except httpx.HTTPError as exc:
            raise AttachmentError(
                f"upload of {source.name} to {credential.server_url} failed: {exc}"
            ) from exc
    if response.status_code != 201:
        raise _refusal(response, f"upload of {source.name} refused")
    try:
        blob_id = response.json()["id"]
    except (ValueError, KeyError, TypeError):
        raise AttachmentError("upload: the server's answer has no attachment id") from None
    if not isinstance(blob_id, str) or BLOB_ID_PATTERN.fullmatch(blob_id) is None:
        raise AttachmentError("upload: the server answered with a malformed attachment id")
    return blob_id


def download(
    credential: ServerCredential,
    blob_id: str,
    dest_path: str | os.PathLike[str],
    *,
    expected_digest: str | None = None,
) -> Downloaded:
    """Fetch attachment ``blob_id`` into ``dest_path`` (replaced atomically, mode 0600).

    ``expected_digest``: the BLAKE3 hex digest from the attachment record; a mismatch raises
    AttachmentError and leaves ``dest_path`` untouched.
    """
    if not isinstance(blob_id, str) or BLOB_ID_PATTERN.fullmatch(blob_id) is None:
        raise AttachmentError(
            f"malformed attachment id {str(blob_id)[:80]!r}: expected 64 lowercase hex digits"
        )
    dest = Path(dest_path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise AttachmentError(f"cannot write to {dest.parent}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        digest = blake3.blake3()
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with (
                    _client(credential) as client,
                    client.stream("GET", f"/v1/attachments/{blob_id}") as response,
                ):
                    if response.status_code != 200:
                        response.read()
                        raise _refusal(response, f"download of attachment {blob_id}")
                    for chunk in response.iter_bytes(CHUNK_SIZE):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            except httpx.HTTPError as exc:
                raise AttachmentError(
                    f"download of attachment {blob_id} failed or was cut short (the server "
                    f"stops a file that fails its integrity check): {exc}"
                ) from exc
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if expected_digest is not None and not hmac.compare_digest(got, expected_digest.lower()):
            raise AttachmentError(
                f"attachment {blob_id} arrived with digest {got}, expected {expected_digest}"
            )
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            raise AttachmentError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        return Downloaded(size, got)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
