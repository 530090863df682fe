"""Staff take turns at one workstation: signing out keeps the clinic open for the next person
(the first time here included); closing it zeroes the key, and then only a password slot,
the OS keyring or the recovery key opens it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys.keychain import UnlockedKeys
from core.records.errors import AuthenticationError
from core.records.workstation import (
    FAILED_SIGN_IN_ACTOR,
    NOT_AN_ACCOUNT,
    Workstation,
    WorkstationLockedError,
)
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.conftest import PASSWORD

NURSE, NURSE_PASSWORD = "nurse.jo", "jo's own password"
DOCTOR, DOCTOR_PASSWORD = "dr.okafor", "the doctor's password"


def held_keys(ws: Workstation) -> UnlockedKeys:
    """The keys the workstation holds in locked memory right now."""
    keys = ws._keys
    assert keys is not None and not keys.db_key.closed and not keys.kek.closed
    return keys


def assert_closed(ws: Workstation, keys: UnlockedKeys) -> None:
    """Closed: database shut, and the buffers that held the keys are zeroed and released."""
    assert not ws.is_unlocked and not ws.is_signed_in
    assert ws._keys is None
    assert keys.db_key.closed and keys.kek.closed
    with pytest.raises(ValueError, match="closed"):
        keys.db_key.read()


def assert_signed_out(ws: Workstation) -> None:
    """Signed out: nobody's records, the database still open."""
    assert ws.is_unlocked and not ws.is_signed_in
    with pytest.raises(WorkstationLockedError, match="nobody is signed in"):
        _ = ws.records


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Workstation]:
    """A closed clinic whose admin added a nurse (who has no password slot here)."""
    ws = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS)
    ws.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    ws.records.add_user(NURSE, "Jo Nurse", "clinician", NURSE_PASSWORD)
    ws.records.add_patient("Shared", "Desk", "1970-01-01")
    ws.lock()
    try:
        yield ws
    finally:
        ws.lock()


def take_turns(ws: Workstation) -> None:
    """Admin signs in and out; the nurse, never here before, signs in; the admin again."""
    ws.sign_in("admin", PASSWORD)
    ws.sign_out()
    assert_signed_out(ws)
    assert ws.keychain().password_slot(NURSE) is None

    nurse = ws.sign_in(NURSE, NURSE_PASSWORD)  # checked against the synced verifier
    assert nurse.full_name == "Jo Nurse"
    assert ws.records.actor == NURSE
    assert ws.records.search_patients("shared")[0].given == "Desk"
    assert ws.keychain().password_slot(NURSE) is not None  # her first sign-in added it

    ws.sign_out()  # e.g. the idle auto-logoff
    assert_signed_out(ws)
    assert ws.sign_in("admin", PASSWORD).username == "admin"
    keys = held_keys(ws)
    ws.lock()  # the end of the day
    assert_closed(ws, keys)
    # Her own slot now opens the closed workstation.
    assert ws.sign_in(NURSE, NURSE_PASSWORD).username == NURSE


def test_staff_take_turns_without_a_keyring(desk: Workstation, no_keyring: None) -> None:
    take_turns(desk)


def test_staff_take_turns_with_the_os_keyring(
    tmp_path: Path, secret_service: dict[str, str]
) -> None:
    ws = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS)
    ws.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    assert ws.keyring_note is None
    ws.records.add_user(NURSE, "Jo Nurse", "clinician", NURSE_PASSWORD)
    ws.records.add_user(DOCTOR, "Dr Okafor", "clinician", DOCTOR_PASSWORD)
    ws.records.add_patient("Shared", "Desk", "1970-01-01")
    ws.lock()
    try:
        take_turns(ws)
        # A cold start (closed) with a keyring: the app opens with it, nobody signed in;
        # the doctor, with no slot here, then signs in against his verifier.
        ws.lock()
        ws.unlock_with_keyring()
        assert_signed_out(ws)
        assert ws.keychain().password_slot(DOCTOR) is None
        ws.sign_in(DOCTOR, DOCTOR_PASSWORD)
        assert ws.keychain().password_slot(DOCTOR) is not None
    finally:
        ws.lock()


def test_a_wrong_password_while_signed_out_keeps_the_clinic_open_for_others(
    desk: Workstation, no_keyring: None
) -> None:
    desk.sign_in("admin", PASSWORD)
    desk.sign_out()
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        desk.sign_in(NURSE, "not her password")
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        desk.sign_in("nobody", "whatever it is")
    assert_signed_out(desk)
    assert desk.keychain().password_slot(NURSE) is None  # no slot for a failed attempt
    desk.sign_in(NURSE, NURSE_PASSWORD)
    # Every step is in the audit log: who signed out, which accounts were tried (never the
    # passwords typed), the nurse's first sign-in and the key slot it gave her here.
    rows = desk.database.query(
        "SELECT actor, action, entity_id, details FROM audit_log ORDER BY seq"
    )
    assert [(r[0], r[1]) for r in rows][-5:] == [
        ("admin", "user.sign_out"),
        (FAILED_SIGN_IN_ACTOR, "user.sign_in_failed"),
        (FAILED_SIGN_IN_ACTOR, "user.sign_in_failed"),
        (NURSE, "user.sign_in"),
        (NURSE, "keys.slot_add"),
    ]
    # A name no account has is not kept: people type their password into that box.
    assert [r[2] for r in rows if r[1] == "user.sign_in_failed"][-2:] == [NURSE, NOT_AN_ACCOUNT]
    assert not any("not her password" in str(r) or "nobody" in str(r) for r in rows)


def test_a_closed_workstation_names_who_can_open_it(desk: Workstation, no_keyring: None) -> None:
    # Read from the key file alone, without any key (the clinic is closed).
    assert not desk.is_unlocked
    assert desk.password_users() == ["admin"]
    with pytest.raises(AuthenticationError) as refused:
        desk.sign_in(NURSE, NURSE_PASSWORD)
    assert str(refused.value) == (
        "'nurse.jo' has not signed in on this workstation before, and the clinic is closed "
        "here: it opens with the password of admin, or with the recovery key. Once one of "
        "them has signed in (and out) in the Careline app, anyone on the staff can sign in here."
    )
    assert not desk.is_unlocked
    take_turns(desk)
    desk.lock()
    assert desk.password_users() == ["admin", NURSE]


def test_an_account_made_on_another_workstation_signs_in_here_after_a_sign_out(
    tmp_path: Path, no_keyring: None
) -> None:
    """The nurse's account was made at the front desk and reached this desk by sync: this
    desk holds her synced verifier and no password slot of hers."""
    front = Workstation(tmp_path / "front", kdf_params=FAST_PARAMS)
    front.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    back = Workstation(tmp_path / "back", kdf_params=FAST_PARAMS)
    back.prepare_join("admin", PASSWORD)
    try:
        front.records.add_user(NURSE, "Jo Nurse", "clinician", NURSE_PASSWORD)
        sync(back.database, LocalTransport(Responder(front.database)), "admin")
        back.lock()
        assert back.password_users() == ["admin"]

        back.sign_in("admin", PASSWORD)
        back.sign_out()
        assert back.sign_in(NURSE, NURSE_PASSWORD).full_name == "Jo Nurse"
        back.lock()
        assert back.password_users() == ["admin", NURSE]
        back.sign_in(NURSE, NURSE_PASSWORD)  # her new slot opens the closed desk
    finally:
        front.lock()
        back.lock()
