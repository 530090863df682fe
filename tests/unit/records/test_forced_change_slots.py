"""A password an administrator set (a new account's first one, or a reset) must be replaced
by its holder before anything else. The administrator knows it, so it must never open a
workstation's database key: a sign-in with it makes no key slot (nor re-wraps one the
person had), and the slot is made with the person's own password once they choose it.
Declining the change, or Careline dying before it, leaves no slot that the administrator's
password opens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.errors import AuthenticationError
from core.records.workstation import NotOpenableHereError, Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.conftest import PASSWORD

FIRST, OWN = "tulip window seventeen", "my own quiet harbour"
RESET, NEWER = "fresh start lantern", "another quiet morning"


@dataclass
class Clinic:
    """The admin's workstation (``front``) and a shared one that joined it (``back``)."""

    front: Workstation
    back: Workstation

    def to_back(self) -> None:
        """Sync what the front desk did to the back desk (as the clinic's sync does, while
        the back desk's clinic is open)."""
        self.open_back()
        sync(self.back.database, LocalTransport(Responder(self.front.database)), "admin")

    def open_back(self) -> None:
        """The back desk's clinic open with nobody signed in (the admin signed in and out)."""
        if not self.back.is_unlocked:
            self.back.sign_in("admin", PASSWORD)
            self.back.sign_out()


@pytest.fixture
def clinic(tmp_path: Path, no_keyring: None) -> Iterator[Clinic]:
    """Lise, a nurse, has a password of her own; the back desk has no slot of hers."""
    front = Workstation(tmp_path / "front", kdf_params=FAST_PARAMS)
    front.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    back = Workstation(tmp_path / "back", kdf_params=FAST_PARAMS)
    back.prepare_join("admin", PASSWORD)
    for desk in (front, back):  # devices of one clinic: the ops they exchange are signed
        join_test_clinic(desk.database)
    front.sign_in("admin", PASSWORD)
    front.add_staff("lise", "Lise Moreau", "nurse", FIRST)
    front.sign_out()
    front.sign_in("lise", FIRST)
    front.change_password("lise", FIRST, OWN)
    front.sign_out()
    front.sign_in("admin", PASSWORD)
    made = Clinic(front, back)
    try:
        made.to_back()
        back.lock()
        yield made
    finally:
        front.lock()
        back.lock()


def reset_lise(clinic: Clinic) -> None:
    """The admin resets Lise's password at the front desk; it reaches the back desk."""
    clinic.front.reset_staff_password("lise", RESET)
    clinic.to_back()


def slot_actions(ws: Workstation) -> list[tuple[str, str]]:
    """(actor, action) of the audited key-slot changes, oldest first."""
    rows = ws.database.query(
        "SELECT actor, action FROM audit_log WHERE action LIKE 'keys.slot_%' ORDER BY seq"
    )
    return [(str(a), str(b)) for a, b in rows]


def test_a_declined_change_leaves_no_slot_the_admin_s_password_opens(clinic: Clinic) -> None:
    back = clinic.back
    reset_lise(clinic)
    clinic.open_back()
    assert back.password_users() == ["admin"]

    back.sign_in("lise", RESET)
    assert back.password_change_required
    assert back.password_users() == ["admin"]  # nothing made with a password the admin knows
    back.sign_out()  # Escape at "choose your own password"
    assert back.password_users() == ["admin"]

    back.lock()
    with pytest.raises(NotOpenableHereError, match="has not signed in on this workstation"):
        back.sign_in("lise", RESET)
    assert not back.is_unlocked


def test_careline_dying_before_the_change_leaves_no_such_slot(clinic: Clinic) -> None:
    reset_lise(clinic)
    clinic.open_back()
    clinic.back.sign_in("lise", RESET)
    # The app is killed here (no sign-out): what the next start finds in the key file.
    after_crash = Workstation(clinic.back.data_dir, kdf_params=FAST_PARAMS)
    assert after_crash.password_users() == ["admin"]
    with pytest.raises(NotOpenableHereError):
        after_crash.sign_in("lise", RESET)


def test_her_own_password_gets_the_slot_once_chosen_and_it_is_audited(clinic: Clinic) -> None:
    back = clinic.back
    reset_lise(clinic)
    clinic.open_back()
    back.sign_in("lise", RESET)
    back.change_password("lise", RESET, NEWER)
    assert back.password_users() == ["admin", "lise"]
    assert slot_actions(back)[-1] == ("lise", "keys.slot_add")
    back.sign_out()
    back.lock()
    assert back.sign_in("lise", NEWER).username == "lise"  # her slot opens the closed desk
    back.sign_out()
    back.lock()
    with pytest.raises(AuthenticationError):
        back.sign_in("lise", RESET)


def test_a_slot_she_had_before_is_kept_as_it_was(clinic: Clinic) -> None:
    """Her slot from an earlier sign-in here is hers: a declined change neither removes it
    nor leaves it re-wrapped under the administrator's password."""
    back = clinic.back
    clinic.open_back()
    back.sign_in("lise", OWN)
    back.sign_out()
    assert back.password_users() == ["admin", "lise"]
    reset_lise(clinic)

    back.sign_in("lise", RESET)
    back.sign_out()
    assert back.password_users() == ["admin", "lise"]
    assert ("lise", "keys.slot_rewrap") not in slot_actions(back)
    back.lock()
    with pytest.raises(AuthenticationError):  # the slot is not under the reset password
        back.sign_in("lise", RESET)
    assert not back.is_unlocked

    # Her previous password opens the slot (the "Previous password" field), once; the
    # change then re-wraps it under the password she chooses.
    back.sign_in("lise", RESET, previous_password=OWN)
    back.change_password("lise", RESET, NEWER)
    back.sign_out()
    back.lock()
    assert back.sign_in("lise", NEWER).username == "lise"
