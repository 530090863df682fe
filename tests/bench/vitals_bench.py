"""Recording a set of vital signs through the full write path, per second.

A real clinic folder (``Workstation.init``: SQLCipher file on disk, WAL, Careline's
PRAGMAs), 20 patients, then ``VitalSigns.record`` of a full set (blood pressure, pulse,
temperature in °F, respiratory rate, SpO2, weight in lb, height, pain: nine observation
records, their documents, rows, ops and one audit entry, in one transaction), round-robin
over the patients, each set timed. Reported: sets per second over the run and the latency
per set (p50, p95), beside the other figures of ``make bench``.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core.crypto.kdf import FAST_PARAMS
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation

SETS = 500
PATIENTS = 20
# A nurse takes a set in a minute or two; 30 sets a second leaves the write path far from
# being what anyone waits for, even on a slow or busy workstation (about 90 here on 2
# shared cores).
TARGET_SETS_PER_S = 30.0


def a_set(rng: random.Random) -> tuple[dict[str, str], dict[str, str]]:
    """A full set of vitals as a nurse types it (values, and the units typed)."""
    systolic = rng.randint(100, 160)
    values = {
        "systolic": str(systolic),
        "diastolic": str(systolic - rng.randint(30, 50)),
        "pulse": str(rng.randint(55, 110)),
        "temperature": f"{rng.randint(970, 1010) / 10}",
        "respiratory_rate": str(rng.randint(12, 22)),
        "spo2": str(rng.randint(92, 100)),
        "weight": f"{rng.randint(1000, 2600) / 10}",
        "height": str(rng.randint(150, 195)),
        "pain": str(rng.randint(0, 10)),
    }
    return values, {"temperature": "[degF]", "weight": "[lb_av]", "height": "cm"}


def run(sets: int = SETS) -> dict[str, Any]:
    """Record ``sets`` sets of vitals; throughput and latency."""
    rng = random.Random(10)
    with tempfile.TemporaryDirectory(prefix="careline-vitals-bench-") as tmp:
        ws = Workstation(Path(tmp) / "clinic", FAST_PARAMS)
        ws.init("Bench Clinic", "nurse", "Bench Nurse", "correct horse battery")
        records = ws.records
        patients = [
            records.add_patient(f"Bench{i:03d}", "Pat", f"{1940 + i}-03-04").id
            for i in range(PATIENTS)
        ]
        signs = VitalSigns(records)
        latencies: list[float] = []
        started = time.perf_counter()
        for i in range(sets):
            values, units = a_set(rng)
            minute = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{8 + i % 9:02d}:{i % 60:02d}"
            t0 = time.perf_counter()
            signs.record(patients[i % PATIENTS], values, units, minute)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        stored = int(ws.database.query("SELECT count(*) FROM observations")[0][0])
        ws.lock()
    latencies.sort()
    per_s = sets / elapsed
    return {
        "sets": sets,
        "observations_stored": stored,
        "sets_per_s": round(per_s, 1),
        "observations_per_s": round(per_s * 9, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
            "max": round(latencies[-1] * 1000, 2),
        },
        "target": {
            "target": f"record a full set of vitals (9 observations, one transaction) at "
            f"{TARGET_SETS_PER_S:.0f} sets/s or more",
            "value": round(per_s, 1),
            "limit": TARGET_SETS_PER_S,
            "met": per_s >= TARGET_SETS_PER_S and stored == sets * 9,
        },
    }
