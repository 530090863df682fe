"""Problems, medications and allergy status through the one write path."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core.records import crdt, icd10, unknown
from core.records.allergy_status import AllergyRecords, AllergyState, allergy_state
from core.records.crdt import load
from core.records.entries import ClinicalEntries
from core.records.errors import ValidationError
from core.records.materialize import derive
from core.records.medications import AllergyWarning, Medications
from core.records.problems import Problems
from core.records.types import PATIENT
from core.records.visits import Visits
from core.store.state_codec import unpack_state
from tests.unit.sync.replicas import new_replica, sync_pair


def test_a_coded_problem_takes_the_code_lists_description_and_resolves_as_history() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    problems = Problems(a)
    htn = problems.add(p.id, code="i10", onset="2019")
    assert (htn.code, htn.description, htn.status, htn.onset) == (
        "I10", "Essential (primary) hypertension", "active", "2019",
    )  # fmt: skip
    back = problems.add(p.id, uncoded="Chronic low back pain", onset="2021-05")
    assert back.code is None and back.label == "(uncoded) Chronic low back pain"
    resolved = problems.resolve(back.id, "2024-02-03")
    assert (resolved.status, resolved.resolved, resolved.onset) == (
        "resolved",
        "2024-02-03",
        "2021-05",
    )
    assert [x.id for x in problems.list(p.id)] == [htn.id]
    assert [x.id for x in problems.list(p.id, include_resolved=True)] == [htn.id, resolved.id]
    actions = [r[0] for r in a.db.query("SELECT action FROM audit_log ORDER BY seq")]
    assert actions[-2:] == ["problem.add", "problem.resolve"]


def test_a_problem_needs_a_code_or_an_explicit_uncoded_text_and_a_sane_onset() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    problems = Problems(a)
    with pytest.raises(ValidationError, match="give an ICD-10-CM code"):
        problems.add(p.id)
    with pytest.raises(ValidationError, match="not an ICD-10-CM code"):
        problems.add(p.id, code="hypertension")
    with pytest.raises(ValidationError, match="no month 13"):
        problems.add(p.id, code="I10", onset="2019-13")
    next_year = str(dt.date.today().year + 1)
    with pytest.raises(ValidationError, match="in the future"):
        problems.add(p.id, code="I10", onset=next_year)
    with pytest.raises(ValidationError, match="year last"):
        problems.add(p.id, code="I10", onset="03/02/2019")
    assert problems.list(p.id, include_resolved=True) == []
    done = problems.resolve(problems.add(p.id, code="J45.909").id)
    with pytest.raises(ValidationError, match="already resolved"):
        problems.resolve(done.id)


def test_a_dose_change_is_stop_plus_new_and_both_stay_as_history() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    meds = Medications(a)
    first = meds.start(
        p.id,
        {"name": "Metformin", "strength": "500 mg", "dose": "1 tablet", "route": "oral",
         "frequency": "twice daily", "start": "2025-01-10", "reason": "Type 2 diabetes",
         "prescriber": "Dr Ann"},
    )  # fmt: skip
    assert first.active and first.instructions == "500 mg, 1 tablet oral twice daily"
    second = meds.change_dose(first.id, {"strength": "1000 mg"}, "2025-06-01")
    assert (second.strength, second.start, second.stop, second.reason) == (
        "1000 mg", "2025-06-01", None, "Type 2 diabetes",
    )  # fmt: skip
    assert [m.id for m in meds.list(p.id)] == [second.id]
    history = meds.list(p.id, include_past=True)
    assert [(m.strength, m.status, m.start, m.stop) for m in history] == [
        ("1000 mg", "active", "2025-06-01", None),
        ("500 mg", "stopped", "2025-01-10", "2025-06-01"),
    ]
    with pytest.raises(ValidationError, match="nothing changed"):
        meds.change_dose(second.id, {"strength": "1000 mg"})
    with pytest.raises(ValidationError, match="before the medication started"):
        meds.stop(second.id, "2025-05-01")
    stopped = meds.stop(second.id, "2025-09-30")
    assert meds.list(p.id) == [] and stopped.stop == "2025-09-30"
    with pytest.raises(ValidationError, match="already stopped"):
        meds.stop(stopped.id)


def test_a_dose_change_stores_only_the_prescriber_given_and_keeps_the_reason() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    visit = Visits(a).start(p.id, "Diabetes review")
    meds = Medications(a)
    first = meds.start(
        p.id,
        {"name": "Metformin", "strength": "500 mg", "start": "2025-01-10",
         "reason": "Type 2 diabetes", "prescriber": "Dr Ann", "encounter_id": visit.id},
    )  # fmt: skip
    # Nobody named a prescriber: the new prescription has none (not Dr Ann's), and it was
    # not made in her visit; the indication is the same, so the reason stays.
    second = meds.change_dose(first.id, {"strength": "1000 mg"}, "2025-06-01")
    assert (second.prescriber, second.encounter_id, second.reason) == (
        None, None, "Type 2 diabetes",
    )  # fmt: skip
    third = meds.change_dose(second.id, {"strength": "850 mg"}, "2025-09-01", "Dr Bo")
    assert (third.prescriber, third.reason) == ("Dr Bo", "Type 2 diabetes")
    history = meds.list(p.id, include_past=True)  # each stays as it was prescribed
    assert [(m.strength, m.prescriber, m.encounter_id, m.stop) for m in history] == [
        ("850 mg", "Dr Bo", None, None),
        ("1000 mg", None, None, "2025-09-01"),
        ("500 mg", "Dr Ann", visit.id, "2025-06-01"),
    ]


def test_the_v1_active_column_is_0_for_a_stopped_medication() -> None:
    """A reader knowing only V1's columns (name, dose, route, frequency, active) must not
    take history for a current medication."""
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    meds = Medications(a)
    metformin = meds.start(p.id, {"name": "Metformin", "strength": "500 mg"})
    lisinopril = meds.start(p.id, {"name": "Lisinopril", "strength": "10 mg"})
    higher = meds.change_dose(metformin.id, {"strength": "1000 mg"})
    meds.stop(lisinopril.id)
    rows = a.db.query(
        "SELECT id, active FROM medications WHERE patient_id = ? ORDER BY id", (p.id,)
    )
    stopped = {m.id for m in meds.list(p.id, include_past=True) if not m.active}
    assert len(stopped) == 2
    assert sorted(rows) == sorted([(higher.id, 1), *((i, 0) for i in stopped)])


def test_a_medication_matching_an_allergy_is_saved_only_when_confirmed() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    a.add_allergy(p.id, "Penicillin", "anaphylaxis", "severe")
    meds = Medications(a)
    with pytest.raises(AllergyWarning, match="amoxicillin is one of the penicillins") as warned:
        meds.start(p.id, {"name": "Amoxicillin"})
    assert warned.value.matches[0].allergy.substance == "Penicillin"
    assert meds.list(p.id) == []
    started = meds.start(p.id, {"name": "Amoxicillin"}, confirm_allergy=True)
    assert [m.id for m in meds.list(p.id)] == [started.id]
    details = a.db.query("SELECT details FROM audit_log WHERE action = 'medication.start'")
    assert json.loads(details[-1][0])["confirmed_allergy"] == "yes"


def test_a_heeded_allergy_warning_is_audited_and_changes_nothing_on_the_chart() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    a.add_allergy(p.id, "Penicillin", "anaphylaxis", "severe")
    ops_before = a.db.query("SELECT count(*) FROM oplog")[0][0]
    Medications(a).warning_heeded(p.id)
    rows = a.db.query(
        "SELECT actor, entity, entity_id, details FROM audit_log "
        "WHERE action = 'medication.not_started'"
    )
    assert [(r[0], r[1], r[2], json.loads(r[3])) for r in rows] == [
        ("ann", "patient", p.id, {"patient_id": p.id, "allergy_warning": "heeded"})
    ]
    assert a.db.query("SELECT count(*) FROM oplog")[0][0] == ops_before  # no record change
    assert Medications(a).list(p.id) == []


def test_no_known_allergies_is_an_answer_an_allergy_ends_and_that_refuses_allergies() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    status = AllergyRecords(a)
    assert allergy_state(a.get_patient(p.id), []) is AllergyState.NOT_RECORDED
    nka = status.record_no_known_allergies(p.id)
    assert nka.allergy_status == "nka"
    assert allergy_state(nka, a.allergies(p.id)) is AllergyState.NONE_KNOWN
    allergy = a.add_allergy(p.id, "Latex", "rash", "mild")
    after = a.get_patient(p.id)
    assert after.allergy_status == "allergies"
    assert allergy_state(after, a.allergies(p.id)) is AllergyState.ALLERGIES
    with pytest.raises(ValidationError, match=r"has recorded allergies \(Latex\)"):
        status.record_no_known_allergies(p.id)
    a.remove_allergy(allergy.id)  # entered in error: back to "not recorded", not NKA
    assert allergy_state(a.get_patient(p.id), []) is AllergyState.NOT_RECORDED


def test_editing_an_allergy_changes_reaction_and_severity_keeping_the_substance() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    old = a.add_allergy(p.id, "Penicillin", "rash", "mild")
    new = AllergyRecords(a).edit(old.id, "anaphylaxis", "severe")
    assert (new.substance, new.reaction, new.severity) == ("Penicillin", "anaphylaxis", "severe")
    assert [x.id for x in a.allergies(p.id)] == [new.id]
    with pytest.raises(ValidationError, match="not one of"):
        AllergyRecords(a).edit(new.id, "hives", "deadly")


def test_two_workstations_stopping_the_same_medication_raise_a_list_conflict() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    med = Medications(a).start(p.id, {"name": "Lisinopril", "strength": "10 mg"})
    sync_pair(b, a)
    Medications(a).stop(med.id, "2026-01-05")
    Medications(b).change_dose(med.id, {"strength": "20 mg"}, "2026-01-06")
    sync_pair(b, a)
    sync_pair(b, a)
    for replica in (a, b):
        [conflict] = replica.conflicts()
        assert (conflict.kind, conflict.field) == ("set", "medications")
        assert {s.id for s in conflict.sides} and len(conflict.sides) == 2


def test_nka_on_one_workstation_and_an_allergy_on_another_is_a_register_conflict() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    sync_pair(b, a)
    AllergyRecords(a).record_no_known_allergies(p.id)
    b.add_allergy(p.id, "Peanuts", "swelling", "severe")
    sync_pair(b, a)
    sync_pair(b, a)
    for replica in (a, b):
        [conflict] = replica.conflicts()
        assert conflict.field == "allergy_status"
        assert sorted(str(c.value) for c in conflict.candidates) == ["allergies", "nka"]
        # Whatever the register shows, the banner shows the allergy: it is on the list.
        shown = allergy_state(replica.get_patient(p.id), replica.allergies(p.id))
        assert shown is AllergyState.ALLERGIES


def test_a_problem_and_a_medication_name_the_visit_they_were_made_in() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    other = a.add_patient("Roe", "Ana", "1970-01-01")
    entries = ClinicalEntries(a)
    visit = entries.add("encounter", p.id, {"started_at": "2026-12-01T09:05"})
    elsewhere = entries.add("encounter", other.id, {"started_at": "2026-12-01T10:00"})
    problem = Problems(a).add(p.id, code="J45.909", encounter_id=visit)
    med = Medications(a).start(p.id, {"name": "Salbutamol", "encounter_id": visit})
    assert problem.encounter_id == med.encounter_id == visit
    with pytest.raises(ValidationError, match="is not a visit of this patient"):
        Problems(a).add(p.id, code="I10", encounter_id=elsewhere)
    with pytest.raises(ValidationError, match="is not a visit of this patient"):
        Medications(a).start(p.id, {"name": "Aspirin", "encounter_id": "nope"})
    assert [x.code for x in Problems(a).list(p.id)] == ["J45.909"]


def test_the_longest_code_descriptions_are_stored_whole() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    problem = Problems(a).add(p.id, code="S06.815D")
    assert len(problem.description) > 200  # longer than typed text may be
    assert problem.description.endswith("pre-existing conscious level, subsequent encounter")
    longest = max((e.code for e in icd10._catalogue()), key=lambda c: len(c.description))
    assert Problems(a).add(p.id, code=longest.code).description == longest.description


def test_a_date_given_blank_is_refused_and_only_none_means_today() -> None:
    """A form's emptied date was stored as today, a day nobody typed: a blank date is
    refused as required (nothing changes); no date at all (the CLI without --date) is
    today."""
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    problems, meds = Problems(a), Medications(a)
    asthma = problems.add(p.id, code="J45.909")
    with pytest.raises(ValidationError, match="resolved: is required"):
        problems.resolve(asthma.id, "  ")
    metformin = meds.start(p.id, {"name": "Metformin", "strength": "500 mg"})
    with pytest.raises(ValidationError, match="start: is required"):
        meds.change_dose(metformin.id, {"strength": "1000 mg"}, "")
    with pytest.raises(ValidationError, match="stop: is required"):
        meds.stop(metformin.id, "")
    assert [x.status for x in problems.list(p.id)] == ["active"]
    assert [(m.strength, m.status) for m in meds.list(p.id)] == [("500 mg", "active")]
    today = dt.date.today().isoformat()
    assert problems.resolve(asthma.id).resolved == today
    assert meds.stop(metformin.id).stop == today


def test_a_stop_or_resolution_in_a_visit_stores_nothing_an_older_release_does_not_know() -> None:
    """The visit is named by the change's history entry (a key older releases' readers
    skip), not by a new item field (which an older replica would list as needing a newer
    Careline): the items keep the fields a stop in no visit stores."""
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    visit = Visits(a).start(p.id, "Review").id
    meds, problems = Medications(a), Problems(a)
    in_visit = meds.stop(meds.start(p.id, {"name": "Aspirin"}).id, encounter_id=visit)
    in_none = meds.stop(meds.start(p.id, {"name": "Ibuprofen"}).id)
    resolved = problems.resolve(problems.add(p.id, code="I10").id, encounter_id=visit)
    [state] = a.db.query("SELECT state FROM record_states WHERE id = ?", (p.id,))
    doc = load(unpack_state(state[0]), 1)
    assert derive(p.id, PATIENT, doc).unknown == ()
    assert unknown.count(a.db) == 0
    items = {e.element_id: e.value for name in ("medications", "problems")
             for e in crdt.elements(doc, name)}  # fmt: skip
    assert items[in_visit.id].keys() == items[in_none.id].keys()
    assert (in_visit.encounter_id, resolved.encounter_id) == (None, None)
    history = crdt.all_history(doc)
    named = [c for name in ("medications", "problems") for c in history[name] if c.visit]
    assert [(c.visit, list(c.added)) for c in named] == [
        (visit, [in_visit.id]),
        (visit, [resolved.id]),
    ]
