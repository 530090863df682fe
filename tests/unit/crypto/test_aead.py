from __future__ import annotations

import pytest

from core.crypto import aead
from core.crypto.errors import DecryptionError


def test_round_trip_binds_associated_data() -> None:
    key = aead.generate_key()
    blob = aead.encrypt(key, b"Jo Smith", b"patients|p1")
    assert b"Jo Smith" not in blob
    assert aead.decrypt(key, blob, b"patients|p1") == b"Jo Smith"
    with pytest.raises(DecryptionError):
        aead.decrypt(key, blob, b"patients|p2")


def test_wrong_key_and_tampering_are_refused() -> None:
    key = aead.generate_key()
    blob = bytearray(aead.encrypt(key, b"secret", b""))
    with pytest.raises(DecryptionError):
        aead.decrypt(aead.generate_key(), bytes(blob), b"")
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        aead.decrypt(key, bytes(blob), b"")
    with pytest.raises(DecryptionError, match="too short"):
        aead.decrypt(key, b"abc", b"")


def test_nonces_are_fresh() -> None:
    key = aead.generate_key()
    assert aead.encrypt(key, b"x", b"") != aead.encrypt(key, b"x", b"")


def test_rejects_short_key() -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        aead.encrypt(b"short", b"x", b"")
