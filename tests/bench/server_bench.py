"""Load benchmark of careline-server: many workstations syncing concurrently with one server.

What :func:`run` does (``python -m tests.bench --only server``):

1. Sets up a server data folder with the real admin CLI, each command its own process:
   ``python -m core.cli.server --data-dir D --json admin clinic create|user add|enroll-code``
   (the password on stdin), one one-time enrollment code per simulated device.
2. Starts the server in its own process, ``python -m core.cli.server --data-dir D run
   --host 127.0.0.1 --port P``, so the load generator does not share its GIL; waits for
   ``/ready`` over TLS pinned to the certificate it generated, ``D/tls/server.pem``.
3. ``devices`` real :class:`Workstation` replicas (cheap KDF parameters), each enrolled with
   its own code (``prepare_join``, ``enroll``, ``save_credential``, a bootstrap sync).
4. For ``seconds``, one thread per device: every ``PACE_S`` (5 s, from a random phase) a
   small local edit (``ClinicRecords.update_patient``, every tenth one ``add_patient``), then
   one sync session over the device's own HTTPS transport: 50 workstations each saving
   something every five seconds, far busier than a real clinic. Session latency (the sync only,
   not the edit) and every failure are recorded; these figures carry the targets. Then a
   capacity probe: the same loop with no pause for ``SATURATION_SECONDS``, reported as
   sessions/s and its (queueing-dominated) latency, with no target.
5. Stops, runs a final sync round (every device once, then every device again, one after
   the other) and checks that every device's version vector equals the server's (asked
   through a ``pull`` on the device's transport).

The store under the server is PostgreSQL on 127.0.0.1:5432 (a throwaway database made for
the run and dropped after it; ``DATABASE_URL`` for the admin CLI and the server), with the
application-side encryption of every op and record state, row-level security and the
per-clinic write lock a production server uses. CPU time of the server process, of this (load
generator) process and of the whole machine over the measured window is reported, so it is
visible which side the CPU went to on a small machine. Everything stays on 127.0.0.1; the
server process is terminated whatever happens.

Standalone: ``python -m tests.bench.server_bench [devices] [seconds]`` (JSON on stdout).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import keyring
import keyring.backends.fail

from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.server.settings import SERVER_SCHEMA
from core.store.oplog import version_vector
from core.sync import protocol
from core.sync.enroll import ServerCredential, adopt_credential, enroll, tls_trust
from core.sync.http_transport import HttpTransport
from core.sync.session import sync
from tests.services import create_postgres_database, drop_postgres_database

STORE = "PostgreSQL 127.0.0.1:5432 (throwaway database; ops and record states sealed, RLS)"
P99_TARGET_MS = 250.0
DEFAULT_DEVICES = 50
DEFAULT_SECONDS = 60.0
# Each simulated workstation saves a change and syncs every PACE_S seconds. The app syncs
# about 1.5 s after a change and every 30 s otherwise; a change every 5 s on every one of
# 50 workstations is a far busier clinic than a real one, but a rate a person could cause.
PACE_S = 5.0
SATURATION_SECONDS = 15.0
IDLE_SESSIONS = 30  # one device alone, before the load: the unloaded session latency
ADD_EVERY = 10  # every tenth local edit creates a patient, the others update one
MAX_ERROR_MESSAGES = 5
BENCH_PASSWORD = "bench horse battery staple"  # a throwaway account in a temporary folder
ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_S = 60.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _log(message: str) -> None:
    print(f"[server-bench] {message}", file=sys.stderr, flush=True)


# ----- the server process ---------------------------------------------------------------


_DATABASE: dict[str, str] = {}  # DATABASE_URL of the run's throwaway database


def _child_env() -> dict[str, str]:
    """This environment without any server setting but the run's DATABASE_URL, so the child
    uses that database and the local key file in its data folder whatever the caller's
    shell exports."""
    drop = {s.env for s in SERVER_SCHEMA} | {"CREDENTIALS_DIRECTORY"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(_DATABASE)
    return env


def _admin(data_dir: Path, *args: str, stdin: str | None = None) -> Any:
    """One ``careline-server --json admin ...`` command in its own process; its JSON."""
    command = [sys.executable, "-m", "core.cli.server", "--data-dir", str(data_dir), "--json"]
    done = subprocess.run(
        [*command, "admin", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_child_env(),
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"admin {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: the server gets SIGTERM if this process dies without cleaning up."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ServerProcess:
    """The running ``careline-server run`` child."""

    process: subprocess.Popen[bytes]
    url: str
    ca_pem: str
    log_path: Path

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's own output (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def server_process(data_dir: Path) -> Iterator[ServerProcess]:
    """``careline-server run`` on a free 127.0.0.1 port until the block ends."""
    port = _free_port()
    log_path = data_dir.parent / "server.log"
    command = [sys.executable, "-m", "core.cli.server", "--data-dir", str(data_dir), "run"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=_child_env(),
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    previous = _terminate_on_sigterm()
    try:
        running = ServerProcess(process, f"https://127.0.0.1:{port}", "", log_path)
        running.ca_pem = _wait_ready(running, data_dir / "tls" / "server.pem")
        yield running
    finally:
        _stop(process)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_on_sigterm() -> Any:
    """SIGTERM to the benchmark becomes SystemExit, so the ``finally`` stops the server."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _wait_ready(server: ServerProcess, cert: Path) -> str:
    """Wait for the generated certificate, then for ``/ready`` over TLS pinned to it."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {server.process.returncode} at start:\n"
                + server.log_tail()
            )
        if cert.exists():
            ca_pem = cert.read_text()
            if "END CERTIFICATE" in ca_pem:
                try:
                    with httpx.Client(verify=tls_trust(ca_pem), timeout=5) as client:
                        reply = client.get(server.url + "/ready")
                    if reply.status_code == 200:
                        return ca_pem
                    last = f"/ready answered {reply.status_code}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise RuntimeError(f"the server was not ready in {SERVER_START_TIMEOUT_S:.0f} s ({last})")


# ----- CPU accounting -------------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


def _machine_cpu() -> tuple[float, float, float]:
    """(busy, total, steal) CPU seconds of the whole machine since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user/nice
    return (total - idle) / _CLK_TCK, total / _CLK_TCK, values[7] / _CLK_TCK


def _all_processes() -> dict[int, tuple[str, float]]:
    """Every process's command line and CPU seconds so far, its reaped children's included
    (so short-lived processes show up under their parent)."""
    out: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            args = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue
        head, _, tail = text.rpartition(")")
        fields = tail.split()
        name = args.decode(errors="replace")[:80] or head.partition("(")[2]
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        out[int(stat.parent.name)] = (name, ticks / _CLK_TCK)
    return out


def machine_busy(seconds: float) -> float:
    """Fraction of the machine's CPU in use over the next ``seconds`` (0..1)."""
    busy0, total0, _ = _machine_cpu()
    time.sleep(seconds)
    busy1, total1, _ = _machine_cpu()
    return round((busy1 - busy0) / max(total1 - total0, 1e-9), 3)


@dataclass
class CpuSnapshot:
    """CPU counters at one moment."""

    wall: float
    server: float
    loadgen: float
    machine_busy: float
    machine_total: float
    machine_steal: float
    processes: dict[int, tuple[str, float]]

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        """Read every counter now."""
        busy, total, steal = _machine_cpu()
        times = os.times()
        return cls(
            time.perf_counter(),
            _proc_cpu_s(server_pid),
            times.user + times.system,
            busy,
            total,
            steal,
            _all_processes(),
        )


def _cpu_split(
    start: CpuSnapshot,
    end: CpuSnapshot,
    devices: int,
    server_pid: int,
    sessions: int,
    requests: int,
) -> dict[str, Any]:
    wall = end.wall - start.wall
    cores = os.cpu_count() or 1
    server = end.server - start.server
    loadgen = end.loadgen - start.loadgen
    busy = end.machine_busy - start.machine_busy
    steal = end.machine_steal - start.machine_steal
    capacity = (end.machine_total - start.machine_total) or wall * cores
    other = max(0.0, busy - server - loadgen - steal)
    share = {
        "server": server / capacity,
        "load_generator": loadgen / capacity,
        "other_processes": other / capacity,
        "steal_by_hypervisor": steal / capacity,
        "idle": max(0.0, 1 - busy / capacity),
    }
    mine = {os.getpid(), server_pid}
    others = sorted(
        (
            (cpu - start.processes.get(pid, (name, 0.0))[1], name, pid)
            for pid, (name, cpu) in end.processes.items()
            if pid not in mine
        ),
        reverse=True,
    )
    client_ms = loadgen / sessions * 1000 if sessions else 0.0
    server_ms = server / sessions * 1000 if sessions else 0.0
    ceilings: dict[str, Any] = {}
    if sessions and server_ms and client_ms:
        alone = 1000 / server_ms  # the server is one Python process: one core at most
        machine = cores * 1000 / (server_ms + client_ms)
        ceilings = {
            "note": "from the CPU each session cost in this run (with its fan-out of pulled "
            "ops); in a closed loop without think time, mean latency >= devices / rate",
            "sessions_per_s_server_on_one_full_core": round(alone, 1),
            "mean_latency_floor_ms_at_that_rate": round(devices / alone * 1000),
            "sessions_per_s_this_machine_all_cores_server_plus_load_generator": round(machine, 1),
            "mean_latency_floor_ms_on_this_machine": round(devices / machine * 1000),
        }
    notes = []
    if busy / capacity < 0.85:
        notes.append(
            "the CPUs were not saturated: latency is dominated by waiting (the server "
            "serialising requests, locks or I/O), not by a lack of CPU"
        )
    elif loadgen > server:
        notes.append(
            f"the machine was CPU-saturated and the load generator ({devices} client "
            "replicas, each applying every op and encrypting its own SQLCipher file, in one "
            "Python process) used more CPU than the server: the figures are bounded by the "
            "load generator at least as much as by the server"
        )
    else:
        notes.append("the machine was CPU-saturated and the server used most of it")
    if server / wall > 0.9:
        notes.append(
            "the server process used about one full core, all one Python process can use "
            "(its sync endpoint runs on the event loop thread): it was at its own limit"
        )
    if (other + steal) / capacity > 0.1:
        notes.append(
            f"{(other + steal) / capacity:.0%} of the machine went to other processes or the "
            "hypervisor during the window: the figures are lower than on a quiet machine"
        )
    return {
        "window_s": round(wall, 2),
        "cores": cores,
        "server_process_cpu_s": round(server, 2),
        "load_generator_cpu_s": round(loadgen, 2),
        "other_processes_cpu_s": round(other, 2),
        "steal_cpu_s": round(steal, 2),
        "top_other_processes": [
            {"pid": pid, "command": name, "cpu_s": round(cpu, 2)}
            for cpu, name, pid in others[:3]
            if cpu >= 0.05
        ],
        "cpu_ms_per_session": {
            "load_generator": round(client_ms, 2) if sessions else None,
            "server": round(server_ms, 2) if sessions else None,
        },
        "server_cpu_ms_per_sync_request": round(server / requests * 1000, 2) if requests else None,
        "ceilings": ceilings,
        "server_cores_used": round(server / wall, 2),
        "load_generator_cores_used": round(loadgen / wall, 2),
        "share_of_machine": {k: round(v, 3) for k, v in share.items()},
        "verdict": notes,
    }


# ----- server-side request time (the server's own /metrics) ------------------------------

_METRIC = re.compile(
    r'^careline_http_request_seconds_(sum|count|bucket)\{(?:le="([^"]+)",)?route="/v1/sync"'
    r'(?:,le="([^"]+)")?\}\s+(\S+)$'
)


def _sync_metrics(url: str, ca_pem: str) -> dict[str, Any]:
    """The server's histogram of /v1/sync handling time: sum, count and buckets."""
    with httpx.Client(verify=tls_trust(ca_pem), timeout=10) as client:
        text = client.get(url + "/metrics").text
    out: dict[str, Any] = {"sum": 0.0, "count": 0.0, "buckets": {}}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m is None:
            continue
        kind, le1, le2, value = m.groups()
        if kind == "bucket":
            out["buckets"][le1 or le2] = float(value)
        else:
            out[kind] = float(value)
    return out


def _server_side(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    count = after["count"] - before["count"]
    total = after["sum"] - before["sum"]
    within: dict[str, float] = {}
    for le in ("0.05", "0.1", "0.25", "0.5"):
        if le in after["buckets"] and count:
            n = after["buckets"][le] - before["buckets"].get(le, 0.0)
            within[f"le_{int(float(le) * 1000)}ms"] = round(n / count, 4)
    return {
        "note": "time inside the server's app per /v1/sync request (its own Prometheus "
        "histogram): includes waiting for the event loop and for the request body from the "
        "client, excludes TLS and accept queueing",
        "requests": int(count),
        "mean_ms": round(total / count * 1000, 2) if count else None,
        "fraction_of_requests": within,
    }


def _code_version() -> dict[str, Any]:
    """The commit the server ran from and whether core/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "core"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    changed = [line[3:] for line in dirty if line.strip()]
    return {"commit": head, "uncommitted_core_files": changed}


# ----- simulated devices ----------------------------------------------------------------


@dataclass
class Device:
    """One enrolled workstation and what it did."""

    index: int
    ws: Workstation
    credential: ServerCredential
    transport: HttpTransport
    patients: list[str]
    rng: random.Random
    latencies_ms: list[float] = field(default_factory=list)
    sessions: int = 0
    pushed: int = 0
    pulled: int = 0
    edits: int = 0
    errors: list[str] = field(default_factory=list)

    def edit(self) -> None:
        """One small local change, through the app's one write path."""
        records = self.ws.records
        self.edits += 1
        if self.edits % ADD_EVERY == 0:
            patient = records.add_patient(
                f"Load{self.index:03d}x{self.edits:06d}", "Bench", "1980-01-01"
            )
            self.patients.append(patient.id)
        else:
            records.update_patient(
                self.rng.choice(self.patients), {"phone": f"555-{self.edits:06d}"}
            )

    def session(self) -> float:
        """One sync session; its duration in ms (raises on failure)."""
        started = time.perf_counter()
        report = sync(self.ws.database, self.transport, "admin")
        elapsed = (time.perf_counter() - started) * 1000
        self.pushed += report.pushed
        self.pulled += report.pulled
        return elapsed

    def server_vector(self) -> dict[str, int]:
        """The server's version vector, from a ``pull`` on this device's transport."""
        request = {"type": "pull", "vv": protocol.vv_to_wire(self.vector()), "max_ops": 1}
        reply = protocol.decode(self.transport.request(protocol.encode(request)), ("ops",))
        return protocol.vv_from_wire(reply.get("vv"))

    def vector(self) -> dict[str, int]:
        """This replica's version vector."""
        return version_vector(self.ws.database)

    def close(self) -> None:
        """Close the connection and lock the replica."""
        self.transport.close()
        self.ws.lock()


def _new_device(index: int, folder: Path, url: str, ca_pem: str, code: str) -> Device:
    ws = Workstation(folder / f"ws{index:03d}", FAST_PARAMS)
    ws.prepare_join("admin", BENCH_PASSWORD)
    try:
        credential = enroll(
            url, code, ca_pem, f"bench-{index:03d}", op_trust.binding_for(ws.database)
        )
        adopt_credential(ws.database, credential, "admin")
        transport = credential.transport()
        sync(ws.database, transport, "admin")  # bootstrap: the clinic's records
        patient = ws.records.add_patient(f"Load{index:03d}", "Bench", "1980-01-01")
    except BaseException:
        ws.lock()
        raise
    return Device(index, ws, credential, transport, [patient.id], random.Random(index))


def _drive(
    device: Device, start: threading.Barrier, stop_at: list[float], pace_s: float = 0.0
) -> None:
    """The measured loop of one device: edit, sync, until the deadline. With ``pace_s`` a
    device starts a new edit+sync every ``pace_s`` seconds (from a random phase, so the
    fleet does not fire in lock step); a session that overruns starts the next at once."""
    try:
        start.wait(timeout=60)
    except threading.BrokenBarrierError:
        return  # the benchmark was interrupted before the start
    next_at = time.perf_counter() + device.rng.uniform(0, pace_s)
    while time.perf_counter() < stop_at[0]:
        if pace_s:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_at = max(next_at + pace_s, time.perf_counter())
            if time.perf_counter() >= stop_at[0]:
                break
        try:
            device.edit()
        except Exception as exc:  # every failure is a finding, reported with its message
            device.errors.append(f"device {device.index} edit: {type(exc).__name__}: {exc}")
            continue
        try:
            device.latencies_ms.append(device.session())
        except Exception as exc:
            device.errors.append(f"device {device.index} sync: {type(exc).__name__}: {exc}")
        device.sessions += 1


def _saturation(fleet: list[Device], seconds: float) -> dict[str, Any]:
    """Capacity: every device edit+sync in a closed loop with no pause (latency here is
    mostly queueing: about devices / sessions per second)."""
    for d in fleet:
        d.latencies_ms, d.errors, d.sessions = [], [], 0
    barrier = threading.Barrier(len(fleet) + 1)
    stop_at = [float("inf")]
    with ThreadPoolExecutor(max_workers=len(fleet), thread_name_prefix="probe") as pool:
        try:
            futures = [pool.submit(_drive, d, barrier, stop_at) for d in fleet]
            started = time.perf_counter()
            stop_at[0] = started + seconds
            barrier.wait(timeout=60)
            for f in futures:
                f.result()
            window = time.perf_counter() - started
        finally:
            stop_at[0] = float("-inf")
            barrier.abort()
    latencies = sorted(x for d in fleet for x in d.latencies_ms)
    return {
        "seconds": seconds,
        "sessions_per_s": round(sum(d.sessions for d in fleet) / window, 1),
        "session_latency_ms": {
            "p50": _percentile(latencies, 50),
            "p99": _percentile(latencies, 99),
        },
        "error_messages": [e for d in fleet for e in d.errors],
    }


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return round(sorted_values[rank - 1], 2)


def _idle_latency(device: Device, sessions: int) -> dict[str, Any]:
    """One device alone against the idle server: the unloaded session latency."""
    times = []
    for _ in range(sessions):
        device.edit()
        times.append(device.session())
    times.sort()
    return {
        "sessions": sessions,
        "p50_ms": _percentile(times, 50),
        "p99_ms": _percentile(times, 99),
    }


# ----- the benchmark --------------------------------------------------------------------


def run(devices: int = DEFAULT_DEVICES, seconds: float = DEFAULT_SECONDS) -> dict[str, Any]:
    """The whole benchmark; one JSON-able dict (progress on stderr)."""
    # Never put bench secrets into a real OS keyring: the workstations get no keyring slot.
    previous_keyring = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        url = create_postgres_database()
        _DATABASE["DATABASE_URL"] = url
        try:
            with tempfile.TemporaryDirectory(prefix="careline-server-bench-") as tmp:
                return _run(Path(tmp), devices, seconds)
        finally:
            _DATABASE.clear()
            drop_postgres_database(url)
    finally:
        keyring.set_keyring(previous_keyring)


def _run(folder: Path, devices: int, seconds: float) -> dict[str, Any]:
    data_dir = folder / "server"
    code_version = _code_version()  # the server process runs this working tree
    t0 = time.perf_counter()
    _log(f"admin CLI: clinic, user and {devices} enrollment codes (one process each)")
    _admin(data_dir, "init")
    clinic = _admin(data_dir, "clinic", "create", "Load Bench Clinic")["id"]
    _admin(data_dir, "user", "add", clinic, "admin", "--role", "admin", stdin=BENCH_PASSWORD + "\n")
    codes = [
        _admin(data_dir, "enroll-code", clinic, "--ttl", "240")["code"] for _ in range(devices)
    ]
    admin_s = time.perf_counter() - t0

    fleet: list[Device] = []
    with server_process(data_dir) as server:
        try:
            _log(f"server pid {server.process.pid} at {server.url}; enrolling {devices} devices")
            t1 = time.perf_counter()
            for i, code in enumerate(codes):
                fleet.append(_new_device(i, folder / "devices", server.url, server.ca_pem, code))
            enroll_s = time.perf_counter() - t1
            _log(f"one device alone: {IDLE_SESSIONS} edit+sync sessions")
            idle = _idle_latency(fleet[0], IDLE_SESSIONS)
            for d in fleet:  # everyone starts the load from the same state
                d.session()
            for d in fleet:
                d.pushed = d.pulled = 0
            edits_before = sum(d.edits for d in fleet)

            _log(f"load: {devices} devices, edit + sync every {PACE_S:g} s each, {seconds:g} s")
            barrier = threading.Barrier(devices + 1)
            stop_at = [float("inf")]
            server_pid = server.process.pid
            busy_before = machine_busy(2.0)
            metrics_before = _sync_metrics(server.url, server.ca_pem)
            with ThreadPoolExecutor(max_workers=devices, thread_name_prefix="device") as pool:
                try:
                    futures = [pool.submit(_drive, d, barrier, stop_at, PACE_S) for d in fleet]
                    cpu_start = CpuSnapshot.take(server_pid)
                    stop_at[0] = cpu_start.wall + seconds
                    barrier.wait(timeout=60)
                    for f in futures:
                        f.result()
                    cpu_end = CpuSnapshot.take(server_pid)
                finally:  # interrupted: let every device thread end now
                    stop_at[0] = float("-inf")
                    barrier.abort()
            metrics_after = _sync_metrics(server.url, server.ca_pem)
            measured = [(d.latencies_ms, d.errors, d.sessions, d.pushed) for d in fleet]
            _log(f"capacity probe: the same devices with no pause, {SATURATION_SECONDS:g} s")
            saturated = _saturation(fleet, SATURATION_SECONDS)
            for d, (lat, errs, ses, pushed_) in zip(fleet, measured, strict=True):
                d.latencies_ms, d.errors, d.sessions, d.pushed = lat, errs, ses, pushed_
            server_alive = server.process.poll() is None

            _log("final round: every device syncs, twice over")
            final_errors: list[str] = []
            for pass_ in (1, 2):
                for d in fleet:
                    try:
                        d.session()
                    except Exception as exc:
                        final_errors.append(
                            f"final pass {pass_} device {d.index}: {type(exc).__name__}: {exc}"
                        )
            diverged: list[str] = []
            server_vv: dict[str, int] = {}
            for d in fleet:
                try:
                    server_vv = d.server_vector()
                    mine = d.vector()
                except Exception as exc:
                    diverged.append(f"device {d.index}: {type(exc).__name__}: {exc}")
                    continue
                if mine != server_vv:
                    missing = sum(max(0, s - mine.get(o, 0)) for o, s in server_vv.items())
                    extra = sum(max(0, s - server_vv.get(o, 0)) for o, s in mine.items())
                    diverged.append(
                        f"device {d.index}: lacks {missing} of the server's ops, "
                        f"holds {extra} the server lacks"
                    )
            patients_per_device = {d.ws.records.count_patients() for d in fleet}
        finally:
            for d in fleet:
                with contextlib.suppress(Exception):
                    d.close()
        server_log_tail = server.log_tail(5) if not server_alive else None

    latencies = sorted(x for d in fleet for x in d.latencies_ms)
    load_errors = [e for d in fleet for e in d.errors]
    errors = load_errors + saturated.pop("error_messages") + final_errors
    if not server_alive:
        errors.append(f"the server process died during the load: {server_log_tail}")
    window = cpu_end.wall - cpu_start.wall
    sessions = sum(d.sessions for d in fleet)
    pushed = sum(d.pushed for d in fleet)
    p99 = _percentile(latencies, 99)
    server_side = _server_side(metrics_before, metrics_after)
    converged = not diverged and not final_errors
    return {
        "what": f"{devices} simulated workstations (real replicas, own enrollment codes) each "
        "looping 'small local edit, then one sync session over HTTPS' with no think time "
        f"against one careline-server process for {seconds:g} s; then a final sync round "
        "and a convergence check",
        "store": STORE,
        "server": "python -m core.cli.server run (uvicorn, one process, TLS with the "
        "generated certificate pinned), separate process from the load generator",
        "load_generator": f"this process: {devices} threads, one per device, each with its "
        "own SQLCipher replica and HTTPS connection",
        "code": code_version,
        "devices": devices,
        "seconds": seconds,
        "setup_s": {"admin_cli": round(admin_s, 1), "enroll_devices": round(enroll_s, 1)},
        "single_device_idle": idle,
        "sessions": sessions,
        "sessions_per_s": round(sessions / window, 1),
        "ops_pushed": pushed,
        "ops_per_s": round(pushed / window, 1),
        "ops_pulled": sum(d.pulled for d in fleet),
        "local_edits": sum(d.edits for d in fleet) - edits_before,
        "session_latency_ms": {
            "p50": _percentile(latencies, 50),
            "p95": _percentile(latencies, 95),
            "p99": p99,
            "max": round(latencies[-1], 2) if latencies else None,
            "mean": round(statistics.fmean(latencies), 2) if latencies else None,
        },
        "load_model": f"paced: each device makes a change and syncs every {PACE_S:g} s "
        f"(from a random phase), i.e. {devices / PACE_S:g} change+sync sessions/s offered; a "
        "session that overruns its slot starts the next at once",
        "saturation_probe": saturated,
        "sessions_per_device": {
            "min": min(d.sessions for d in fleet),
            "max": max(d.sessions for d in fleet),
        },
        "errors": len(errors),
        "error_messages": errors[:MAX_ERROR_MESSAGES],
        "converged": converged,
        "converged_devices": devices - len(diverged),
        "divergence": diverged[:MAX_ERROR_MESSAGES],
        "server_version_vector_origins": len(server_vv),
        "server_ops_total": sum(server_vv.values()),
        "patients_per_device": sorted(patients_per_device),
        "server_side_sync_request": server_side,
        "cpu": _cpu_split(
            cpu_start, cpu_end, devices, server_pid, sessions, server_side["requests"]
        ),
        "machine_busy_before_load": busy_before,
        "loadavg_at_end": list(os.getloadavg()),
        "targets": {
            "errors": {"target": "0 errors", "value": len(errors), "met": not errors},
            "p99_session_ms": {
                "target": f"p99 session latency under {P99_TARGET_MS:g} ms",
                "value": p99,
                "limit": P99_TARGET_MS,
                "met": p99 is not None and p99 < P99_TARGET_MS,
            },
            "converged": {
                "target": "every device's version vector equals the server's",
                "value": devices - len(diverged),
                "limit": devices,
                "met": converged,
            },
        },
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEVICES
    s = float(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_SECONDS
    print(json.dumps(run(n, s), indent=2))
