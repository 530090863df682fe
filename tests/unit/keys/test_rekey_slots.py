"""After ``PRAGMA rekey`` every kind of slot still opens the clinic, and the old key does not.

Slots wrap the key-encryption key, not the database key (see core.keys.keychain), so a
re-key rewrites one blob; these tests hold that promise for the keyring and recovery slots.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.workstation import Workstation
from core.store.database import Database
from core.store.errors import WrongKeyError
from tests.conftest import PASSWORD


def _rekey(ws: Workstation) -> SecureMemory:
    """Re-key ``ws``; returns the database key it had before (now retired)."""
    keys = ws._keys
    assert keys is not None
    old = SecureMemory.from_bytes(keys.db_key.read())
    ws.rekey()
    return old


def _old_key_is_refused(ws: Workstation, old: SecureMemory) -> None:
    with pytest.raises(WrongKeyError):
        Database.open(ws.db_path, old)
    old.close()


def test_keyring_and_recovery_slots_open_after_rekey(
    tmp_path: Path, secret_service: object
) -> None:
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    recovery = ws.init("Clinic", "admin", "Admin", PASSWORD)
    assert {s.kind for s in ws.keychain().slots} == {"password", "recovery", "keyring"}
    ws.records.add_patient("Rekeyed", "Keyring", "1980-01-01")
    old = _rekey(ws)
    ws.lock()
    _old_key_is_refused(ws, old)

    ws.unlock_with_keyring()
    assert ws.unlock_for("admin").search_patients("rekeyed")[0].given == "Keyring"
    ws.lock()
    ws.unlock_with_recovery_key(recovery)
    assert ws.unlock_for("admin").search_patients("rekeyed")[0].given == "Keyring"
    ws.lock()
    ws.sign_in("admin", PASSWORD)
    assert ws.records.count_patients() == 1
    ws.lock()


def test_recovery_slot_opens_after_rekey_without_keyring(tmp_path: Path, no_keyring: None) -> None:
    """The same for a headless workstation, where the recovery key is the way back in."""
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    recovery = ws.init("Clinic", "admin", "Admin", PASSWORD)
    ws.records.add_patient("Rekeyed", "Headless", "1980-01-01")
    old = _rekey(ws)
    old_two = _rekey(ws)  # twice: the slots survive any number of generations
    ws.lock()
    _old_key_is_refused(ws, old)
    _old_key_is_refused(ws, old_two)
    ws.unlock_with_recovery_key(recovery)
    assert ws.unlock_for("admin").search_patients("rekeyed")[0].given == "Headless"
    ws.lock()
