"""Vitals between two workstations through a live clinic server: a set recorded on one is
on the other after sync, and the same reading corrected on both at once waits in both
conflict inboxes until a person chooses."""

from __future__ import annotations

from pathlib import Path

from core.records.vital_signs import VitalSigns
from tests.integration.server_fixtures import Live
from tests.integration.test_server import _clinic, _sync, _workstation


def test_vitals_sync_and_a_concurrent_correction_is_a_conflict(live: Live, tmp_path: Path) -> None:
    clinic = _clinic(live, "Harbour Clinic")
    a, _ = _workstation(live, clinic, tmp_path / "a")
    b, _ = _workstation(live, clinic, tmp_path / "b")
    patient = a.records.add_patient("Mensah", "Ama", "1979-05-05")
    recorded = VitalSigns(a.records).record(
        patient.id,
        {"systolic": "128", "diastolic": "82", "temperature": "37.2", "weight": "150"},
        {"temperature": "Cel", "weight": "[lb_av]"},
        "2026-12-01T09:30",
    )
    _sync(a)
    _sync(b)
    on_b = VitalSigns(b.records).readings(patient.id)
    assert sorted(on_b, key=lambda r: r.code) == sorted(recorded, key=lambda r: r.code)
    temp = next(r for r in on_b if r.code == "8310-5")

    # Both nurses fix the same temperature before either syncs.
    VitalSigns(a.records).correct(temp.id, "38.2", "Cel")
    VitalSigns(b.records).correct(temp.id, "100.4", "[degF]")
    for ws in (a, b, a):
        _sync(ws)
    for ws in (a, b):
        conflicts = {c.field: c for c in ws.records.conflicts(temp.id)}
        assert {c.value for c in conflicts["value"].candidates} == {"38.2", "38"}
        assert {c.value for c in conflicts["entered_value"].candidates} == {"38.2", "100.4"}
    # A person keeps the 100.4 °F reading on a: one choice settles every part of it.
    conflict = next(c for c in a.records.conflicts(temp.id) if c.field == "entered_value")
    chosen = next(c for c in conflict.candidates if c.value == "100.4")
    a.records.resolve_conflict(conflict.id, choose=chosen.id)
    assert a.records.conflicts() == []
    _sync(a)
    _sync(b)
    assert a.records.conflicts() == b.records.conflicts() == []
    settled = VitalSigns(b.records).get(temp.id)
    assert (settled.value, settled.text, settled.flag) == ("38", "100.4 °F", "high")
    a.lock()
    b.lock()
