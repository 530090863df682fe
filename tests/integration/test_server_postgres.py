"""careline-server on a real PostgreSQL: what reaches the database is sealed, tenants are
walled off by row-level security, sealed values are bound to their place, re-encryption
is resumable, and bad settings are refused by name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from core.config.settings import ConfigError
from core.crypto.secure_memory import SecureMemory
from core.records import unknown
from core.records.notes import Notes
from core.records.workstation import Workstation
from core.server.postgres.columns import SealedValueError
from core.server.postgres.schema import ALL_TENANT_TABLES, TENANT_ROLE, TENANT_TABLES
from core.server.settings import load_server_settings
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync import protocol
from core.sync.enroll import ServerCredential, tls_trust
from core.sync.http_transport import HttpTransport
from core.sync.session import SyncError, SyncSession
from core.sync.transport import TransportError
from tests.integration.server_fixtures import (
    Live,
    add_clinic,
    clinic_device,
    join_clinic,
    live_server,
    sync_at,
)
from tests.newer_release import newer_chart, newer_replica
from tests.services import free_port
from tests.unit.sync.replicas import pull_from

SECRETS = ("Quetzalcoatl", "Xiomara", "Penicillinase-Zeta", "confided a tremor")


@pytest.fixture
def live(tmp_path: Path, postgres_url: str, no_keyring: None) -> Iterator[Live]:
    with live_server(tmp_path / "server", {"DATABASE_URL": postgres_url}) as running:
        yield running


def _desk(live: Live, clinic: str, folder: Path) -> tuple[Workstation, ServerCredential]:
    return join_clinic(live.server, live.url, live.ca_pem, clinic, folder)


def _write_phi(ws: Workstation) -> str:
    patient = ws.records.add_patient(SECRETS[0], SECRETS[1], "1990-01-01")
    ws.records.add_allergy(patient.id, SECRETS[2], "hives", "severe")
    Notes(ws.records).create(patient.id, f"Patient {SECRETS[3]} in the left hand.")
    return patient.id


def _every_table_as_bytes(url: str) -> bytes:
    """Every row of every table, as PostgreSQL returns it (bytea as raw bytes)."""
    dump = bytearray()
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )]  # fmt: skip
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):  # names from the catalogue
                for value in row:
                    dump += value if isinstance(value, bytes) else str(value).encode()
    return bytes(dump)


def test_postgres_holds_no_plaintext_of_what_devices_write(
    live: Live, tmp_path: Path, postgres_url: str
) -> None:
    clinic = add_clinic(live.server, "Sealed Clinic")
    ws, credential = _desk(live, clinic, tmp_path / "ws")
    _write_phi(ws)
    sync_at(ws, credential)
    other, _other_credential = _desk(live, clinic, tmp_path / "other")  # it all arrives intact
    [row] = other.records.search_patients(SECRETS[0])
    assert other.records.get_patient(row.id).given == SECRETS[1]
    dump = _every_table_as_bytes(postgres_url)
    assert len(dump) > 10_000  # the ops and record states really are in there
    for secret in SECRETS:
        assert secret.encode() not in dump, secret
    # Record ids are blind-indexed too: the database never sees one.
    assert row.id.encode() not in dump
    ws.lock()
    other.lock()


def _two_clinics_with_records(live: Live, tmp_path: Path) -> tuple[str, str]:
    """Clinics North and South, each with a patient, an allergy and a note from a desk."""
    north, south = add_clinic(live.server, "North"), add_clinic(live.server, "South")
    for clinic, folder in ((north, "n"), (south, "s")):
        ws, credential = _desk(live, clinic, tmp_path / folder)
        _write_phi(ws)
        sync_at(ws, credential)
        ws.lock()
    return north, south


def _tenant_session(url: str, tenant: str | None) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(url)
    conn.execute(f"SET ROLE {TENANT_ROLE}")
    if tenant is not None:
        conn.execute("SELECT set_config('careline.tenant', %s, false)", (tenant,))
    return conn


def test_row_level_security_walls_off_each_clinic(
    live: Live, tmp_path: Path, postgres_url: str
) -> None:
    north, south = _two_clinics_with_records(live, tmp_path)
    with _tenant_session(postgres_url, north) as conn:
        for table in TENANT_TABLES:  # each holds rows of both clinics
            tenants = {r[0] for r in conn.execute(f"SELECT tenant FROM {table}")}
            assert tenants == {north}, table  # no WHERE clause, still only North's rows
        assert conn.execute(
            "SELECT count(*) FROM replica_ops WHERE tenant = %s", (south,)
        ).fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO replica_meta (tenant, key, value) VALUES (%s, 'x', 'y')", (south,)
            )
    with _tenant_session(postgres_url, None) as conn:  # no tenant named: nothing at all
        for table in ALL_TENANT_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    # And the registry is out of a tenant session's reach.
    with (
        _tenant_session(postgres_url, south) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM devices")


def test_sealed_values_only_open_in_their_own_clinic_and_row(
    live: Live, tmp_path: Path, postgres_url: str
) -> None:
    north, south = _two_clinics_with_records(live, tmp_path)
    south_store = live.server.sync_store(south)
    before = south_store.snapshot_page(None, 1000)
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # an attacker with DB access
        [(north_sealed,)] = conn.execute(
            "SELECT sealed FROM replica_records WHERE tenant = %s LIMIT 1", (north,)
        ).fetchall()
        [(victim,)] = conn.execute(
            "SELECT record_ix FROM replica_records WHERE tenant = %s LIMIT 1", (south,)
        ).fetchall()
        original = conn.execute(
            "SELECT sealed FROM replica_records WHERE tenant = %s AND record_ix = %s",
            (south, victim),
        ).fetchone()
        conn.execute(
            "UPDATE replica_records SET sealed = %s WHERE tenant = %s AND record_ix = %s",
            (north_sealed, south, victim),
        )
        with pytest.raises(SealedValueError, match=r"replica_records row \w+ does not decrypt"):
            south_store.snapshot_page(None, 1000)
        conn.execute(
            "UPDATE replica_records SET sealed = %s WHERE tenant = %s AND record_ix = %s",
            (original[0] if original else None, south, victim),
        )
    assert south_store.snapshot_page(None, 1000) == before


def test_reencryption_is_resumable_and_keeps_every_record(
    live: Live, tmp_path: Path, postgres_url: str
) -> None:
    clinic = add_clinic(live.server, "Rekeyed")
    ws, credential = _desk(live, clinic, tmp_path / "ws")
    for n in range(30):
        ws.records.add_patient(f"Family{n}", "Given", "1990-01-01")
    sync_at(ws, credential)
    replica = live.server.pg_replica(clinic)
    before = replica.snapshot_page(None, 1000), replica.ops_for({}, 10_000)
    assert replica.generations_in_use() == {1}

    live.server.rotate_keys()
    # Interrupted after two small batches: rows are under two generations, all readable.
    live.server.reencrypt_replicas(clinic, max_batches=2, batch=5)
    assert replica.generations_in_use() == {1, 2}
    assert (replica.snapshot_page(None, 1000), replica.ops_for({}, 10_000)) == before
    ws.records.add_patient("During", "Rekey", "1990-01-01")
    sync_at(ws, credential)

    result = live.server.reencrypt_replicas(clinic)  # run again: finishes, no new generation
    assert result["rows"] > 0
    assert replica.generations_in_use() == {2}
    newcomer, _ = _desk(live, clinic, tmp_path / "new")
    assert newcomer.records.count_patients() == 31
    assert version_vector(newcomer.database) == replica.version_vector()
    assert all(r["ok"] for r in live.server.audit_report().values())
    ws.lock()
    newcomer.lock()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db.example/careline", "is not a PostgreSQL URL"),
        ("postgresql://db.example", "is not a PostgreSQL URL"),
    ],
)
def test_a_bad_database_url_is_refused_by_name(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_server_settings(cli={"data_dir": tmp_path}, env={"DATABASE_URL": url})
    assert "DATABASE_URL" in str(caught.value)


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    from core.server.postgres.connection import PgStore

    with pytest.raises(ConfigError, match="cannot connect") as caught:
        PgStore("postgresql://careline:hunter2@127.0.0.1:1/careline", "disable", connect_timeout=2)
    assert "hunter2" not in str(caught.value)
    assert "DATABASE_URL" in str(caught.value)


def test_a_clinic_whose_keys_cannot_be_unwrapped_gets_a_clear_503(
    tmp_path: Path, postgres_url: str, no_keyring: None
) -> None:
    data, port = tmp_path / "server", free_port()
    env = {"DATABASE_URL": postgres_url}
    with live_server(data, env, port) as live:
        clinic = add_clinic(live.server, "Keyless")
        ws, credential = _desk(live, clinic, tmp_path / "ws")
    ws.records.add_patient("Pending", "Change", "1990-01-01")
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the wrapped key is damaged
        [(wrapped,)] = conn.execute(
            "SELECT wrapped FROM data_keys WHERE clinic_id = %s AND purpose = 'tde:1'", (clinic,)
        ).fetchall()
        damaged = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])
        conn.execute(
            "UPDATE data_keys SET wrapped = %s WHERE clinic_id = %s AND purpose = 'tde:1'",
            (damaged, clinic),
        )
    with live_server(data, env, port) as live:
        reply = httpx.post(
            live.url + "/v1/sync",
            content=protocol.encode({"type": "pull", "vv": {}, "max_ops": 10}),
            headers={"Authorization": f"Bearer {credential.token}"},
            verify=tls_trust(live.ca_pem),
        )
        assert reply.status_code == 503
        assert "encryption keys" in reply.json()["detail"]
        with pytest.raises(TransportError, match=r"503.*encryption keys"):
            sync_at(ws, credential)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE data_keys SET wrapped = %s WHERE clinic_id = %s AND purpose = 'tde:1'",
                (wrapped, clinic),
            )
    with live_server(data, env, port) as live:  # key repaired: the pending change goes through
        sync_at(ws, credential)
        assert live.server.sync_store(clinic).version_vector() == version_vector(ws.database)
    ws.lock()


def test_postgres_keeps_and_serves_a_newer_releases_records_and_spares_older_replicas(
    live: Live, tmp_path: Path
) -> None:
    clinic = add_clinic(live.server, "Harbour Clinic")
    relay, credential = _desk(live, clinic, tmp_path / "relay")
    newer = newer_replica("newer")
    clinic_device(live.server, clinic, newer.db)  # a LAN-paired workstation of the clinic
    pid = newer_chart(newer)
    pull_from(relay.records, newer)  # a current workstation relays a newer one's records
    assert sync_at(relay, credential).pushed > 0

    # A current workstation joining later receives them whole, and lists them as newer.
    fresh, _ = _desk(live, clinic, tmp_path / "fresh")
    assert unknown.by_type(fresh.database) == {"patient": 1, "referral": 1}
    assert fresh.records.get_patient(pid).family == "Okafor"

    # A replica speaking version 1 (Careline 0.1.0) cannot store a referral: joining is
    # refused before anything is applied, with the release it needs.
    empty = Database.in_memory(SecureMemory.from_bytes(bytearray(os.urandom(32))))
    transport = HttpTransport(
        credential.server_url, credential.token, verify=tls_trust(credential.server_ca_pem)
    )
    try:
        session = SyncSession(empty, transport, "admin")
        session.report.protocol = 1
        with pytest.raises(SyncError, match=r"to 0\.2\.0 or newer"):
            session.run()
    finally:
        transport.close()
    assert not empty.query("SELECT 1 FROM record_states")
