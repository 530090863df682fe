"""The blob store interface and helpers shared by its implementations.

A blob store keeps opaque byte strings (here: encrypted attachments, ciphertext only) under
content ids. Ids are 64 lowercase hex digits (a keyed SHA-256, see
:func:`core.crypto.streaming.content_id`); anything else is refused before it reaches a
path or an object key.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import BinaryIO

from core.store.blobs.errors import InvalidBlobIdError

BLOB_ID_PATTERN = re.compile(r"[0-9a-f]{64}")
COPY_BUFFER_SIZE = 1024 * 1024


def validate_blob_id(blob_id: str) -> str:
    """Return ``blob_id`` if it is 64 lowercase hex digits, else raise InvalidBlobIdError."""
    if not isinstance(blob_id, str):
        raise InvalidBlobIdError(repr(blob_id), "invalid id: expected a str")
    if BLOB_ID_PATTERN.fullmatch(blob_id) is None:
        shown = blob_id if len(blob_id) <= 100 else blob_id[:100] + "…"
        raise InvalidBlobIdError(shown, "invalid id: expected 64 lowercase hex digits")
    return blob_id


def copy_stream(
    src: BinaryIO, write: Callable[[memoryview], object], limit: int | None = None
) -> int:
    """Copy from ``src`` to ``write`` through one reused buffer; return bytes copied.

    Stops at the end of ``src`` or after ``limit`` bytes. ``write`` must consume the view
    before returning.
    """
    buf = bytearray(COPY_BUFFER_SIZE if limit is None else min(COPY_BUFFER_SIZE, limit))
    view = memoryview(buf)
    readinto = getattr(src, "readinto", None)
    copied = 0
    while limit is None or copied < limit:
        want = len(buf) if limit is None else min(len(buf), limit - copied)
        if want == 0:
            break
        if readinto is not None:
            n = readinto(view[:want])
            if n is None:
                raise BlockingIOError("source stream would block; use a blocking stream")
        else:
            data = src.read(want)
            n = len(data)
            view[:n] = data
        if n == 0:
            break
        write(view[:n])
        copied += n
    return copied


class BlobStore(ABC):
    """Where encrypted attachments live. Only ciphertext is ever handed to a store."""

    @abstractmethod
    def put(self, blob_id: str, stream: BinaryIO) -> int:
        """Store everything ``stream`` yields under ``blob_id``; return the size in bytes.

        Replaces an existing blob atomically: readers see the old or the new one, never a
        mix. On failure nothing is left under ``blob_id`` that was not there before.
        """

    @abstractmethod
    def get(self, blob_id: str) -> BinaryIO:
        """Open the blob for streaming reads; close it when done. Missing: BlobNotFoundError."""

    @abstractmethod
    def exists(self, blob_id: str) -> bool:
        """True if a blob is stored under ``blob_id``."""

    @abstractmethod
    def delete(self, blob_id: str) -> None:
        """Remove the blob. Deleting a missing blob is not an error (retries succeed)."""
