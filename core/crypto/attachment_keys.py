"""The clinic attachment key and the two keys derived from it.

One random 32-byte secret per clinic (with a short id naming it, so a record can say which
key its file was wrapped for and a key can later be rotated) gives, through HKDF-SHA256:

* the key-encryption key that wraps each file's own data key (:mod:`core.crypto.streaming`);
* the blob id key, under which a file's content id is an HMAC of its plaintext digest.

Workstations hold it inside their encrypted database; the server never does, so it stores
and verifies ciphertext it cannot open or name.

A key's id commits to its secret (:func:`committed_id`): 12 hex digits of an HKDF of the
secret, then 4 of a check over those 12. A workstation given a key (sealed for it by another
device, which the server relays and cannot vouch for) recomputes the id from the secret and
refuses a secret that does not match, so an enrolled device cannot hand another a wrong
secret under a real key's id. Keys made before ids committed have 16 random hex digits; one
passes the check by chance once in 65,536 (:func:`looks_committed`), and such a key can
still be brought in by ``careline attachment key import``, which a person vouches for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_SIZE = 32
_KEK_INFO = b"careline/clinic-attachments/kek/v1"
_ID_INFO = b"careline/clinic-attachments/blob-id/v1"
_KEY_ID_INFO = b"careline/clinic-attachments/key-id/v1"
_KEY_ID_CHECK = b"careline/clinic-attachments/key-id-check/v1"


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(secret)


def _id_check(commitment: str) -> str:
    return hashlib.sha256(_KEY_ID_CHECK + commitment.encode("ascii")).hexdigest()[:4]


def committed_id(secret: bytes) -> str:
    """The id a key with this secret has (16 hex digits: 48 bits of commitment to the
    secret, 16 of check). Finding another secret with the same id takes about 2**48 HKDF
    evaluations."""
    kdf = HKDF(algorithm=hashes.SHA256(), length=6, salt=None, info=_KEY_ID_INFO)
    commitment = kdf.derive(secret).hex()
    return commitment + _id_check(commitment)


def looks_committed(key_id: str) -> bool:
    """Whether ``key_id`` is of the committed form (so its secret can be checked): true for
    every key made since ids committed, and by chance for one older key in 65,536."""
    return (
        len(key_id) == 16
        and all(c in "0123456789abcdef" for c in key_id)
        and key_id[12:] == _id_check(key_id[:12])
    )


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
        """A new random key, its id committed to it."""
        secret = secrets.token_bytes(KEY_SIZE)
        return cls(committed_id(secret), secret)

    @property
    def verified(self) -> bool:
        """The id commits to this very secret (a key made since ids committed, and given
        intact)."""
        return hmac.compare_digest(self.key_id, committed_id(self.secret))

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
