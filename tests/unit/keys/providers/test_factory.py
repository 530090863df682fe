"""SERVER_KEY_SETTINGS and provider_from_settings: validation messages, local sources."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from core.config.settings import ConfigError, load_settings
from core.keys.providers import (
    SERVER_KEY_SETTINGS,
    LocalKeyProvider,
    check_server_key_settings,
    provider_from_settings,
)


def _load(env: dict[str, str]) -> dict[str, Any]:
    return load_settings(SERVER_KEY_SETTINGS, env=env)


def test_schema_names_and_defaults() -> None:
    assert all(s.name == s.env for s in SERVER_KEY_SETTINGS)
    assert {s.name for s in SERVER_KEY_SETTINGS} == {
        "KMS_PROVIDER", "AWS_KMS_KEY_ID", "AWS_REGION", "AWS_ENDPOINT_URL", "VAULT_ADDR",
        "VAULT_TOKEN", "VAULT_TRANSIT_KEY", "MASTER_ENCRYPTION_KEY",
    }  # fmt: skip
    settings = _load({})
    assert settings["KMS_PROVIDER"] == "local"
    assert settings["VAULT_TRANSIT_KEY"] == "careline"
    assert check_server_key_settings(settings) == "local"


def test_unknown_provider_named() -> None:
    with pytest.raises(ConfigError) as info:
        _load({"KMS_PROVIDER": "vualt"})
    message = str(info.value)
    assert message.startswith("KMS_PROVIDER")
    assert "'vualt' is not one of local, aws-kms, vault-transit" in message
    with pytest.raises(ConfigError, match=r"KMS_PROVIDER .*'kms' is not one of"):
        check_server_key_settings({"KMS_PROVIDER": "kms"})


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"KMS_PROVIDER": "aws-kms", "AWS_REGION": "eu-west-1"}, "AWS_KMS_KEY_ID"),
        ({"KMS_PROVIDER": "aws-kms", "AWS_KMS_KEY_ID": "alias/careline"}, "AWS_REGION"),
        ({"KMS_PROVIDER": "vault-transit", "VAULT_TOKEN": "t"}, "VAULT_ADDR"),
        ({"KMS_PROVIDER": "vault-transit", "VAULT_ADDR": "https://vault:8200"}, "VAULT_TOKEN"),
    ],
)
def test_missing_required_value_named(env: dict[str, str], missing: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{missing} is required when KMS_PROVIDER is"):
        provider_from_settings(_load(env), tmp_path)


def test_plain_http_only_to_loopback() -> None:
    base = {"KMS_PROVIDER": "vault-transit", "VAULT_TOKEN": "t"}
    with pytest.raises(ConfigError, match=r"VAULT_ADDR: 'http://vault.internal:8200' uses plain"):
        check_server_key_settings(_load({**base, "VAULT_ADDR": "http://vault.internal:8200"}))
    with pytest.raises(ConfigError, match=r"VAULT_ADDR: 'vault:8200' is not an http"):
        check_server_key_settings(_load({**base, "VAULT_ADDR": "vault:8200"}))
    for ok in ("https://vault.internal:8200", "http://127.0.0.1:8200", "http://[::1]:8200"):
        assert check_server_key_settings(_load({**base, "VAULT_ADDR": ok})) == "vault-transit"
    aws = {"KMS_PROVIDER": "aws-kms", "AWS_KMS_KEY_ID": "k", "AWS_REGION": "eu-west-1"}
    with pytest.raises(ConfigError, match=r"AWS_ENDPOINT_URL: .* uses plain http"):
        check_server_key_settings(_load({**aws, "AWS_ENDPOINT_URL": "http://kms.example"}))


def test_master_key_with_other_provider_refused() -> None:
    env = {
        "KMS_PROVIDER": "aws-kms",
        "AWS_KMS_KEY_ID": "alias/careline",
        "AWS_REGION": "eu-west-1",
        "MASTER_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    with pytest.raises(ConfigError, match=r"MASTER_ENCRYPTION_KEY is set but KMS_PROVIDER is aws"):
        check_server_key_settings(_load(env))


def test_local_sources_in_order(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    creds = tmp_path / "credentials"
    creds.mkdir()
    # No key, no credential: the key file, created in the data directory.
    with provider_from_settings(_load({}), data_dir, environ={}) as provider:
        assert isinstance(provider, LocalKeyProvider)
        assert provider.key_file == data_dir / "master-keys.json"
    assert (data_dir / "master-keys.json").stat().st_mode & 0o777 == 0o600
    # CREDENTIALS_DIRECTORY set but without our credential: still the key file.
    environ = {"CREDENTIALS_DIRECTORY": str(creds)}
    with provider_from_settings(_load({}), data_dir, environ=environ) as provider:
        assert isinstance(provider, LocalKeyProvider) and provider.key_file is not None
    (creds / "careline-master-key").write_text(base64.b64encode(os.urandom(32)).decode())
    with provider_from_settings(_load({}), data_dir, environ=environ) as provider:
        assert isinstance(provider, LocalKeyProvider)
        assert provider.source.startswith("systemd credential")
    env = {"MASTER_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}
    with provider_from_settings(_load(env), data_dir, environ=environ) as provider:
        assert isinstance(provider, LocalKeyProvider)
        assert provider.source == "environment MASTER_ENCRYPTION_KEY"
    with pytest.raises(ConfigError, match=r"MASTER_ENCRYPTION_KEY decodes to 31 bytes"):
        provider_from_settings(
            _load({"MASTER_ENCRYPTION_KEY": base64.b64encode(b"x" * 31).decode()}), data_dir
        )
