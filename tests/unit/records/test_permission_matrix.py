"""The permission matrix, table-driven: every action and clinical read of core, as every
role (admin, clinician, nurse, front desk, admin + clinician), allowed or refused.

What each role may do is written here independently of core/records/permissions.py (the
policy of issue #14: front desk registers, schedules and edits demographics but reads no
clinical notes; a nurse records vitals and allergies and writes unsigned notes; a clinician
does everything clinical; an admin manages staff, keys and settings and does clinical work
only if also a clinician). A refusal must name who may do it and be audited.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from core.authz.tuples import RelationTuple
from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import permissions
from core.records.allergy_status import AllergyRecords
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError
from core.records.medications import Medications
from core.records.merges import Merges
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.relations import Access
from core.records.schedule import Schedule
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from core.reports import data as reports
from core.store.database import Database

pytestmark = pytest.mark.strict_authz

PASSWORD = "correct horse battery"
ROLES = ("admin", "clinician", "nurse", "front_desk", "admin+clinician")
USERS = {"admin": "adm", "clinician": "doc", "nurse": "nina", "front_desk": "desk",
         "admin+clinician": "founder"}  # fmt: skip
CLINICAL = {"clinician", "nurse", "admin+clinician"}
CLINICIANS = {"clinician", "admin+clinician"}
ADMINS = {"admin", "admin+clinician"}
EVERYONE = set(ROLES)

# The policy, permission by permission (roles that hold it on an ordinary chart).
HOLDERS: dict[str, set[str]] = {
    "member": EVERYONE,
    "view_demographics": EVERYONE,
    "register_patient": EVERYONE,
    "edit_demographics": CLINICAL | {"front_desk"},
    "schedule": CLINICAL | {"front_desk"},
    "view_clinical": CLINICAL,
    "record_vitals": CLINICAL,
    "record_allergy": CLINICAL,
    "write_note": CLINICAL,
    "manage_visit": CLINICAL,
    "sign_note": CLINICIANS,
    "prescribe": CLINICIANS,
    "diagnose": CLINICIANS,
    "manage_access": CLINICIANS | ADMINS,
    "delete_patient": ADMINS,
    "merge_patients": CLINICIANS | ADMINS,
    "manage_staff": ADMINS,
    "review_audit": ADMINS,
}


@dataclass
class Clinic:
    """One clinic with a user per role; ``setup`` acts as its founder."""

    db: Database
    setup: ClinicRecords

    def as_role(self, role: str) -> ClinicRecords:
        return ClinicRecords(self.db, USERS[role], FAST_PARAMS)

    def patient(self) -> str:
        return self.setup.add_patient("Doe", "Jane", "1980-02-03").id

    def note(self, signed: bool = False) -> tuple[str, str]:
        pid = self.patient()
        notes = Notes(self.setup)
        note = notes.create(pid, "S: cough")
        if signed:
            notes.sign(note.id)
        return pid, note.id

    def merged(self) -> str:
        duplicate = self.patient()
        Merges(self.setup).merge(duplicate, self.patient(), "same person")
        return duplicate

    def visit(self) -> str:
        return Visits(self.setup).start(self.patient(), "cough").id

    def medication(self) -> str:
        return Medications(self.setup).start(self.patient(), {"name": "amoxicillin"}).id

    def problem(self) -> str:
        return Problems(self.setup).add(self.patient(), uncoded="cough").id

    def allergy(self) -> str:
        return self.setup.add_allergy(self.patient(), "penicillin").id

    def reading(self) -> str:
        return VitalSigns(self.setup).record(self.patient(), {"temperature": "37.0C"})[0].id

    def appointment(self) -> str:
        return (
            Schedule(self.setup)
            .book(self.patient(), "2030-01-07T09:00", "doc", 15, allow_overlap=True)
            .id
        )


@pytest.fixture(scope="module")
def clinic() -> Iterator[Clinic]:
    db = Database.in_memory(SecureMemory.from_bytes(bytearray(os.urandom(32))))
    founder = ClinicRecords(db, "founder", FAST_PARAMS)
    founder.set_up_clinic("Riverside Clinic", "founder", "Fay Founder", PASSWORD)
    for role, name in USERS.items():
        if role != "admin+clinician":
            founder.add_user(name, name.title(), role, PASSWORD)
    yield Clinic(db, founder)
    db.close()


Perform = Callable[[Clinic, ClinicRecords], Any]


def _write(action: str, on: str) -> Perform:
    """An action no screen of this branch performs yet (staff, audit review, ...): the
    unit of work as its code will run it, through the one gate."""

    def perform(c: Clinic, me: ClinicRecords) -> None:
        entity, entity_id = ("patient", c.patient()) if on == "patient" else ("clinic", "clinic")
        with me.db.write(me.actor, action, entity, entity_id, {}):
            pass

    return perform


def _grant(c: Clinic, me: ClinicRecords) -> None:
    Access(me).grant(RelationTuple(f"patient:{c.patient()}", "care_team", "user:nina"))


def _revoke(c: Clinic, me: ClinicRecords) -> None:
    Access(me).revoke(RelationTuple(f"patient:{c.patient()}", "care_team", "user:nina"))


def _role(grant: bool) -> Perform:
    def perform(c: Clinic, me: ClinicRecords) -> None:
        t = RelationTuple("clinic:clinic", "nurse", "user:desk")
        if grant:
            Access(me).grant(t)
        else:
            Access(me).revoke(t)

    return perform


def _on_the_day() -> dt.datetime:
    return dt.datetime(2030, 1, 7, 9, 5)


# Action or read -> how a person does it through core.
PERFORM: dict[str, Perform] = {
    "patient.create": lambda c, me: me.add_patient("Roe", "Rita", "1975-05-06"),
    "patient.update": lambda c, me: me.update_patient(c.patient(), {"phone": "555-0100"}),
    "patient.delete": lambda c, me: me.delete_patient(c.patient()),
    "patient.merge": lambda c, me: Merges(me).merge(c.patient(), c.patient(), "same person"),
    "patient.unmerge": lambda c, me: Merges(me).unmerge(c.merged()),
    "patients.duplicates": lambda c, me: Merges(me).candidates(),
    "allergy.add": lambda c, me: me.add_allergy(c.patient(), "latex"),
    "allergy.remove": lambda c, me: me.remove_allergy(c.allergy()),
    "allergy.edit": lambda c, me: AllergyRecords(me).edit(c.allergy(), "rash", "mild"),
    "allergy.none_known": lambda c, me: AllergyRecords(me).record_no_known_allergies(c.patient()),
    "vitals.record": lambda c, me: VitalSigns(me).record(c.patient(), {"pulse": "72"}),
    "observation.update": lambda c, me: VitalSigns(me).correct(c.reading(), "37.5C"),
    "note.create": lambda c, me: Notes(me).create(c.patient(), "S: fever"),
    "note.edit": lambda c, me: Notes(me).edit(c.note()[1], "S: fever and cough"),
    "note.sign": lambda c, me: Notes(me).sign(c.note()[1]),
    "note.addendum": lambda c, me: Notes(me).add_addendum(c.note(signed=True)[1], "also"),
    "encounter.create": lambda c, me: Visits(me).start(c.patient(), "check-up", "doc"),
    "encounter.close": lambda c, me: Visits(me).close(c.visit()),
    "problem.add": lambda c, me: Problems(me).add(c.patient(), uncoded="asthma"),
    "problem.resolve": lambda c, me: Problems(me).resolve(c.problem()),
    "medication.start": lambda c, me: Medications(me).start(c.patient(), {"name": "warfarin"}),
    "medication.stop": lambda c, me: Medications(me).stop(c.medication()),
    "medication.change_dose": lambda c, me: Medications(me).change_dose(
        c.medication(), {"dose": "2 tablets"}
    ),
    "medication.not_started": lambda c, me: Medications(me).warning_heeded(c.patient()),
    "appointment.create": lambda c, me: Schedule(me).book(
        c.patient(), "2030-01-08T10:00", "doc", 15, allow_overlap=True
    ),
    "appointment.move": lambda c, me: Schedule(me).move(
        c.appointment(), "2030-01-09T11:00", allow_overlap=True
    ),
    "appointment.cancel": lambda c, me: Schedule(me).cancel(c.appointment(), "ill"),
    "appointment.status": lambda c, me: Schedule(me, _on_the_day).set_status(
        c.appointment(), "arrived"
    ),
    "access.grant": _grant,
    "access.revoke": _revoke,
    "role.grant": _role(True),
    "role.revoke": _role(False),
    "user.create": lambda c, me: me.add_user(f"new{os.urandom(3).hex()}", "New", "nurse", PASSWORD),
    "clinic.rename": lambda c, me: me.set_clinic_name("Riverside Clinic"),
    # Reads
    "chart.open": lambda c, me: me.open_chart(c.patient()),
    "patients.search": lambda c, me: me.search_patients("doe"),
    "allergies.list": lambda c, me: me.allergies(c.patient()),
    "notes.list": lambda c, me: Notes(me).for_patient(c.patient()),
    "vitals.list": lambda c, me: VitalSigns(me).readings(c.patient()),
    "medications.list": lambda c, me: Medications(me).list(c.patient()),
    "problems.list": lambda c, me: Problems(me).list(c.patient()),
    "visits.list": lambda c, me: Visits(me).list_visits(c.patient()),
    "attachments.list": lambda c, me: ClinicalEntries(me).for_patient("attachment", c.patient()),
    "schedule.view": lambda c, me: Schedule(me).day(dt.date(2030, 1, 7)),
    "print.summary": lambda c, me: reports.summary_report(me, c.patient()),
    "print.visit": lambda c, me: reports.visit_report(me, c.visit()),
    "print.day": lambda c, me: reports.day_report(me, "2030-01-07"),
}


def _cases() -> list[tuple[str, str]]:
    return [
        (action, role)
        for action, rule in permissions.MATRIX.items()
        if rule is not None
        for role in ROLES
    ]


@pytest.mark.parametrize(("action", "role"), _cases())
def test_every_action_as_every_role(clinic: Clinic, action: str, role: str) -> None:
    rule = permissions.MATRIX[action]
    assert rule is not None
    perform = PERFORM.get(action) or _write(action, rule.on)
    me = clinic.as_role(role)
    if role in HOLDERS[rule.permission]:
        perform(clinic, me)
        return
    with pytest.raises(NotAllowedError) as refused:
        perform(clinic, me)
    assert str(refused.value) == rule.refusal()
    assert str(refused.value).startswith("Only ")
    last = clinic.db.query(
        "SELECT actor, action, details FROM audit_log ORDER BY seq DESC LIMIT 1"
    )[0]
    assert last[:2] == (USERS[role], "action.refused")
    assert json.loads(last[2]) == {"action": action, "reason": rule.refusal()}


def test_the_founder_is_admin_and_clinician(clinic: Clinic) -> None:
    explicit = Access(clinic.setup).explicit("clinic:clinic")
    assert RelationTuple("clinic:clinic", "clinician", "user:founder") in explicit


def test_every_matrix_entry_names_a_schema_permission() -> None:
    from core.records.authorize import clinic_model

    model = clinic_model()
    for action, rule in permissions.MATRIX.items():
        if rule is not None:
            assert model.relation(rule.on, rule.permission) is not None, action
            assert rule.permission in HOLDERS, action


def test_sign_refusal_reads_as_the_issue_asks(clinic: Clinic) -> None:
    _pid, note = clinic.note()
    with pytest.raises(NotAllowedError, match=r"^Only a clinician can sign a note$"):
        Notes(clinic.as_role("nurse")).sign(note)
    assert Notes(clinic.setup).get(note).signed_at is None


def test_front_desk_sees_demographics_but_no_clinical_part_of_the_chart(clinic: Clinic) -> None:
    pid = clinic.patient()
    clinic.setup.add_allergy(pid, "penicillin")
    chart = clinic.as_role("front_desk").open_chart(pid)
    assert chart.patient.family == "Doe"
    assert chart.clinical is False and chart.allergies == ()
    assert "allergies" not in chart.to_dict()
    assert [a.substance for a in clinic.as_role("nurse").open_chart(pid).allergies] == [
        "penicillin"
    ]


def test_a_deactivated_user_may_do_nothing(clinic: Clinic) -> None:
    name = f"gone{os.urandom(3).hex()}"
    clinic.setup.add_user(name, "Gone", "clinician", PASSWORD)
    me = ClinicRecords(clinic.db, name, FAST_PARAMS)
    pid = clinic.patient()
    Notes(me).create(pid, "S: ok")
    with clinic.db.write("founder", "user.deactivate", "user", f"user:{name}") as tx:
        from core.records.changes import change

        change(tx, "founder", f"user:{name}", "user", clinic.setup.setter({"active": False}))
    with pytest.raises(NotAllowedError):
        Notes(me).create(pid, "S: still here?")
    with pytest.raises(NotAllowedError):
        me.open_chart(pid)


def test_restricted_chart_needs_the_care_team(clinic: Clinic) -> None:
    pid = clinic.patient()
    Access(clinic.setup).grant(RelationTuple(f"patient:{pid}", "restricted", "user:*"))
    with pytest.raises(NotAllowedError):
        Notes(clinic.as_role("clinician")).for_patient(pid)
    Access(clinic.setup).grant(RelationTuple(f"patient:{pid}", "care_team", "user:doc"))
    assert Notes(clinic.as_role("clinician")).for_patient(pid) == []
    # Demographics stay visible to all staff.
    assert clinic.as_role("front_desk").open_chart(pid).patient.id == pid


def test_a_clinician_off_a_restricted_charts_care_team_is_told_so(clinic: Clinic) -> None:
    """ "Only a clinician can start a medication" would be untrue said to a clinician: the
    refusal names the care team; a nurse on it still reads who may prescribe."""
    pid = clinic.patient()
    Access(clinic.setup).grant(RelationTuple(f"patient:{pid}", "restricted", "user:*"))
    Access(clinic.setup).grant(RelationTuple(f"patient:{pid}", "care_team", "user:nina"))
    care_team = r"^Only the people on this restricted chart's care team can start a medication"
    with pytest.raises(NotAllowedError, match=care_team):
        Medications(clinic.as_role("clinician")).start(pid, {"name": "warfarin"})
    with pytest.raises(NotAllowedError, match=r"^Only a clinician can start a medication$"):
        Medications(clinic.as_role("nurse")).start(pid, {"name": "warfarin"})
    with pytest.raises(NotAllowedError, match=r"^Only a nurse or a clinician"):
        VitalSigns(clinic.as_role("front_desk")).readings(pid)
    with pytest.raises(NotAllowedError, match=r"^Only the people on this restricted chart's"):
        VitalSigns(clinic.as_role("clinician")).readings(pid)


def test_an_action_missing_from_the_matrix_is_refused(clinic: Clinic) -> None:
    refused = pytest.raises(NotAllowedError, match="not in the permission matrix")
    with refused, clinic.db.write("founder", "patient.teleport", "patient", "x"):
        pass
