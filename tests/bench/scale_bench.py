"""Scale benchmark (``python -m tests.bench --only scale``): a clinic network's worth of
patients, 1,000,000 by default (``--scale-records``), and how the costs grow on the way.

One ``careline-server`` data folder grows through a few sizes (by default 10 %, 30 % and
100 % of ``--scale-records``: 100,000, 300,000 and 1,000,000). At each size the patients
(the desktop benchmark's three-field records) are added straight into the server's replica,
``careline-server run`` is started in its own process, and a brand-new workstation in a
process of its own (``tests/bench/download_client.py``) enrolls and measures:

* its first download: seconds, records per second, and the CPU seconds of the workstation
  and of the server over it (the cost should grow linearly; judged on CPU time, which the
  shared machine's load moves far less than the wall time, reported beside it);
* its peak RSS (``VmHWM``) over the download, and the RSS after every snapshot page (the
  download goes page by page, so memory should stay flat as the clinic grows);
* the patient search the app's list makes (``search_patients``, first page of 200): a
  single patient by full name, a name prefix with 100 matches, and a prefix every patient
  matches (the worst case while every match was sorted for the first page; now the name
  order is walked: core/records/patient_search.py, tests/bench/search_bench.py);
* the sync session carrying one edited patient to the server (should not grow);
* the server process's peak RSS over its whole run at that size.

The judgements (:func:`judge_growth`) compare each size with the smallest, so the fixed
costs of a session and of process start-up do not count against the larger sizes.
Everything stays on 127.0.0.1 in a temporary folder. Standalone:
``python -m tests.bench.scale_bench [records]``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .desktop_sync_bench import wait_for_image
from .download_client import ClientSpec, grow_clinic, proc_status_kb, run_client, seed_clinic
from .server_bench import server_process

DEFAULT_RECORDS = 1_000_000
SIZE_FRACTIONS = (0.1, 0.3, 1.0)
MIN_SIZE = 1_000
# Tolerances, each a ratio to the smallest size's figure. Under load on a shared two-core
# machine a run's rate moves by 10-20 %; a cost that grew with the clinic would exceed
# these by far (10x the records: 10x the memory, or 3x the rate's loss for n log n work).
LINEAR_TOLERANCE = 1.3  # seconds per downloaded record
RSS_TOLERANCE = 1.25  # the client's peak RSS
INCREMENTAL_TOLERANCE = 2.0  # the one-edit sync session (sync_bench's history limit too)
# The patient search: a name typed in full, and a prefix shared by 100 patients.
NAME_QUERIES = ("Fam000123", "Fam0001")
EVERYONE_QUERY = "Fam"  # every patient matches: the search walks the name order
SEARCH_TARGET_MS = 100.0


def _log(message: str) -> None:
    print(f"[scale-bench] {message}", file=sys.stderr, flush=True)


def scale_sizes(records: int, fractions: Sequence[float] = SIZE_FRACTIONS) -> list[int]:
    """The clinic sizes measured on the way to ``records``, smallest first, none under
    ``MIN_SIZE`` (the largest is ``records`` itself)."""
    if records < MIN_SIZE:
        raise ValueError(f"--scale-records must be at least {MIN_SIZE:,}, not {records:,}")
    return sorted({max(MIN_SIZE, round(records * f)) for f in fractions} | {records})


def judge_growth(
    sizes: Sequence[int], values: Sequence[float], tolerance: float, per_record: bool
) -> dict[str, Any]:
    """Whether ``values`` (one per size, smallest size first) stay within ``tolerance``
    times the smallest size's: the value itself (``per_record=False``: memory, latency that
    should be flat) or the value per record (``per_record=True``: time that should grow
    linearly). ``ratio`` is the largest such ratio over the sizes."""
    if len(sizes) != len(values) or not sizes:
        raise ValueError("one value per size, at least one size")
    if any(v <= 0 for v in values):
        raise ValueError(f"every value must be positive: {list(values)}")
    scaled = [v / n for v, n in zip(values, sizes, strict=True)] if per_record else list(values)
    ratios = [s / scaled[0] for s in scaled]
    worst = max(ratios)
    return {
        "ratios_to_smallest": [round(r, 3) for r in ratios],
        "ratio": round(worst, 3),
        "tolerance": tolerance,
        "within": worst <= tolerance,
    }


def run(records: int = DEFAULT_RECORDS) -> dict[str, Any]:
    """Every size's figures and the judgements, as one JSON-able dict."""
    sizes = scale_sizes(records)
    queries = [*NAME_QUERIES, EVERYONE_QUERY]
    by_size: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="careline-scale-bench-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "server"
        clinic = seed_clinic(data_dir)
        held = 0
        for size in sizes:
            code, seed_s = grow_clinic(data_dir, clinic, held, size - held, devices=2)
            _log(f"{size:,} patients on the server ({size - held:,} added in {seed_s:.0f} s)")
            held = size
            desk = folder / f"desk-{size}"
            with server_process(data_dir) as running:
                # The snapshot image is built as the server starts: timed is a workstation
                # joining once it is ready (build_s), the download as one file.
                t0 = time.perf_counter()
                wait_for_image(running.url, running.ca_pem, code, folder / f"probe-{size}")
                build_s = time.perf_counter() - t0
                spec = ClientSpec(running.url, running.ca_pem, code, str(desk), queries=queries,
                                  server_pid=running.process.pid)  # fmt: skip
                client = run_client(spec)
                server_peak = proc_status_kb(running.process.pid, "VmHWM")
            shutil.rmtree(desk, ignore_errors=True)  # the disk is shared too
            complete = client["patients_on_workstation"] == size
            _log(
                f"{size:,}: {client['seconds']:.1f} s ({client['records_per_s']:,}/s; CPU "
                f"{client['cpu_s']:.0f} s client, {client['server_cpu_s']:.0f} s server), client "
                f"peak {client['peak_rss_download_kb'] / 1024:.0f} MB, server peak "
                f"{(server_peak or 0) / 1024:.0f} MB, one-edit sync "
                f"{client['incremental_median_ms']} ms, complete: {complete}"
            )
            by_size.append({"records": size, "seed_s": round(seed_s, 1), "complete": complete,
                            "server_peak_rss_kb": server_peak, "image_build_s": round(build_s, 1),
                            **client})  # fmt: skip
    return report(by_size)


def report(by_size: list[dict[str, Any]]) -> dict[str, Any]:
    """The judgements over the sizes' figures, and the targets."""
    sizes = [s["records"] for s in by_size]
    largest = by_size[-1]
    # Linear growth is judged on CPU seconds (client + server) per record: on a shared
    # machine the wall time follows the other work's load; it is judged beside, no target.
    cpu = [s["cpu_s"] + s["server_cpu_s"] for s in by_size]
    cpu_growth = judge_growth(sizes, cpu, LINEAR_TOLERANCE, True)
    time_growth = judge_growth(sizes, [s["seconds"] for s in by_size], LINEAR_TOLERANCE, True)
    rss_growth = judge_growth(
        sizes, [s["peak_rss_download_kb"] for s in by_size], RSS_TOLERANCE, False
    )
    incremental_growth = judge_growth(
        sizes, [s["incremental_median_ms"] for s in by_size], INCREMENTAL_TOLERANCE, False
    )
    complete = all(s["complete"] for s in by_size)
    name_ms = max(largest["search"][q]["median_ms"] for q in NAME_QUERIES)
    everyone_ms = largest["search"][EVERYONE_QUERY]["median_ms"]
    n = f"{sizes[-1]:,}"
    return {
        "sizes": sizes,
        "by_size": by_size,
        "download_cpu_growth": cpu_growth,
        "download_time_growth": time_growth,
        "client_peak_rss_growth": rss_growth,
        "incremental_sync_growth": incremental_growth,
        "targets": {
            "download_linear": {
                "target": f"first download cost grows linearly up to {n} records: CPU seconds "
                f"(workstation + server) per record at every size at most {LINEAR_TOLERANCE} x "
                f"the smallest size's ({', '.join(f'{s:,}' for s in sizes)}), every download "
                "complete (wall time: download_time_growth)",
                "value": cpu_growth["ratio"],
                "limit": LINEAR_TOLERANCE,
                "met": cpu_growth["within"] and complete,
            },
            "client_rss_flat": {
                "target": f"the workstation's peak RSS over its first download stays flat up to "
                f"{n} records: at most {RSS_TOLERANCE} x the smallest size's",
                "value": rss_growth["ratio"],
                "limit": RSS_TOLERANCE,
                "met": rss_growth["within"],
            },
            "incremental_sync_flat": {
                "target": f"the sync session carrying one edited patient stays flat up to {n} "
                f"records: median at most {INCREMENTAL_TOLERANCE} x the smallest size's",
                "value": incremental_growth["ratio"],
                "limit": INCREMENTAL_TOLERANCE,
                "met": incremental_growth["within"],
            },
            "name_search_ms": {
                "target": f"patient search by name (full name; a prefix of 100 patients) at {n} "
                f"records, first page of 200, median under {SEARCH_TARGET_MS:g} ms",
                "value": name_ms,
                "limit": SEARCH_TARGET_MS,
                "met": name_ms < SEARCH_TARGET_MS,
            },
            "everyone_search_ms": {
                "target": f"patient search whose prefix every one of {n} patients matches "
                f"({EVERYONE_QUERY!r}), first page of 200, median under {SEARCH_TARGET_MS:g} ms",
                "value": everyone_ms,
                "limit": SEARCH_TARGET_MS,
                "met": everyone_ms < SEARCH_TARGET_MS,
            },
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_RECORDS), indent=2))
