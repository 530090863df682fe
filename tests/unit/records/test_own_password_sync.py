"""A person's forced password change (a first password an administrator chose) made on one
desk is accepted by the others (issue #15: on rollout morning a nurse chooses her password
on the first workstation and signs in with it on the second); clearing the
must-change-password flag of someone else stays an administrator's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records import crdt, op_trust
from core.records.changes import change
from core.records.workstation import Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import two_desks

FIRST, OWN = "tulip window seventeen", "my own quiet harbour"
NINA = "user:nina"  # her user record's id


def _sync(b: Workstation, a: Workstation) -> None:
    sync(b.database, LocalTransport(Responder(a.database)), "admin")


@pytest.fixture
def desks(tmp_path: Path, no_keyring: None) -> Iterator[tuple[Workstation, Workstation]]:
    """Desk A (where the clinic began, Nina added there with a first password) and desk B
    (joined it, synced)."""
    a, b = two_desks(tmp_path)
    a.add_staff("nina", "Nina Nurse", "nurse", FIRST)
    _sync(b, a)
    try:
        yield a, b
    finally:
        a.lock()
        b.lock()


@pytest.mark.strict_authors
@pytest.mark.strict_authz
def test_a_nurses_forced_password_change_reaches_the_other_desk(
    desks: tuple[Workstation, Workstation],
) -> None:
    a, b = desks
    b.sign_in("nina", FIRST)
    b.change_password("nina", FIRST, OWN)
    _sync(b, a)
    assert op_trust.quarantined(a.database) == []
    nina = a.records.user("nina")
    assert nina is not None and nina.must_change_password is False
    a.sign_out()
    assert a.sign_in("nina", OWN).must_change_password is False


@pytest.mark.strict_authors
@pytest.mark.strict_authz
def test_a_nurse_clearing_someone_elses_flag_is_quarantined(
    desks: tuple[Workstation, Workstation],
) -> None:
    a, b = desks
    a.add_staff("omar", "Omar Nurse", "nurse", FIRST)
    _sync(b, a)
    b.sign_in("nina", FIRST)
    b.change_password("nina", FIRST, OWN)
    omar = b.records.user("omar")
    assert omar is not None
    # Written as Nina, bypassing the records API that would refuse it.
    with b.database.write("nina", "user.password_change", "user", omar.id) as tx:
        change(tx, "nina", omar.id, "user", b.records.setter({"must_change_password": False}))
    _sync(b, a)
    held = op_trust.quarantined(a.database)
    assert [q.record_id for q in held] == [omar.id]
    assert "manage staff needs an admin" in held[0].reason
    still = a.records.user("omar")
    assert still is not None and still.must_change_password is True


@pytest.mark.strict_authors
@pytest.mark.strict_authz
def test_clearing_ones_own_flag_without_a_new_password_is_quarantined(
    desks: tuple[Workstation, Workstation],
) -> None:
    a, b = desks
    b.sign_in("nina", FIRST)
    # A tampered workstation skipping the change: she would keep the password IT chose.

    def clear_flag(doc: crdt.RecordDoc, hlc: str) -> None:
        crdt.write(doc, "must_change_password", False, hlc, "nina")

    with b.database.write("nina", "user.password_change", "user", NINA) as tx:
        change(tx, "nina", NINA, "user", clear_flag)
    _sync(b, a)
    assert [q.record_id for q in op_trust.quarantined(a.database)] == [NINA]
    still = a.records.user("nina")
    assert still is not None and still.must_change_password is True
