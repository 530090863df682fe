"""A deactivation reaches a workstation that was offline when it happened (issue #14 section
6): once it has synced there, the person cannot sign in on it, their key slot there goes at
the next open, and what they wrote stays theirs on both desks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records.errors import AccountDeactivatedError, AuthenticationError
from core.records.workstation import Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import two_desks
from tests.conftest import PASSWORD

FIRST, OWN = "tulip window seventeen", "my own quiet harbour"


def _sync(b: Workstation, a: Workstation) -> None:
    sync(b.database, LocalTransport(Responder(a.database)), "admin")


@pytest.fixture
def desks(tmp_path: Path, no_keyring: None) -> Iterator[tuple[Workstation, Workstation, str]]:
    """Desk A (where the clinic began) and desk B (joined it); Nina was added on A, signed
    in on B, chose her own password there and registered a patient; both desks synced.
    Returns the desks and the patient's id."""
    a, b = two_desks(tmp_path)
    a.add_staff("nina", "Nina Nurse", "nurse", FIRST)
    _sync(b, a)
    b.sign_in("nina", FIRST)  # B is open (joined): her first sign-in here adds her slot
    b.change_password("nina", FIRST, OWN)
    pid = b.records.add_patient("Lee", "Sam", "1980-01-02").id
    _sync(b, a)
    b.lock()  # B goes offline, closed
    try:
        yield a, b, pid
    finally:
        a.lock()
        b.lock()


@pytest.mark.strict_authors
def test_a_deactivation_made_while_a_desk_was_offline_applies_there_after_sync(
    desks: tuple[Workstation, Workstation, str],
) -> None:
    a, b, pid = desks
    a.staff().deactivate("nina")
    # On A at once.
    a.sign_out()
    with pytest.raises(AccountDeactivatedError):
        a.sign_in("nina", OWN)
    a.sign_in("admin", PASSWORD)

    # B has not heard yet: offline, it cannot know (README, "Staff accounts").
    assert "nina" in b.password_users()
    b.sign_in("admin", PASSWORD)
    _sync(b, a)  # B comes back online
    b.lock()

    # The next open of B removes her slot; she is refused on B too.
    with pytest.raises(AuthenticationError):
        b.sign_in("nina", OWN)
    assert "nina" not in b.password_users()
    assert not b.is_unlocked
    b.sign_in("admin", PASSWORD)
    assert "nina" not in b.password_users()
    # Her past work keeps her name on both desks.
    for desk in (a, b):
        author = desk.database.query(
            "SELECT author FROM oplog WHERE record_id = ? ORDER BY rowid LIMIT 1", (pid,)
        )
        assert author == [("nina",)]
        user = desk.records.user("nina")
        assert user is not None and not user.active and user.full_name == "Nina Nurse"
        assert desk.records.get_patient(pid).family == "Lee"
