"""A password changed on one workstation works on the others once the change has synced.

Each workstation wraps its database key under the person's password (its own key slot), so
the new password cannot open another workstation's slot until that slot is re-wrapped. The
synced verifier decides who the person is; the slot is brought up to date at the next
sign-in, opened by the OS keyring or, without one, by the previous password given once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.errors import AuthenticationError, StaleSlotError
from core.records.lockout import DELAYS_FILE
from core.records.workstation import FAILED_SIGN_INS_FILE, Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.conftest import PASSWORD
from tests.unit.store.disk import snapshot

NEW = "a new password, changed on desk A"


def _enroll(*desks: Workstation) -> None:
    """Both desks are devices of one clinic (as enrollment or pairing makes them), so the
    ops they exchange are signed and verified."""
    for desk in desks:
        join_test_clinic(desk.database)


@pytest.fixture
def desks(tmp_path: Path, no_keyring: None) -> Iterator[tuple[Workstation, Workstation]]:
    """Desk A (where the clinic began) and desk B (joined it); the password is then changed
    on A and the change synced to B, which is left locked."""
    a = Workstation(tmp_path / "a", kdf_params=FAST_PARAMS)
    a.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    b.prepare_join("admin", PASSWORD)
    _enroll(a, b)
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    a.sign_in("admin", PASSWORD)
    a.change_password("admin", PASSWORD, NEW)
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    b.lock()
    try:
        yield a, b
    finally:
        a.lock()
        b.lock()


def test_the_new_password_alone_is_refused_as_a_possible_change_elsewhere(
    desks: tuple[Workstation, Workstation],
) -> None:
    _, b = desks
    before = snapshot(b.data_dir)
    # Without the database open, a wrong password and one changed elsewhere look the same:
    # the message stays plain, the error's type lets the app offer the previous-password field.
    with pytest.raises(StaleSlotError, match=r"^wrong user name or password$"):
        b.sign_in("admin", NEW)
    assert not b.is_unlocked
    # Only the note of the refused sign-in (audited at the next sign-in) was written.
    after = snapshot(b.data_dir)
    assert {
        k: v for k, v in after.items() if k not in (FAILED_SIGN_INS_FILE, DELAYS_FILE)
    } == before


def test_the_old_password_no_longer_signs_in_and_leaves_the_desk_locked(
    desks: tuple[Workstation, Workstation],
) -> None:
    _, b = desks
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        b.sign_in("admin", PASSWORD)  # it still opens the old slot, but the verifier says no
    assert not b.is_unlocked


def test_giving_the_previous_password_once_brings_the_desk_up_to_date(
    desks: tuple[Workstation, Workstation],
) -> None:
    _, b = desks
    with pytest.raises(AuthenticationError):
        b.sign_in("admin", NEW, previous_password="not it either")
    assert not b.is_unlocked
    b.sign_in("admin", NEW, previous_password=PASSWORD)
    b.lock()
    assert b.sign_in("admin", NEW).username == "admin"  # the slot now holds the new one
    b.lock()
    with pytest.raises(AuthenticationError):
        b.sign_in("admin", PASSWORD)
    keyfile = json.loads(b.keyfile_path.read_text())
    assert PASSWORD not in json.dumps(keyfile) and NEW not in json.dumps(keyfile)


def test_with_an_os_keyring_the_new_password_just_works(
    tmp_path: Path, secret_service: dict[str, str]
) -> None:
    a = Workstation(tmp_path / "a", kdf_params=FAST_PARAMS)
    a.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    b.prepare_join("admin", PASSWORD)
    _enroll(a, b)
    try:
        sync(b.database, LocalTransport(Responder(a.database)), "admin")
        # As a join does once the person's account has arrived (core.sync.join).
        b.add_keyring_slot()
        assert b.keyring_note is None and b.has_keyring_slot()  # desk B has a keyring slot
        a.sign_in("admin", PASSWORD)
        a.change_password("admin", PASSWORD, NEW)
        sync(b.database, LocalTransport(Responder(a.database)), "admin")
        b.lock()
        assert b.sign_in("admin", NEW).username == "admin"
        b.lock()
        b.sign_in("admin", NEW)  # now through the re-wrapped password slot itself
        b.keychain().unlock_with_password("admin", NEW).close()  # raises if it did not
    finally:
        a.lock()
        b.lock()
