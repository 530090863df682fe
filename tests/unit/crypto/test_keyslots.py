from __future__ import annotations

import dataclasses

import pytest

from core.crypto.errors import DecryptionError
from core.crypto.kdf import FAST_PARAMS
from core.crypto.keyslots import KeySlot, make_slot, open_slot

KEY = b"K" * 32


def test_password_slot_round_trip() -> None:
    slot = make_slot(KEY, "db1", "password", "ada", b"pw-ada-123", FAST_PARAMS)
    assert open_slot(slot, "db1", b"pw-ada-123") == KEY
    with pytest.raises(DecryptionError):
        open_slot(slot, "db1", b"wrong")


def test_slot_is_bound_to_database_and_label() -> None:
    slot = make_slot(KEY, "db1", "password", "ada", b"pw", FAST_PARAMS)
    with pytest.raises(DecryptionError):
        open_slot(slot, "db2", b"pw")
    relabelled = dataclasses.replace(slot, label="mallory")
    with pytest.raises(DecryptionError):
        open_slot(relabelled, "db1", b"pw")


def test_serialisation_round_trip_and_validation() -> None:
    slot = make_slot(KEY, "db1", "keyring", "os", b"s" * 32, None)
    again = KeySlot.from_dict(slot.to_dict())
    assert open_slot(again, "db1", b"s" * 32) == KEY
    bad = slot.to_dict() | {"kind": "plaintext"}
    with pytest.raises(ValueError, match="kind 'plaintext'"):
        KeySlot.from_dict(bad)
    with pytest.raises(ValueError, match="base64"):
        KeySlot.from_dict(slot.to_dict() | {"wrapped": "@@@"})
