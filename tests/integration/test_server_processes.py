"""Two real ``careline-server run`` processes serving the same data dir (and so the same
tenants, registry and replicas), started at the same moment on a fresh data dir; four
workstations push to them alternately and concurrently. Afterwards every op is in each
clinic's server replica exactly once, and the workstations converge. Everything runs twice:
on the embedded SQLCipher store, and with both processes on one PostgreSQL database."""

from __future__ import annotations

import os
import random
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.records.workstation import Workstation
from core.server.settings import SERVER_SCHEMA
from core.store.oplog import version_vector
from core.sync.enroll import ServerCredential, enroll, tls_trust
from tests.integration.server_fixtures import (
    add_clinic,
    check_replica,
    join_clinic,
    make_server,
    sync_at,
)
from tests.services import create_postgres_database, drop_postgres_database, free_port

REPO = Path(__file__).resolve().parents[2]
PUSH_SECONDS = 4.0
WORKSTATIONS = 4


@dataclass
class Servers:
    """The two server processes over one data dir."""

    data: Path
    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]
    ca_pem: str = ""
    env: dict[str, str] = field(default_factory=dict)  # server settings of the admin view

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for log in self.logs)


def _server_env() -> dict[str, str]:
    """This environment without any server setting (the embedded defaults apply)."""
    names = {s.env for s in SERVER_SCHEMA}
    return {k: v for k, v in os.environ.items() if k not in names}


def _wait_ready(servers: Servers, timeout: float = 30) -> None:
    cert = servers.data / "tls" / "server.pem"
    deadline = time.monotonic() + timeout
    pending = set(range(len(servers.urls)))
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"servers did not start:\n{servers.log_text()}")
        for i in sorted(pending):
            if servers.processes[i].poll() is not None:
                raise RuntimeError(f"server {i} exited early:\n{servers.log_text()}")
            if not cert.exists():
                continue
            try:
                trust = ssl.create_default_context(cafile=str(cert))
                reply = httpx.get(servers.urls[i] + "/ready", verify=trust, timeout=2)
            except (httpx.HTTPError, ssl.SSLError, OSError):
                continue  # not listening yet, or the certificate is still being written
            if reply.status_code == 200:
                pending.discard(i)
        time.sleep(0.1)
    servers.ca_pem = cert.read_text()


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """Both processes started together on an empty data dir (and, for "postgres", an empty
    database): they race to create the registry, its key, the schema and the TLS
    certificate, and must agree on all of them."""
    root = tmp_path_factory.mktemp("two-servers")
    data = root / "server"
    ports = [free_port(), free_port()]
    logs = [root / f"server-{port}.log" for port in ports]
    processes = []
    env = _server_env()
    url = create_postgres_database() if request.param == "postgres" else None
    if url:
        env["DATABASE_URL"] = url
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "core.cli.server",
                        "--data-dir",
                        str(data),
                        "run",
                        "--port",
                        str(port),
                    ],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    running = Servers(data, [f"https://127.0.0.1:{p}" for p in ports], processes, logs)
    running.env = {"DATABASE_URL": url} if url else {}
    try:
        _wait_ready(running)
        yield running
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if url:
            drop_postgres_database(url)


@dataclass
class Desk:
    """One workstation and what it did."""

    number: int
    clinic: str
    ws: Workstation
    credential: ServerCredential
    own_patients: set[str] = field(default_factory=set)
    sessions: int = 0
    error: BaseException | None = None


def _work(desk: Desk, urls: list[str], start: threading.Barrier, until: float) -> None:
    """Add patients, edit others' patients, and sync, alternating between the servers."""
    rng = random.Random(desk.number)
    try:
        start.wait()
        while time.monotonic() < until:
            records = desk.ws.records
            patient = records.add_patient(f"Desk{desk.number}", f"N{desk.sessions}", "1990-01-01")
            desk.own_patients.add(patient.id)
            others = [p.id for p in records.list_patients(1000) if p.id not in desk.own_patients]
            if others:  # builds on other workstations' ops: cross-origin dependencies
                phone = f"555-{desk.number}{desk.sessions:04d}"
                records.update_patient(rng.choice(others), {"phone": phone})
            sync_at(desk.ws, desk.credential, urls[(desk.number + desk.sessions) % len(urls)])
            desk.sessions += 1
    except BaseException as exc:  # reported by the test
        desk.error = exc


def test_two_processes_serve_one_data_dir_under_concurrent_pushes(
    servers: Servers, tmp_path: Path, no_keyring: None
) -> None:
    admin = make_server(servers.data, servers.env)  # a third process's view: the admin CLI
    try:
        clinics = [add_clinic(admin, "Twin North"), add_clinic(admin, "Twin South")]
        desks = []
        for n in range(WORKSTATIONS):
            clinic, url = clinics[n % 2], servers.urls[n % 2]
            ws, credential = join_clinic(
                admin, url, servers.ca_pem, clinic, tmp_path / f"ws{n}", f"desk {n}"
            )
            desks.append(Desk(n, clinic, ws, credential))

        start = threading.Barrier(len(desks))
        until = time.monotonic() + PUSH_SECONDS
        threads = [
            threading.Thread(target=_work, args=(d, servers.urls, start, until)) for d in desks
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for desk in desks:
            assert desk.error is None, f"desk {desk.number}: {desk.error!r}\n{servers.log_text()}"
            assert desk.sessions >= 3, desk.sessions

        # A final round (twice: the first pass carries the last pushes to everyone).
        for _ in range(2):
            for desk in desks:
                sync_at(desk.ws, desk.credential, servers.urls[desk.number % 2])

        for clinic in clinics:
            members = [d for d in desks if d.clinic == clinic]
            vv = check_replica(admin, clinic, [d.ws for d in members])
            states = []
            for desk in members:
                assert version_vector(desk.ws.database) == vv
                records = desk.ws.records
                rows = records.list_patients(10_000)
                states.append({p.id: records.get_patient(p.id).phone for p in rows})
                assert desk.own_patients <= set(states[-1])
            assert all(state == states[0] for state in states[1:])
            assert len(states[0]) == sum(len(d.own_patients) for d in members)
        assert all(r["ok"] for r in admin.audit_report().values())
        assert all(p.poll() is None for p in servers.processes), servers.log_text()
        for desk in desks:
            desk.ws.lock()
    finally:
        admin.close()


@pytest.mark.parametrize("attempt", range(3))
def test_first_attachments_at_both_processes_at_once_share_one_key(
    servers: Servers, attempt: int
) -> None:
    """Each clinic's attachment keys are made on first use: two processes doing that at the
    same moment must end up with one key, or one upload would never decrypt again."""
    admin = make_server(servers.data, servers.env)
    try:
        clinics = [add_clinic(admin, f"Race {attempt}-{i}") for i in range(8)]
        tokens = {}
        for clinic in clinics:
            code, _ = admin.registry.issue_enroll_code(clinic, 10)
            tokens[clinic] = enroll(servers.urls[0], code, servers.ca_pem, "uploader").token
    finally:
        admin.close()

    trust = tls_trust(servers.ca_pem)
    uploads: dict[tuple[str, int], str] = {}
    errors: list[str] = []
    # A timeout, so that one thread failing before the barrier fails the test instead of
    # leaving the others waiting for ever.
    barrier = threading.Barrier(2 * len(clinics), timeout=60)

    def upload(clinic: str, side: int) -> None:
        try:
            _upload(clinic, side)
        except Exception as exc:  # reported by the test, never a silent hang
            barrier.abort()
            errors.append(f"{clinic}@{side}: {exc!r}")

    def _connect(client: httpx.Client, side: int) -> None:
        # Connected (TLS done) before the barrier, so the uploads start together. Sixteen
        # handshakes at once on two busy processes: a refused or reset one is tried again.
        for attempt in range(5):
            try:
                client.get(servers.urls[side] + "/health")
                return
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(0.2)

    def _upload(clinic: str, side: int) -> None:
        body = f"{clinic} via server {side}".encode() * 100
        with httpx.Client(verify=trust, timeout=30) as client:
            _connect(client, side)
            barrier.wait()
            reply = client.post(
                servers.urls[side] + "/v1/attachments",
                content=body,
                headers={
                    "Authorization": f"Bearer {tokens[clinic]}",
                    "Content-Type": "application/octet-stream",
                },
            )
        if reply.status_code != 201:
            errors.append(f"{clinic}@{side}: {reply.status_code} {reply.text[:200]}")
        else:
            uploads[clinic, side] = reply.json()["id"]

    threads = [
        threading.Thread(target=upload, args=(clinic, side))
        for clinic in clinics
        for side in (0, 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [], errors

    with httpx.Client(verify=trust, timeout=30) as client:
        for (clinic, side), blob_id in uploads.items():
            expected = f"{clinic} via server {side}".encode() * 100
            for url in servers.urls:  # each process reads what either one wrote
                reply = client.get(
                    f"{url}/v1/attachments/{blob_id}",
                    headers={"Authorization": f"Bearer {tokens[clinic]}"},
                )
                assert reply.status_code == 200, (clinic, side, url, reply.text[:200])
                assert reply.content == expected


# Imports done, each process waits for one file to appear, then runs the real CLI: the
# processes reach the registry within a millisecond of each other.
_AT_THE_SIGNAL = """
import os, sys, time
import core.cli.server as cli
import core.keys.providers.local
open(sys.argv[1] + f".{os.getpid()}", "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.0005)
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
def test_processes_starting_together_on_a_fresh_data_dir_agree_on_one_registry(
    tmp_path: Path, backend: str
) -> None:
    """The first process to start creates the registry and its key (or the PostgreSQL
    schema); others starting at the same moment must open that one, never make their own
    (the registry would then be encrypted under a key no file names, and lost)."""
    env = _server_env()
    for attempt in range(3):
        if backend == "postgres":
            env["DATABASE_URL"] = create_postgres_database()
        data = tmp_path / f"fresh{attempt}"
        signal = tmp_path / f"go{attempt}"
        starters = [
            subprocess.Popen(
                [sys.executable, "-c", _AT_THE_SIGNAL, str(signal),
                 "--data-dir", str(data), "admin", "init"],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while len(list(tmp_path.glob(f"go{attempt}.*"))) < len(starters):
                assert time.monotonic() < deadline, "the processes did not get ready"
                assert all(p.poll() is None for p in starters), "a process exited early"
                time.sleep(0.01)
            signal.touch()
            results = [starter.communicate(timeout=60) for starter in starters]
        finally:
            for starter in starters:
                if starter.poll() is None:
                    starter.kill()
                starter.communicate()
        for starter, (_, err) in zip(starters, results, strict=True):
            assert starter.returncode == 0, err.decode()
        listed = subprocess.run(
            [sys.executable, "-m", "core.cli.server", "--data-dir", str(data),
             "admin", "clinic", "list"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert listed.stdout.strip() == "No clinics.", listed.stderr
        again = subprocess.run(
            [sys.executable, "-m", "core.cli.server", "--data-dir", str(data),
             "admin", "clinic", "create", "After Race"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        if backend == "postgres":
            drop_postgres_database(env["DATABASE_URL"])
