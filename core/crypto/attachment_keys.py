"""The clinic attachment key and the two keys derived from it.

One random 32-byte secret per clinic (with a short id naming it, so a record can say which
key its file was wrapped for and a key can later be rotated) gives, through HKDF-SHA256:

* the key-encryption key that wraps each file's own data key (:mod:`core.crypto.streaming`);
* the blob id key, under which a file's content id is an HMAC of its plaintext digest.

Workstations hold it inside their encrypted database; the server never does, so it stores
and verifies ciphertext it cannot open or name.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_SIZE = 32
_KEK_INFO = b"careline/clinic-attachments/kek/v1"
_ID_INFO = b"careline/clinic-attachments/blob-id/v1"


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(secret)


@dataclass(frozen=True, repr=False)
class ClinicAttachmentKey:
    """A clinic's attachment secret and its id (``repr`` never shows the secret)."""

    key_id: str
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise ValueError(f"a clinic attachment key is {KEY_SIZE} bytes")

    def __repr__(self) -> str:
        return f"ClinicAttachmentKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> ClinicAttachmentKey:
        """A new random key with a random id."""
        return cls(secrets.token_hex(8), secrets.token_bytes(KEY_SIZE))

    @property
    def kek(self) -> bytes:
        """Wraps each file's data key."""
        return _derive(self.secret, _KEK_INFO)

    @property
    def id_key(self) -> bytes:
        """Names blobs: the keyed content id."""
        return _derive(self.secret, _ID_INFO)

    def aad(self) -> bytes:
        """Associated data binding a file to this key (the key is the clinic's alone)."""
        return f"careline/attachment|{self.key_id}".encode()
