"""A refused secret (wrong password, wrong recovery key) leaves every file byte-identical."""

from __future__ import annotations

import pytest

from core.keys.errors import WrongSecretError
from core.records.errors import AuthenticationError
from core.records.lockout import DELAYS_FILE
from core.records.workstation import (
    FAILED_SIGN_IN_ACTOR,
    FAILED_SIGN_INS_FILE,
    NOT_AN_ACCOUNT,
    NOT_KNOWN_HERE,
    Workstation,
)
from tests.conftest import PASSWORD
from tests.unit.store.disk import snapshot


def test_wrong_password_sign_in_changes_nothing_on_disk(workstation: Workstation) -> None:
    workstation.records.add_patient("Unchanged", "Files", "1970-01-01")
    workstation.lock()
    before = snapshot(workstation.data_dir)
    assert {"clinic.db", "keyslots.json"} <= set(before)
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        workstation.sign_in("admin", "not the password")
    # A user with no slot here falls back to the (absent) keyring: refused the same way.
    with pytest.raises(AuthenticationError, match="has not signed in on this workstation"):
        workstation.sign_in("nobody", "not the password")
    with pytest.raises(WrongSecretError, match="recovery key is not correct"):
        workstation.unlock_with_recovery_key("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA")
    assert not workstation.is_unlocked
    # No -wal/-shm appeared, the key file was not rewritten, the database is byte-identical:
    # only the note of the refused sign-ins (audited at the next sign-in) and the wrong
    # password's count towards a sign-in delay were written.
    after = snapshot(workstation.data_dir)
    noted = (FAILED_SIGN_INS_FILE, DELAYS_FILE)
    assert {k: v for k, v in after.items() if not k.startswith(noted)} == before
    assert [(lock.user, lock.failures) for lock in workstation.lockouts()] == [("admin", 1)]
    workstation.sign_in("admin", PASSWORD)
    assert workstation.records.search_patients("unchanged")[0].given == "Files"


def test_wrong_password_while_unlocked_writes_only_its_audit_entry(
    workstation: Workstation,
) -> None:
    """Someone else at an unlocked workstation types a wrong password: no key slot and no
    record change; one audit entry names the account tried (never the password typed)."""
    db = workstation.database
    audit_before = db.query("SELECT count(*) FROM audit_log")[0][0]
    patients_before = db.query("SELECT * FROM patients ORDER BY id")
    slots_before = snapshot(workstation.data_dir)["keyslots.json"]
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        workstation.sign_in("admin", "not the password")
    assert snapshot(workstation.data_dir)["keyslots.json"] == slots_before
    assert db.query("SELECT * FROM patients ORDER BY id") == patients_before
    entries = db.query(
        "SELECT actor, action, entity_id, details FROM audit_log WHERE seq > ?", (audit_before,)
    )
    assert [tuple(e[:3]) for e in entries] == [
        (FAILED_SIGN_IN_ACTOR, "user.sign_in_failed", "admin")
    ]
    assert "not the password" not in str(entries)


def test_failed_sign_ins_on_a_closed_workstation_are_audited_at_the_next_sign_in(
    workstation: Workstation,
) -> None:
    """The app and the CLI sign in through ``Workstation.sign_in``: a wrong password on a
    closed clinic (no key opens the audit log) is noted, and audited once someone signs in,
    naming the account. A name labelling no password slot here (while closed nobody can
    tell whether an account has it, and people type passwords there) is kept nowhere: the
    note and the synced audit log say only that it was no password of this computer."""
    workstation.lock()
    typed_password = "Tr0ub4dor&3-MyPassw0rd"
    for tried in ("admin", typed_password):
        with pytest.raises(AuthenticationError):
            workstation.sign_in(tried, "not the password")
    assert not workstation.is_unlocked
    noted = workstation.failed_sign_ins_path.read_text()
    assert "admin" in noted and typed_password.lower() not in noted.lower()
    # A note an earlier release wrote kept whatever was typed: not carried into the log.
    with workstation.failed_sign_ins_path.open("a") as older:
        older.write('{"user": "hunter2-secret", "at": "2026-12-01T09:00:00.000+00:00"}\n')
    workstation.sign_in("admin", PASSWORD)
    rows = workstation.database.query(
        "SELECT actor, action, entity_id, details FROM audit_log ORDER BY seq"
    )
    failed = [r for r in rows if r[1] == "user.sign_in_failed"]
    assert [(r[0], r[2]) for r in failed] == [
        (FAILED_SIGN_IN_ACTOR, "admin"),
        (FAILED_SIGN_IN_ACTOR, NOT_KNOWN_HERE),
        (FAILED_SIGN_IN_ACTOR, NOT_AN_ACCOUNT),
    ]
    assert all("closed" in str(r[3]) for r in failed)
    assert "not the password" not in str(rows)
    assert typed_password.lower() not in str(rows).lower() and "hunter2" not in str(rows)
    assert not workstation.failed_sign_ins_path.exists()
