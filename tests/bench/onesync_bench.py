"""One-edit sync benchmark (``python -m tests.bench --only onesync``): what a sync session
carrying one edited patient costs a workstation that is up to date, and where it goes.

A ``careline-server run`` process holds ``--onesync-records`` patients (20,000 by default,
written in bulk as in the scale benchmark); a workstation in this process enrolls, downloads
them, settles, then runs, interleaved, ``--onesync-edits`` times each:

* ``edit``: one patient changed, then the sync session that carries it (the transport kept
  from one session to the next, as the desktop app's sync thread and the scale and PouchDB
  benchmarks do);
* ``edit_new_connection``: the same with a new transport per session, as the desktop app
  made one per session before it kept one (a new TLS connection each time);
* ``idle``: a session with nothing to carry either way (the app syncs on a timer).

Reported per kind: the wall-time median and 90th percentile, the workstation's CPU per
session (this process), the server's CPU per session (its process, from /proc: the ticks of
all the sessions of a kind, divided by their number), and the round trips (HTTP requests
of the sync protocol) per session. Wall time on the shared machine follows its load; the CPU
figures and round trips are the ones to compare between versions. The ratio reported is the
one-edit session's total CPU (workstation + server) over the idle session's.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .download_client import grow_clinic, seed_clinic
from .server_bench import _proc_cpu_s, server_process

DEFAULT_RECORDS = 20_000
DEFAULT_EDITS = 30
ROUND_TRIPS_TARGET = 2  # a one-edit session: the pull, and the push carrying the edit


def _log(message: str) -> None:
    print(f"[onesync-bench] {message}", file=sys.stderr, flush=True)


def _summary(
    wall: list[float], cpu: list[float], server_cpu: float, rounds: list[int]
) -> dict[str, Any]:
    n = len(wall)
    ordered = sorted(wall)
    return {
        "sessions": n,
        "wall_median_ms": round(statistics.median(wall) * 1000, 2),
        "wall_p90_ms": round(ordered[min(n - 1, int(n * 0.9))] * 1000, 2),
        "client_cpu_ms": round(statistics.median(cpu) * 1000, 2),
        "server_cpu_ms": round(server_cpu * 1000 / n, 2),
        "round_trips": max(rounds),
    }


def run(records: int = DEFAULT_RECORDS, edits: int = DEFAULT_EDITS) -> dict[str, Any]:
    """The figures as one JSON-able dict."""
    import keyring
    import keyring.backends.fail

    from core.crypto.kdf import FAST_PARAMS
    from core.records import op_trust
    from core.records.workstation import Workstation
    from core.sync.enroll import adopt_credential, enroll
    from core.sync.session import SyncReport, sync

    from .desktop_sync_bench import PASSWORD

    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    with tempfile.TemporaryDirectory(prefix="careline-onesync-bench-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "server"
        clinic = seed_clinic(data_dir)
        code, seed_s = grow_clinic(data_dir, clinic, 0, records)
        _log(f"{records:,} patients on the server in {seed_s:.0f} s")
        with server_process(data_dir) as running:
            pid = running.process.pid
            ws = Workstation(folder / "desk", FAST_PARAMS)
            ws.prepare_join("admin", PASSWORD)
            credential = enroll(
                running.url, code, running.ca_pem, "bench desk",
                op_trust.binding_for(ws.database),
            )  # fmt: skip
            adopt_credential(ws.database, credential, "admin")
            kept = credential.transport()
            try:
                t0 = time.perf_counter()
                first = sync(ws.database, kept, "admin", clock_reference=True)
                _log(f"first download: {first.snapshot_records:,} records in "
                     f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
                ws.lock()
                ws.sign_in("admin", PASSWORD)
                records_api = ws.records
                for _ in range(2):  # settle: the first push and anchor after the download
                    sync(ws.database, kept, "admin", clock_reference=True)
                kinds = ("edit", "edit_new_connection", "idle")
                wall: dict[str, list[float]] = {k: [] for k in kinds}
                cpu: dict[str, list[float]] = {k: [] for k in kinds}
                server: dict[str, float] = dict.fromkeys(kinds, 0.0)
                rounds: dict[str, list[int]] = {k: [] for k in kinds}
                counter = 0

                def session(kind: str, edit: bool, fresh: bool) -> SyncReport:
                    nonlocal counter
                    if edit:
                        counter += 1
                        records_api.update_patient("p0000000", {"given": f"G{counter}"})
                    transport = credential.transport() if fresh else kept
                    s0 = _proc_cpu_s(pid)
                    c0 = time.process_time()
                    w0 = time.perf_counter()
                    try:
                        report = sync(ws.database, transport, "admin", clock_reference=True)
                    finally:
                        if fresh:
                            transport.close()
                    wall[kind].append(time.perf_counter() - w0)
                    cpu[kind].append(time.process_time() - c0)
                    server[kind] += _proc_cpu_s(pid) - s0
                    rounds[kind].append(report.rounds)
                    if report.pushed != (1 if edit else 0) or report.pulled:
                        raise RuntimeError(f"a {kind} session pushed {report.pushed} and "
                                           f"pulled {report.pulled} ops")  # fmt: skip
                    return report

                plan: list[tuple[str, Callable[[], SyncReport]]] = [
                    ("edit", lambda: session("edit", True, False)),
                    ("edit_new_connection", lambda: session("edit_new_connection", True, True)),
                    ("idle", lambda: session("idle", False, False)),
                ]
                for _ in range(edits):
                    for _kind, step in plan:
                        step()
            finally:
                kept.close()
                ws.lock()
        figures = {k: _summary(wall[k], cpu[k], server[k], rounds[k]) for k in kinds}
    edit_cpu = figures["edit"]["client_cpu_ms"] + figures["edit"]["server_cpu_ms"]
    idle_cpu = figures["idle"]["client_cpu_ms"] + figures["idle"]["server_cpu_ms"]
    trips = figures["edit"]["round_trips"]
    return {
        "records": records,
        "edits": edits,
        **figures,
        "edit_cpu_ms": round(edit_cpu, 2),
        "ratio_edit_to_idle_cpu": round(edit_cpu / idle_cpu, 2) if idle_cpu else None,
        "targets": {
            "edit_round_trips": {
                "target": f"a one-edit sync session takes at most {ROUND_TRIPS_TARGET} round "
                "trips to the server (the pull, and the push carrying the edit)",
                "value": trips,
                "limit": ROUND_TRIPS_TARGET,
                "met": trips <= ROUND_TRIPS_TARGET,
            },
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(*(int(a) for a in sys.argv[1:3])), indent=2))
