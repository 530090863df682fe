"""The PostgreSQL/S3/KMS server's backup as operators run it (README "Backup and restore"):
``pg_dump -Fc`` of the server's database, ``pg_restore`` into a NEW database, and the server
started on the restored database with the same S3 bucket and KMS key (moto). The
workstation that synced before syncs on, and a new one enrolls and receives everything."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.records.workstation import Workstation
from core.server.backup import ServerBackupError, backup_server
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import add_clinic, join_clinic, live_server, sync_at
from tests.integration.server_process import server_admin
from tests.services import Service, create_postgres_database, drop_postgres_database

REGION = "us-east-1"


@pytest.fixture
def production_env(moto: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Server settings of the production shape: a KMS key and an S3 bucket (moto), and a
    PostgreSQL database made for the test (dropped after it)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    client: Any = boto3.client("kms", region_name=REGION, endpoint_url=moto.url)
    s3: Any = boto3.client("s3", region_name=REGION, endpoint_url=moto.url)
    try:
        arn = client.create_key(Description="careline restore test")["KeyMetadata"]["Arn"]
        bucket = f"careline-restore-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
    finally:
        client.close()
        s3.close()
    url = create_postgres_database()
    try:
        yield {
            "DATABASE_URL": url,
            "KMS_PROVIDER": "aws-kms",
            "AWS_REGION": REGION,
            "AWS_KMS_KEY_ID": arn,
            "AWS_ENDPOINT_URL": moto.url,
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": moto.url,
        }
    finally:
        drop_postgres_database(url)


def _plain_url(url: str) -> str:
    return url.split("?", 1)[0]


def _families(ws: Workstation) -> list[str]:
    return sorted(p.family for p in ws.records.list_patients(limit=100))


def test_pg_dump_restored_into_a_new_database_serves_the_clinic(
    production_env: dict[str, str], tmp_path: Path, no_keyring: None
) -> None:
    dump = tmp_path / "careline.dump"
    with live_server(tmp_path / "server", production_env) as live:
        clinic = add_clinic(live.server, "Harbour Clinic")
        desk, credential = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a")
        desk.records.add_patient("Dumped", "Ann", "1970-01-01")
        sync_at(desk, credential)
        dumped = live.server.pg_replica(clinic).version_vector()
        # Online, while the server runs: pg_dump reads one consistent snapshot.
        source = _plain_url(production_env["DATABASE_URL"])
        subprocess.run(["pg_dump", "-Fc", "-f", str(dump), source], check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        port = int(live.url.rsplit(":", 1)[1])
        # The embedded server's backup command is not the way here, and says which is.
        with pytest.raises(ServerBackupError, match="pg_dump"):
            backup_server(live.server, tmp_path / "x.clbackup", None, "passphrase")
    desk.records.add_patient("Later", "Lou", "1971-01-01")  # made while the server is down

    restored_url = create_postgres_database()
    try:
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-d",
                        _plain_url(restored_url), str(dump)],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        # A new server folder: only its TLS certificate and key are carried over (the
        # workstations pinned it), nothing else of the server lives on its disk.
        shutil.copytree(tmp_path / "server" / "tls", tmp_path / "server2" / "tls")
        env = production_env | {"DATABASE_URL": restored_url}
        # The lost server may have numbered ops of its own after the dump: the restored one
        # must never number ops under its old origin again.
        taken = server_admin(tmp_path / "server2", env, "new-identity")
        assert taken["clinics"] == [clinic]
        with live_server(tmp_path / "server2", env, port=port) as live:
            live.server.add_user(clinic, "nurse", "Nora Nurse", "nurse", PASSWORD)
            now = live.server.pg_replica(clinic).version_vector()
            assert {o: now[o] for o in dumped} == dumped
            assert len(set(now) - set(dumped)) == 1
            sync_at(desk, credential)
            other, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b")
            assert _families(other) == _families(desk) == ["Dumped", "Later"]
            assert other.records.conflicts() == []
            other.lock()
    finally:
        desk.lock()
        drop_postgres_database(restored_url)
