"""Attachment chunks: the upload path (plaintext in, encrypted and stored) and decryption
of stored bytes (``core.crypto.streaming`` chunk parsing, ``get_attachment``).

Input layout: byte 0 picks the way in:

* even: the rest is a stored object's bytes, decrypted as ``get_attachment`` would;
* odd: the rest is a file uploaded with ``put_attachment`` (small chunks, so a few bytes
  make several), then byte 0 (bits 1-2) says how the stored object is altered before it
  is read back: not at all, cut short, one byte flipped, one byte appended.

Contract: reading refuses altered, cut or foreign bytes with a DecryptionError (or
BlobIntegrityError) and nothing else; an object read back unaltered gives the file back
exactly.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from core.crypto.errors import DecryptionError
from core.crypto.streaming import MIN_CHUNK_SIZE
from core.store.blobs import BlobIntegrityError
from core.store.blobs.attachments import get_attachment, put_attachment
from core.store.blobs.filesystem import FilesystemBlobStore

KEK = bytes(range(32))
ID_KEY = bytes(range(32, 64))
AAD = b"fuzz-clinic|attachment"
# The stored object every "stored bytes" input is written to.
FIXED_ID = "0" * 64


def _alter(blob: bytes, how: int, salt: int) -> bytes:
    """``blob`` as stored, cut short (1), with a byte flipped (2) or one appended (3)."""
    where = salt % len(blob)
    if how == 1:
        return blob[:where]
    if how == 2:
        return blob[:where] + bytes([blob[where] ^ 0x01]) + blob[where + 1 :]
    if how == 3:
        return blob + b"\x00"
    return blob


class Target:
    """A filesystem blob store in a private temporary folder."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="careline-fuzz-blobs-")
        self.store = FilesystemBlobStore(Path(self._dir.name), fsync=False)

    def _read(self, blob_id: str) -> bytes | None:
        out = io.BytesIO()
        try:
            get_attachment(self.store, blob_id, out, kek=KEK, aad=AAD, id_key=ID_KEY)
        except (DecryptionError, BlobIntegrityError):
            return None
        return out.getvalue()

    def close(self) -> None:
        """Remove the temporary folder (and stop what uses it)."""
        self._dir.cleanup()

    def __call__(self, data: bytes) -> None:
        mode, body = (data[0], data[1:]) if data else (0, b"")
        if mode % 2 == 0:
            self.store.put(FIXED_ID, io.BytesIO(body))
            self._read(FIXED_ID)
            return
        stored = put_attachment(
            self.store, io.BytesIO(body), kek=KEK, aad=AAD, id_key=ID_KEY,
            chunk_size=MIN_CHUNK_SIZE,
        )  # fmt: skip
        path = self.store.path_for(stored.blob_id)
        blob = path.read_bytes()
        how = (mode >> 1) % 4
        altered = _alter(blob, how, sum(body) + len(body))
        path.write_bytes(altered)
        try:
            got = self._read(stored.blob_id)
            if altered == blob and got != body:
                raise AssertionError("an unaltered attachment did not read back as uploaded")
            if altered != blob and got is not None:
                raise AssertionError("an altered attachment was read back without complaint")
        finally:
            self.store.delete(stored.blob_id)
