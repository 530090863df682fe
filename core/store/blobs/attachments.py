"""Encrypted, content-addressed attachments on any :class:`BlobStore`.

:func:`put_attachment` encrypts a plaintext stream client-side
(:func:`core.crypto.streaming.encrypt_stream`) into an unnamed temporary file (ciphertext
only), naming it as it goes with the keyed content id
(:func:`core.crypto.streaming.content_id`), then stores that file under the id unless the
tenant already has it. The id is only known once the whole plaintext has been read, hence
the spool file; memory stays at a few chunks whatever the size.

:func:`get_attachment` streams the blob back through decryption and then checks that the
plaintext really has the id it was fetched by, so a swapped or misfiled object is refused
even though the id could not be part of the AAD.
"""

from __future__ import annotations

import hmac
import os
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from core.crypto.streaming import (
    DEFAULT_CHUNK_SIZE,
    DecryptResult,
    Key,
    content_id,
    decrypt_stream,
    encrypt_stream,
)
from core.store.blobs.base import BlobStore, validate_blob_id
from core.store.blobs.errors import BlobIntegrityError


@dataclass(frozen=True)
class StoredAttachment:
    """Where an attachment went; ``uploaded_bytes`` is 0 when deduplicated.

    ``plaintext_digest`` is an unkeyed hash of the content: keep it inside encrypted records.
    """

    blob_id: str
    plaintext_size: int
    plaintext_digest: bytes
    uploaded_bytes: int
    deduplicated: bool


def put_attachment(
    store: BlobStore,
    src: BinaryIO,
    *,
    kek: Key,
    aad: bytes,
    id_key: Key,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    spool_dir: str | os.PathLike[str] | None = None,
) -> StoredAttachment:
    """Encrypt ``src`` under ``kek``/``aad`` and store it under its keyed content id.

    ``id_key`` is the tenant's blob-naming key (not the KEK). If the tenant already stores
    the same content under the same AAD, nothing is uploaded (``deduplicated=True``).
    """
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        result = encrypt_stream(src, spool, kek, aad, chunk_size)
        blob_id = content_id(id_key, result.plaintext_digest, aad)
        if store.exists(blob_id):
            return StoredAttachment(
                blob_id, result.plaintext_size, result.plaintext_digest, 0, deduplicated=True
            )
        spool.flush()
        spool.seek(0)
        stored = store.put(blob_id, spool)
    return StoredAttachment(
        blob_id, result.plaintext_size, result.plaintext_digest, stored, deduplicated=False
    )


def get_attachment(
    store: BlobStore, blob_id: str, dst: BinaryIO, *, kek: Key, aad: bytes, id_key: Key
) -> DecryptResult:
    """Decrypt the blob into ``dst`` and check the plaintext matches ``blob_id``.

    Raises a DecryptionError for tampering, truncation or a wrong KEK/AAD, and
    BlobIntegrityError when the content is intact but belongs to another id. Either way
    ``dst`` must be discarded.
    """
    validate_blob_id(blob_id)
    with store.get(blob_id) as stream:
        result = decrypt_stream(stream, dst, kek, aad)
    actual = content_id(id_key, result.plaintext_digest, aad)
    if not hmac.compare_digest(actual, blob_id):
        raise BlobIntegrityError(
            blob_id,
            "decrypted content does not match the blob id (object swapped or misfiled, or a "
            "different tenant's id key)",
        )
    return result
