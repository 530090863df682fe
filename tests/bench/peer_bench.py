"""PouchDB comparison (``python -m tests.bench --only peer``; optional).

The stack an offline-first clinic system would otherwise use: PouchDB (``pouchdb-node``,
LevelDB on disk) replicating from ``express-pouchdb`` over HTTP. Both are installed from npm
with ``npm ci`` into a folder the benchmark owns, ``.bench/peer`` at the repository root
(versions pinned by ``tests/bench/peer/package-lock.json``; reinstalled when that changes).
When Node or npm is missing, or the install fails, the part is skipped: a message on stderr
and ``{"skipped": true, "why": ...}`` in the report.

Same data on both sides: ``records`` (100,000 by default, ``--peer-records``) of the desktop
benchmark's three-field patients (family, given, birth date), written straight into each
server's store before the runs (Careline: its server replica, 1,000 per transaction;
PouchDB: ``bulkDocs`` of 1,000). Both servers then run in processes of their own on
127.0.0.1 (``careline-server run`` over TLS; express-pouchdb over plain HTTP), and fresh
clients, each in a process of its own, take turns: Careline, PouchDB, Careline, PouchDB...
(``--peer-runs`` of each), so the machine's load weighs on both alike. Each client:

* first download: Careline's first sync session (``tests/bench/download_client.py``);
  PouchDB's ``replicate.from`` with ``batch_size`` 1000 (``tests/bench/peer/pouchdb_peer.js``);
  its wall time, and the CPU seconds of client and server over it (on a shared machine the
  wall time follows the other work's load; the CPU time far less);
* incremental sync of one changed record: one patient's given name changed locally, then
  one session both ways (Careline ``sync``; ``PouchDB.sync``), median of the edits, after
  one untimed session that settles the first push;
* on-disk size of the client's data folder at the end (SQLCipher file; LevelDB folder);
* the client's and the server's peak RSS.

Ratios are PouchDB's figure over Careline's (above 1: Careline leads). Standalone:
``python -m tests.bench.peer_bench [records] [runs]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .desktop_sync_bench import wait_for_image
from .download_client import (
    ROOT,
    ClientSpec,
    folder_bytes,
    grow_clinic,
    proc_status_kb,
    run_client,
    seed_clinic,
)
from .server_bench import _free_port, server_process

SOURCE = Path(__file__).resolve().parent / "peer"  # package.json, lock, pouchdb_peer.js
HOME = ROOT / ".bench" / "peer"
PACKAGES = ("express", "express-pouchdb", "pouchdb-node")
DEFAULT_RECORDS = 100_000
DEFAULT_RUNS = 2
BATCH_SIZE = 1000
EDITS = 15
NPM_TIMEOUT_S = 900.0
POUCH_LOAD_RATE_FLOOR = 50  # records/s: the slowest load the start-up wait allows for


def _log(message: str) -> None:
    print(f"[peer-bench] {message}", file=sys.stderr, flush=True)


@dataclass
class NodeStack:
    """Node and the installed packages, ready to run ``pouchdb_peer.js``."""

    node: str
    modules: Path
    versions: dict[str, str]

    def command(self, *args: str) -> list[str]:
        """``node pouchdb_peer.js ARGS``."""
        return [self.node, str(SOURCE / "pouchdb_peer.js"), *args]

    def env(self) -> dict[str, str]:
        """This environment, with the bench's own node_modules to require from."""
        return {**os.environ, "NODE_PATH": str(self.modules)}


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((SOURCE / name).read_bytes())
    return digest.hexdigest()


def prepare(home: Path = HOME) -> NodeStack | str:
    """The PouchDB stack installed in ``home`` (``npm ci`` when missing or stale), or why
    it cannot be: the skip message."""
    node = shutil.which("node")
    if node is None:
        return "Node.js is not installed (no `node` on PATH); the PouchDB comparison needs it"
    stamp = home / "installed.sha256"
    modules = home / "node_modules"
    if not (stamp.is_file() and stamp.read_text() == _lock_digest() and modules.is_dir()):
        npm = shutil.which("npm")
        if npm is None:
            return f"npm is not installed (no `npm` on PATH); it installs {', '.join(PACKAGES)}"
        home.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(SOURCE / name, home / name)
        _log(f"installing {', '.join(PACKAGES)} from npm into {home}")
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=home,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"npm ci in {home} did not finish in {NPM_TIMEOUT_S:g} s"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            return f"npm ci in {home} failed ({done.returncode}): {tail}"
        stamp.write_text(_lock_digest())
    versions: dict[str, str] = {}
    for package in PACKAGES:
        manifest = modules / package / "package.json"
        if not manifest.is_file():
            return f"{package} is missing from {modules}; delete {stamp} to reinstall"
        versions[package] = json.loads(manifest.read_text())["version"]
    return NodeStack(node, modules, versions)


@contextlib.contextmanager
def pouch_server(stack: NodeStack, folder: Path, records: int) -> Iterator[dict[str, Any]]:
    """express-pouchdb on a free 127.0.0.1 port, its database loaded with ``records``
    patients, until the block ends: ``{"url", "pid", "load_s"}``."""
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    process = subprocess.Popen(
        stack.command("serve", str(folder), str(port), str(records)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=(folder / "serve.err").open("wb"),
        env=stack.env(),
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60 + records / POUCH_LOAD_RATE_FLOOR
        ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        line = process.stdout.readline() if ready else b""
        if not line.strip():
            problem = (folder / "serve.err").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"express-pouchdb did not start: {problem or 'no output'}")
        started = json.loads(line)
        yield {"url": f"http://127.0.0.1:{port}/clinic", "pid": process.pid, **started}
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def pouch_client(
    stack: NodeStack, url: str, folder: Path, server_pid: int, edits: int = EDITS
) -> dict[str, Any]:
    """A fresh PouchDB's replication of ``url`` and its one-edit syncs, in a node process."""
    ticks = str(os.sysconf("SC_CLK_TCK"))
    done = subprocess.run(
        stack.command(
            "replicate", url, str(folder), str(BATCH_SIZE), str(edits), str(server_pid), ticks
        ),
        capture_output=True,
        text=True,
        env=stack.env(),
        timeout=4 * 3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the PouchDB client failed ({done.returncode}): {done.stderr[-1500:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    incremental = figures.pop("incremental_ms")
    return {
        "seconds": round(figures["seconds"], 2),
        "records_received": figures["docs_written"],
        "records_per_s": round(figures["docs_written"] / figures["seconds"]),
        "cpu_s": round(figures["cpu_s"], 2),
        "server_cpu_s": round(figures["server_cpu_s"], 2),
        "doc_count": figures["doc_count"],
        "peak_rss_kb": figures["peak_rss_kb"],
        "incremental_ms": [round(t, 2) for t in incremental],
        "incremental_median_ms": round(statistics.median(incremental), 2),
        "disk_bytes": folder_bytes(folder),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _download_cpu(run: dict[str, Any]) -> dict[str, Any]:
    """The run with ``download_cpu_s``: the client's and the server's CPU seconds over the
    download (what the work costs, which the machine's load moves far less than the time)."""
    return {**run, "download_cpu_s": round(run["cpu_s"] + run["server_cpu_s"], 2)}


def summarize(careline: list[dict[str, Any]], pouch: list[dict[str, Any]]) -> dict[str, Any]:
    """Each system's medians over its runs, and PouchDB / Careline (above 1: Careline
    leads)."""
    careline = [_download_cpu(r) for r in careline]
    pouch = [_download_cpu(r) for r in pouch]
    measures = {
        "first_download_s": "seconds",
        "first_download_cpu_s": "download_cpu_s",
        "incremental_sync_ms": "incremental_median_ms",
        "disk_bytes": "disk_bytes",
        "client_peak_rss_kb": "peak_rss_kb",
    }
    medians = {
        name: {"careline": _median(careline, key), "pouchdb": _median(pouch, key)}
        for name, key in measures.items()
    }
    for figures in medians.values():
        figures["pouchdb_over_careline"] = round(figures["pouchdb"] / figures["careline"], 3)
    return medians


def run(records: int = DEFAULT_RECORDS, runs: int = DEFAULT_RUNS) -> dict[str, Any]:
    """The comparison, or ``{"skipped": true, "why": ...}`` without Node or the packages."""
    if records < 1 or runs < 1:
        raise ValueError(f"--peer-records and --peer-runs must be positive: {records}, {runs}")
    stack = prepare()
    if isinstance(stack, str):
        _log(f"skipped: {stack}")
        return {"skipped": True, "why": stack, "records": records}
    careline: list[dict[str, Any]] = []
    pouch: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="careline-peer-bench-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "careline-server"
        clinic = seed_clinic(data_dir, "Peer Bench Clinic")
        code, seed_s = grow_clinic(data_dir, clinic, 0, records, devices=runs + 1)
        _log(f"Careline: {records:,} patients written into the server replica in {seed_s:.0f} s")
        with (
            server_process(data_dir) as running,
            pouch_server(stack, folder / "pouchdb-server", records) as served,
        ):
            _log(f"PouchDB: {records:,} patients loaded in {served['load_s']:.0f} s")
            # Careline's server builds the clinic's snapshot image as it starts; the runs
            # time the download a workstation joining after that gets.
            wait_for_image(running.url, running.ca_pem, code, folder / "probe")
            for r in range(runs):
                desk = folder / f"careline-{r}"
                spec = ClientSpec(running.url, running.ca_pem, code, str(desk), f"desk {r}",
                                  server_pid=running.process.pid)  # fmt: skip
                careline.append(run_client(spec))
                shutil.rmtree(desk, ignore_errors=True)
                local = folder / f"pouchdb-{r}"
                pouch.append(pouch_client(stack, served["url"], local, served["pid"]))
                shutil.rmtree(local, ignore_errors=True)
                _log(
                    f"run {r + 1}: Careline {careline[-1]['seconds']:.1f} s, "
                    f"{careline[-1]['incremental_median_ms']} ms, "
                    f"{careline[-1]['disk_bytes'] / 1e6:.1f} MB; PouchDB "
                    f"{pouch[-1]['seconds']:.1f} s, {pouch[-1]['incremental_median_ms']} ms, "
                    f"{pouch[-1]['disk_bytes'] / 1e6:.1f} MB"
                )
            servers_kb = {
                "careline": proc_status_kb(running.process.pid, "VmHWM"),
                "pouchdb": proc_status_kb(served["pid"], "VmHWM"),
            }
    medians = summarize(careline, pouch)
    complete = all(r["patients_on_workstation"] == records for r in careline) and all(
        r["doc_count"] == records for r in pouch
    )
    return {
        "skipped": False,
        "records": records,
        "runs_each": runs,
        "order": "Careline, PouchDB, Careline, PouchDB, ...",
        "pouchdb_stack": {**stack.versions, "batch_size": BATCH_SIZE, "node": _node_version(stack)},
        "careline_seed_s": round(seed_s, 1),
        "pouchdb_load_s": round(served["load_s"], 1),
        "careline_runs": careline,
        "pouchdb_runs": pouch,
        "server_peak_rss_kb": servers_kb,
        "medians": medians,
        "complete": complete,
        "targets": {
            name: {
                "target": f"Careline leads PouchDB on {what} ({records:,} records, median of "
                f"{runs} interleaved runs each): PouchDB / Careline above 1",
                "value": medians[name]["pouchdb_over_careline"],
                "limit": 1.0,
                "met": complete and medians[name]["pouchdb_over_careline"] > 1.0,
            }
            for name, what in (
                ("first_download_s", "first download time"),
                ("incremental_sync_ms", "the sync of one changed record"),
                ("disk_bytes", "the client's bytes on disk after the download"),
            )
        },
    }


def _node_version(stack: NodeStack) -> str:
    done = subprocess.run(
        [stack.node, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(run(*args), indent=2))
