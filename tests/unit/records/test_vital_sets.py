"""A set of vitals is what was recorded together: a recheck measured in the same minute is
a set of its own, everywhere a set is read (the chart's sets, the printed summary and visit
note, FHIR), and readings recorded before sets had ids, or on an older release, are never
combined with another recording's."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import unknown, vital_signs
from core.records import vitals as cat
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.entries import ClinicalEntries
from core.records.errors import ValidationError
from core.records.fhir.export import export_bundle
from core.records.fhir.importer import import_bundle
from core.records.types import OBSERVATION, RECORD_TYPES
from core.records.vital_signs import Reading, VitalSet, VitalSigns, recordings
from core.reports import data
from core.reports.vital_text import latest_texts, visit_texts
from core.store.database import Database
from core.store.migrations import MIGRATIONS
from tests.clinic_identity import join_test_clinic
from tests.unit.sync.replicas import new_replica, pull_from

WHEN = "2026-11-05T22:59"
# The tester's evening: a set, then from the same open form a minute later a recheck, both
# stored at the same "measured at" minute.
FIRST = {"systolic": "120", "diastolic": "80", "pulse": "72", "temperature": "37.5",
         "respiratory_rate": "16", "spo2": "98", "weight": "68.4", "height": "165"}  # fmt: skip
FIRST_UNITS = {"temperature": "C", "weight": "kg", "height": "cm"}
RECHECK = {"systolic": "150", "diastolic": "95", "pulse": "112", "temperature": "102"}
RECHECK_UNITS = {"temperature": "F"}


_SECONDS = itertools.count()


def next_time() -> str:
    """A time recorded (created_at, to the millisecond) a second after the last, as
    recordings made by people are: two made by a test in one millisecond would tie."""
    moment = dt.datetime(2026, 12, 5, 21, 59, tzinfo=dt.UTC) + dt.timedelta(seconds=next(_SECONDS))
    return moment.isoformat(timespec="milliseconds")


@pytest.fixture(autouse=True)
def _recorded_a_second_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vital_signs, "utc_now", next_time)


def shown(s: VitalSet) -> dict[str, str]:
    """A set as the chart shows it: each vital as typed."""
    return {key: r.text for key, r in s.readings.items()}


def test_a_recheck_in_the_same_minute_is_a_set_of_its_own_everywhere() -> None:
    records = new_replica("nurse")
    p = records.add_patient("Mensah", "Ama", "1980-01-01")
    visit = ClinicalEntries(records).add("encounter", p.id, {"started_at": "2026-12-05T22:50"})
    vitals = VitalSigns(records)
    first = vitals.record(p.id, FIRST, FIRST_UNITS, WHEN, visit)
    recheck = vitals.record(p.id, RECHECK, RECHECK_UNITS, WHEN, visit)
    # Each recording's readings share one set id, and only they do.
    assert len({r.set_id for r in first}) == 1 and len({r.set_id for r in recheck}) == 1
    assert first[0].set_id != recheck[0].set_id

    newest, older = vitals.sets(p.id)
    assert shown(newest) == {"systolic": "150 mmHg", "diastolic": "95 mmHg",
                             "pulse": "112 /min", "temperature": "102 °F"}  # fmt: skip
    assert shown(older)["systolic"] == "120 mmHg" and shown(older)["diastolic"] == "80 mmHg"
    assert shown(older)["temperature"] == "37.5 °C" and shown(older)["pulse"] == "72 /min"
    assert newest.bmi is None  # no weight in the recheck; the first set's BMI stays its own
    assert older.bmi is not None

    # The summary's latest vitals: the recheck's pressure (both numbers), fever and pulse,
    # the first set's other vitals; never a 120/95 nobody measured.
    latest = {t.label: t.value for t in latest_texts(vitals.sets(p.id))}
    assert latest["Blood pressure"] == "150/95 mmHg ▲"
    assert latest["Temperature"] == "102 °F ▲" and latest["Pulse"] == "112/min ▲"
    assert latest["Respiratory rate"] == "16/min" and latest["Weight"] == "68.4 kg"
    report = data.summary_report(records, p.id)
    assert ("Blood pressure", "150/95 mmHg ▲") in [(v.label, v.value) for v in report.vitals]

    # A visit lists both sets, the first recorded first.
    pressures = [t.value for t in visit_texts(vitals.sets(p.id)) if t.label == "Blood pressure"]
    assert pressures == ["120/80 mmHg", "150/95 mmHg ▲"]
    printed = data.visit_report(records, visit).vitals
    assert [v.value for v in printed if v.label == "Blood pressure"] == pressures


def test_fhir_pairs_each_pressure_within_its_set_and_an_import_keeps_the_sets() -> None:
    records = new_replica("admin")
    records.set_up_clinic("Source", "admin", "Ada Admin", "correct horse battery")
    p = records.add_patient("Mensah", "Ama", "1980-01-01")
    vitals = VitalSigns(records)
    vitals.record(p.id, {"systolic": "120", "diastolic": "80"}, None, WHEN)
    vitals.record(p.id, {"systolic": "150", "diastolic": "95", "pulse": "112"}, None, WHEN)
    vitals.record(p.id, {"pulse": "70"}, None, WHEN)  # a third recording of that minute
    bundle = export_bundle(records)
    resources: list[Any] = [e.resource for e in bundle.bundle.entry or []]
    panels = [
        [c.valueQuantity.value for c in r.component]
        for r in resources
        if r.get_resource_type() == "Observation" and r.component
    ]
    assert sorted(panels) == [[120, 80], [150, 95]]

    target = new_replica("admin")
    target.set_up_clinic("Target", "admin", "Ada Admin", "correct horse battery")
    import_bundle(target, bundle.json())
    [copy] = target.list_patients(10)
    sets = sorted(sorted(shown(s).values()) for s in VitalSigns(target).sets(copy.id))
    assert sets == [["112 /min", "150 mmHg", "95 mmHg"], ["120 mmHg", "80 mmHg"], ["70 /min"]]


# ----- readings recorded before sets had ids (this release before V18) --------------------


def record_as_before_v18(
    records: ClinicRecords,
    patient_id: str,
    values: Mapping[str, str],
    created: str | None = None,
) -> None:
    """Record a set as ``VitalSigns.record`` did before V18: one transaction, one
    ``created_at`` for every reading, no set id."""
    created = created or next_time()
    with records.db.write(records.actor, "vitals.record", "patient", patient_id) as tx:
        for key, typed in values.items():
            m = cat.measure(cat.vital(key), typed)
            fields = {"patient_id": patient_id, "code": m.vital.code,
                      "value": m.vital.show(m.value), "unit": m.vital.canonical.ucum,
                      "observed_at": WHEN, "entered_value": m.entered_value,
                      "entered_unit": m.entered_unit.ucum, "created_at": created}  # fmt: skip
            change(tx, records.actor, new_id(), "observation", records.setter(fields))


BEFORE_V18 = dataclasses.replace(
    OBSERVATION,
    fields=tuple(f for f in OBSERVATION.fields if f.name != "set_id"),
    columns=tuple(c for c in OBSERVATION.column_names[1:] if c not in ("set_id", "created_at")),
)


@contextlib.contextmanager
def before_v18() -> Iterator[None]:
    """Run as this release did before V18 (no set id, no created_at column)."""
    saved = RECORD_TYPES["observation"]
    RECORD_TYPES["observation"] = BEFORE_V18
    try:
        yield
    finally:
        RECORD_TYPES["observation"] = saved


def test_sets_recorded_before_set_ids_are_told_apart_by_when_they_were_recorded() -> None:
    records = new_replica("nurse")
    p = records.add_patient("Mensah", "Ama", "1980-01-01")
    record_as_before_v18(records, p.id, {"systolic": "120", "diastolic": "80", "pulse": "72"})
    record_as_before_v18(records, p.id, {"systolic": "150", "diastolic": "95"})
    newest, older = VitalSigns(records).sets(p.id)
    assert shown(newest) == {"systolic": "150 mmHg", "diastolic": "95 mmHg"}
    assert shown(older) == {"systolic": "120 mmHg", "diastolic": "80 mmHg", "pulse": "72 /min"}


def test_readings_that_cannot_be_told_apart_are_never_combined() -> None:
    """Two recordings with the same time recorded (two workstations in one millisecond):
    which diastolic goes with which systolic is unknown, so each reading stands alone."""
    records = new_replica("nurse")
    p = records.add_patient("Mensah", "Ama", "1980-01-01")
    same = "2026-12-05T21:58:00.000+00:00"
    record_as_before_v18(records, p.id, {"systolic": "120", "diastolic": "80"}, same)
    record_as_before_v18(records, p.id, {"systolic": "150", "diastolic": "95"}, same)
    sets = VitalSigns(records).sets(p.id)
    assert sorted(len(s.readings) for s in sets) == [1, 1, 1, 1]
    assert sorted(v for s in sets for v in shown(s).values()) == [
        "120 mmHg", "150 mmHg", "80 mmHg", "95 mmHg",
    ]  # fmt: skip


def test_a_reading_whose_time_was_changed_leaves_its_set() -> None:
    records = new_replica("nurse")
    p = records.add_patient("Mensah", "Ama", "1980-01-01")
    readings = VitalSigns(records).record(p.id, {"pulse": "72", "spo2": "97"}, None, WHEN)
    pulse = next(r for r in readings if r.code == cat.PULSE.code)
    ClinicalEntries(records).update("observation", pulse.id, {"observed_at": "2026-11-05T22:30"})
    groups = recordings(VitalSigns(records).readings(p.id))
    assert [[r.code for r in g] for g in groups] == [[cat.SPO2.code], [cat.PULSE.code]]


def _reading_ids(groups: list[list[Reading]]) -> list[list[str]]:
    return sorted(sorted(r.id for r in g) for g in groups)


def test_an_older_replica_keeps_syncing_and_shows_every_set_after_its_upgrade(
    tmp_path: Path,
) -> None:
    """A workstation still before V18 (schema and code) stores and relays sets recorded on
    an upgraded one, set ids included, and lists every reading; sets it recorded itself
    reach the upgraded one apart. Upgraded in place, V18 and its re-derivation fill the
    set ids and times recorded, and it shows the same sets as the other."""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    path = tmp_path / "older.db"
    older_db = Database.create(path, key, tuple(m for m in MIGRATIONS if m[0] < 18))
    join_test_clinic(older_db)
    older = ClinicRecords(older_db, "nurse", FAST_PARAMS)
    newer = new_replica("doctor")
    p = newer.add_patient("Mensah", "Ama", "1980-01-01")
    VitalSigns(newer).record(p.id, {"systolic": "120", "diastolic": "80"}, None, WHEN)
    VitalSigns(newer).record(p.id, {"systolic": "150", "diastolic": "95"}, None, WHEN)
    with before_v18():
        pull_from(older, newer)
        rows = older_db.query("SELECT code FROM observations WHERE patient_id = ?", (p.id,))
        assert len(rows) == 4  # every reading shows there
        record_as_before_v18(older, p.id, {"pulse": "72", "spo2": "97"})
        record_as_before_v18(older, p.id, {"pulse": "112"})
    pull_from(newer, older)  # each side applies ops under its own code
    expected = _reading_ids(recordings(VitalSigns(newer).readings(p.id)))
    assert sorted(len(g) for g in expected) == [1, 2, 2, 2]
    older_db.close()

    upgraded = Database.open(path, key)
    unknown.refresh(upgraded)
    again = VitalSigns(ClinicRecords(upgraded, "nurse", FAST_PARAMS))
    assert _reading_ids(recordings(again.readings(p.id))) == expected
    assert [shown(s) for s in again.sets(p.id)][2:] == [
        {"systolic": "150 mmHg", "diastolic": "95 mmHg"},
        {"systolic": "120 mmHg", "diastolic": "80 mmHg"},
    ]  # the older one's later sets come first: recorded after
    upgraded.close()


def test_sets_are_newest_first_by_time_measured_then_time_recorded() -> None:
    records = new_replica("nurse")
    p = records.add_patient("Mensah", "Ama", "1980-01-01")
    vitals = VitalSigns(records)
    vitals.record(p.id, {"pulse": "70"}, None, "2026-12-05T23:00")  # measured later
    vitals.record(p.id, {"pulse": "80"}, None, WHEN)
    vitals.record(p.id, {"pulse": "90"}, None, WHEN)  # recorded last, measured earlier
    assert [shown(s)["pulse"] for s in vitals.sets(p.id)] == ["70 /min", "90 /min", "80 /min"]


def test_a_measured_at_given_blank_is_refused_and_only_none_means_now() -> None:
    """A form's emptied "Measured at" was stored as now, a time nobody typed: refused as
    required, nothing stored; no time at all (``vitals add`` without --at) is now."""
    records = new_replica("nurse")
    p = records.add_patient("Mensah", "Ama", "1980-01-01")
    vitals = VitalSigns(records)
    with pytest.raises(ValidationError, match="observed_at: is required"):
        vitals.record(p.id, {"pulse": "72"}, None, " ")
    assert vitals.readings(p.id) == []
    [reading] = vitals.record(p.id, {"pulse": "72"})
    assert reading.observed_at[:10] == dt.date.today().isoformat()
