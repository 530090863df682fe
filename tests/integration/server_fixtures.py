"""A live careline server for tests: real ClinicServer, real uvicorn over TLS, free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from core.cli.server import ensure_tls
from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.keys.providers import provider_from_settings
from core.records import op_trust
from core.records.replication import replica_id
from core.records.workstation import Workstation
from core.server.api import create_app
from core.server.service import ClinicServer
from core.server.settings import load_server_settings
from core.server.systemd_notify import NotifyingServer
from core.store import audit_chain
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync.attachments import Attachments
from core.sync.enroll import ServerCredential, adopt_credential, enroll, tls_trust
from core.sync.http_transport import HttpTransport
from core.sync.session import SyncReport, sync
from tests.attachment_content import as_named
from tests.conftest import PASSWORD
from tests.integration.server_process import ServerProcess
from tests.services import free_port


def make_server(data_dir: Path, env: Mapping[str, str] | None = None) -> ClinicServer:
    """A server on the embedded store; the local key provider unless ``env`` (server
    settings by their environment names, e.g. KMS_PROVIDER) names another."""
    settings = load_server_settings(cli={"data_dir": data_dir}, env=dict(env or {}))
    return ClinicServer(
        data_dir, provider_from_settings(settings, data_dir), FAST_PARAMS, settings=settings
    )


def _nothing() -> None:
    pass


@dataclass
class Live:
    """A running server: its URL, the CA to pin, and the service object; ``halt()`` stops
    serving at once (a server gone mid-session), the block's end closes it."""

    url: str
    ca_pem: str
    server: ClinicServer
    halt: Callable[[], None] = field(default=_nothing, repr=False, compare=False)


def _observed(app: Any, on_request: Callable[[dict[str, Any]], None]) -> Any:
    """``app`` (ASGI), calling ``on_request(scope)`` first for each HTTP request: its path,
    and ``client``, the address and port of the connection it came on."""

    async def observed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            on_request(scope)
        await app(scope, receive, send)

    return observed


@contextmanager
def live_server(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    on_request: Callable[[dict[str, Any]], None] | None = None,
    keep_alive_s: int | None = None,
    without_routes: Sequence[str] = (),
) -> Iterator[Live]:
    """Serve ``data_dir`` over HTTPS on 127.0.0.1 until the block ends.

    ``env``: server settings as for :func:`make_server`; ``port``: a fixed port (to restart
    a server where enrolled devices expect it), else a free one; ``on_request``: called
    with each HTTP request's ASGI scope (which connection it came on: ``scope["client"]``);
    ``keep_alive_s``: how long idle connections stay open (``careline-server run``'s
    SERVER_KEEPALIVE_S; by default uvicorn's 5 s); ``without_routes``: paths the server
    does not serve (404), as an older release that lacks them.
    """
    server = make_server(data_dir, env)
    cert, key = ensure_tls(data_dir, "127.0.0.1")
    port = free_port() if port is None else port
    app = create_app(server)
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in without_routes
    ]
    config = uvicorn.Config(
        app if on_request is None else _observed(app, on_request),
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=5 if keep_alive_s is None else keep_alive_s,  # 5: uvicorn's
    )
    web = NotifyingServer(config)  # as careline-server runs it (systemd told nothing here)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not web.started:
        if time.monotonic() > deadline or not thread.is_alive():
            web.should_exit = True
            server.close()
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)

    def halt() -> None:
        # Returns once nothing listens any more, without waiting for the server thread:
        # a client calling this from its own session still holds a TLS connection whose
        # close the server waits for.
        web.should_exit = True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.02)
        raise RuntimeError("the test server did not stop listening")

    try:
        yield Live(f"https://127.0.0.1:{port}", cert.read_text(), server, halt)
    finally:
        web.should_exit = True
        thread.join(timeout=20)
        server.close()


def add_clinic(server: ClinicServer, name: str) -> str:
    """A new clinic with an ``admin`` account (password PASSWORD); returns its id."""
    clinic = server.create_clinic(name)
    server.add_user(clinic.id, "admin", "Ada Admin", "admin", PASSWORD)
    return clinic.id


@contextmanager
def server_process_with_admin(
    data: Path, clinic_name: str
) -> Iterator[tuple[ServerProcess, ClinicServer, str]]:
    """A ``careline-server`` process on ``data`` holding one clinic, ``clinic_name``, added
    through this process's admin view of the same data (:func:`make_server`), until the
    block ends; the process, the admin view and the clinic id."""
    admin = make_server(data)
    clinic = add_clinic(admin, clinic_name)
    running = ServerProcess(data, free_port())
    running.start()
    try:
        yield running, admin, clinic
    finally:
        running.stop()
        admin.close()


def join_clinic(
    server: ClinicServer, url: str, ca_pem: str, clinic_id: str, folder: Path, name: str = "desk"
) -> tuple[Workstation, ServerCredential]:
    """A workstation enrolled in ``clinic_id`` at ``url``, synced and signed in as admin."""
    code, _ = server.registry.issue_enroll_code(clinic_id, 10)
    return enroll_desk(url, ca_pem, code, folder, name)


def clinic_device(server: ClinicServer, clinic_id: str, db: Database, name: str = "peer") -> None:
    """Make ``db`` a signing device of the clinic, its certificate issued by the clinic CA
    but unknown to the registry (as a LAN-paired workstation's is)."""
    ca_cert = server.registry.clinic(clinic_id).ca_cert
    ca_key = certs.load_private_key(server._ca_key_pem(clinic_id).encode("ascii"))
    key = certs.new_private_key()
    cert = certs.sign_device(
        ca_key, ca_cert, certs.make_csr(key, name, op_trust.binding_for(db)), name
    )
    op_trust.install_device(db, cert, certs.private_key_pem(key).decode("ascii"), ca_cert, name)


def enroll_desk(
    url: str, ca_pem: str, code: str, folder: Path, name: str = "desk"
) -> tuple[Workstation, ServerCredential]:
    """A workstation enrolled with ``code`` (from any server or its admin command) at
    ``url``, synced and signed in as admin."""
    ws = Workstation(folder, FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    credential = enroll(url, code, ca_pem, name, op_trust.binding_for(ws.database))
    adopt_credential(ws.database, credential, "admin")
    sync_at(ws, credential)
    ws.lock()
    ws.sign_in("admin", PASSWORD)
    return ws, credential


def sync_at(ws: Workstation, credential: ServerCredential, url: str | None = None) -> SyncReport:
    """One sync session with the server at ``url`` (default: where the device enrolled)."""
    transport = HttpTransport(
        url or credential.server_url, credential.token, verify=tls_trust(credential.server_ca_pem)
    )
    try:
        return sync(ws.database, transport, "admin", clock_reference=True)
    finally:
        transport.close()


def check_replica(admin: ClinicServer, clinic: str, desks: Sequence[Workstation]) -> dict[str, int]:
    """The server's replica of ``clinic`` holds every op each of ``desks`` made, each once,
    with no gap, and nothing else but the server's own ops; returns its version vector."""
    store = admin.sync_store(clinic)
    vv = store.version_vector()
    made = {replica_id(ws.database): version_vector(ws.database)[replica_id(ws.database)]
            for ws in desks}  # fmt: skip
    # Every op each workstation made, and nothing else beyond the server's own set-up ops.
    server_origins = set(vv) - set(made)
    assert len(server_origins) == 1, vv
    assert {o: s for o, s in vv.items() if o not in server_origins} == made
    held = store.ops_for({}, 1_000_000)
    assert len({(op.origin, op.seq) for op in held}) == len(held), "an op is stored twice"
    for origin, top in vv.items():
        assert sorted(op.seq for op in held if op.origin == origin) == list(range(1, top + 1))
    assert len(held) == sum(vv.values())
    return vv


def rewrite_audit_tail(ws: Workstation, seq: int) -> None:
    """What someone holding the database key could do: change entry ``seq`` and recompute
    every hash after it and the head, so the log is consistent again."""
    conn = ws.database._conn
    rows = ws.database.query(
        "SELECT seq, ts, actor, action, entity, entity_id, details, prev_hash FROM audit_log "
        "WHERE seq >= ? ORDER BY seq",
        (seq,),
    )
    prev = str(rows[0][7])
    for row in rows:
        actor = "someone-else" if row[0] == seq else row[2]
        entry = audit_chain.AuditEntry(row[0], row[1], actor, *row[3:7])
        digest = audit_chain.chain_hash(prev, entry)
        conn.execute(
            "UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (actor, prev, digest, row[0]),
        )
        prev = digest
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = ?",
        (f"{rows[-1][0]}:{prev}", audit_chain.HEAD_META_KEY),
    )


MARKER = b"PLAINTEXT-MARKER-Prefetch-Oriole-"  # in files two desks share


@dataclass(frozen=True)
class Added:
    """A file added on desk A: its record id and blob id."""

    id: str
    blob_id: str


@dataclass
class Desks:
    """Two workstations of one clinic on a live server (the ``desks`` fixture)."""

    live: Live
    a: Workstation
    a_cred: ServerCredential
    b: Workstation
    b_cred: ServerCredential
    folder: Path

    def on_a(self) -> Attachments:
        return Attachments(self.a.records, self.folder / "a", credential=self.a_cred)

    def on_b(self, cache_mb: int = 64, online: bool = True) -> Attachments:
        cred = self.b_cred if online else None
        return Attachments(self.b.records, self.folder / "b", cache_mb=cache_mb, credential=cred)

    def patient(self, family: str) -> str:
        return self.a.records.add_patient(family=family, given="Ann", birth_date="1970-01-01").id

    def add(self, patient: str, name: str, size: int) -> Added:
        """A file of ``size`` bytes added on A and uploaded."""
        source = self.folder / name
        # The name first (after the start its kind has): equal files share one blob.
        body = as_named(name, b"") + name.encode() + MARKER * (size // len(MARKER) + 1)
        source.write_bytes(body[:size])
        on_a = self.on_a()
        item = on_a.add(patient, source, title=name)
        on_a.push_pending()
        assert item.blob_id is not None
        return Added(item.id, item.blob_id)

    def sync_both(self) -> None:
        sync_at(self.a, self.a_cred)
        sync_at(self.b, self.b_cred)
        self.on_b().push_pending()  # as each sync does: B gets the clinic attachment key
