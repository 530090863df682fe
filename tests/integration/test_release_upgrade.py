"""Every release opens the previous ones' data (issue #11 section 2).

The data under ``tests/releases/data/<tag>/`` was written by that release itself (see
``tests/releases/make_data.py``), with what it read back in ``manifest.json``. Here the
current code, run as operators run it (real ``careline`` and ``careline-server``
processes), opens a copy of it: the workstation by password and by recovery key, the
embedded server's data dir, and a PostgreSQL server restored from a dump; and reads every
record back as the old release did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.crypto import certs
from core.records import authorize
from core.records.workstation import Workstation
from core.server.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from core.server.postgres.schema import TENANT_ROLE
from core.store.migrations import LATEST_VERSION
from core.sync.enroll import account_before_enrollment
from tests.integration.server_fixtures import make_server
from tests.integration.server_process import ServerProcess, careline, current, server_admin
from tests.integration.test_cli import careline as careline_with_stdin
from tests.releases import TAGS
from tests.releases.make_data import DATA
from tests.services import free_port


@dataclass(frozen=True)
class OldData:
    """A copy of one release's data sets, and what that release read back from them."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def password(self) -> str:
        """The (test-only) password every set was made with."""
        return str(self.manifest["password"])


@dataclass(frozen=True)
class OldServer:
    """An old release's server data, and how the current ``careline-server`` reaches it."""

    data: Path  # the data dir (the embedded store's; PostgreSQL's: an empty new one)
    env: Mapping[str, str]  # the server's settings (none for the embedded store)
    seen: Mapping[str, Any]  # what the old release read back (its manifest section)


@pytest.fixture(params=TAGS)
def old(request: pytest.FixtureRequest, tmp_path: Path) -> OldData:
    """A fresh copy of a release's committed data: the committed files are never opened.

    Absent data skips with the command that makes it; CI (CARELINE_REQUIRE_RELEASE_DATA=1,
    set by .ci/run) fails instead, so a missing set is never skipped unnoticed."""
    tag = str(request.param)
    source = DATA / tag
    if not (source / "manifest.json").exists():
        reason = (
            f"no data made by {tag} in {source}: run "
            f"'.venv/bin/python -m tests.releases.make_data --tag {tag}' and commit it"
        )
        if os.environ.get("CARELINE_REQUIRE_RELEASE_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path / tag
    shutil.copytree(source, folder)
    for path in folder.rglob("*"):
        # Git keeps no file modes; key files must be private again, as a restore makes them.
        path.chmod(0o700 if path.is_dir() else 0o600)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tag"] == tag
    return OldData(folder, manifest)


def assert_reads_as(old: Any, new: Any, where: str = "") -> None:
    """``new`` shows everything ``old`` showed, with the same values (fields added since
    are allowed; nothing may go missing or change)."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for key, value in old.items():
            assert key in new, f"{where}.{key} is gone"
            assert_reads_as(value, new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), f"{where}: {old!r} != {new!r}"
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            assert_reads_as(a, b, f"{where}[{index}]")
    else:
        assert new == old, f"{where}: {new!r}, was {old!r}"


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in id order (listing order is not part of what is compared)."""
    return sorted(rows, key=lambda row: str(row["id"]))


def assert_same_records(seen: Mapping[str, Any], desk: Path) -> None:
    """The workstation at ``desk`` shows every patient, allergy, note, search result and
    open conflict as the old release showed them (``seen``: its manifest section)."""
    for pid in seen["patient_ids"]:
        assert_reads_as(seen["charts"][pid], current(desk, "patient", "show", pid), pid)
        assert_reads_as(
            seen["notes"][pid], current(desk, "note", "list", "--patient", pid), f"notes {pid}"
        )
    for text, found in seen["search"].items():
        assert_reads_as(found, current(desk, "patient", "search", text), f"search {text!r}")
    assert len(seen["conflicts"]) >= 2  # the register and the list conflict were made
    assert_reads_as(
        by_id(seen["conflicts"]), by_id(current(desk, "conflicts", "list")), "conflicts"
    )


def schema_version(data_dir: Path, unlock: str, secret: str) -> int:
    """The schema version of a workstation's database, opened by the current code with its
    password (``unlock="password"``) or recovery key (``"recovery"``)."""
    ws = Workstation(data_dir)
    if unlock == "password":
        ws.unlock_with_password("admin", secret)
    else:
        ws.unlock_with_recovery_key(secret)
    try:
        return int(ws.database.query("SELECT max(version) FROM schema_version")[0][0])
    finally:
        ws.lock()


# --- workstation ---------------------------------------------------------------------------


def test_current_cli_opens_the_old_workstation_migrates_it_and_checks_pass(
    old: OldData, no_keyring: None
) -> None:
    desk, seen = old.folder / "workstation", old.manifest["workstation"]
    assert schema_version(desk, "password", old.password) == LATEST_VERSION
    check = current(desk, "db", "check")
    assert (check["ok"], check["problems"]) == (True, [])
    audit = current(desk, "audit", "verify")
    assert (audit["ok"], audit["problems"]) == (True, [])
    # Entries the old release wrote are still in the chain (reading adds more).
    assert audit["entries"] >= seen["audit_verify"]["entries"]


def test_the_old_recovery_key_still_opens_the_workstation(old: OldData, no_keyring: None) -> None:
    desk, seen = old.folder / "workstation", old.manifest["workstation"]
    assert schema_version(desk, "recovery", seen["recovery_key"]) == LATEST_VERSION
    # And as a person who forgot the password uses it: a new password, then sign in.
    recovered = careline_with_stdin(
        desk, "--json", "keys", "recover", "--user", "admin", "--recovery-key-stdin",
        stdin=f"{seen['recovery_key']}\nnew password after upgrade\n",
    )  # fmt: skip
    assert recovered.returncode == 0, recovered.stderr
    assert schema_version(desk, "password", "new password after upgrade") == LATEST_VERSION


def test_the_old_clinics_admin_who_did_chart_work_becomes_a_clinician(
    old: OldData, no_keyring: None
) -> None:
    """A clinic from before authorization: its admin, who registered patients and recorded
    allergies, is granted clinician from the clinic's start at the first open (audited as
    an upgrade), so that work stays theirs to do. The grant is on the synced user record,
    which the previous release stores too: no record of a type it lacks is made."""
    ws = Workstation(old.folder / "workstation")
    ws.unlock_with_password("admin", old.password)
    try:
        db = ws.database
        assert db.query("SELECT username, other_roles FROM users WHERE other_roles != ''") == [
            ("admin", "clinician")
        ]
        [(details,)] = db.query("SELECT details FROM audit_log WHERE action = 'role.grant'")
        assert json.loads(details)["upgrade"] is True
        assert db.query("SELECT count(*) FROM oplog WHERE record_type = 'relation'") == [(0,)]
        [(patient_id,)] = db.query("SELECT id FROM patients LIMIT 1")
        assert authorize.allowed(db, "admin", "view_clinical", f"patient:{patient_id}")
    finally:
        ws.lock()


def test_every_old_record_reads_back_as_the_old_release_read_it(
    old: OldData, no_keyring: None
) -> None:
    assert_same_records(old.manifest["workstation"], old.folder / "workstation")


def test_the_old_search_index_finds_a_name_typed_without_its_stroked_letters(
    old: OldData, no_keyring: None
) -> None:
    """The old release's index held Søndergård as it is written, so "sondergard" found
    nobody; the upgrade (schema V21) rebuilds it with Ø as O, and the old search still
    finds the same."""
    desk, seen = old.folder / "workstation", old.manifest["workstation"]
    written = seen["search"]["Søndergård"]
    assert [p["family"] for p in written] == ["Søndergård"]
    for typed in ("sondergard", "SONDERGARD asa", "Søndergård"):
        assert_reads_as(written, current(desk, "patient", "search", typed), f"search {typed!r}")


# --- servers -------------------------------------------------------------------------------


def join_and_compare(server: OldServer, desk: Path) -> None:
    """Serve the old server's data with the current ``careline-server``, enroll a new
    current workstation in the old clinic, and compare what it receives."""
    data, env, seen = server.data, server.env, server.seen
    # A multi-use code (registry 3, PostgreSQL schema 6) on the migrated old registry.
    issued = server_admin(data, env, "enroll-code", seen["clinic_id"], "--uses", "2")
    assert issued["uses"] == 2
    code = issued["code"]
    running = ServerProcess(data, free_port(), env=env)
    running.start()
    try:
        (data.parent / "ca.pem").write_text(running.ca_pem)
        # The account check before enrolling counts in the migrated registry (embedded 5,
        # PostgreSQL schema 8): the old clinic's admin is found, and the code still enrolls.
        account = account_before_enrollment(running.url, code, running.ca_pem, seen["user"])
        assert account is not None and account.active
        assert account.verifier is not None and account.verifier.startswith("$argon2id$")
        enrolled = careline(
            desk, "--json", "enroll", "--server", running.url, "--code", code,
            "--ca-file", str(data.parent / "ca.pem"),
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr
        assert json.loads(enrolled.stdout)["clinic"] == seen["clinic"]
        assert_same_records(seen["desk"], desk)
    finally:
        running.stop()


def assert_server_admin_reads_as_before(server: OldServer) -> None:
    """Clinics and devices list as before; every audit chain verifies."""
    data, env, seen = server.data, server.env, server.seen
    assert_reads_as(by_id(seen["server_clinics"]), by_id(server_admin(data, env, "clinic", "list")))
    assert_reads_as(
        by_id(seen["server_devices"]), by_id(server_admin(data, env, "device", "list")), "devices"
    )
    audit = server_admin(data, env, "audit", "verify")
    assert set(audit) >= set(seen["server_audit_verify"])
    assert all(report["ok"] for report in audit.values()), audit


def assert_old_devices_are_revoked_with_every_certificate(old_server: OldServer) -> None:
    """The registry upgrade (embedded 4, PostgreSQL schema 7: every certificate issued to
    a device is kept) on the old release's registry: each device it enrolled has its one
    certificate, known (0.1.0 never re-certified), and revoking one puts it on the clinic
    CA's revocation list and in what sync replies name."""
    data, env, seen = old_server.data, old_server.env, old_server.seen
    devices = server_admin(data, env, "device", "list")
    assert {d["id"] for d in devices} == {d["id"] for d in seen["server_devices"]}
    for device in devices:
        [certificate] = device["certificates"]
        assert certificate["current"] and certificate["serial"] is not None
    target = devices[0]
    revoked = server_admin(data, env, "device", "revoke", target["id"])
    serial = target["certificates"][0]["serial"]
    assert revoked["revoked_serials"] == [serial] and revoked["serials_not_known"] == 0
    server = make_server(data, env)
    try:
        assert server.registry.revoked_serials(seen["clinic_id"]) == [int(serial)]
        crl = server.crl(seen["clinic_id"])
        ca = server.registry.clinic(seen["clinic_id"]).ca_cert
        assert crl is not None and set(certs.read_crl(crl, ca).revoked) == {int(serial)}
    finally:
        server.close()


@pytest.fixture
def old_embedded_server(old: OldData) -> OldServer:
    """The old release's embedded server data dir (a copy)."""
    return OldServer(old.folder / "server", {}, old.manifest["server"])


@pytest.fixture
def old_postgres_server(old: OldData, postgres_url: str, tmp_path: Path) -> OldServer:
    """The old server's PostgreSQL dump restored into a fresh database (dropped after), with
    the settings the old server ran with and a new, empty data dir.

    A dump holds no roles: the tenant role the old server created is made first, as an
    operator restoring onto a new cluster would (``pg_dumpall --roles-only``)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TENANT_ROLE,)).fetchone():
            conn.execute(f"CREATE ROLE {TENANT_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS")
    subprocess.run(
        ["psql", "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-f",
         str(old.folder / "postgres" / "dump.sql"), postgres_url.split("?", 1)[0]],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    seen = old.manifest["postgres"]
    env = {
        "DATABASE_URL": postgres_url,  # postgres_url drops the database after the test
        "DATABASE_SSL_MODE": "disable",
        "KMS_PROVIDER": seen["kms_provider"],
        "MASTER_ENCRYPTION_KEY": seen["master_encryption_key"],
    }
    data = tmp_path / "pg-server"
    data.mkdir(mode=0o700)
    return OldServer(data, env, seen)


def test_revoking_a_device_the_old_server_enrolled_revokes_its_certificate(
    old_embedded_server: OldServer, no_keyring: None
) -> None:
    assert_old_devices_are_revoked_with_every_certificate(old_embedded_server)


def test_current_server_opens_the_old_embedded_server_and_a_new_workstation_syncs(
    old_embedded_server: OldServer, tmp_path: Path, no_keyring: None
) -> None:
    assert_server_admin_reads_as_before(old_embedded_server)
    join_and_compare(old_embedded_server, tmp_path / "new-desk")


def test_current_server_migrates_the_old_postgres_database_and_a_new_workstation_syncs(
    old_postgres_server: OldServer, tmp_path: Path, no_keyring: None
) -> None:
    assert_server_admin_reads_as_before(old_postgres_server)
    with psycopg.connect(old_postgres_server.env["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    assert row is not None and row[0] == POSTGRES_MIGRATIONS[-1].version
    join_and_compare(old_postgres_server, tmp_path / "new-desk")


def test_revoking_a_device_the_old_postgres_server_enrolled_revokes_its_certificate(
    old_postgres_server: OldServer, no_keyring: None
) -> None:
    assert_old_devices_are_revoked_with_every_certificate(old_postgres_server)
