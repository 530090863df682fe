from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys.keychain import Keychain
from core.records.errors import AuthenticationError, ValidationError
from core.records.workstation import Workstation, WorkstationLockedError
from core.store.errors import StoreError
from tests.conftest import PASSWORD


def test_init_refuses_existing_clinic(workstation: Workstation) -> None:
    again = Workstation(workstation.data_dir, kdf_params=FAST_PARAMS)
    with pytest.raises(StoreError, match="already exists"):
        again.init("Other", "admin", "X", PASSWORD)


def test_init_validates_before_touching_disk(tmp_path: Path, no_keyring: None) -> None:
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    with pytest.raises(ValidationError, match="password"):
        ws.init("Clinic", "admin", "Admin", "short")
    with pytest.raises(ValidationError, match="username"):
        ws.init("Clinic", "Bad Name!", "Admin", PASSWORD)
    assert not ws.is_initialized()


def test_init_without_keyring_says_so(workstation: Workstation) -> None:
    assert workstation.keyring_note is not None
    assert "no OS keyring" in workstation.keyring_note
    kinds = sorted(s.kind for s in workstation.keychain().slots)
    assert kinds == ["password", "recovery"]


def test_sign_in_wrong_password_and_lock(workstation: Workstation) -> None:
    workstation.lock()
    with pytest.raises(WorkstationLockedError):
        _ = workstation.records
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        workstation.sign_in("admin", "not the password")
    assert not workstation.is_unlocked
    user = workstation.sign_in("ADMIN", PASSWORD)
    assert user.role == "admin" and workstation.is_unlocked


def test_first_sign_in_adds_slot_and_opens_locked_workstation(workstation: Workstation) -> None:
    workstation.records.add_user("nurse.kim", "Kim Park", "clinician", "kim's password")
    assert workstation.keychain().password_slot("nurse.kim") is None
    workstation.sign_in("nurse.kim", "kim's password")  # unlocked: verifier checked, slot added
    assert workstation.keychain().password_slot("nurse.kim") is not None
    workstation.lock()
    user = workstation.sign_in("nurse.kim", "kim's password")  # now opens the locked database
    assert user.full_name == "Kim Park"


def test_user_without_slot_cannot_open_closed_workstation(workstation: Workstation) -> None:
    workstation.records.add_user("dr.o", "Dr O", "clinician", "doctor's password")
    workstation.lock()
    with pytest.raises(AuthenticationError, match="has not signed in on this workstation"):
        workstation.sign_in("dr.o", "doctor's password")


def test_change_password(workstation: Workstation) -> None:
    workstation.change_password("admin", PASSWORD, "a brand new password")
    workstation.lock()
    with pytest.raises(AuthenticationError):
        workstation.sign_in("admin", PASSWORD)
    workstation.sign_in("admin", "a brand new password")


def test_recovery_key_opens(tmp_path: Path, no_keyring: None) -> None:
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    recovery = ws.init("Clinic", "admin", "Admin", PASSWORD)
    ws.records.add_patient("Keep", "Me", "1950-05-05")
    ws.lock()
    ws.unlock_with_recovery_key(recovery)
    assert ws.unlock_for("admin").count_patients() == 1
    ws.lock()


def test_rekey_keeps_every_slot_working(workstation: Workstation) -> None:
    workstation.records.add_patient("Stable", "Record", "1970-01-01")
    before = json.loads(workstation.keyfile_path.read_text())["db_key"]
    workstation.rekey()
    after = json.loads(workstation.keyfile_path.read_text())
    assert after["db_key"]["generation"] == before["generation"] + 1
    assert after["pending_db_key"] is None
    workstation.lock()
    workstation.sign_in("admin", PASSWORD)
    assert workstation.records.search_patients("stable")[0].given == "Record"


def test_interrupted_rekey_is_finished_on_next_open(workstation: Workstation) -> None:
    """Crash after PRAGMA rekey but before the key file was updated: nothing is stranded."""
    workstation.records.add_patient("Survives", "Crash", "1970-01-01")
    chain = workstation.keychain()
    keys = workstation._keys
    assert keys is not None
    new_key = chain.stage_new_db_key(keys)
    workstation.database.rekey(new_key)
    workstation.lock()  # dies here: key file still names the old key as current
    assert Keychain.load(workstation.keyfile_path).pending_db_key is not None
    workstation.sign_in("admin", PASSWORD)
    assert workstation.records.search_patients("survives")
    assert Keychain.load(workstation.keyfile_path).pending_db_key is None


def test_joined_workstation_is_filled_by_its_first_sync(
    workstation: Workstation, tmp_path: Path
) -> None:
    from core.sync.responder import Responder
    from core.sync.session import sync
    from core.sync.transport import LocalTransport

    workstation.records.add_patient("Joined", "Later", "1990-01-01")
    second = Workstation(tmp_path / "second", kdf_params=FAST_PARAMS)
    second.prepare_join("admin", PASSWORD)
    with pytest.raises(AuthenticationError):
        second.sign_in("admin", PASSWORD)  # no accounts until the first sync
    sync(second.database, LocalTransport(Responder(workstation.database)), "admin")
    second.lock()
    with pytest.raises(AuthenticationError):
        second.unlock_with_password("admin", "not the password")
    user = second.sign_in("admin", PASSWORD)
    assert user.full_name == "Ada Admin"
    assert second.records.clinic_name() == "Riverside Clinic"
    assert second.records.search_patients("joined")[0].given == "Later"
    second.lock()


def test_locking_never_fails_on_a_damaged_key_file(workstation: Workstation) -> None:
    """Locking closes the database and zeroes the keys even when the key file went bad
    meanwhile (locking also records the database's salt in it, when it can)."""
    workstation.keyfile_path.write_text("{ not json")
    workstation.lock()
    assert not workstation.is_unlocked
