"""Chart access and extra roles in core (permissions enforced): what restricting a chart
does to who reads it, the care team, who may change either, and roles beyond the primary
one (core/records/chart_access.py, core/records/staff.py)."""

from __future__ import annotations

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import chart_access as ca
from core.records.clinic import ClinicRecords
from core.records.errors import NotAllowedError, NotFoundError, ValidationError
from core.records.staff import Staff
from tests.unit.sync.replicas import new_replica

pytestmark = pytest.mark.strict_authz

PASSWORD = "correct horse battery"


def _clinic() -> tuple[ClinicRecords, str]:
    founder = new_replica("admin")
    founder.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    for name, full, role in (
        ("doc", "Dana Chen", "clinician"),
        ("nina", "Nina Okafor", "nurse"),
        ("desk", "Dee Desk", "front_desk"),
        ("boss", "Bo Admin", "admin"),
        ("gone", "Gone Away", "nurse"),
    ):
        founder.add_user(name, full, role, PASSWORD)
    Staff(founder).deactivate("gone")
    return founder, founder.add_patient("Ames", "Bo", "1970-01-01").id


def _as(clinic: ClinicRecords, name: str) -> ClinicRecords:
    return ClinicRecords(clinic.db, name, FAST_PARAMS)


def test_restricting_shuts_out_everyone_but_the_care_team() -> None:
    clinic, pid = _clinic()
    doc, nina = _as(clinic, "doc"), _as(clinic, "nina")
    assert nina.may("view_clinical", pid)
    access = ca.set_restricted(doc, pid, True)
    assert access.restricted and ca.is_restricted(clinic.db, pid)
    # The clinician who restricted it is on its care team, so she still reads it.
    assert access.usernames() == ["doc"] and doc.may("view_clinical", pid)
    assert not nina.may("view_clinical", pid)
    with pytest.raises(
        NotAllowedError, match=r"^Only the people on this restricted chart's care team can"
    ):
        nina.require("notes.list", pid)
    assert nina.may("view_demographics", pid)  # the name and demographics stay visible

    access = ca.add_to_care_team(doc, pid, "nina")
    assert access.usernames() == ["doc", "nina"]  # by full name: Dana, Nina
    assert [m.roles for m in access.care_team] == [("clinician",), ("nurse",)]
    assert nina.may("view_clinical", pid)
    ca.remove_from_care_team(doc, pid, "nina")
    assert not nina.may("view_clinical", pid)
    ca.set_restricted(doc, pid, False)
    assert nina.may("view_clinical", pid)


def test_an_admin_who_restricts_does_not_join_the_care_team() -> None:
    clinic, pid = _clinic()
    boss = _as(clinic, "boss")  # an admin only: no clinical access to keep
    access = ca.set_restricted(boss, pid, True)
    assert access.restricted and access.usernames() == []
    assert boss.may("manage_access", pid)  # still manages who may read it


@pytest.mark.parametrize("who", ["desk", "nina"])
def test_only_a_clinician_with_access_or_an_admin_changes_access(who: str) -> None:
    clinic, pid = _clinic()
    me = _as(clinic, who)
    with pytest.raises(NotAllowedError, match="or an admin can change who may see a chart"):
        ca.set_restricted(me, pid, True)
    with pytest.raises(NotAllowedError):
        ca.add_to_care_team(me, pid, who)
    assert not ca.chart_access(me, pid).restricted  # anyone on the staff may look


def test_a_clinician_shut_out_of_a_chart_cannot_change_its_access() -> None:
    clinic, pid = _clinic()
    ca.set_restricted(_as(clinic, "boss"), pid, True)
    with pytest.raises(NotAllowedError):
        ca.add_to_care_team(_as(clinic, "doc"), pid, "doc")


def test_errors_name_the_problem() -> None:
    clinic, pid = _clinic()
    boss = _as(clinic, "boss")
    with pytest.raises(NotFoundError, match="no patient with id 'nope'"):
        ca.chart_access(boss, "nope")
    with pytest.raises(NotFoundError, match="no staff member 'ghost'"):
        ca.add_to_care_team(boss, pid, "ghost")
    with pytest.raises(ValidationError, match="'gone' is deactivated"):
        ca.add_to_care_team(boss, pid, "gone")
    with pytest.raises(NotFoundError, match="'nina' is not on the care team"):
        ca.remove_from_care_team(boss, pid, "nina")


def test_a_deactivated_member_stays_listed_and_can_be_removed() -> None:
    clinic, pid = _clinic()
    boss = _as(clinic, "boss")
    ca.add_to_care_team(boss, pid, "nina")
    Staff(boss).deactivate("nina")
    [member] = ca.chart_access(boss, pid).care_team
    assert (member.username, member.active) == ("nina", False)
    assert ca.remove_from_care_team(boss, pid, "nina").care_team == ()


def test_an_extra_role_adds_what_it_allows_and_the_primary_one_stays() -> None:
    clinic, pid = _clinic()
    boss, desk = Staff(_as(clinic, "boss")), _as(clinic, "desk")
    assert not desk.may("view_clinical", pid)
    member = boss.add_role("desk", "nurse")
    assert member.roles == ("front_desk", "nurse")
    assert member.to_dict()["roles"] == ["front_desk", "nurse"]
    assert desk.may("view_clinical", pid) and not desk.may("sign_note", pid)
    assert {m.username: m.roles for m in boss.members()}["admin"] == ("admin", "clinician")
    with pytest.raises(ValidationError, match="primary role"):
        boss.remove_role("desk", "front_desk")
    with pytest.raises(NotFoundError, match="does not hold the extra role 'clinician'"):
        boss.remove_role("desk", "clinician")
    with pytest.raises(ValidationError, match="deactivated"):
        boss.add_role("gone", "clinician")
    with pytest.raises(NotAllowedError, match="only an administrator"):
        Staff(_as(clinic, "doc")).add_role("doc", "admin")
    assert boss.remove_role("desk", "nurse").roles == ("front_desk",)
    assert not desk.may("view_clinical", pid)
    actions = clinic.db.query("SELECT action FROM audit_log WHERE action LIKE 'role.%'")
    assert [str(a) for (a,) in actions] == ["role.grant", "role.revoke"]
