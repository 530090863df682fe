"""Every public read of core/records that returns a chart's clinical data is refused to
whoever may not read that chart clinically (security review S1): the front desk, and a
nurse off a restricted chart's care team. Enforced in core, so the app, the command line
and any future caller are covered.

The walk is by introspection: every public method of the operation classes of
core/records (those made from a ``ClinicRecords``, and ``ClinicRecords`` itself) must be
listed here as a refused read, a read that withholds the clinical part, a change (checked
by the write gate: tests/unit/records/test_permission_matrix.py), or deliberately
unchecked with the reason. A new method fails this test until someone decides which.

Each read is tried on the restricted chart, and on a merged one: the restricted chart
merged into an unrestricted registration of the same person (the survivor), which must
stay as closed as the restricted chart was (tester report E1).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

import core.records
from core.records import chart_access
from core.records.break_glass import BreakGlass
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError
from core.records.medications import Medications
from core.records.merges import Merges
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from tests.unit.records.test_chart_access import PASSWORD
from tests.unit.sync.replicas import new_replica

pytestmark = pytest.mark.strict_authz

# The front desk, and a nurse not on the restricted chart's care team.
OUTSIDERS = ("desk", "nia")


@dataclass(frozen=True)
class Chart:
    """A restricted chart (care team: ``doc``) holding one of everything clinical; or the
    chart it was merged into (``patient``, unrestricted itself) while its records stay on
    their own patient (``own``)."""

    clinic: ClinicRecords
    patient: str
    visit: str
    note: str
    reading: str
    problem: str
    medication: str
    grant: str  # a break-glass opening of it, by another nurse
    own: str  # the patient the records were made on (``patient`` unless merged)


def as_(chart: Chart, name: str) -> ClinicRecords:
    """The clinic's records as ``name``."""
    return ClinicRecords(chart.clinic.db, name)


@pytest.fixture(scope="module", params=["restricted", "merged"])
def chart(request: pytest.FixtureRequest) -> Iterator[Chart]:
    """Built once: the reads below change nothing but the audit log. Permissions are on
    while it is built (module fixtures run before the strict_authz marker turns them on)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core.records.authorize, "ENFORCING", True)
        built = _build()
        yield _merged(built) if request.param == "merged" else built


def _merged(chart: Chart) -> Chart:
    """The restricted chart merged into a new, unrestricted registration of the person,
    the new one kept (as the tester did): reads of the survivor gather its records."""
    admin = as_(chart, "admin")
    survivor = admin.add_patient("Secret", "Sam", "1970-01-01", allow_duplicate=True).id
    Merges(as_(chart, "doc")).merge(chart.patient, survivor, "same person, registered twice")
    return replace(chart, patient=survivor)


def _build() -> Chart:
    clinic = new_replica("admin")
    clinic.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    for name, role in (("doc", "clinician"), ("nia", "nurse"), ("bea", "nurse"),
                       ("desk", "front_desk")):  # fmt: skip
        clinic.add_user(name, name.title(), role, PASSWORD)
    doc = ClinicRecords(clinic.db, "doc")
    pid = doc.add_patient("Secret", "Sam", "1970-01-01").id
    visit = Visits(doc).start(pid, reason="HIV follow-up")
    note = Visits(doc).add_note(visit.id, "viral load 20000")
    [reading] = VitalSigns(doc).record(pid, {"pulse": "80"}, encounter_id=visit.id)
    doc.add_allergy(pid, "Penicillin", reaction="anaphylaxis")
    problem = Problems(doc).add(pid, uncoded="HIV disease")
    medication = Medications(doc).start(pid, {"name": "Biktarvy"})
    chart_access.set_restricted(doc, pid, True)
    grant = BreakGlass(ClinicRecords(clinic.db, "bea")).open(pid, "collapsed in waiting room")
    return Chart(
        clinic, pid, visit.id, note.id, reading.id, problem.id, medication.id, grant.id, pid
    )


Call = Callable[[ClinicRecords, Chart], object]

# Reads refused to the outsiders: method -> (the calls, who may make them).
REFUSED: dict[str, tuple[tuple[Call, ...], str]] = {
    "ClinicRecords.allergies": ((lambda r, c: r.allergies(c.patient),), "doc"),
    "Notes.get": ((lambda r, c: Notes(r).get(c.note),), "doc"),
    "Notes.for_patient": ((lambda r, c: Notes(r).for_patient(c.patient),), "doc"),
    # None for a note on the chart: listed so the reader's call returns something.
    "Notes.discarding": ((lambda r, c: [Notes(r).discarding(c.note)],), "doc"),
    "Visits.get": ((lambda r, c: Visits(r).get(c.visit),), "doc"),
    "Visits.visit_notes": ((lambda r, c: Visits(r).visit_notes(c.visit),), "doc"),
    "Visits.contents": ((lambda r, c: Visits(r).contents(c.visit),), "doc"),
    "VitalSigns.get": ((lambda r, c: VitalSigns(r).get(c.reading),), "doc"),
    "VitalSigns.readings": ((lambda r, c: VitalSigns(r).readings(c.patient),), "doc"),
    "VitalSigns.for_visit": ((lambda r, c: VitalSigns(r).for_visit(c.visit),), "doc"),
    "VitalSigns.sets": ((lambda r, c: VitalSigns(r).sets(c.patient),), "doc"),
    "VitalSigns.set_of": (
        (lambda r, c: VitalSigns(r).set_of(c.patient, [VitalSigns(r).get(c.reading)]),),
        "doc",
    ),
    "Problems.get": ((lambda r, c: Problems(r).get(c.problem),), "doc"),
    "Problems.list": ((lambda r, c: Problems(r).list(c.patient),), "doc"),
    "Medications.get": ((lambda r, c: Medications(r).get(c.medication),), "doc"),
    "Medications.list": ((lambda r, c: Medications(r).list(c.patient),), "doc"),
    "Medications.allergy_matches": (
        (lambda r, c: Medications(r).allergy_matches(c.patient, "amoxicillin"),),
        "doc",
    ),
    "ClinicalEntries.get": (
        (
            lambda r, c: ClinicalEntries(r).get("encounter", c.visit),
            lambda r, c: ClinicalEntries(r).get("observation", c.reading),
        ),
        "doc",
    ),
    "ClinicalEntries.for_patient": (
        (
            lambda r, c: ClinicalEntries(r).for_patient("encounter", c.patient),
            lambda r, c: ClinicalEntries(r).for_patient("observation", c.patient),
        ),
        "doc",
    ),
    # Who opened which chart, when and why: for the reviewers (administrators).
    "BreakGlass.get": ((lambda r, c: BreakGlass(r).get(c.grant),), "admin"),
    "BreakGlass.openings": ((lambda r, c: BreakGlass(r).openings(),), "admin"),
    "BreakGlass.pending": ((lambda r, c: BreakGlass(r).pending(),), "admin"),
}

# Reads that answer the outsiders without the clinical part: method -> (the call, whether
# what came back holds none of it).
WITHHOLDING: dict[str, tuple[Call, Callable[[object], bool]]] = {
    "ClinicRecords.open_chart": (
        lambda r, c: r.open_chart(c.patient),
        lambda chart: not chart.clinical and not chart.allergies,  # type: ignore[attr-defined]
    ),
    # The clinic's visit list (who is in a visit): the reason withheld.
    "Visits.list_visits": (
        lambda r, c: Visits(r).list_visits(),
        lambda found: [(v.reason, v.reason_withheld) for v in found] == [(None, True)],  # type: ignore[attr-defined]
    ),
    # Conflicts on records one may not read are left out (test_conflict_inbox_access.py).
    "ClinicRecords.conflicts": (lambda r, c: r.conflicts(), lambda found: found == []),
    "ClinicRecords.review_conflicts": (
        lambda r, c: r.review_conflicts(),
        lambda found: found == [],
    ),
}

_WRITE = "a change: the write gate checks it (test_permission_matrix.py)"
WRITES = {
    f"{cls}.{name}": _WRITE
    for cls, names in {
        "ClinicRecords": ("set_up_clinic", "add_user", "set_clinic_name", "change_password",
                          "add_patient", "apply", "update_patient", "add_allergy",
                          "remove_allergy", "delete_patient", "resolve_conflict"),
        "AllergyRecords": ("record_no_known_allergies", "edit"),
        "BreakGlass": ("open", "mark_reviewed"),
        "ListWriter": ("write", "add", "replace"),
        "ClinicalEntries": ("add", "update", "delete", "add_to_list", "remove_from_list"),
        "Medications": ("start", "warning_heeded", "stop", "change_dose"),
        "Merges": ("dismiss", "undismiss", "merge", "unmerge"),
        "Notes": ("create", "edit", "sign", "add_addendum", "discard"),
        "Problems": ("add", "resolve"),
        "Access": ("grant", "revoke"),
        "Schedule": ("book", "move", "cancel", "set_status", "start_visit"),
        "Staff": ("add_role", "remove_role", "add", "set_role", "deactivate", "reactivate",
                  "reset_password", "enrol_totp", "disable_totp"),
        "Visits": ("start", "close", "reopen", "add_note"),
        "VitalSigns": ("record", "correct"),
    }.items()
    for name in names
}  # fmt: skip

_DEMOGRAPHICS = "demographics: every staff member sees them (view_demographics)"
_SCHEDULE = "the schedule (appointments): schedule data, not a chart's clinical data"
_ACCOUNTS = "staff accounts and signing in: no chart's data"
# Deliberately not checked for a chart's clinical data, each with the reason.
UNCHECKED = {
    "ClinicRecords.require": "the check itself",
    "ClinicRecords.permitted": "the signed-in person's own permissions",
    "ClinicRecords.may": "the signed-in person's own permissions",
    "ClinicRecords.setter": "builds a change, reads nothing",
    "ClinicRecords.deleter": "builds a change, reads nothing",
    "ClinicRecords.clinic_name": "the clinic's name",
    "ClinicRecords.user": _ACCOUNTS,
    "ClinicRecords.users": _ACCOUNTS,
    "ClinicRecords.full_names": _ACCOUNTS,
    "ClinicRecords.authenticate": _ACCOUNTS,
    "ClinicRecords.authenticate_against": _ACCOUNTS,
    "ClinicRecords.verifier_digest": _ACCOUNTS,
    "ClinicRecords.get_patient": _DEMOGRAPHICS,
    "ClinicRecords.count_patients": _DEMOGRAPHICS,
    "ClinicRecords.list_patients": _DEMOGRAPHICS,
    "ClinicRecords.search_patients": _DEMOGRAPHICS + " (checked: patients.search)",
    "ClinicRecords.patient_changed_since": _DEMOGRAPHICS + " (a form's own fields)",
    "ClinicRecords.withheld_conflicts": "a count, naming no record and no value",
    "Merges.candidates": _DEMOGRAPHICS + " (checked: patients.duplicates)",
    "Merges.merged": _DEMOGRAPHICS + " (checked: patients.duplicates)",
    "Merges.merged_from": _DEMOGRAPHICS + " and the merge's own record",
    "Access.explicit": "who may see a chart: open to all staff (access.show)",
    "ListWriter.patient_of": "the write path's lookup of an item's patient id, no values",
    "BreakGlass.active": "the signed-in person's own opening",
    "Visits.appointments_to_start": _SCHEDULE + " (checked: schedule)",
    "Schedule.get": _SCHEDULE,
    "Schedule.between": _SCHEDULE + " (checked: schedule.view)",
    "Schedule.day": _SCHEDULE + " (checked: schedule.view)",
    "Schedule.week": _SCHEDULE + " (checked: schedule.view)",
    "Schedule.waiting": _SCHEDULE + " (checked: schedule.view)",
    "Schedule.clinicians": "the clinicians' names",
    "Schedule.overlaps": _SCHEDULE,
    "Staff.members": _ACCOUNTS + " (checked: manage_staff)",
    "Staff.roles": _ACCOUNTS,
}


def operation_classes() -> Iterator[type]:
    """``ClinicRecords`` and every class of core/records made from one."""
    for info in pkgutil.walk_packages(core.records.__path__, "core.records."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or cls.__name__.startswith("_"):
                continue
            params = list(inspect.signature(cls.__init__).parameters.values())[1:]
            if cls is ClinicRecords or (
                params and params[0].annotation in ("ClinicRecords", ClinicRecords)
            ):
                yield cls


def public_methods() -> set[str]:
    """``Class.method`` for every public method of the operation classes."""
    return {
        f"{cls.__name__}.{name}"
        for cls in operation_classes()
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


def test_every_public_method_is_classified() -> None:
    """A method missing below (a new getter) fails here until it is checked or listed as
    deliberately unchecked with its reason."""
    names = [*REFUSED, *WITHHOLDING, *WRITES, *UNCHECKED]
    assert len(names) == len(set(names)), "a method is listed twice"
    found = public_methods()
    assert sorted(found - set(names)) == [], "public methods nobody classified"
    assert sorted(set(names) - found) == [], "listed methods that no longer exist"


@pytest.mark.parametrize("who", OUTSIDERS)
@pytest.mark.parametrize("method", sorted(REFUSED))
def test_clinical_reads_are_refused_off_the_care_team(chart: Chart, who: str, method: str) -> None:
    calls, reader = REFUSED[method]
    for call in calls:
        assert call(as_(chart, reader), chart) is not None  # the read works for its reader
        with pytest.raises(NotAllowedError, match=r"^Only "):
            call(as_(chart, who), chart)


@pytest.mark.parametrize("who", OUTSIDERS)
@pytest.mark.parametrize("method", sorted(WITHHOLDING))
def test_clinic_wide_reads_leave_out_what_one_may_not_read(
    chart: Chart, who: str, method: str
) -> None:
    call, holds_nothing_clinical = WITHHOLDING[method]
    assert holds_nothing_clinical(call(as_(chart, who), chart))


def test_the_care_team_reads_the_clinic_visit_list_in_full(chart: Chart) -> None:
    [visit] = Visits(as_(chart, "doc")).list_visits(open_only=True)
    assert (visit.reason, visit.reason_withheld) == ("HIV follow-up", False)


def test_a_refused_read_is_audited(chart: Chart) -> None:
    before = _refusals(chart)
    with pytest.raises(NotAllowedError):
        Notes(as_(chart, "desk")).get(chart.note)
    assert _refusals(chart) == [*before, ("desk", chart.own, "notes.list")]


def test_a_refused_read_inside_a_batch_is_still_audited(chart: Chart) -> None:
    """A read refused inside a batch ends it (rolled back); its refusal is audited after."""
    before = _refusals(chart)
    desk = as_(chart, "desk")
    with pytest.raises(NotAllowedError), desk.db.batch():
        Visits(desk).get(chart.visit)
    assert _refusals(chart) == [*before, ("desk", chart.own, "visits.list")]


def _refusals(chart: Chart) -> list[tuple[str, str, str]]:
    rows = chart.clinic.db.query(
        "SELECT actor, entity_id, json_extract(details, '$.action') FROM audit_log "
        "WHERE action = 'action.refused' ORDER BY rowid"
    )
    return [(str(a), str(e), str(d)) for a, e, d in rows]


def test_break_glass_lets_a_nurse_read_the_visit_and_her_own_opening(chart: Chart) -> None:
    """Bea broke the glass: she reads the visit, and her own opening, not the others'."""
    bea = as_(chart, "bea")
    assert Visits(bea).contents(chart.visit).notes[0].body == "viral load 20000"
    assert BreakGlass(bea).get(chart.grant).username == "bea"
    with pytest.raises(NotAllowedError, match="Only an admin can review break-glass"):
        BreakGlass(bea).openings()
