"""Materialized rows are a pure function of the ops: a fixed, recorded history (see
``golden/workload.py``) must give byte-for-byte the rows, conflicts, full-text index and
record documents recorded in ``golden/dump.txt``, after every batch and at the end."""

from __future__ import annotations

from tests.unit.records.golden.workload import DUMP_FILE, golden_text, load_ops, replay


def test_recorded_ops_materialize_exactly_as_recorded() -> None:
    golden = DUMP_FILE.read_text()
    steps, final = replay(load_ops())
    _, _, expected_final = golden.partition("\n")
    # The final dump first: its diff names the rows that changed.
    assert final.splitlines() == expected_final.splitlines()
    assert golden_text(steps, final) == golden


def test_the_history_covers_every_record_type_and_conflict_kind() -> None:
    _, final = replay(load_ops())
    tables = {line.split("\t", 1)[0] for line in final.splitlines()}
    assert {"patients", "patients_fts", "allergies", "conditions", "medications", "notes",
            "note_addenda", "appointments", "encounters", "observations", "attachments",
            "users", "clinic", "conflicts", "record_states"} <= tables  # fmt: skip
    conflicts = [line for line in final.splitlines() if line.startswith("conflicts\t")]
    kinds = {line.split('", "')[3] for line in conflicts}  # the field column
    assert {"phone", "deleted", "body", "medications", "problems"} <= kinds
