"""Errors from blob stores. Each message names the blob and the problem."""

from __future__ import annotations

from core.store.errors import StoreError


class BlobStoreError(StoreError):
    """A blob store operation failed; ``blob_id`` names the blob (may be ``""``)."""

    plain_template = "the attachment store reported a problem: {detail}"

    def __init__(self, blob_id: str, message: str) -> None:
        super().__init__(f"blob {blob_id!r}: {message}" if blob_id else message)
        self.blob_id = blob_id


class InvalidBlobIdError(BlobStoreError, ValueError):
    """The blob id is not 64 lowercase hex digits (this also rules out path traversal)."""


class BlobNotFoundError(BlobStoreError, KeyError):
    """No blob is stored under that id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class BlobIntegrityError(BlobStoreError):
    """A blob decrypted, but its content does not match its id (swapped or misfiled object)."""
