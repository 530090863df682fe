"""careline-server's settings as operators write them (the seed's spellings included)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from core.config.settings import ConfigError
from core.keys.providers import provider_from_settings
from core.server.settings import load_server_settings


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("local", "local"),
        ("aws-kms", "aws-kms"),
        ("aws_kms", "aws-kms"),
        ("AWS_KMS", "aws-kms"),
        ("vault-transit", "vault-transit"),
        ("vault", "vault-transit"),
        ("vault_transit", "vault-transit"),
    ],
)
def test_kms_provider_accepts_the_seed_spellings(written: str, meant: str) -> None:
    settings = load_server_settings(env={"KMS_PROVIDER": written})
    assert settings["KMS_PROVIDER"] == meant


def test_a_misspelt_kms_provider_names_every_accepted_spelling() -> None:
    with pytest.raises(ConfigError) as caught:
        load_server_settings(env={"KMS_PROVIDER": "vualt"})
    message = str(caught.value)
    assert "KMS_PROVIDER" in message and "'vualt'" in message
    for spelling in ("local", "aws-kms", "vault-transit", "aws_kms", "vault"):
        assert spelling in message


@pytest.mark.parametrize("prefix", ["", "base64:", "BASE64:", "base64: "])
def test_master_key_with_or_without_the_base64_prefix_is_the_same_key(
    prefix: str, tmp_path: Path
) -> None:
    text = base64.b64encode(os.urandom(32)).decode()
    versions = []
    for written in (text, prefix + text):
        settings = load_server_settings(env={"MASTER_ENCRYPTION_KEY": written})
        provider = provider_from_settings(settings, tmp_path, environ={})
        versions.append(provider.current_version())
        provider.close()
    assert versions[0] == versions[1]
    assert not (tmp_path / "master-keys.json").exists()  # the variable was used, no key file


def test_a_bad_master_key_is_refused_without_repeating_it(tmp_path: Path) -> None:
    for bad in ("base64:not base64!", "base64:" + base64.b64encode(b"short").decode()):
        settings = load_server_settings(env={"MASTER_ENCRYPTION_KEY": bad})
        with pytest.raises(ConfigError, match="MASTER_ENCRYPTION_KEY") as caught:
            provider_from_settings(settings, tmp_path, environ={})
        assert bad.split(":", 1)[1] not in str(caught.value)


def test_constant_time_ops_cannot_be_turned_off() -> None:
    assert load_server_settings(env={"ENABLE_CONSTANT_TIME_OPS": "true"})[
        "ENABLE_CONSTANT_TIME_OPS"
    ]
    with pytest.raises(ConfigError) as caught:
        load_server_settings(env={"ENABLE_CONSTANT_TIME_OPS": "false"})
    message = str(caught.value)
    assert "ENABLE_CONSTANT_TIME_OPS=false" in message
    assert "hmac.compare_digest" in message and "cannot be turned off" in message


def test_log_settings_default_to_json_at_info_and_are_checked() -> None:
    settings = load_server_settings(env={})
    assert (settings["LOG_FORMAT"], settings["LOG_LEVEL"]) == ("json", "info")
    assert load_server_settings(env={"LOG_LEVEL": "WARN"})["LOG_LEVEL"] == "warning"
    with pytest.raises(ConfigError, match=r"LOG_FORMAT.*'xml' is not one of json, text"):
        load_server_settings(env={"LOG_FORMAT": "xml"})


def test_memory_locking_is_on_unless_turned_off() -> None:
    assert load_server_settings(env={})["ENABLE_MEMORY_LOCKING"] is True
    assert (
        load_server_settings(env={"ENABLE_MEMORY_LOCKING": "false"})["ENABLE_MEMORY_LOCKING"]
        is False
    )


def test_sslmode_in_the_url_and_the_setting_must_agree() -> None:
    bare = "postgresql://careline@db.example:5432/careline"
    url = bare + "?sslmode=require"
    # Only in the URL: the URL's; both and equal: fine.
    assert load_server_settings(env={"DATABASE_URL": url})["DATABASE_SSL_MODE"] == "require"
    both = {"DATABASE_URL": url, "DATABASE_SSL_MODE": "require"}
    assert load_server_settings(env=both)["DATABASE_SSL_MODE"] == "require"
    # Only the setting: the setting's; neither: verify-full.
    only = {"DATABASE_URL": bare, "DATABASE_SSL_MODE": "verify-ca"}
    assert load_server_settings(env=only)["DATABASE_SSL_MODE"] == "verify-ca"
    assert load_server_settings(env={"DATABASE_URL": bare})["DATABASE_SSL_MODE"] == "verify-full"
    # Both and different: refused, naming both.
    with pytest.raises(ConfigError, match="sslmode=require but DATABASE_SSL_MODE=verify-full"):
        load_server_settings(env={"DATABASE_URL": url, "DATABASE_SSL_MODE": "verify-full"})
