"""Who recorded, resolved, stopped and prescribed a problem or medication, read from the
list's history (no schema change); duplicates refused until confirmed; and what an older
release makes of it."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from core.records import crdt, unknown
from core.records.chart_lists import DuplicateWarning
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.materialize import derive
from core.records.medications import Medications
from core.records.problems import Problems
from core.records.types import PATIENT
from core.store.state_codec import unpack_state
from tests.releases import COMMITS, PREVIOUS
from tests.unit.sync.replicas import new_replica, sync_pair


def _doc(r: ClinicRecords, patient_id: str) -> crdt.RecordDoc:
    [state] = r.db.query("SELECT state FROM record_states WHERE id = ?", (patient_id,))
    return crdt.load(unpack_state(state[0]), 1)


def test_a_resolved_problem_keeps_who_recorded_it_and_says_who_resolved_it() -> None:
    """Resolving replaces the item by a copy another person's change added: the copy is
    still recorded by the first person, and resolved by the second."""
    ann, bob = new_replica("ann"), new_replica("bob")
    p = ann.add_patient("Soto", "Luis", "1961-01-01")
    added = Problems(ann).add(p.id, code="I10")
    assert added.recorded_by == "ann" and added.recorded_at is not None
    assert (added.resolved_at, added.resolved_by) == (None, None)
    sync_pair(bob, ann)
    done = Problems(bob).resolve(added.id, "2026-01-02")
    sync_pair(bob, ann)
    [seen] = Problems(ann).list(p.id, include_resolved=True)
    assert seen.id == done.id != added.id
    assert (seen.recorded_by, seen.recorded_at) == ("ann", added.recorded_at)
    assert seen.resolved_by == "bob" and seen.resolved_at is not None
    assert seen.resolved_at >= str(seen.recorded_at)
    assert seen.history_lines({"bob": "Dr Bo"})[1].startswith("Resolved 2026-01-02 (recorded ")
    assert seen.history_lines({"bob": "Dr Bo"})[1].endswith(" by Dr Bo)")


def test_a_dose_change_is_no_stop_and_the_new_dose_is_recorded_by_the_change() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    meds = Medications(a)
    first = meds.start(p.id, {"name": "Metformin", "strength": "500 mg", "start": "2025-01-10"})
    second = meds.change_dose(first.id, {"strength": "1000 mg"}, "2025-06-01", prescribing=True)
    stopped = meds.stop(second.id, "2025-09-01")
    by_id = {m.id: m for m in meds.list(p.id, include_past=True)}
    assert len(by_id) == 2  # the 500 mg dose, then the 1000 mg one, both past
    [old] = [m for m in by_id.values() if m.strength == "500 mg"]
    assert (old.changed_to, old.stopped_by, old.recorded_at) == (
        stopped.id, "ann", first.recorded_at,
    )  # fmt: skip
    assert by_id[stopped.id].changed_from == old.id and by_id[stopped.id].changed_to is None
    assert old.history_lines({}, by_id)[-1] == "Dose changed to 1000 mg on 2025-06-01 by ann"
    assert by_id[stopped.id].history_lines({}, by_id)[-1].startswith("Stopped 2025-09-01 (")
    # The new dose was recorded by the change, and its prescriber is the one who made it.
    assert by_id[stopped.id].recorded_at == second.recorded_at != first.recorded_at
    assert (by_id[stopped.id].prescribed_by, old.prescribed_by) == ("ann", None)


def test_the_prescribing_clinician_is_recorded_and_a_name_typed_is_not_doubted() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    meds = Medications(a)
    mine = meds.start(p.id, {"name": "Ramipril"}, prescribing=True)
    theirs = meds.start(p.id, {"name": "Atorvastatin", "prescriber": "Dr Lee, City Hospital"})
    unknown_one = meds.start(p.id, {"name": "Aspirin"})
    assert (mine.prescribed_by, mine.prescriber) == ("ann", None)
    assert (theirs.prescribed_by, theirs.prescriber) == (None, "Dr Lee, City Hospital")
    assert unknown_one.prescribed_by is None and unknown_one.prescriber is None
    assert mine.prescribed_text({"ann": "Dr Ann Cole"}) == "Dr Ann Cole"
    assert theirs.history_lines({})[1] == "Prescribed by Dr Lee, City Hospital"
    assert unknown_one.history_lines({})[1] == "Prescriber not recorded"
    # Stopped, it is still the prescriber's medication.
    assert meds.stop(mine.id).prescribed_by == "ann"
    # Both at once is refused: which of the two prescribed it would be a guess.
    with pytest.raises(ValidationError, match="you are recorded as the prescriber"):
        meds.start(p.id, {"name": "Bisoprolol", "prescriber": "Dr Lee"}, prescribing=True)
    assert "Bisoprolol" not in {m.name for m in meds.list(p.id)}


def test_an_active_problem_or_medication_added_again_is_refused_until_confirmed() -> None:
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    problems, meds = Problems(a), Medications(a)
    htn = problems.add(p.id, code="I10")
    back = problems.add(p.id, uncoded="Back pain")
    audited = a.db.query("SELECT count(*) FROM audit_log")[0][0]
    for code, text in (("i10", None), (None, " back  PAIN "),
                       (None, "essential (primary) hypertension")):  # fmt: skip
        with pytest.raises(DuplicateWarning, match="already an active problem") as raised:
            problems.add(p.id, code, text)
        assert [e.id for e in raised.value.existing] in ([htn.id], [back.id])
        assert raised.value.existing[0].recorded_by == "ann"
    met = meds.start(p.id, {"name": "Metformin"})
    with pytest.raises(DuplicateWarning, match="METFORMIN is already an active medication"):
        meds.start(p.id, {"name": "METFORMIN", "dose": "2 tablets"})
    # Nothing was written, not even an audit entry of a change that did not happen.
    assert a.db.query("SELECT count(*) FROM audit_log")[0][0] == audited + 1  # the start
    assert len(problems.list(p.id)) == 2 and len(meds.list(p.id)) == 1
    # Resolved or stopped, it is no longer active: adding it again is no duplicate.
    problems.resolve(back.id)
    problems.add(p.id, uncoded="Back pain")
    meds.stop(met.id)
    meds.start(p.id, {"name": "Metformin"})
    # Confirmed, it is added, and the audit entry says the duplicate was confirmed.
    problems.add(p.id, code="I10", allow_duplicate=True)
    assert [x.code for x in problems.list(p.id)].count("I10") == 2
    meds.start(p.id, {"name": "metformin"}, allow_duplicate=True)
    assert len(meds.list(p.id)) == 2
    # Two of the same, added one after the other on purpose, are no list conflict.
    assert a.db.query("SELECT count(*) FROM conflicts")[0][0] == 0
    [details] = a.db.query(
        "SELECT details FROM audit_log WHERE action = 'problem.add' ORDER BY seq DESC LIMIT 1"
    )[0]
    assert json.loads(details)["confirmed_duplicate"] == "yes"


def test_the_history_this_stores_is_nothing_an_older_release_cannot_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prescribing clinician is a key of the change's history entry (``rx``), not a
    field of the item: items keep the fields they had, this release's replica lists nothing
    as needing a newer Careline, and the previous release's own reader of the history (run
    from its source) reads every entry, ignoring the key."""
    a = new_replica("ann")
    p = a.add_patient("Soto", "Luis", "1961-01-01")
    meds = Medications(a)
    mine = meds.start(p.id, {"name": "Ramipril"}, prescribing=True)
    changed = meds.change_dose(mine.id, {"dose": "2 tablets"}, prescribing=True)
    other = meds.start(p.id, {"name": "Ramipril"}, allow_duplicate=True)
    Problems(a).add(p.id, code="I10")
    Problems(a).add(p.id, code="I10", allow_duplicate=True)
    doc = _doc(a, p.id)
    assert derive(p.id, PATIENT, doc).unknown == ()
    assert unknown.count(a.db) == 0
    items = {e.element_id: e.value for e in crdt.elements(doc, "medications")}
    assert items[changed.id].keys() == items[other.id].keys()
    # The previous release's crdt module, from its own source.
    source = subprocess.run(
        ["git", "show", f"{COMMITS[PREVIOUS]}:core/records/crdt.py"],
        cwd=Path(__file__).resolve().parents[3],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    old = types.ModuleType("previous_crdt")
    monkeypatch.setitem(sys.modules, old.__name__, old)  # its dataclasses look it up
    exec(compile(source, f"{PREVIOUS}/core/records/crdt.py", "exec"), old.__dict__)  # noqa: S102
    old_doc = old.load(doc.get_update(), 2)
    history = old.all_history(old_doc)["medications"]
    assert len(history) == 3 == len(crdt.all_history(doc)["medications"])
    assert {e.element_id for e in old.elements(old_doc, "medications")} == set(items)
    # And this release still reads the key as it wrote it.
    assert [c.prescribed for c in crdt.all_history(doc)["medications"]] == [True, True, False]
