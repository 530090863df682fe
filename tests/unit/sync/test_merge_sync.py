"""Merges are replicated ops that converge: the same pair merged on two workstations at once,
a pair merged in opposite directions at once, and a merge while another workstation edits
the duplicate (issue #16 section 4)."""

from __future__ import annotations

from core.records.clinic import ClinicRecords
from core.records.merges import Merges
from core.records.notes import Notes
from tests.unit.sync.replicas import assert_converged, new_replica, sync_pair


def _two_workstations() -> tuple[ClinicRecords, ClinicRecords, str, str]:
    """Two replicas holding the same two registrations of one person."""
    a, b = new_replica("admin"), new_replica("admin")
    first = a.add_patient("Okafor", "Chinedu", "1984-02-02").id
    second = b.add_patient("Okafur", "Chinedu", "1984-02-02").id
    sync_pair(a, b)
    sync_pair(b, a)
    return a, b, first, second


def _settle(a: ClinicRecords, b: ClinicRecords) -> None:
    sync_pair(a, b)
    sync_pair(b, a)
    assert_converged([a, b])


def test_the_same_merge_made_twice_converges_without_a_conflict() -> None:
    a, b, first, second = _two_workstations()
    Merges(a).merge(second, first, "same person")
    Merges(b).merge(second, first, "same person")
    _settle(a, b)
    for r in (a, b):
        assert [p.id for p in r.list_patients()] == [first]
        assert r.open_chart(second).patient.id == first
        assert r.conflicts() == []


def test_opposite_merges_at_once_keep_the_lowest_id_on_every_workstation() -> None:
    a, b, first, second = _two_workstations()
    a.add_allergy(first, "Latex")
    b.add_allergy(second, "Penicillin")
    Merges(a).merge(second, first, "same person")
    Merges(b).merge(first, second, "same person")
    _settle(a, b)
    lowest = min(first, second)
    for r in (a, b):
        assert [p.id for p in r.list_patients()] == [lowest]
        for pid in (first, second):
            chart = r.open_chart(pid)
            assert chart.patient.id == lowest
            assert {x.substance for x in chart.allergies} == {"Latex", "Penicillin"}
    # Undoing the merge that kept the loop closed splits the charts again, everywhere.
    other = max(first, second)
    Merges(a).unmerge(other)
    _settle(a, b)
    for r in (a, b):
        assert sorted(p.id for p in r.list_patients()) == sorted((first, second))


def test_an_edit_to_the_duplicate_made_during_a_merge_shows_on_the_survivor() -> None:
    a, b, first, second = _two_workstations()
    Merges(a).merge(second, first, "same person")
    # Workstation b has not heard of the merge: it records on the duplicate.
    b.add_allergy(second, "Peanut")
    note = Notes(b).create(second, "Seen for cough.")
    b.update_patient(second, {"phone": "555-0100"})
    _settle(a, b)
    for r in (a, b):
        assert [x.substance for x in r.open_chart(first).allergies] == ["Peanut"]
        assert [n.id for n in Notes(r).for_patient(first)] == [note.id]
        [(duplicate, merge)] = Merges(r).merged_from(first)
        assert (duplicate.phone, merge.reason) == ("555-0100", "same person")


def test_a_duplicate_merged_into_two_survivors_at_once_is_a_conflict_to_settle() -> None:
    a, b, first, second = _two_workstations()
    third = a.add_patient("Okafor", "C", "1984-02-02").id
    _settle(a, b)
    Merges(a).merge(second, first, "same person")
    Merges(b).merge(second, third, "same person")
    _settle(a, b)
    [conflict] = [c for c in a.conflicts() if c.field == "merged_into"]
    assert {c.value for c in conflict.candidates} == {first, third}
    a.resolve_conflict(conflict.id, value=first)
    _settle(a, b)
    for r in (a, b):
        assert r.open_chart(second).patient.id == first
