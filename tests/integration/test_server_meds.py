"""Problems, medications and the allergy status between two workstations through a live
server: concurrent changes of the same item, or NKA against an allergy, reach the conflict
inbox on both, and a resolution converges."""

from __future__ import annotations

from pathlib import Path

from core.records.allergy_status import AllergyRecords, AllergyState, allergy_state
from core.records.medications import Medications
from core.records.problems import Problems
from core.records.replication import replica_id
from core.records.workstation import Workstation
from core.sync.enroll import ServerCredential
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at

Desks = list[tuple[Workstation, ServerCredential]]


def _desks(live: Live, tmp_path: Path) -> tuple[Workstation, Workstation, Desks]:
    clinic = add_clinic(live.server, "Harbour Clinic")
    a, cred_a = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "desk-a")
    b, cred_b = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "desk-b")
    return a, b, [(a, cred_a), (b, cred_b)]


def _sync_all(desks: Desks) -> None:
    for ws, cred in (*desks, desks[0]):
        sync_at(ws, cred)


def test_stop_and_dose_change_of_one_medication_on_two_desks_is_a_list_conflict(
    live: Live, tmp_path: Path
) -> None:
    a, b, desks = _desks(live, tmp_path)
    patient = a.records.add_patient("Mensah", "Ama", "1979-05-05")
    med = Medications(a.records).start(patient.id, {"name": "Lisinopril", "strength": "10 mg"})
    problem = Problems(a.records).add(patient.id, code="I10", onset="2019")
    _sync_all(desks)
    assert [m.name for m in Medications(b.records).list(patient.id)] == ["Lisinopril"]
    assert [p.code for p in Problems(b.records).list(patient.id)] == ["I10"]

    Medications(a.records).stop(med.id, "2026-01-05")
    Medications(b.records).change_dose(med.id, {"strength": "20 mg"}, "2026-01-06")
    Problems(b.records).resolve(problem.id, "2026-01-06")  # a different list: no conflict
    _sync_all(desks)
    for ws in (a, b):
        [conflict] = ws.records.conflicts()
        assert (conflict.kind, conflict.field) == ("set", "medications")
        assert len(conflict.sides) == 2
        assert Problems(ws.records).list(patient.id) == []  # resolved everywhere
    # Keep desk b's change (the new dose): one op, and both desks agree.
    conflict = a.records.conflicts()[0]
    b_side = next(s for s in conflict.sides if any(e.author == "admin" and "20 mg" in e.label
                                                   for e in s.added))  # fmt: skip
    a.records.resolve_conflict(conflict.id, choose=b_side.id)
    _sync_all(desks)
    for ws in (a, b):
        assert ws.records.conflicts() == []
        active = Medications(ws.records).list(patient.id)
        assert [(m.name, m.strength) for m in active] == [("Lisinopril", "20 mg")]
    a.lock()
    b.lock()


def test_no_known_allergies_on_one_desk_and_an_allergy_on_the_other_is_a_conflict(
    live: Live, tmp_path: Path
) -> None:
    a, b, desks = _desks(live, tmp_path)
    patient = a.records.add_patient("Mensah", "Kofi", "1980-01-01")
    _sync_all(desks)
    AllergyRecords(a.records).record_no_known_allergies(patient.id)
    b.records.add_allergy(patient.id, "Peanuts", "swelling", "severe")
    _sync_all(desks)
    for ws in (a, b):
        [conflict] = ws.records.conflicts()
        assert conflict.field == "allergy_status"
        assert sorted(str(c.value) for c in conflict.candidates) == ["allergies", "nka"]
        shown = allergy_state(ws.records.get_patient(patient.id), ws.records.allergies(patient.id))
        assert shown is AllergyState.ALLERGIES  # the allergy is never hidden by the NKA
    a.lock()
    b.lock()


def test_one_problem_resolved_on_two_desks_with_different_dates_is_a_list_conflict(
    live: Live, tmp_path: Path
) -> None:
    a, b, desks = _desks(live, tmp_path)
    patient = a.records.add_patient("Mensah", "Efua", "1975-03-03")
    problem = Problems(a.records).add(patient.id, code="J45", onset="2020")
    _sync_all(desks)
    Problems(a.records).resolve(problem.id, "2026-01-05")
    Problems(b.records).resolve(problem.id, "2026-01-09")
    _sync_all(desks)
    for ws in (a, b):
        [conflict] = ws.records.conflicts()
        assert (conflict.kind, conflict.field) == ("set", "problems")
        assert len(conflict.sides) == 2  # both resolutions kept for a person to choose
    # Desk b's date is the right one: choosing it is one op, and both desks agree.
    conflict = b.records.conflicts()[0]
    desk_b = replica_id(b.database)
    chosen = next(s for s in conflict.sides if any(e.replica == desk_b for e in s.added))
    b.records.resolve_conflict(conflict.id, choose=chosen.id)
    _sync_all(desks)
    for ws in (a, b):
        assert ws.records.conflicts() == []
        [kept] = Problems(ws.records).list(patient.id, include_resolved=True)
        assert (kept.code, kept.status, kept.resolved) == ("J45", "resolved", "2026-01-09")
    a.lock()
    b.lock()
