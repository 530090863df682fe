"""Merging a duplicate chart into another: everything recorded on the duplicate shows on the
survivor's chart, lists and searches follow the survivor, and undoing the merge gives every
record back (issue #16 section 4)."""

from __future__ import annotations

import datetime as dt

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import merged
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError, ValidationError
from core.records.medications import Medications
from core.records.merges import Merges
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.schedule import Schedule
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from tests.unit.sync.replicas import new_replica

SHA = "ab" * 32
PASSWORD = "correct horse battery"


@pytest.fixture
def clinic() -> ClinicRecords:
    records = new_replica("admin")
    records.add_user("lee", "Dr Lee", "clinician", PASSWORD)
    return records


def _chart_contents(r: ClinicRecords, pid: str) -> dict[str, set[str]]:
    """What each part of a chart shows, by a value that names the entry."""
    entries = ClinicalEntries(r)
    return {
        "allergies": {a.substance for a in r.allergies(pid)},
        "problems": {p.description for p in Problems(r).list(pid)},
        "medications": {m.name for m in Medications(r).list(pid)},
        "vitals": {v.value for v in VitalSigns(r).readings(pid)},
        "notes": {n.body for n in Notes(r).for_patient(pid)},
        "visits": {v.reason or "" for v in Visits(r).list_visits(pid)},
        "appointments": {str(a["reason"]) for a in entries.for_patient("appointment", pid)},
        "attachments": {str(a["filename"]) for a in entries.for_patient("attachment", pid)},
    }


def _fill(r: ClinicRecords, pid: str, tag: str) -> None:
    """One of everything on the chart, each naming ``tag``."""
    r.add_allergy(pid, f"Latex {tag}")
    Problems(r).add(pid, uncoded=f"Back pain {tag}")
    Medications(r).start(pid, {"name": f"Ibuprofen {tag}"}, confirm_allergy=True)
    VitalSigns(r).record(pid, {"pulse": "71" if tag == "dup" else "80"})
    Notes(r).create(pid, f"Seen {tag}.")
    Visits(r).start(pid, f"Cough {tag}")
    Schedule(r).book(pid, "2026-12-07T09:30", "lee", 15, reason=f"Review {tag}", allow_overlap=True)
    fields = {"filename": f"letter-{tag}.pdf", "media_type": "application/pdf"}
    ClinicalEntries(r).add("attachment", pid, {**fields, "size": "12", "sha256": SHA})


def test_merge_moves_everything_and_undo_gives_it_back(clinic: ClinicRecords) -> None:
    survivor = clinic.add_patient("Okafor", "Chinedu", "1984-02-02").id
    duplicate = clinic.add_patient("Okafur", "Chinedu", "1984-02-02").id
    _fill(clinic, survivor, "kept")
    _fill(clinic, duplicate, "dup")
    before = _chart_contents(clinic, duplicate)
    own = _chart_contents(clinic, survivor)

    done = Merges(clinic).merge(duplicate, survivor, "same person, registered twice")
    assert (done.duplicate, done.survivor, done.by) == (duplicate, survivor, "admin")
    assert done.reason == "same person, registered twice"

    together = _chart_contents(clinic, survivor)
    for part, shown in together.items():
        assert shown == own[part] | before[part], part
    # The duplicate's id opens the survivor's chart; lists and searches show the survivor.
    assert clinic.open_chart(duplicate).patient.id == survivor
    assert {a.substance for a in clinic.open_chart(survivor).allergies} == {
        "Latex kept",
        "Latex dup",
    }
    assert [p.id for p in clinic.search_patients("chinedu")] == [survivor]
    assert [p.id for p in clinic.search_patients("okafur")] == [survivor]  # the duplicate's
    assert [p.id for p in clinic.list_patients()] == [survivor]
    assert clinic.count_patients() == 1
    [(duplicate_now, merge)] = Merges(clinic).merged_from(survivor)
    assert (duplicate_now.id, duplicate_now.family, merge.survivor) == (
        duplicate,
        "Okafur",
        survivor,
    )
    actions = [r[0] for r in clinic.db.query("SELECT action FROM audit_log ORDER BY seq")]
    assert "patient.merge" in actions

    Merges(clinic).unmerge(duplicate)
    assert _chart_contents(clinic, duplicate) == before
    assert _chart_contents(clinic, survivor) == own
    assert clinic.open_chart(duplicate).patient.id == duplicate
    assert clinic.count_patients() == 2
    assert Merges(clinic).merged_from(survivor) == []


def test_likely_duplicates_are_listed_until_merged(clinic: ClinicRecords) -> None:
    first = clinic.add_patient("Okafor", "Chinedu", "1984-02-02").id
    second = clinic.add_patient("Chinedu", "Okafor", "1984-02-02").id  # swapped names
    clinic.add_patient("Okafor", "Chidi", "1984-02-02")  # a twin: another person
    clinic.add_patient("Okafor", "Chinedu", "1990-01-01")  # another birthday
    [pair] = Merges(clinic).candidates()
    assert {pair.first.id, pair.second.id} == {first, second}
    Merges(clinic).merge(second, first, "same person")
    assert Merges(clinic).candidates() == []


def test_merges_that_make_no_sense_are_refused(clinic: ClinicRecords) -> None:
    a = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    b = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    c = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    merges = Merges(clinic)
    with pytest.raises(ValidationError, match="itself"):
        merges.merge(a, a, "oops")
    with pytest.raises(ValidationError, match="merge_reason"):
        merges.merge(a, b, "  ")
    merges.merge(a, b, "same person")
    with pytest.raises(ValidationError, match="already merged"):
        merges.merge(a, c, "again")
    with pytest.raises(ValidationError, match="undo that first"):
        merges.merge(b, a, "the other way round")
    with pytest.raises(ValidationError, match="not merged"):
        merges.unmerge(c)
    # Chains: b into c takes a's records along.
    clinic.add_allergy(a, "Latex")
    merges.merge(b, c, "same person")
    assert [x.substance for x in clinic.allergies(c)] == ["Latex"]


@pytest.mark.strict_authz
def test_only_clinicians_and_admins_merge() -> None:
    clinic = new_replica("admin")
    clinic.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    for name, full, role in (
        ("lee", "Dr Lee", "clinician"),
        ("nina", "Nina Desk", "front_desk"),
        ("boss", "Bo Admin", "admin"),
    ):
        clinic.add_user(name, full, role, PASSWORD)
    a = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    b = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    desk = ClinicRecords(clinic.db, "nina", FAST_PARAMS)
    with pytest.raises(NotAllowedError, match="merge duplicate patients"):
        Merges(desk).merge(a, b, "same person")
    with pytest.raises(NotAllowedError):
        Merges(desk).candidates()
    lee = ClinicRecords(clinic.db, "lee", FAST_PARAMS)
    assert len(Merges(lee).candidates()) == 1
    assert Merges(lee).merge(a, b, "same person").by == "lee"
    with pytest.raises(NotAllowedError):
        Merges(desk).unmerge(a)
    # An admin who is not a clinician merges too (and undoes).
    assert Merges(ClinicRecords(clinic.db, "boss", FAST_PARAMS)).unmerge(a).by == "lee"


def test_pointers_resolve_through_chains_and_loops() -> None:
    links = {"d": "c", "c": "b", "x": "y", "y": "z", "z": "x", "w": "y"}
    assert merged.resolve(links, "d") == "b"  # a chain ends at the last chart
    assert merged.resolve(links, "b") == "b"
    # A loop (opposite merges made at once): its lowest id survives, for whoever points in.
    assert {merged.resolve(links, p) for p in ("x", "y", "z", "w")} == {"x"}
    assert merged.loop_of(links, "y") == ["x", "y", "z"]
    assert merged.loop_of(links, "w") == [] and merged.loop_of(links, "d") == []


def test_merges_are_listed_newest_first_for_undoing(clinic: ClinicRecords) -> None:
    a = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    b = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    c = clinic.add_patient("Ames", "Bo", "1984-02-02").id
    merges = Merges(clinic)
    assert merges.merged() == []
    merges.merge(a, c, "first")
    merges.merge(b, c, "second")
    assert [(p.id, m.reason) for p, m in merges.merged()] == [(b, "second"), (a, "first")]
    merges.unmerge(b)
    assert [p.id for p, _ in merges.merged()] == [a]


def test_the_schedule_and_audit_log_name_the_surviving_chart(clinic: ClinicRecords) -> None:
    """A merged duplicate's appointment is listed under the survivor's name, and so are the
    audit log's entries about it; undoing the merge gives the duplicate its name back."""
    from app.admin.audit_table import with_names
    from core.records.audit_review import list_entries

    survivor = clinic.add_patient("Okafor", "Chinedu", "1984-02-02").id
    duplicate = clinic.add_patient("Okafur", "Chinedu", "1984-02-02").id
    booked = Schedule(clinic).book(duplicate, "2026-12-07T09:30", "lee", 15, reason="Review")
    Merges(clinic).merge(duplicate, survivor, "same person")
    schedule = Schedule(clinic)
    [shown] = schedule.day(dt.date(2026, 12, 7))
    assert (shown.id, shown.patient_name) == (booked.id, "OKAFOR, Chinedu")
    assert schedule.get(booked.id).patient_name == "OKAFOR, Chinedu"
    names = with_names(clinic, list_entries(clinic.db)).patients
    assert names[duplicate] == names[survivor] == "OKAFOR, Chinedu"
    Merges(clinic).unmerge(duplicate)
    assert Schedule(clinic).get(booked.id).patient_name == "OKAFUR, Chinedu"
    assert with_names(clinic, list_entries(clinic.db)).patients[duplicate] == "OKAFUR, Chinedu"
