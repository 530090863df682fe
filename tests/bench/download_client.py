"""A new workstation's first download, in a process of its own, for the scale and peer
benchmarks (``tests/bench/scale_bench.py``, ``tests/bench/peer_bench.py``).

Its own process, so that the peak memory measured (``VmHWM``) is this workstation's alone,
as it would be on a clinic's computer. The parent side:

* :func:`seed_clinic` / :func:`grow_clinic`: a clinic on a ``careline-server`` data folder,
  its patients written in bulk straight into the server's replica (``bulk_seed``: the rows
  the desktop benchmark's writer makes, signed ops included), before the server starts;
* :func:`run_client`: this module as a child (``python -m tests.bench.download_client``),
  given a :class:`ClientSpec` as JSON on stdin, its figures as JSON on stdout.

The child enrolls with the running server (TLS pinned), runs its first sync session (the
time and the RSS after every snapshot page), signs in, times the patient search the app's
list makes (``search_patients``, a page of 200), settles one sync, then ``edits`` times
changes one patient and times the sync session that carries it to the server. Last, the
bytes of its data folder once locked.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.crypto.kdf import FAST_PARAMS
from core.keys.providers import provider_from_settings
from core.server.service import ClinicServer
from core.server.settings import load_server_settings

# The desktop benchmark's throwaway password and patients (written here in bulk by
# bulk_seed: the same rows as its one-write-per-patient writer, far faster).
from .bulk_seed import bulk_patients
from .desktop_sync_bench import PASSWORD
from .server_bench import _proc_cpu_s

ROOT = Path(__file__).resolve().parents[2]
SEARCH_PAGE = 200  # the patient list's page (app/patients/list_page.py PAGE_SIZE)
SEARCH_REPEATS = 15
CODE_TTL_MINUTES = 24 * 60  # a 1,000,000-record run takes a while under load
CLIENT_TIMEOUT_S = 4 * 3600


def _server(data_dir: Path) -> ClinicServer:
    settings = load_server_settings(cli={"data_dir": data_dir}, env={})
    return ClinicServer(data_dir, provider_from_settings(settings, data_dir), FAST_PARAMS)


def seed_clinic(data_dir: Path, name: str = "Scale Bench Clinic") -> str:
    """A new clinic with the ``admin`` account on a server data folder; its id."""
    server = _server(data_dir)
    try:
        clinic = server.create_clinic(name).id
        server.add_user(clinic, "admin", "Ada Admin", "admin", PASSWORD)
    finally:
        server.close()
    return clinic


def grow_clinic(data_dir: Path, clinic: str, start: int, count: int, devices: int = 1) -> Any:
    """Patients ``start`` .. ``start + count - 1`` written into the server's replica (the
    server must not be running), and an enrollment code for ``devices`` workstations.
    Returns ``(code, seconds the writing took)``."""
    server = _server(data_dir)
    try:
        t0 = time.perf_counter()
        bulk_patients(server.replica(clinic), count, start)
        seconds = time.perf_counter() - t0
        code, _ = server.registry.issue_enroll_code(clinic, CODE_TTL_MINUTES, devices)
    finally:
        server.close()
    return code, seconds


@dataclass
class ClientSpec:
    """What the child does (JSON on its stdin)."""

    url: str
    ca_pem: str
    code: str
    folder: str
    name: str = "bench desk"
    edits: int = 15
    queries: list[str] = field(default_factory=list)
    edited_patient: str = "p0000000"
    server_pid: int | None = None  # to read the server's CPU time over the download


def run_client(spec: ClientSpec) -> dict[str, Any]:
    """The child's figures; a clear error with its output when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.download_client"],
        input=json.dumps(asdict(spec)),
        stdout=subprocess.PIPE,
        stderr=None,  # its progress lines go straight to ours
        text=True,
        cwd=ROOT,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the download client exited with {done.returncode}: {done.stdout[-2000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def proc_status_kb(pid: int | str, key: str) -> int | None:
    """A ``/proc/PID/status`` figure in kB (``VmRSS``, ``VmHWM``: the peak); None when the
    process is gone or the system has no /proc."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ----- the child ------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[download-client] {message}", file=sys.stderr, flush=True)


def _peak_kb() -> int:
    """This process's peak RSS so far (VmHWM; ru_maxrss where there is no /proc)."""
    found = proc_status_kb("self", "VmHWM")
    return found if found is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu_s(pid: int | None) -> float:
    return _proc_cpu_s(pid) if pid else 0.0


def _client(spec: ClientSpec) -> dict[str, Any]:
    import keyring
    import keyring.backends.fail

    from core.records import op_trust
    from core.records.workstation import Workstation
    from core.sync.enroll import adopt_credential, enroll, tls_trust
    from core.sync.http_transport import HttpTransport
    from core.sync.session import SyncReport, sync

    # No OS keyring in a benchmark: the workstation opens with the password slot.
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    folder = Path(spec.folder)
    ws = Workstation(folder, FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    credential = enroll(
        spec.url, spec.code, spec.ca_pem, spec.name, op_trust.binding_for(ws.database)
    )
    adopt_credential(ws.database, credential, "admin")
    transport = HttpTransport(
        credential.server_url, credential.token, verify=tls_trust(credential.server_ca_pem)
    )
    pages: list[tuple[int, int]] = []  # (records so far, VmRSS kB) after each page

    def progress(report: SyncReport) -> None:
        rss = proc_status_kb("self", "VmRSS") or 0
        pages.append((report.snapshot_records + report.pulled, rss))

    try:
        rss_before = proc_status_kb("self", "VmRSS")
        server_cpu = _server_cpu_s(spec.server_pid)
        cpu = _cpu_s()
        t0 = time.perf_counter()
        report = sync(ws.database, transport, "admin", on_progress=progress)
        seconds = time.perf_counter() - t0
        cpu = _cpu_s() - cpu
        server_cpu = _server_cpu_s(spec.server_pid) - server_cpu
        peak_download = _peak_kb()
        received = report.snapshot_records + report.pulled
        _log(f"first download: {received:,} records in {seconds:.1f} s")
        ws.lock()
        ws.sign_in("admin", PASSWORD)
        records = ws.records
        patients = records.count_patients()
        searches: dict[str, Any] = {}
        for text in spec.queries:
            times, found = [], 0
            for _ in range(SEARCH_REPEATS):
                s0 = time.perf_counter()
                found = len(records.search_patients(text, limit=SEARCH_PAGE))
                times.append(time.perf_counter() - s0)
            searches[text] = {"median_ms": round(statistics.median(times) * 1000, 2),
                              "max_ms": round(max(times) * 1000, 2), "shown": found}  # fmt: skip
        sync(ws.database, transport, "admin")  # settle (the first push after a download)
        incremental: list[float] = []
        for i in range(spec.edits):
            records.update_patient(spec.edited_patient, {"given": f"G{i}"})
            s0 = time.perf_counter()
            pushed = sync(ws.database, transport, "admin").pushed
            incremental.append((time.perf_counter() - s0) * 1000)
            if pushed != 1:
                raise RuntimeError(f"an edit's sync pushed {pushed} ops, not 1")
    finally:
        transport.close()
        ws.lock()
    return {
        "seconds": round(seconds, 2),
        "records_received": received,
        "snapshot_image": report.snapshot_image,
        "records_per_s": round(received / seconds),
        # CPU seconds over the download, this process's and the server's: what the work
        # costs, which the machine's load moves far less than the wall time.
        "cpu_s": round(cpu, 2),
        "server_cpu_s": round(server_cpu, 2) if spec.server_pid else None,
        "patients_on_workstation": patients,
        "rss_before_download_kb": rss_before,
        "peak_rss_download_kb": peak_download,
        "peak_rss_kb": _peak_kb(),
        # A handful of the per-page samples (first, quartiles, last) show the curve.
        "rss_by_page_kb": [pages[int(q * (len(pages) - 1))] for q in (0, 0.25, 0.5, 0.75, 1)]
        if pages
        else [],
        "search": searches,
        "incremental_ms": [round(t, 2) for t in incremental],
        "incremental_median_ms": round(statistics.median(incremental), 2) if incremental else None,
        "disk_bytes": folder_bytes(folder),
    }


def main() -> int:
    """Child entry point: a :class:`ClientSpec` on stdin, one JSON line on stdout."""
    spec = ClientSpec(**json.load(sys.stdin))
    print(json.dumps(_client(spec)), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
