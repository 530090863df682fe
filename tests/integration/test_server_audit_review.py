"""Workstation audit entries on the clinic server: the entries a workstation proves at sync
are kept for the clinic's admins (``careline-server admin audit list``), and work done
under break-glass reaches the server's security event log. Both server stores."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records.break_glass import BreakGlass
from core.server import security_log
from tests.integration.server_fixtures import Live, live_server
from tests.integration.server_process import server_admin
from tests.integration.test_server import _clinic, _sync, _workstation
from tests.integration.test_server_postgres import _every_table_as_bytes
from tests.services import create_postgres_database, drop_postgres_database

Served = tuple[Live, Path, dict[str, str]]


@pytest.fixture(params=["embedded", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path: Path, no_keyring: None) -> Iterator[Served]:
    """A live server (embedded SQLCipher, then PostgreSQL), its folder and settings."""
    data = tmp_path / "server"
    if request.param == "embedded":
        with live_server(data) as running:
            yield running, data, {}
        return
    url = create_postgres_database()
    try:
        env = {"DATABASE_URL": url}
        with live_server(data, env) as running:
            yield running, data, env
    finally:
        drop_postgres_database(url)


def test_workstation_entries_reach_the_server_and_break_glass_its_security_log(
    served: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live, data, env = served
    clinic = _clinic(live, "Audit Clinic")
    ws, credential = _workstation(live, clinic, tmp_path / "desk")
    device = credential.device_id
    try:
        records = ws.records
        patient = records.add_patient("Lee", "Roy", "1960-01-01")
        grant = BreakGlass(records).open(patient.id, "found unresponsive")
        records.open_chart(patient.id)
        with caplog.at_level(logging.INFO, logger=security_log.LOGGER):
            assert _sync(ws).audit_problem is None
        held = [r for r in live.server.device_audit_entries(clinic) if r[0] == device]
        actions = [str(r[4]) for r in held]
        assert [
            a for a in actions if a in ("patient.create", "break_glass.open", "chart.open")
        ] == ["patient.create", "break_glass.open", "chart.open"]
        events = [
            (r.security_event, r.security_fields)  # type: ignore[attr-defined]
            for r in caplog.records
            if getattr(r, "security_event", "").startswith("break_glass")
        ]
        assert [name for name, _ in events] == ["break_glass.open", "break_glass.access"]
        for _name, fields in events:
            assert fields["grant"] == grant.id and fields["user"] == "admin"
            assert fields["device"] == device and fields["clinic"] == clinic
            assert "found unresponsive" not in str(fields)  # the reason stays in the record
        assert events[1][1]["action"] == "chart.open"

        # A later sync adds only what is new: nothing is kept twice.
        assert _sync(ws).audit_problem is None
        again = [r for r in live.server.device_audit_entries(clinic) if r[0] == device]
        assert len({(r[0], r[1]) for r in again}) == len(again) >= len(held)

        views = server_admin(
            data, env, "audit", "list", clinic, "--device", device, "--action", "chart"
        )
        assert [(e["action"], e["break_glass"], e["source"]) for e in views] == [
            ("chart.open", grant.id, device)
        ]
        by_patient = server_admin(data, env, "audit", "list", clinic, "--patient", patient.id)
        assert {e["action"] for e in by_patient} >= {"patient.create", "chart.open"}
        everything = server_admin(data, env, "audit", "list", clinic)
        assert {"server", device} <= {e["source"] for e in everything}
        assert server_admin(data, env, "audit", "list", clinic, "--until", "2000-01-01") == []
        if "DATABASE_URL" in env:  # kept sealed: PostgreSQL never sees a record id
            dump = _every_table_as_bytes(env["DATABASE_URL"])
            assert patient.id.encode() not in dump and grant.id.encode() not in dump
        # Re-encrypting the clinic under a fresh data key keeps every entry readable.
        before = live.server.device_audit_entries(clinic)
        live.server.reencrypt_replicas(clinic)
        assert live.server.device_audit_entries(clinic) == before
        if "DATABASE_URL" in env:
            replica = live.server.pg_replica(clinic)
            assert len(replica.generations_in_use()) == 1
    finally:
        ws.lock()
