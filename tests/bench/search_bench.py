"""Patient search at a clinic network's size, before and after the name-order walk
(core/records/patient_search.py), side by side in one run.

``python -m tests.bench.search_bench [records] [--data-dir DIR]``: the scale benchmark's
patients (``tests/bench/bulk_seed.py``: family ``Fam000000`` ..., given ``G``, born
1980-01-01) in a server's SQLCipher replica (seeded once into ``DIR`` and kept there when
given, so later runs reuse it; a temporary folder otherwise), then the app list's page of 200
(and a later page) for broad and narrow queries, each query timed with the sorted query
(``broad_at`` out of reach: the code before) and the default, interleaved. Prints one JSON
object: per query and way, the median and 95th percentile of CPU and wall milliseconds, the
matches shown, and the CPU ratio sorted / walked; the results of both ways must be equal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.crypto.kdf import FAST_PARAMS
from core.records.clinic import ClinicRecords

from .download_client import _server, grow_clinic, seed_clinic

DEFAULT_RECORDS = 1_000_000
REPEATS = 15
SORTED = 10**12  # a bound no query reaches: the sorted query, as before the walk
# (text, limit, offset): every patient matches the first five (``1``: the birth year's
# first digit, as a one-digit MRN prefix would); 10 % ``fam0``; 1 % ``fam00``; then a name
# typed in full and a prefix of 100 patients (the scale benchmark's).
QUERIES: list[tuple[str, int, int]] = [
    ("Fam", 200, 0),
    ("F", 200, 0),
    ("1", 200, 0),
    ("1980", 200, 0),
    ("Fam", 200, 2_000),
    ("fam0", 200, 0),
    ("fam00", 200, 0),
    ("Fam000123", 200, 0),
    ("Fam0001", 200, 0),
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _clinic(folder: Path, records: int) -> ClinicRecords:
    """The clinic's records on the server replica in ``folder``, seeding it first if new."""
    marker = folder / "bench-clinic"
    if not marker.exists():
        clinic = seed_clinic(folder)
        _, seconds = grow_clinic(folder, clinic, 0, records)
        print(f"[search-bench] seeded {records:,} patients in {seconds:.0f} s", file=sys.stderr)
        marker.write_text(f"{clinic} {records}")
    clinic, held = marker.read_text().split()
    if int(held) != records:
        raise ValueError(f"{folder} holds {int(held):,} patients, not {records:,}")
    server = _server(folder)
    return ClinicRecords(server.replica(clinic), "admin", FAST_PARAMS)


def measure(records: ClinicRecords, repeats: int = REPEATS) -> dict[str, Any]:
    """Each query's figures, the sorted and the walked way interleaved."""
    results: dict[str, Any] = {}
    for text, limit, offset in QUERIES:
        figures: dict[str, dict[str, list[float]]] = {
            way: {"cpu": [], "wall": []} for way in ("sorted", "walked")
        }
        shown: dict[str, list[str]] = {}
        for _ in range(repeats):
            for way, bound in (("sorted", SORTED), ("walked", None)):
                c0, w0 = time.process_time(), time.perf_counter()
                found = (
                    records.search_patients(text, limit, offset, broad_at=bound)
                    if bound is not None
                    else records.search_patients(text, limit, offset)
                )
                figures[way]["wall"].append((time.perf_counter() - w0) * 1000)
                figures[way]["cpu"].append((time.process_time() - c0) * 1000)
                shown[way] = [p.id for p in found]
        if shown["sorted"] != shown["walked"]:
            raise AssertionError(f"{text!r}: the two ways disagree")
        entry: dict[str, Any] = {"limit": limit, "offset": offset, "shown": len(shown["walked"])}
        for way, f in figures.items():
            entry[way] = {
                "cpu_p50_ms": round(statistics.median(f["cpu"]), 2),
                "cpu_p95_ms": round(_pct(f["cpu"], 0.95), 2),
                "wall_p50_ms": round(statistics.median(f["wall"]), 2),
                "wall_p95_ms": round(_pct(f["wall"], 0.95), 2),
            }
        walked = max(entry["walked"]["cpu_p50_ms"], 0.01)
        entry["cpu_ratio_sorted_to_walked"] = round(entry["sorted"]["cpu_p50_ms"] / walked, 1)
        results[f"{text}@{offset}"] = entry
        print(f"[search-bench] {text!r} offset {offset}: {json.dumps(entry)}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> None:
    """Seed (or reuse) the clinic, measure, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="?", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--data-dir", type=Path, help="keep (or reuse) the seeded server here")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    if args.records < 1 or args.repeats < 1:
        parser.error("records and --repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="careline-search-bench-") as tmp:
        folder = args.data_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        records = _clinic(folder, args.records)
        out = {
            "records": args.records,
            "repeats": args.repeats,
            "search": measure(records, args.repeats),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
