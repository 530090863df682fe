"""A rolling upgrade on PostgreSQL: server processes of different releases on one database.

Real ``careline-server`` processes throughout: the previous release from its own venv, this
code, and this code playing an older or newer release (``pg_schema_launcher``: the same
code told it knows fewer or more schema versions). Old and new serve the same clinic at
once without losing or doubling an op; an additive migration goes ahead under running old
processes, which may even restart on it; a breaking one waits, naming them, until they are
gone; and code that a breaking migration left behind is refused with a message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.records.workstation import Workstation
from core.server.postgres.schema import MIGRATIONS
from core.store.oplog import version_vector
from core.sync.enroll import ServerCredential
from tests.integration.pg_schema_launcher import NEXT, command
from tests.integration.server_fixtures import (
    add_clinic,
    check_replica,
    enroll_desk,
    make_server,
    sync_at,
)
from tests.integration.server_process import SERVER, ServerProcess
from tests.releases import PREVIOUS, release
from tests.services import free_port

CURRENT = MIGRATIONS[-1].version


def _schema(url: str) -> tuple[int, int | None]:
    """The database's newest schema version and its ``min_compatible`` (None where the
    previous release made the table without that column)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT version, (to_jsonb(s) ->> 'min_compatible')::int FROM schema_version s "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def _live_pids(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {int(r[0]) for r in conn.execute(
            "SELECT pid FROM server_nodes WHERE expires_at > now()"
        )}  # fmt: skip


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    """Every server process a test starts, stopped at the end (before its database goes)."""
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.stop()


def _server(
    processes: list[ServerProcess], data: Path, url: str, program: list[str] | None = None
) -> ServerProcess:
    env = {"DATABASE_URL": url}
    server = ServerProcess(data, free_port(), program or SERVER, env=env)
    processes.append(server)
    return server


def _json(result: object) -> dict[str, str]:
    assert getattr(result, "returncode", None) == 0, getattr(result, "stderr", result)
    document: dict[str, str] = json.loads(getattr(result, "stdout", ""))
    return document


def test_the_previous_release_and_this_one_serve_one_database_at_once(
    tmp_path: Path, postgres_url: str, processes: list[ServerProcess], no_keyring: None
) -> None:
    previous = release(PREVIOUS)
    data = tmp_path / "server"
    old = _server(processes, data, postgres_url, [str(previous.careline_server)])
    clinic = _json(old.run("--json", "admin", "clinic", "create", "Rolling"))["id"]
    added = old.run("admin", "user", "add", clinic, "admin", "--role", "admin")
    assert added.returncode == 0, added.stderr
    old.start()
    assert _schema(postgres_url)[0] == 1  # what the previous release made

    desks: list[tuple[Workstation, ServerCredential]] = []
    code = _json(old.run("--json", "admin", "enroll-code", clinic))["code"]
    desks.append(enroll_desk(old.url, old.ca_pem, code, tmp_path / "desk0", "desk 0"))
    desks[0][0].records.add_patient("Before", "Upgrade", "1980-01-01")
    sync_at(*desks[0])

    new = _server(processes, data, postgres_url)
    new.start()  # migrates the schema (additively) under the running old process
    assert _schema(postgres_url)[0] == CURRENT
    assert old.process is not None and old.process.poll() is None
    admin = make_server(data, {"DATABASE_URL": postgres_url})
    try:
        code, _ = admin.registry.issue_enroll_code(clinic, 10)
        desks.append(enroll_desk(new.url, new.ca_pem, code, tmp_path / "desk1", "desk 1"))
        names = {("Before", "Upgrade")}
        for turn in range(3):  # each desk writes, then syncs through the old and new in turn
            for n, (ws, credential) in enumerate(desks):
                family, given = f"Desk{n}", f"Turn{turn}"
                ws.records.add_patient(family, given, "1990-01-01")
                names.add((family, given))
                sync_at(ws, credential, (old.url, new.url)[(n + turn) % 2])
        for _ in range(2):  # the first round carries the last writes to everyone
            for n, (ws, credential) in enumerate(desks):
                sync_at(ws, credential, (old.url, new.url)[n % 2])

        vv = check_replica(admin, clinic, [ws for ws, _ in desks])
        for ws, _ in desks:
            assert version_vector(ws.database) == vv
            rows = ws.records.list_patients(100)
            assert {(p.family, p.given) for p in rows} == names
        assert all(r["ok"] for r in admin.audit_report().values())
    finally:
        admin.close()
    assert old.process.poll() is None, old.log.read_text()
    assert new.process is not None
    assert _live_pids(postgres_url) == {new.process.pid}  # the previous release never registers
    # ... but its sessions are there: a breaking migration waits for them too.
    breaking = _server(processes, data, postgres_url, command("breaking"))
    refused = breaking.run("run", "--port", str(breaking.port))
    assert refused.returncode != 0
    assert "an unregistered PostgreSQL session from 127.0.0.1" in refused.stderr
    assert "careline-server 0.1.0, or another client" in refused.stderr
    old.stop()
    new.stop()
    breaking.start()
    assert _schema(postgres_url) == (NEXT, NEXT)
    # A fact of the previous release's code: it refuses any schema newer than its own, so
    # once upgraded, none of its processes can start again (running ones kept serving).
    again = old.run("admin", "clinic", "list")
    assert again.returncode != 0
    assert "newer than this careline-server understands" in again.stderr
    for ws, _ in desks:
        ws.lock()


def test_a_breaking_migration_waits_until_older_processes_are_gone(
    tmp_path: Path, postgres_url: str, processes: list[ServerProcess]
) -> None:
    data = tmp_path / "server"
    stopping = _server(processes, data, postgres_url, command("current"))
    crashing = _server(processes, data, postgres_url, command("current", heartbeat=0.3))
    stopping.start()
    crashing.start()
    assert _schema(postgres_url) == (CURRENT, 1)  # additive so far: schema 1's code still fits

    newer = _server(processes, data, postgres_url, command("breaking"))
    refused = newer.run("run", "--port", str(newer.port))
    assert refused.returncode != 0
    for old in (stopping, crashing):
        assert old.process is not None
        assert f"pid {old.process.pid} (careline " in refused.stderr
    assert f"schema version {CURRENT} to {NEXT}" in refused.stderr
    assert "Stop (or upgrade) them" in refused.stderr
    assert _schema(postgres_url)[0] == CURRENT  # nothing applied

    stopping.stop()  # a clean stop leaves the node table at once
    crashing.kill()  # a crash leaves its row until the heartbeat expires
    deadline = time.monotonic() + 20
    while _live_pids(postgres_url):
        assert time.monotonic() < deadline, "the killed process's row never expired"
        time.sleep(0.1)
    newer.start()
    assert _schema(postgres_url) == (NEXT, NEXT)

    # Code the breaking migration left behind cannot start again.
    again = stopping.run("run", "--port", str(stopping.port))
    assert again.returncode != 0
    assert f"the database is at schema version {NEXT}" in again.stderr
    assert f"knows schema version {CURRENT}: upgrade it" in again.stderr


def test_older_code_keeps_running_and_restarts_across_additive_migrations(
    tmp_path: Path, postgres_url: str, processes: list[ServerProcess], no_keyring: None
) -> None:
    data = tmp_path / "server"
    older = _server(processes, data, postgres_url, command("older"))
    older.start()
    assert _schema(postgres_url)[0] == 1
    current = _server(processes, data, postgres_url, command("current"))
    current.start()  # schema 2 under the running older process
    assert _schema(postgres_url) == (CURRENT, 1)

    older.stop()
    older.start()  # an older release restarting on the additively upgraded schema
    assert older.process is not None
    assert older.process.pid in _live_pids(postgres_url)  # the node table is there now
    newer = _server(processes, data, postgres_url, command("additive"))
    newer.start()  # additive: goes ahead while the older node is live
    assert _schema(postgres_url) == (NEXT, 1)
    older.stop()
    older.start()

    admin = make_server(data, {"DATABASE_URL": postgres_url})
    try:
        clinic = add_clinic(admin, "Mixed")
        code, _ = admin.registry.issue_enroll_code(clinic, 10)
        ws, credential = enroll_desk(older.url, older.ca_pem, code, tmp_path / "desk")
        ws.records.add_patient("Served", "ByOlder", "1990-01-01")
        sync_at(ws, credential)  # through the older process
        other_code, _ = admin.registry.issue_enroll_code(clinic, 10)
        other, _ = enroll_desk(newer.url, newer.ca_pem, other_code, tmp_path / "other")
        assert [p.family for p in other.records.list_patients(10)] == ["Served"]
        assert version_vector(other.database) == check_replica(admin, clinic, [ws])
    finally:
        admin.close()
    ws.lock()
    other.lock()
