"""careline-server on AWS KMS (a real moto server) and Vault transit (a real OpenBao): a
clinic lives through key rotation and a restart, and wrapped data keys stay bound to their
tenant, so a mix-up fails with an error that says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest

from core.keys.providers import TamperedWrappedKeyError, WrappedKey, WrappedKeyMismatchError
from core.records.clinic import ClinicRecords
from core.server.service import REGISTRY_KEY_FILE, ClinicServer
from core.store.oplog import version_vector
from tests.integration.server_fixtures import (
    add_clinic,
    join_clinic,
    live_server,
    make_server,
    sync_at,
)
from tests.integration.server_process import ServerProcess, server_admin
from tests.services import Service, free_port

REGION = "eu-west-1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """moto's dummy credentials in the environment (boto3's default chain reads them);
    nothing is read from the host's AWS configuration."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return env


def _aws_kms_env(moto: Service) -> dict[str, str]:
    """A fresh KMS key behind a fresh alias (rotation moves the alias, so a restarted
    server finds the new key by the same AWS_KMS_KEY_ID)."""
    kms: Any = boto3.client(
        "kms",
        region_name=REGION,
        endpoint_url=moto.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        arn = kms.create_key(Description="careline server test")["KeyMetadata"]["Arn"]
        alias = f"alias/careline-{uuid.uuid4().hex[:12]}"
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
    finally:
        kms.close()
    return {
        "KMS_PROVIDER": "aws-kms",
        "AWS_REGION": REGION,
        "AWS_KMS_KEY_ID": alias,
        "AWS_ENDPOINT_URL": moto.url,
    }


def _vault_transit_env(openbao: Service) -> dict[str, str]:
    """The transit engine mounted (the session's OpenBao is shared) and a key name of our
    own, which the provider creates (derived) on first use."""
    client = hvac.Client(url=openbao.url, token=openbao.token)
    try:
        if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
            try:
                client.sys.enable_secrets_engine("transit", path="transit")
            except hvac.exceptions.InvalidRequest as exc:
                if "already in use" not in str(exc):
                    raise
    finally:
        client.adapter.close()
    return {
        "KMS_PROVIDER": "vault-transit",
        "VAULT_ADDR": openbao.url,
        "VAULT_TOKEN": openbao.token,
        "VAULT_TRANSIT_KEY": f"careline-it-{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture(params=["aws-kms", "vault-transit"])
def provider_env(request: pytest.FixtureRequest, aws_credentials: dict[str, str]) -> dict[str, str]:
    """Server settings (environment names) for one real remote key provider."""
    if request.param == "aws-kms":
        return _aws_kms_env(request.getfixturevalue("moto"))
    return _vault_transit_env(request.getfixturevalue("openbao"))


def _envelopes(server: ClinicServer) -> dict[tuple[str, str], WrappedKey]:
    keys = {(c, p): WrappedKey.unpack(w) for c, p, w, _ in server.registry.all_data_keys()}
    info = json.loads((server.data_dir / REGISTRY_KEY_FILE).read_text())
    keys["server", "registry"] = WrappedKey.unpack(bytes.fromhex(info["wrapped"]))
    return keys


def _patient_names(server: ClinicServer, clinic_id: str) -> set[str]:
    records = ClinicRecords(server.replica(clinic_id), "test")
    return {p.family for p in records.search_patients("", limit=100)}


def test_a_clinic_survives_key_rotation_and_a_restart(
    provider_env: dict[str, str], tmp_path: Path, no_keyring: None
) -> None:
    kind = provider_env["KMS_PROVIDER"]
    data, port = tmp_path / "server", free_port()
    with live_server(data, provider_env, port) as live:
        clinic = add_clinic(live.server, "Provider Clinic")
        ws, credential = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "ws")
        ws.records.add_patient("Before", "Rotation", "1970-01-01")
        sync_at(ws, credential)
        before = _envelopes(live.server)
        assert set(before) == {(clinic, "ca"), (clinic, "replica"), ("server", "registry")}
        for slot, env in before.items():
            assert (env.provider, env.tenant, env.purpose) == (kind, *slot)

        result = live.server.rotate_keys()
        new_version = result["key_version"]
        assert result["rewrapped"] == 3
        after = _envelopes(live.server)
        old_versions = {env.version for env in before.values()}
        assert new_version not in old_versions
        for slot, env in after.items():
            assert (env.provider, env.tenant, env.purpose) == (kind, *slot)
            assert env.version == new_version, slot
            assert env.ciphertext != before[slot].ciphertext, slot

        ws.records.add_patient("Between", "Rotation", "1970-01-02")
        sync_at(ws, credential)

    # A new process would build a new provider from the same settings: so do we.
    with live_server(data, provider_env, port) as live:
        assert _patient_names(live.server, clinic) == {"Before", "Between"}
        ws.records.add_patient("After", "Restart", "1970-01-03")
        sync_at(ws, credential)
        assert version_vector(live.server.replica(clinic)) == version_vector(ws.database)
        # Enrolling signs with the clinic CA, whose wrapping key was rotated too.
        fresh, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "fresh")
        assert {p.family for p in fresh.records.search_patients("", limit=100)} == {
            "Before",
            "Between",
            "After",
        }
        # New data keys are wrapped under the rotated master key version.
        second = live.server.create_clinic("Second Clinic")
        stored = live.server.registry.data_key(second.id, "replica")
        assert stored is not None and stored[1] == new_version
        assert all(r["ok"] for r in live.server.audit_report().values())
        fresh.lock()
    ws.lock()


def _swap(server: ClinicServer, a: str, b: str, purpose: str) -> None:
    key_a, key_b = server.registry.data_key(a, purpose), server.registry.data_key(b, purpose)
    assert key_a is not None and key_b is not None
    server.registry.store_data_key(a, purpose, *key_b)
    server.registry.store_data_key(b, purpose, *key_a)


def _server_cli(data: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli.server", "--data-dir", str(data), *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def two_clinics(provider_env: dict[str, str], tmp_path: Path) -> tuple[Path, str, str]:
    """A server data dir holding clinics A and B, each with one patient; server closed."""
    data = tmp_path / "server"
    server = make_server(data, provider_env)
    try:
        ids = []
        for name in ("Clinic A", "Clinic B"):
            clinic = add_clinic(server, name)
            ClinicRecords(server.replica(clinic), "test").add_patient(name[-1], "P", "1980-01-01")
            ids.append(clinic)
    finally:
        server.close()
    return data, ids[0], ids[1]


def test_wrapped_replica_keys_are_bound_to_their_tenant(
    provider_env: dict[str, str], two_clinics: tuple[Path, str, str]
) -> None:
    data, a, b = two_clinics
    server = make_server(data, provider_env)
    originals: dict[str, tuple[bytes, str]] = {}
    for clinic in (a, b):
        stored = server.registry.data_key(clinic, "replica")
        assert stored is not None
        originals[clinic] = stored
    _swap(server, a, b, "replica")
    server.close()

    # Swapped in the registry: refused by name, before anything is decrypted.
    server = make_server(data, provider_env)
    try:
        with pytest.raises(WrappedKeyMismatchError, match=f"belongs to tenant '{b}', not '{a}'"):
            server.replica(a)
        with pytest.raises(WrappedKeyMismatchError, match=f"belongs to tenant '{a}', not '{b}'"):
            server.replica(b)
        # Rewriting the cleartext envelope does not get past the provider's own binding
        # (KMS encryption context, Vault derivation context): an authentication failure.
        stolen = WrappedKey.unpack(originals[b][0])
        forged = WrappedKey(stolen.provider, a, stolen.purpose, stolen.version, stolen.ciphertext)
        server.registry.store_data_key(a, "replica", forged.pack(), stolen.version)
        server.close()
        server = make_server(data, provider_env)
        with pytest.raises(TamperedWrappedKeyError, match="fails authentication"):
            server.replica(a)
    finally:
        server.close()

    # The admin CLI reports it as an error naming the problem, not a traceback.
    cli = _server_cli(data, provider_env, "admin", "audit", "verify")
    assert cli.returncode == 1, cli.stderr
    assert "fails authentication" in cli.stderr
    assert "Traceback" not in cli.stderr

    # Put back, both clinics open with their own data: nothing was damaged.
    server = make_server(data, provider_env)
    try:
        for clinic, (wrapped, version) in originals.items():
            server.registry.store_data_key(clinic, "replica", wrapped, version)
        server.close()
        server = make_server(data, provider_env)
        assert _patient_names(server, a) == {"A"}
        assert _patient_names(server, b) == {"B"}
    finally:
        server.close()


def test_a_misspelt_kms_provider_is_refused_by_name(tmp_path: Path) -> None:
    data = tmp_path / "server"
    cli = _server_cli(data, {"KMS_PROVIDER": "vualt"}, "admin", "clinic", "list")
    assert cli.returncode == 2, cli.stderr
    assert "KMS_PROVIDER" in cli.stderr
    for allowed in ("local", "aws-kms", "vault-transit"):
        assert allowed in cli.stderr
    assert "'vualt'" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert not data.exists()


SEED_SPELLING = {"aws-kms": "aws_kms", "vault-transit": "vault"}


def test_the_seed_spelling_of_kms_provider_runs_a_server(
    provider_env: dict[str, str], tmp_path: Path, aws_credentials: dict[str, str]
) -> None:
    env = {**aws_credentials, **provider_env}
    env["KMS_PROVIDER"] = SEED_SPELLING[provider_env["KMS_PROVIDER"]]
    data = tmp_path / "server"
    server_admin(data, env, "init")
    clinic = server_admin(data, env, "clinic", "create", "Seed Spelling Clinic")
    running = ServerProcess(data, free_port(), env=env)
    running.start()
    running.stop()
    assert server_admin(data, env, "clinic", "list") == [clinic]
    assert not (data / "master-keys.json").exists()  # the remote provider held the keys
