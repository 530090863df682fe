"""Scale-out as it is meant to run (installers/README.md, "Scale-out"): three stateless
``careline-server run`` processes, each with its own data folder, sharing one PostgreSQL
database, one S3 store (moto), one master key and one TLS certificate, behind HAProxy (the shipped
installers/scale-out/haproxy.cfg: TCP pass-through, round robin, /health checks).
Workstations sync through the load balancer; a server process dies in the middle of a large
push, another in the middle of a large pull, and the workstations carry on through the
processes left: each session completes after a retry, and every op is held once."""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from core.crypto import certs
from core.records.replication import replica_id
from core.records.workstation import Workstation
from core.store.oplog import version_vector
from core.sync import attachments_client
from core.sync.backoff import backoff
from core.sync.enroll import ServerCredential, tls_trust
from core.sync.http_transport import HttpTransport
from core.sync.session import SyncError, SyncReport, SyncSession
from core.sync.transport import TransportError
from tests.integration.server_fixtures import add_clinic, check_replica, join_clinic, make_server
from tests.integration.server_process import REPO, ServerProcess
from tests.services import (
    Service,
    create_postgres_database,
    drop_postgres_database,
    free_port,
)

HAPROXY_CFG = REPO / "installers" / "scale-out" / "haproxy.cfg"
PATIENTS = 150
BATCH = 30  # small batches: a session of many requests, so a process can die mid-way

pytestmark = [
    pytest.mark.skipif(
        shutil.which("haproxy") is None and not os.environ.get("CARELINE_REQUIRE_INSTALLER_TOOLS"),
        reason="haproxy is not installed (Debian package haproxy; .ci/run installs it)",
    ),
    pytest.mark.slow,
]


@dataclass
class Cluster:
    """The server processes, the load balancer in front, and what they share."""

    servers: list[ServerProcess]
    lb_url: str
    stats_port: int
    ca_pem: str
    env: dict[str, str]

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's ``show stat`` for the backend's servers, by name."""
        with socket.create_connection(("127.0.0.1", self.stats_port), timeout=5) as sock:
            sock.sendall(b"show stat\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        rows = csv.DictReader(raw.decode().lstrip("# ").splitlines())
        return {
            r["svname"]: r for r in rows
            if r["pxname"] == "careline_servers" and r["svname"] != "BACKEND"
        }  # fmt: skip

    def serving(self) -> ServerProcess:
        """The one process holding a connection now (a single workstation is connected)."""
        busy = [name for name, row in self.stats().items() if int(row["scur"] or 0) > 0]
        assert len(busy) == 1, self.stats()
        return self.servers[int(busy[0].removeprefix("careline"))]


# HAProxy reaches the servers from this address (as from a host of its own), the one
# their PROXY_PROTOCOL_FROM names: the tests' own direct connections, from 127.0.0.1,
# are then ordinary clients, not a balancer owing a PROXY header.
BALANCER_SOURCE = "127.0.0.2"


def haproxy_config(lb_port: int, stats_port: int, ca_file: Path, ports: list[int]) -> str:
    """The shipped configuration, pointed at this test's ports and certificate, connecting
    to the servers from BALANCER_SOURCE."""
    text = HAPROXY_CFG.read_text()
    text = text.replace("default-server ", f"default-server source {BALANCER_SOURCE} ")
    text = text.replace("ipv4@127.0.0.1:9999", f"ipv4@127.0.0.1:{stats_port}")
    text = text.replace("bind *:8443", f"bind 127.0.0.1:{lb_port}")
    text = text.replace("/etc/careline/tls/server.pem", str(ca_file))
    # Faster checks than in production, so the test does not wait for them.
    text = text.replace("inter 2s fall 2 rise 2", "inter 300ms fall 1 rise 1")
    text = text.replace("log stdout format raw local0 info", "")
    shipped = re.findall(r"^    server .*$", text, flags=re.MULTILINE)
    assert len(shipped) == 3, shipped
    servers = "\n".join(f"    server careline{i} 127.0.0.1:{p}" for i, p in enumerate(ports))
    return text.replace("\n".join(shipped), servers)


def _shared(moto: Service) -> dict[str, str]:
    """A new PostgreSQL database and S3 bucket, and the environment that points server
    processes at them with one master key."""
    url = create_postgres_database()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    bucket = f"careline-scale-{secrets.token_hex(6)}"
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    s3.close()
    return {
        "DATABASE_URL": url, "MASTER_ENCRYPTION_KEY": key,
        "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": moto.url,
        "AWS_REGION": "us-east-1", "PROXY_PROTOCOL_FROM": BALANCER_SOURCE,
        # moto's dummy credentials, for boto3 in each process (not Careline settings).
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    }  # fmt: skip


def nodes(tmp_path: Path, env: dict[str, str], count: int) -> tuple[list[ServerProcess], str]:
    """``count`` server processes (not started) on ``env``, with one TLS certificate
    (returned, PEM) copied into each data folder, where the server looks for it."""
    key_pem, cert_pem = certs.self_signed_server(["127.0.0.1", "localhost"])
    servers = []
    for i in range(count):
        tls = tmp_path / f"node{i}" / "data" / "tls"
        tls.mkdir(parents=True)
        (tls / "server.key").write_bytes(key_pem)
        (tls / "server.key").chmod(0o600)
        (tls / "server.pem").write_text(cert_pem)
        servers.append(ServerProcess(tls.parent, free_port(), env=env))
    return servers, cert_pem


@contextmanager
def haproxy_in_front(
    tmp_path: Path, servers: list[ServerProcess], cert_pem: str, env: dict[str, str]
) -> Iterator[Cluster]:
    """HAProxy with the shipped configuration in front of ``servers`` (started here, and
    stopped with it), once it sees every one of them up."""
    lb_port, stats_port = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(cert_pem)
    config.write_text(haproxy_config(lb_port, stats_port, ca_file, [s.port for s in servers]))
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lb_log = (tmp_path / "haproxy.log").open("wb")
    balancer = None
    try:
        for server in servers:
            server.start()
        balancer = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)], stdout=lb_log, stderr=subprocess.STDOUT
        )
        running = Cluster(servers, f"https://127.0.0.1:{lb_port}", stats_port, cert_pem, env)
        deadline = time.monotonic() + 20
        while not all(r["status"] == "UP" for r in _stats_or_empty(running).values()):
            assert balancer.poll() is None, (tmp_path / "haproxy.log").read_text()
            assert time.monotonic() < deadline, _stats_or_empty(running)
            time.sleep(0.1)
        yield running
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(timeout=10)
        lb_log.close()
        for server in servers:
            server.stop()


@pytest.fixture
def cluster(tmp_path: Path, moto: Service) -> Iterator[Cluster]:
    # What the processes share: the database, the attachment store, the master key and the
    # TLS certificate.
    env = _shared(moto)
    servers, cert_pem = nodes(tmp_path, env, 3)
    try:
        with haproxy_in_front(tmp_path, servers, cert_pem, env) as running:
            yield running
    finally:
        drop_postgres_database(env["DATABASE_URL"])


def _stats_or_empty(cluster: Cluster) -> dict[str, dict[str, str]]:
    try:
        stats = cluster.stats()
    except OSError:
        return {"haproxy": {"status": "starting"}}
    return stats or {"haproxy": {"status": "no servers"}}


class DyingServer:
    """The workstation's real HTTPS transport; on request number ``at``, the server
    process holding its connection freezes with the request in flight, then dies."""

    def __init__(self, inner: HttpTransport, cluster: Cluster, at: int) -> None:
        self.inner, self.cluster, self.at = inner, cluster, at
        self.requests = 0
        self.victim: ServerProcess | None = None

    def request(self, message: bytes) -> bytes:
        self.requests += 1
        if self.requests == self.at:
            self.victim = victim = self.cluster.serving()
            assert victim.process is not None
            victim.process.send_signal(signal.SIGSTOP)  # the request reaches it, unanswered
            threading.Timer(0.3, victim.kill).start()
        return self.inner.request(message)

    def close(self) -> None:
        self.inner.close()


def _sync_until_done(ws: Workstation, transport: DyingServer) -> tuple[SyncReport, int]:
    """Sync as the app does: on a failure, back off (the app's rule, shorter delays) and
    run the session again over the same transport. Returns the last report and how many
    sessions failed."""
    rng = random.Random(7)
    for failures in range(6):
        try:
            session = SyncSession(ws.database, transport, "admin", batch=BATCH,
                                  clock_reference=True)  # fmt: skip
            return session.run(), failures
        except (TransportError, SyncError):
            time.sleep(backoff(failures + 1, 0.2, 2.0, rng))
    raise AssertionError("sync did not complete after 5 retries")


def _transport(credential: ServerCredential, cluster: Cluster, at: int) -> DyingServer:
    inner = HttpTransport(credential.server_url, credential.token,
                          verify=tls_trust(credential.server_ca_pem))  # fmt: skip
    return DyingServer(inner, cluster, at)


def _patients(ws: Workstation) -> dict[str, tuple[str, str]]:
    return {p.id: (p.family, p.given) for p in ws.records.list_patients(10_000)}


def test_workstations_carry_on_through_another_process_when_one_dies_mid_sync(
    cluster: Cluster, tmp_path: Path, no_keyring: None
) -> None:
    started = time.monotonic()
    # The processes share one registry: any of them serves what the admin set up.
    admin = make_server(tmp_path / "admin", cluster.env)
    try:
        clinic = add_clinic(admin, "Scaled Clinic")
        a, cred_a = join_clinic(admin, cluster.lb_url, cluster.ca_pem, clinic, tmp_path / "a", "a")
        b, cred_b = join_clinic(admin, cluster.lb_url, cluster.ca_pem, clinic, tmp_path / "b", "b")
        assert cred_a.server_url == cluster.lb_url

        # An attachment uploaded through the load balancer is there for every process.
        scan = tmp_path / "scan.pdf"
        scan.write_bytes(secrets.token_bytes(200_000))
        blob = attachments_client.upload(cred_a, scan)
        for server in cluster.servers:
            direct = dataclasses.replace(cred_a, server_url=server.url)
            attachments_client.download(direct, blob, tmp_path / "copy.pdf")
            assert (tmp_path / "copy.pdf").read_bytes() == scan.read_bytes(), server.url
        for n in range(PATIENTS):
            a.records.add_patient("Scale", f"Patient {n:03d}", "1970-01-01")
        made = version_vector(a.database)[replica_id(a.database)]

        # A large push; the process serving it dies at its third request.
        push = _transport(cred_a, cluster, at=3)
        try:
            report, failed = _sync_until_done(a, push)
        finally:
            push.close()
        assert push.victim is not None and push.victim.process is not None
        assert push.victim.process.returncode == -signal.SIGKILL
        assert failed == 1, "the session in flight failed once, then the retry completed"
        assert admin.sync_store(clinic).version_vector()[replica_id(a.database)] == made

        # A large pull (and a small push); another process dies at the pull's third
        # request: one is left.
        for n in range(3):
            b.records.add_patient("Desk B", f"Patient {n}", "1980-01-01")
        pull = _transport(cred_b, cluster, at=3)
        try:
            report, failed = _sync_until_done(b, pull)
        finally:
            pull.close()
        assert pull.victim is not None and pull.victim is not push.victim
        assert failed == 1
        assert report.pulled > 0

        # HAProxy's health checks took both dead processes out; the survivor serves all.
        deadline = time.monotonic() + 10
        while sorted(r["status"] for r in cluster.stats().values()) != ["DOWN", "DOWN", "UP"]:
            assert time.monotonic() < deadline, cluster.stats()
            time.sleep(0.1)
        for ws, cred in ((a, cred_a), (b, cred_b)):
            final = _transport(cred, cluster, at=0)
            try:
                assert _sync_until_done(ws, final)[1] == 0
            finally:
                final.close()

        # Nothing lost, nothing twice: the server holds each op once, with no gap, and both
        # workstations hold the same ops and the same patients, all of them.
        vv = check_replica(admin, clinic, [a, b])
        assert version_vector(a.database) == version_vector(b.database) == vv
        assert _patients(a) == _patients(b)
        scaled = [name for name in _patients(a).values() if name[0] == "Scale"]
        assert sorted(scaled) == [("Scale", f"Patient {n:03d}") for n in range(PATIENTS)]
        assert sum(name[0] == "Desk B" for name in _patients(a).values()) == 3
        a.lock()
        b.lock()
    finally:
        admin.close()
    assert time.monotonic() - started < 60


class _Cut(Exception):
    """The connection drops mid-upload."""


@pytest.fixture
def two_nodes(tmp_path: Path, moto: Service) -> Iterator[Cluster]:
    """Two server processes on one PostgreSQL database and one S3 bucket, no balancer
    (tests address each directly; ``lb_url`` is the first)."""
    env = _shared(moto)
    servers, cert_pem = nodes(tmp_path, env, 2)
    try:
        for server in servers:
            server.start()
        yield Cluster(servers, servers[0].url, 0, cert_pem, env)
    finally:
        for server in servers:
            server.stop()
        drop_postgres_database(env["DATABASE_URL"])


def test_an_upload_resumed_on_another_process_restarts_cleanly(
    two_nodes: Cluster, tmp_path: Path, no_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partial uploads live on the disk of the process that received their start. A resume
    that reaches another process (as a load balancer may send it) is told to start again at
    byte 0, logged there as attachment.upload_restarted, and the client does so at once:
    the file is stored whole, in the shared S3 store, for every process."""
    from core.sync import blob_client
    from core.sync.attachments import Attachments

    admin = make_server(tmp_path / "admin", two_nodes.env)
    try:
        clinic = add_clinic(admin, "Scaled Clinic")
        a, cred = join_clinic(
            admin, two_nodes.lb_url, two_nodes.ca_pem, clinic, tmp_path / "a", "a"
        )
        node0, node1 = (dataclasses.replace(cred, server_url=s.url) for s in two_nodes.servers[:2])
        patient = a.records.add_patient("Scale", "Upload", "1970-01-01").id
        source = tmp_path / "scan.bin"
        source.write_bytes(secrets.token_bytes(6 * 1024 * 1024))
        item = Attachments(a.records, a.data_dir).add(patient, source, title="Scan")
        assert item.blob_id is not None
        blob = item.blob_id
        path = Attachments(a.records, a.data_dir).cache.path_for(blob)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()

        def cut(done: int, total: int) -> None:
            if done > 4 * 1024 * 1024:
                raise _Cut

        with pytest.raises(_Cut):
            blob_client.push(node0, blob, path, sha, cut)
        deadline = time.monotonic() + 10  # the cut-off request may still be being written
        while (held := blob_client.upload_offset(node0, blob)[0]) == 0:
            assert time.monotonic() < deadline, "node 0 kept nothing of the cut-off upload"
            time.sleep(0.1)
        assert 0 < held < path.stat().st_size
        assert blob_client.upload_offset(node1, blob) == (0, False)  # not shared

        # The client asks node 0 how far it got, and its PUT lands on node 1.
        state_on_node0 = blob_client.upload_state
        monkeypatch.setattr(blob_client, "upload_state", lambda _c, b: state_on_node0(node0, b))
        sent = blob_client.push(node1, blob, path, sha)
        assert sent == path.stat().st_size  # all of it again, from byte 0
        log = two_nodes.servers[1].log.read_text(errors="replace")
        [event] = [json.loads(x) for x in log.splitlines() if "upload_restarted" in x]
        assert event["message"] == "attachment.upload_restarted" and event["blob"] == blob
        assert (event["asked_offset"], event["held_offset"]) == (held, 0)
        monkeypatch.undo()
        for server in two_nodes.servers:
            direct = dataclasses.replace(cred, server_url=server.url)
            assert blob_client.upload_offset(direct, blob) == (0, True), server.url
            blob_client.fetch(direct, blob, tmp_path / "copy.bin", sha)  # checks the SHA-256
            (tmp_path / "copy.bin").unlink()
    finally:
        admin.close()
