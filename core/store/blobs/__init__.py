"""Encrypted attachment storage: the BlobStore interface, the filesystem store, and
content-addressed put/get of encrypted attachments.

The S3 store needs boto3 (the ``server`` extra), so it is imported from its module:
``from core.store.blobs.s3 import S3BlobStore``.
"""

from core.store.blobs.attachments import StoredAttachment, get_attachment, put_attachment
from core.store.blobs.base import BLOB_ID_PATTERN, BlobStore, validate_blob_id
from core.store.blobs.errors import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStoreError,
    InvalidBlobIdError,
)
from core.store.blobs.filesystem import FilesystemBlobStore

__all__ = [
    "BLOB_ID_PATTERN",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobStore",
    "BlobStoreError",
    "FilesystemBlobStore",
    "InvalidBlobIdError",
    "StoredAttachment",
    "get_attachment",
    "put_attachment",
    "validate_blob_id",
]
