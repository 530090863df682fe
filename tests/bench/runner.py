"""``python -m tests.bench`` (``make bench``): the store, sync, attachment, server, desktop
sync, clinical and authorization engine benchmarks, one JSON object.

Stdout gets exactly one JSON object, ``{"targets": [...], "all_targets_met": ...,
"store": <store report>, "sync": <sync report>, "attachments": ..., "server": ...,
"desktop": ..., "elapsed_s": ...}``; progress goes to stderr.
``--only store|sync|attachments|server|desktop|vitals|clinical|authz|permissions|csv|peer|``
``scale|onesync`` runs one part (its targets only); ``make bench ONLY=peer`` passes it
through make (``BENCH_ARGS`` any other options).
``--server-devices`` / ``--server-seconds`` size the server load test (default 50 devices
for 60 s).

``peer`` (tests/bench/peer_bench.py, optional): the PouchDB comparison. express-pouchdb and
pouchdb-node from npm, installed into ``.bench/peer``; the same ``--peer-records`` patients
(100,000) on both sides, ``--peer-runs`` (2) interleaved runs of each; first download,
incremental sync of one changed record, client bytes on disk, peak RSS. Targets: Careline
leads on the first three (PouchDB / Careline above 1). Skipped, with the reason in the
report and no target, when Node, npm or the packages are missing or npm fails.

``scale`` (tests/bench/scale_bench.py): first download, search and the one-edit sync at 10 %,
30 % and 100 % of ``--scale-records`` (1,000,000). Targets: CPU seconds (workstation + server)
per downloaded record at every size within 1.3 x the smallest size's (linear growth; the wall
time's growth is reported beside it); the client's peak RSS within 1.25 x (flat);
the one-edit sync within 2 x (flat); name search and an every-patient prefix search under
100 ms at the largest size. The server's peak RSS is reported.

``permissions`` (tests/bench/permission_bench.py): the permission history at remote apply: a
one-edit sync session at 0, a fifth of and all of ``--permission-tuples`` (5,000) care-team
tuples; a session pushing that many tuple ops (its slowest request); as many in one batch.
Target: the one batch within the 30 s request timeout.

``onesync`` (tests/bench/onesync_bench.py): an up-to-date workstation of a clinic of
``--onesync-records`` patients (20,000) against a ``careline-server`` process: sync sessions
carrying one edit (the transport kept, as the app keeps it, and a new one per session), and
idle ones, interleaved; wall median, workstation and server CPU per session, round trips. Target:
a one-edit session takes at most 2 round trips.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.records import authorize

from . import (
    attachment_bench,
    authz_bench,
    chart_attachment_bench,
    clinical_bench,
    csv_bench,
    desktop_sync_bench,
    onesync_bench,
    peer_bench,
    permission_bench,
    scale_bench,
    server_bench,
    store_bench,
    sync_bench,
    vitals_bench,
)


def _target(name: str, what: str, value: Any, limit: float, met: bool) -> dict[str, Any]:
    return {"name": name, "target": what, "value": value, "limit": limit, "met": bool(met)}


def sync_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Remote apply rate and incremental sync growth with history."""
    applied = report["remote_apply"]
    incremental = report["incremental_sync"]
    histories = sorted(int(h) for h in incremental["median_ms_by_history_ops"])
    return [
        _target(
            "sync.remote_apply_ops_per_s",
            "remote ops applied per second into SQLCipher (apply_ops), every op's signature "
            f"and author verified, at least {sync_bench.APPLY_TARGET_OPS_PER_S:,}",
            applied["careline_ops_per_s"],
            sync_bench.APPLY_TARGET_OPS_PER_S,
            applied["careline_ops_per_s"] >= sync_bench.APPLY_TARGET_OPS_PER_S,
        ),
        _target(
            "sync.incremental_sync_history_ratio",
            f"incremental sync of one op, median time at {histories[-1]:,} ops of history / at "
            f"{histories[0]:,}: does not grow with history (at most "
            f"{incremental['growth_ratio_limit']})",
            incremental["ratio_100k_vs_1k"],
            incremental["growth_ratio_limit"],
            not incremental["grows_with_history"],
        ),
    ]


def server_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The server load test: no errors, p99 session latency, every device converged."""
    t = report["targets"]
    return [
        _target(
            "server.errors",
            f"failed edits or sync sessions, {report['devices']} devices for "
            f"{report['seconds']:g} s plus the final round: none",
            t["errors"]["value"],
            0,
            t["errors"]["met"],
        ),
        _target(
            "server.p99_session_ms",
            f"p99 sync session latency under load ({report['devices']} devices, closed loop), "
            f"under {server_bench.P99_TARGET_MS:g} ms",
            t["p99_session_ms"]["value"],
            server_bench.P99_TARGET_MS,
            t["p99_session_ms"]["met"],
        ),
        _target(
            "server.converged_devices",
            "devices whose version vector equals the server's after the final sync round: all",
            t["converged"]["value"],
            t["converged"]["limit"],
            t["converged"]["met"],
        ),
    ]


@contextlib.contextmanager
def enforcing() -> Iterator[None]:
    """Authorization on, as on every workstation: importing tests.conftest (the chart
    attachment bench's server fixtures do) turns it off process-wide for older tests, and
    the store and sync figures must include the permission checks a clinic runs."""
    saved = authorize.ENFORCING
    authorize.ENFORCING = True
    try:
        yield
    finally:
        authorize.ENFORCING = saved


def named_targets(part: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """A part's ``targets`` dict flattened, each named ``part.key``; none when the part was
    skipped (the PouchDB comparison is optional)."""
    if report.get("skipped"):
        return []
    return [
        _target(f"{part}.{key}", t["target"], t["value"], t["limit"], t["met"])
        for key, t in report["targets"].items()
    ]


def _single(name: str) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """The targets of a part whose report holds one ``target``, named ``name``."""

    def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
        t = report["target"]
        return [_target(name, t["target"], t["value"], t["limit"], t["met"])]

    return targets


def attachment_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Attachment encryption against openssl's AES-GCM on this machine."""
    ratio = report["ratio_careline_to_openssl"]
    return [
        _target(
            "attachments.encrypt_vs_openssl_ratio",
            "attachment encryption throughput (with the keyed content id) / "
            "openssl speed -evp aes-256-gcm, at least 0.5",
            ratio,
            attachment_bench.TARGET_RATIO,
            ratio is not None and ratio >= attachment_bench.TARGET_RATIO,
        )
    ]


def chart_attachment_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A large chart file cut mid-upload opens intact elsewhere; the server sees ciphertext."""
    ok = report["opened_intact"] and not report["plaintext_on_server"]
    return [
        _target(
            "chart_attachments.intact_and_ciphertext_only",
            "a 200 MB file cut mid-upload, resumed, opens intact on a second "
            "workstation; no plaintext on the server (1 = yes)",
            1 if ok else 0,
            1,
            ok,
        )
    ]


@dataclass(frozen=True)
class Part:
    """One benchmark part: how to run it from the command line's options, what its report's
    targets are, and whether permission checks are on around it (``enforcing``)."""

    name: str
    label: str
    run: Callable[[argparse.Namespace], dict[str, Any]]
    targets: Callable[[dict[str, Any]], list[dict[str, Any]]]
    enforce: bool = False

    def measure(self, args: argparse.Namespace) -> tuple[dict[str, Any], float]:
        """Run the part: its report and the seconds it took (progress on stderr)."""
        store_bench.log(self.label)
        t0 = time.perf_counter()
        with enforcing() if self.enforce else contextlib.nullcontext():
            report = self.run(args)
        return report, round(time.perf_counter() - t0, 1)


# Adding a part is one row here (its module's ``run`` and a target rule) and its name in
# the module docstring. Order is the order they run in.
PART_TABLE = (
    Part("store", "store benchmark", store_bench.run, lambda r: named_targets("store", r),
         enforce=True),
    Part("sync", "sync benchmark", lambda a: sync_bench.run(), sync_targets, enforce=True),
    Part("attachments", "attachment benchmark", lambda a: attachment_bench.run(),
         attachment_targets),
    Part("chart_attachments", "chart attachment benchmark (200 MB, cut and resumed)",
         lambda a: chart_attachment_bench.run(), chart_attachment_targets),
    Part("server", "server load benchmark",
         lambda a: server_bench.run(a.server_devices, a.server_seconds), server_targets),
    Part("desktop", "desktop sync benchmark", lambda a: desktop_sync_bench.run(),
         lambda r: named_targets("desktop", r)),
    Part("vitals", "vitals benchmark", lambda a: vitals_bench.run(),
         _single("vitals.record_set_per_s")),
    Part("clinical", "clinical benchmark (chart, day view, vitals)",
         lambda a: clinical_bench.run(), lambda r: named_targets("clinical", r)),
    Part("authz", "authorization engine benchmark", lambda a: authz_bench.run(),
         _single("authz.check_p50_us")),
    Part("permissions", "permission history benchmark",
         lambda a: permission_bench.run(a.permission_tuples),
         lambda r: named_targets("permissions", r), enforce=True),
    Part("csv", "CSV patient import benchmark", lambda a: csv_bench.run(),
         _single("csv.import_10k_rows_s")),
    Part("peer", "PouchDB comparison", lambda a: peer_bench.run(a.peer_records, a.peer_runs),
         lambda r: named_targets("peer", r)),
    Part("scale", "scale benchmark", lambda a: scale_bench.run(a.scale_records),
         lambda r: named_targets("scale", r)),
    Part("onesync", "one-edit sync benchmark", lambda a: onesync_bench.run(a.onesync_records),
         lambda r: named_targets("onesync", r)),
)  # fmt: skip
PARTS = tuple(part.name for part in PART_TABLE)


def main(argv: Sequence[str]) -> int:
    """Run the benchmarks and print one JSON object on stdout."""
    ap = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    ap.add_argument("--only", choices=PARTS, default=None, help="run only this benchmark")
    store_bench.add_arguments(ap)
    ap.add_argument(
        "--server-devices",
        type=int,
        default=server_bench.DEFAULT_DEVICES,
        help="simulated workstations in the server load test",
    )
    ap.add_argument(
        "--server-seconds",
        type=float,
        default=server_bench.DEFAULT_SECONDS,
        help="length of the server load test",
    )
    ap.add_argument(
        "--peer-records",
        type=int,
        default=peer_bench.DEFAULT_RECORDS,
        help="patients on both sides of the PouchDB comparison",
    )
    ap.add_argument(
        "--peer-runs",
        type=int,
        default=peer_bench.DEFAULT_RUNS,
        help="interleaved runs of each system in the PouchDB comparison",
    )
    ap.add_argument(
        "--scale-records",
        type=int,
        default=scale_bench.DEFAULT_RECORDS,
        help="the largest clinic of the scale benchmark (also measured at 10%% and 30%%)",
    )
    ap.add_argument(
        "--onesync-records",
        type=int,
        default=onesync_bench.DEFAULT_RECORDS,
        help="patients on the server in the one-edit sync benchmark",
    )
    ap.add_argument(
        "--permission-tuples",
        type=int,
        default=permission_bench.DEFAULT_TUPLES,
        help="care-team tuples in the permission history benchmark (also measured at none "
        "and a fifth), and tuple ops pushed at once",
    )
    args = ap.parse_args(argv)
    if args.diagnostics_child:  # the store benchmark's own child processes
        with enforcing():
            return store_bench.main(argv)
    started = time.perf_counter()
    parts = [args.only] if args.only else list(PARTS)
    # Bad sizes are refused before any part runs, not after an hour of the others.
    if "peer" in parts and (args.peer_records < 1 or args.peer_runs < 1):
        ap.error("--peer-records and --peer-runs must be at least 1")
    if "permissions" in parts and args.permission_tuples < 5:
        ap.error("--permission-tuples must be at least 5")
    if "scale" in parts:
        try:
            scale_bench.scale_sizes(args.scale_records)
        except ValueError as exc:
            ap.error(str(exc))
    loadavg_at_start = list(os.getloadavg())
    results: dict[str, Any] = {}
    elapsed: dict[str, float] = {}
    targets: list[dict[str, Any]] = []
    for part in PART_TABLE:
        if part.name in parts:
            results[part.name], elapsed[part.name] = part.measure(args)
            targets += part.targets(results[part.name])
    report: dict[str, Any] = {
        "benchmark": "careline store, sync, attachments, server load, desktop sync, clinical, "
        "authorization, permission history, CSV import, PouchDB comparison, scale and one-edit "
        "sync",
        "parts": parts,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "elapsed_s_by_part": elapsed,
        "loadavg_at_start": loadavg_at_start,
        "loadavg_at_end": list(os.getloadavg()),
        "targets": targets,
        "all_targets_met": all(t["met"] for t in targets),
        **results,
    }
    print(json.dumps(report, indent=2))
    store_bench.log("done")
    if "store" in results and store_bench.diagnostics_failed(results["store"]):
        return 1
    return 2 if args.fail_on_miss and not report["all_targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
