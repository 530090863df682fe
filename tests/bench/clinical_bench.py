"""Clinical benchmarks (``python -m tests.bench --only clinical``): a chart with ten years of
history, the day view, and recording vitals through the full write path.

Set-up, in a temporary folder on a real SQLCipher file: the demo clinic's generator
(:mod:`core.records.demo_data`, 300 patients with their histories and a week of schedule)
as the background, then one patient with ten years of history (200 visits, 2,000 vital
signs, 300 notes, 30 problems, 40 medications) and a day of 60 appointments among
``BACKGROUND_DAYS`` other busy days, all written through the one write path.

1. Opening the chart: the reads the chart's screens make (:func:`chart_reads`:
   ``ClinicRecords.open_chart``, the Visits tab's ``Visits.list_visits`` and the contents
   of the newest visit, the Vitals tab's ``VitalSigns.sets``, the Overview cards'
   ``Problems.list`` and ``Medications.list``). Side by side, interleaved: the same tables'
   rows read with plain SELECTs on the same connection (the floor any API pays); the
   ratio says what Careline's reads add.
2. The day view: ``Schedule.day`` (one day's appointments with the patient names, what the
   schedule's day view reads), and, interleaved, the same 60 rows read by id (the floor).
3. Recording vitals: full sets of 9 vitals through ``VitalSigns.record`` (the Vitals tab's
   write: checked, converted, flagged, one transaction per set) per second, beside
   registering patients per second in the same run.

Standalone: ``python -m tests.bench.clinical_bench``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.records.demo_data import VITAL_CODES, generate
from core.records.entries import ClinicalEntries
from core.records.medications import Medications
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.schedule import Schedule
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from core.store.database import Database, Row

from .store_bench import summarize
from .vitals_bench import a_set

CHART_TARGET_P95_MS = 100.0
DAY_TARGET_P95_MS = 50.0
HISTORY = {"visits": 200, "vitals": 2000, "notes": 300, "problems": 30, "medications": 40}
DAY_APPOINTMENTS = 60
BACKGROUND_DAYS = 40  # other days of 60 appointments in the table the day view searches
ROUNDS = 200
VITAL_SETS = 100
TODAY = dt.date(2026, 12, 4)  # the background clinic's "today"
DAY = TODAY + dt.timedelta(days=120)  # the day measured: only its own 60 appointments


def _log(message: str) -> None:
    print(f"[clinical-bench] {message}", file=sys.stderr, flush=True)


def chart_reads(records: ClinicRecords, patient_id: str) -> tuple[Any, ...]:
    """What opening a chart reads: the core reads the chart's screens call on the worker
    (app/chart/page.py, visits.py and visit_view.py, vitals.py, problems.py,
    medications.py). The Vitals tab also lists the patient's visits for its visit picker:
    the same rows as the Visits tab's, not read twice here; the staff names the screens
    look up for a visit's notes are not read either."""
    chart = records.open_chart(patient_id)
    visit_list = Visits(records)
    visits = visit_list.list_visits(patient_id)
    newest = visit_list.contents(visits[0].id) if visits else None
    vitals = VitalSigns(records).sets(patient_id)
    problems = Problems(records).list(patient_id)
    medications = Medications(records).list(patient_id)
    return chart, visits, newest, vitals, problems, medications


def _chart_floor(db: Database, patient_id: str, visit_id: str) -> tuple[list[Row], ...]:
    """The same tables' rows with one plain SELECT each (no audit entry, no objects, no
    grouping): the patient's, and the notes of the newest visit ``visit_id``."""
    by_patient = ("allergies", "encounters", "observations", "conditions", "medications")
    return (
        db.query("SELECT * FROM patients WHERE id = ?", (patient_id,)),
        *(db.query(f"SELECT * FROM {t} WHERE patient_id = ?", (patient_id,)) for t in by_patient),
        db.query("SELECT * FROM notes WHERE encounter_id = ?", (visit_id,)),
        db.query(
            "SELECT a.* FROM note_addenda a JOIN notes n ON n.id = a.note_id "
            "WHERE n.encounter_id = ?",
            (visit_id,),
        ),
    )


def _long_history(records: ClinicRecords, rng: random.Random) -> str:
    """A patient with ten years of history (see HISTORY), written in batches."""
    entries, notes = ClinicalEntries(records), Notes(records)
    patient = records.add_patient("Lindqvist", "Margit", "1948-05-17", "female", "HIST-1")
    db = records.db
    visit_ids: list[str] = []
    with db.batch():
        for i in range(HISTORY["problems"]):
            entries.add_to_list(
                patient.id, "problems", {"description": f"Problem {i}", "code": f"Z{i:02d}.9"}
            )
        for i in range(HISTORY["medications"]):
            values = {"name": f"Medication {i}", "dose": "10 mg", "route": "oral"}
            entries.add_to_list(patient.id, "medications", values | {"frequency": "daily"})
    per_visit = HISTORY["vitals"] // HISTORY["visits"]
    codes = [code for code, _unit in VITAL_CODES.values()]
    for v in range(HISTORY["visits"]):
        at = dt.datetime.combine(TODAY - dt.timedelta(days=18 * v + 1), dt.time(9, 30))
        stamp = at.isoformat(timespec="minutes")
        with db.batch():
            visit = entries.add("encounter", patient.id, {"started_at": stamp, "reason": "Review"})
            visit_ids.append(visit)
            for k in range(per_visit):
                entries.add(
                    "observation",
                    patient.id,
                    {
                        "encounter_id": visit,
                        "code": codes[k % len(codes)],
                        "value": str(rng.randint(50, 150)),
                        "observed_at": stamp,
                    },
                )
    for n in range(HISTORY["notes"]):
        with db.batch():
            note = notes.create(patient.id, f"S: review {n}.\nA: stable.", visit_ids[n % 200])
            if n % 6:
                notes.sign(note.id)
    return patient.id


def _schedule(records: ClinicRecords, people: list[str], rng: random.Random) -> None:
    """60 appointments on DAY and on each of BACKGROUND_DAYS other days around it."""
    entries = ClinicalEntries(records)
    for offset in range(BACKGROUND_DAYS + 1):
        day = DAY + dt.timedelta(days=offset * (1 if offset % 2 else -1))
        with records.db.batch():
            for slot in range(DAY_APPOINTMENTS):
                starts = dt.datetime.combine(day, dt.time(8)) + dt.timedelta(minutes=8 * slot)
                entries.add(
                    "appointment",
                    rng.choice(people),
                    {
                        "starts_at": starts.isoformat(timespec="minutes"),
                        "ends_at": (starts + dt.timedelta(minutes=8)).isoformat(timespec="minutes"),
                        "status": "booked",
                    },
                )


def _timed(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def _side_by_side(
    careline: Callable[[], object], floor: Callable[[], object], rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Both timed ``rounds`` times, interleaved (alternating which goes first)."""
    ours: list[int] = []
    base: list[int] = []
    for turn in range(rounds):
        if turn % 2:
            base.append(_timed(floor))
            ours.append(_timed(careline))
        else:
            ours.append(_timed(careline))
            base.append(_timed(floor))
    return summarize(ours), summarize(base)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def _vitals_rate(records: ClinicRecords, patient_id: str) -> dict[str, Any]:
    """Vital-sign sets per second through the write path, beside patients per second."""
    signs, rng = VitalSigns(records), random.Random(20)
    typed = [a_set(rng) for _ in range(VITAL_SETS)]
    per_set = len(typed[0][0])
    t0 = time.perf_counter()
    for s, (values, units) in enumerate(typed):
        signs.record(patient_id, values, units, f"2026-12-04T{8 + s // 60:02d}:{s % 60:02d}")
    vitals_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(VITAL_SETS):
        records.add_patient("Benchmark", f"Person{i}", "1990-01-01")
    patients_s = time.perf_counter() - t0
    sets_per_s = VITAL_SETS / vitals_s
    return {
        "vitals_per_set": per_set,
        "sets": VITAL_SETS,
        "sets_per_s": round(sets_per_s, 1),
        "vital_signs_per_s": round(sets_per_s * per_set, 1),
        "patients_registered_per_s": round(VITAL_SETS / patients_s, 1),
        "ratio_vital_sign_to_patient_writes_per_s": _ratio(
            sets_per_s * per_set, VITAL_SETS / patients_s
        ),
    }


def run() -> dict[str, Any]:
    """The three measurements; see the module docstring."""
    rng = random.Random(10)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="careline-clinical-bench-") as tmp:
        key = SecureMemory.from_bytes(bytearray(rng.randbytes(32)))
        db = Database.create(Path(tmp) / "clinic.db", key)
        try:
            records = ClinicRecords(db, "bench", FAST_PARAMS)
            records.set_up_clinic("Bench Clinic", "bench", "Bench", "bench-password")
            counts = generate(records, seed=10, patients=300, today=TODAY)
            _log(f"background clinic: {counts.to_dict()}")
            patient = _long_history(records, rng)
            people = [str(r[0]) for r in db.query("SELECT id FROM patients")]
            _schedule(records, people, rng)
            setup_s = time.perf_counter() - started
            _log(f"set-up written in {setup_s:.1f} s")

            reads = chart_reads(records, patient)
            newest = reads[2]
            shown = {
                "visits": len(reads[1]),
                "newest_visit_notes": len(newest.notes) if newest else 0,
                "newest_visit_observations": len(newest.observations) if newest else 0,
                "vital_sets": len(reads[3]),
                "vital_signs_in_sets": sum(len(s.readings) for s in reads[3]),
                "problems": len(reads[4]),
                "medications": len(reads[5]),
            }
            newest_id = newest.visit.id if newest else ""
            chart, chart_floor = _side_by_side(
                lambda: chart_reads(records, patient),
                lambda: _chart_floor(db, patient, newest_id),
                ROUNDS,
            )
            _log(f"chart open p95 {chart['p95_ms']} ms (floor {chart_floor['p95_ms']} ms)")

            schedule = Schedule(records)
            day_rows = schedule.day(DAY)
            ids = tuple(a.id for a in day_rows)
            marks = ", ".join("?" for _ in ids)

            def day_floor() -> object:
                return db.query(f"SELECT * FROM appointments WHERE id IN ({marks})", ids)

            day, day_base = _side_by_side(lambda: schedule.day(DAY), day_floor, ROUNDS)
            _log(f"day view p95 {day['p95_ms']} ms (floor {day_base['p95_ms']} ms)")
            vitals = _vitals_rate(records, patient)
            _log(f"vitals: {vitals['sets_per_s']} sets/s")
            table_sizes = {
                t: int(db.query(f"SELECT count(*) FROM {t}")[0][0])
                for t in ("patients", "appointments", "encounters", "observations", "notes")
            }
        finally:
            db.close()
    return {
        "setup_s": round(setup_s, 1),
        "table_rows": table_sizes,
        "chart_open": {
            "history": HISTORY,
            "rows_read": shown,
            "careline": chart,
            "plain_selects_same_rows": chart_floor,
            "ratio_p95_careline_to_plain": _ratio(chart["p95_ms"], chart_floor["p95_ms"]),
        },
        "day_view": {
            "appointments_that_day": len(day_rows),
            "careline": day,
            "same_rows_by_id": day_base,
            "ratio_p95_day_view_to_by_id": _ratio(day["p95_ms"], day_base["p95_ms"]),
        },
        "vitals_write": vitals,
        "targets": {
            "chart_open_p95_ms": {
                "target": f"opening a chart with ten years of history, p95 under "
                f"{CHART_TARGET_P95_MS:g} ms",
                "value": chart["p95_ms"],
                "limit": CHART_TARGET_P95_MS,
                "met": chart["p95_ms"] < CHART_TARGET_P95_MS,
            },
            "day_view_p95_ms": {
                "target": f"the day view with {DAY_APPOINTMENTS} appointments, p95 under "
                f"{DAY_TARGET_P95_MS:g} ms",
                "value": day["p95_ms"],
                "limit": DAY_TARGET_P95_MS,
                "met": day["p95_ms"] < DAY_TARGET_P95_MS,
            },
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
