"""Moving a clinic in (``python -m tests.bench --only csv``): a 10,000-row patient list
imported from CSV through the one write path, in under a minute.

Set-up, in a temporary folder: a new clinic on a real SQLCipher file, and a synthetic
patient list as a clinic's spreadsheet writes it (Windows-1252, semicolons, day-first
dates, F/M, phone numbers, MRNs, about a third of patients with one to three allergies in
one cell). Measured: reading and checking the file with every lookup of the dry run
(:func:`plan_import`), then :func:`run_import` (every registration, allergy, op and audit
entry, in ``Database.batch`` transactions), then the same file's re-run (all already
present). Standalone: ``python -m tests.bench.csv_bench [ROWS]``.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path
from typing import Any

from core.crypto.kdf import FAST_PARAMS
from core.records.csv_table import parse
from core.records.demo_data import ALLERGENS
from core.records.duplicates import matching_pairs, names_match
from core.records.import_rows import ReadOptions, suggest_mapping
from core.records.merges import Merges
from core.records.models import PatientSummary
from core.records.patient_import import BATCH_ROWS, plan_import, run_import
from core.records.workstation import Workstation

from .synthetic import FAMILY_NAMES, GIVEN_NAMES

ROWS = 10_000
_REACTIONS = ("rash, mild", "hives, moderate", "anaphylaxis, severe", "wheeze")
TARGET_S = 60.0
_PASSWORD = "bench password long enough"


def patient_list(rows: int, seed: int = 16) -> bytes:
    """A synthetic spreadsheet export of ``rows`` patients, each born on a different day (so
    the duplicate rule finds no pair: every row is a new patient)."""
    rng = random.Random(seed)
    families, givens = _cp1252(FAMILY_NAMES), _cp1252(GIVEN_NAMES)
    lines = ["Nom;Prénom;Date de naissance;Sexe;Téléphone;N° dossier;Allergies"]
    seen: set[str] = set()
    while len(lines) <= rows:
        family, given = rng.choice(families), rng.choice(givens)
        born = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1925, 2024)}"
        if born in seen:
            continue
        seen.add(born)
        how_many = rng.choices((0, 1, 2, 3), (65, 20, 10, 5))[0]
        # Some with what the allergy does and how badly: "Penicillin (rash, severe)".
        allergies = ", ".join(
            a[0] + (f" ({rng.choice(_REACTIONS)})" if rng.random() < 0.3 else "")
            for a in rng.sample(ALLERGENS, how_many)
        )
        n = len(lines)
        lines.append(
            f"{family};{given};{born};{rng.choice('FM')};+33 1 {n:08d};CL{n:06d};{allergies}"
        )
    text = "\r\n".join(lines) + "\r\n"
    return text.encode("cp1252")


def _cp1252(names: tuple[str, ...]) -> list[str]:
    """The names Windows-1252 can write (Excel's "CSV" in Western locales)."""
    found = []
    for name in names:
        try:
            name.encode("cp1252")
        except UnicodeEncodeError:
            continue
        found.append(name)
    return found


def run(rows: int = ROWS) -> dict[str, Any]:
    """Import ``rows`` patients into a new clinic; the figures."""
    data = patient_list(rows)
    with tempfile.TemporaryDirectory(prefix="careline-csv-bench-") as folder:
        ws = Workstation(Path(folder) / "data", kdf_params=FAST_PARAMS)
        ws.init("Bench clinic", "admin", "Bench Admin", _PASSWORD, keyring=False)
        ws.sign_in("admin", _PASSWORD)
        try:
            records = ws.records
            options = ReadOptions("DD/MM/YYYY", ",")
            t0 = time.perf_counter()
            table = parse(data)
            plan = plan_import(records, table, suggest_mapping(table.header), options)
            t1 = time.perf_counter()
            result = run_import(records, plan)
            t2 = time.perf_counter()
            rerun = plan_import(records, table, suggest_mapping(table.header), options)
            t3 = time.perf_counter()
            pairs = Merges(records).candidates()  # the review list on the moved-in clinic
            t4 = time.perf_counter()
        finally:
            ws.lock()
    total = t2 - t0
    return {
        "rows": rows,
        "encoding": table.encoding,
        "batch_rows": BATCH_ROWS,
        "added": result.added,
        "allergies": result.allergies,
        "problems": len(result.problems),
        "dry_run_s": round(t1 - t0, 2),
        "import_s": round(t2 - t1, 2),
        "total_s": round(total, 2),
        "rows_per_s": round(rows / total, 1),
        "rerun_already_present": len(rerun.already_present),
        "rerun_dry_run_s": round(t3 - t2, 2),
        "review_list_s": round(t4 - t3, 2),
        "review_list_pairs": len(pairs),
        "same_day_review": same_day_review(),
        "target": {
            "target": f"{rows:,} CSV rows read, checked and imported (patients and allergies) "
            f"in under {TARGET_S:g} s",
            "value": round(total, 2),
            "limit": TARGET_S,
            "met": total < TARGET_S and result.added == rows,
        },
    }


def same_day_review(patients: int = 1000, seed: int = 16) -> dict[str, Any]:
    """The review list's matching on ``patients`` born the same day (a clinic that records
    unknown birth dates as 1 January): through name keys, and comparing every pair."""
    rng = random.Random(seed)
    families, givens = list(FAMILY_NAMES), list(GIVEN_NAMES)
    people = [
        PatientSummary(f"p{i}", rng.choice(families), rng.choice(givens), "1970-01-01", None, None)
        for i in range(patients)
    ]
    t0 = time.perf_counter()
    keyed = list(matching_pairs(people))
    t1 = time.perf_counter()
    every = [
        (a, b)
        for a, b in combinations(people, 2)
        if names_match(a.family, a.given, b.family, b.given)
    ]
    t2 = time.perf_counter()
    return {
        "patients": patients,
        "pairs": len(keyed),
        "same_pairs": keyed == every,
        "keys_s": round(t1 - t0, 3),
        "every_pair_s": round(t2 - t1, 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else ROWS), indent=2))
