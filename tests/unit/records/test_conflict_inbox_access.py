"""The conflict inbox shows a conflict's values only to people who may read them (security
review S6): a restricted chart's clinical values to its care team, demographics to all
staff, appointments to those who see the schedule. The others see neither the values nor
which record: only how many wait for someone who may. Resolving needs the read and the
field's write permission."""

from __future__ import annotations

import json

import pytest

from core.records import chart_access
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError
from core.records.visits import Visits
from tests.unit.records.test_chart_access import PASSWORD
from tests.unit.sync.replicas import new_replica, sync_pair

pytestmark = pytest.mark.strict_authz


def _clinic() -> tuple[ClinicRecords, ClinicRecords, str, str]:
    """Two replicas of one clinic; a restricted chart (care team: doc) whose visit's reason
    and phone number were each changed on both replicas before they synced."""
    a = new_replica("admin")
    a.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    for name, role in (("doc", "clinician"), ("nia", "nurse"), ("desk", "front_desk"),
                       ("boss", "admin")):  # fmt: skip
        a.add_user(name, name.title(), role, PASSWORD)
    doc = _as(a, "doc")
    pid = doc.add_patient("Secret", "Sam", "1970-01-01").id
    visit = Visits(doc).start(pid, reason="follow-up").id
    chart_access.set_restricted(doc, pid, True)
    b = new_replica("doc")
    sync_pair(b, a)
    ClinicalEntries(doc).update("encounter", visit, {"reason": "HIV: viral load rising"})
    ClinicalEntries(_as(b, "doc")).update("encounter", visit, {"reason": "HIV: start PrEP"})
    _as(a, "desk").update_patient(pid, {"phone": "555-0101"})
    _as(b, "desk").update_patient(pid, {"phone": "555-0202"})
    sync_pair(b, a)
    return a, b, pid, visit


def _as(r: ClinicRecords, name: str) -> ClinicRecords:
    return ClinicRecords(r.db, name)


def _shown(r: ClinicRecords) -> list[tuple[str, str, list[str]]]:
    return [
        (c.record_id, c.field, sorted(str(v.value) for v in c.candidates))
        for c in r.review_conflicts()
    ]


def test_the_care_team_sees_every_value() -> None:
    a, _, pid, visit = _clinic()
    doc = _as(a, "doc")
    assert _shown(doc) == sorted(
        [
            (pid, "phone", ["555-0101", "555-0202"]),
            (visit, "reason", ["HIV: start PrEP", "HIV: viral load rising"]),
        ]
    )
    assert doc.withheld_conflicts() == 0


@pytest.mark.parametrize("who", ["desk", "nia"])
def test_off_the_care_team_a_clinical_value_is_neither_shown_nor_named(who: str) -> None:
    a, _, pid, visit = _clinic()
    me = _as(a, who)
    assert _shown(me) == [(pid, "phone", ["555-0101", "555-0202"])]  # demographics
    assert [c.field for c in me.conflicts()] == ["phone"]  # the badge and chart markers
    assert me.conflicts(visit) == []
    assert me.withheld_conflicts() == 1
    # The audit entry of the viewing names only what was shown.
    rows = a.db.query(
        "SELECT details FROM audit_log WHERE action = 'conflicts.view' AND actor = ?", (who,)
    )
    assert [json.loads(r[0])["records"] for r in rows] == [[pid]]


@pytest.mark.parametrize("who", ["desk", "nia"])
def test_resolving_a_conflict_one_may_not_read_is_refused_and_audited(who: str) -> None:
    a, _, _, visit = _clinic()
    [hidden] = _as(a, "doc").conflicts(visit)
    me = _as(a, who)
    with pytest.raises(NotAllowedError, match=r"on the care team, for a restricted chart"):
        me.resolve_conflict(hidden.id, value="nothing")
    with pytest.raises(NotAllowedError):
        me.resolve_conflict(hidden.id, choose=hidden.candidates[0].id)
    assert [c.field for c in _as(a, "doc").conflicts(visit)] == ["reason"]  # still open
    refused = a.db.query(
        "SELECT entity_id FROM audit_log WHERE action = 'action.refused' AND actor = ?", (who,)
    )
    assert [r[0] for r in refused] == [hidden.id, hidden.id]


def test_resolving_needs_the_fields_write_permission_as_well() -> None:
    """An admin (not a clinician) may read the phone numbers, not change them."""
    a, _, pid, _ = _clinic()
    boss = _as(a, "boss")
    [phone] = boss.conflicts(pid)
    with pytest.raises(NotAllowedError, match="settle a conflict in phone"):
        boss.resolve_conflict(phone.id, choose=phone.candidates[0].id)
    _as(a, "desk").resolve_conflict(phone.id, choose=phone.candidates[0].id)
    assert _as(a, "doc").conflicts(pid) == []


def test_an_appointment_conflict_is_for_those_who_see_the_schedule() -> None:
    a, b, pid, _ = _clinic()
    entries = ClinicalEntries(_as(a, "desk"))
    when = {"starts_at": "2026-12-04T09:00", "ends_at": "2026-12-04T09:15"}
    booked = entries.add("appointment", pid, {**when, "clinician": "doc", "status": "booked"})
    sync_pair(b, a)
    entries.update("appointment", booked, {"reason": "results"})
    ClinicalEntries(_as(b, "desk")).update("appointment", booked, {"reason": "check-up"})
    sync_pair(b, a)
    assert [c.field for c in _as(a, "desk").conflicts(booked)] == ["reason"]
    assert _as(a, "boss").conflicts(booked) == []  # an admin only: no schedule
    assert _as(a, "boss").withheld_conflicts() == 2  # and the visit's reason
