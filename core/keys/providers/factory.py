"""Server key settings (one schema) and building the configured provider from them."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.config.settings import ConfigError, Setting
from core.keys.providers.base import KeyProvider
from core.keys.providers.local import CREDENTIAL_NAME, KEY_FILE_NAME, local_provider

PROVIDERS = ("local", "aws-kms", "vault-transit")
# The seed document's spellings (DESIGN.md 3), accepted as well as the ones above.
PROVIDER_ALIASES = {
    "aws_kms": "aws-kms",
    "vault": "vault-transit",
    "vault_transit": "vault-transit",
}

SERVER_KEY_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "KMS_PROVIDER",
        str,
        "local",
        "Where master keys live: local (key file in the data directory, a systemd "
        "credential or MASTER_ENCRYPTION_KEY), aws-kms (or aws_kms) or vault-transit (or vault).",
        "KMS_PROVIDER",
        choices=PROVIDERS,
        aliases=PROVIDER_ALIASES,
    ),
    Setting(
        "AWS_KMS_KEY_ID",
        str,
        None,
        "AWS KMS key id, key ARN, alias name (alias/careline) or alias ARN. With an alias, "
        "rotation moves the alias to the new key. Required for aws-kms.",
        "AWS_KMS_KEY_ID",
    ),
    Setting(
        "AWS_REGION", str, None, "AWS region of the KMS key. Required for aws-kms.", "AWS_REGION"
    ),
    Setting(
        "AWS_ENDPOINT_URL",
        str,
        None,
        "Optional KMS endpoint override (a VPC endpoint, or moto in tests).",
        "AWS_ENDPOINT_URL",
    ),
    Setting(
        "VAULT_ADDR",
        str,
        None,
        "Vault/OpenBao address (https://...). Required for vault-transit.",
        "VAULT_ADDR",
    ),
    Setting(
        "VAULT_TOKEN",
        str,
        None,
        "Vault token allowed to use the transit key. Required for vault-transit. Held in "
        "memory as an immutable str.",
        "VAULT_TOKEN",
    ),
    Setting(
        "VAULT_TRANSIT_KEY",
        str,
        "careline",
        "Name of this deployment's transit key (created, derived, if missing).",
        "VAULT_TRANSIT_KEY",
    ),
    Setting(
        "MASTER_ENCRYPTION_KEY",
        str,
        None,
        "local only: base64 of 32 random bytes (openssl rand -base64 32), with or without "
        "a base64: prefix. Prefer the key "
        "file or a systemd credential: the environment keeps an unwipeable copy.",
        "MASTER_ENCRYPTION_KEY",
    ),
)

_BY_NAME = {s.name: s for s in SERVER_KEY_SETTINGS}


def _value(settings: Mapping[str, Any], name: str) -> str | None:
    raw = settings.get(name)
    if raw is None or raw == "":
        return None
    return str(_BY_NAME[name].parse(raw, "settings"))


def _require(settings: Mapping[str, Any], name: str, kind: str) -> str:
    value = _value(settings, name)
    if value is None:
        raise ConfigError(f"{name} is required when KMS_PROVIDER is {kind}")
    return value


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: {url!r} is not an http(s) URL")
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(
                f"{name}: {url!r} uses plain http to a remote host, so credentials and keys "
                "would cross the network unencrypted; use https"
            )


def check_server_key_settings(settings: Mapping[str, Any]) -> str:
    """Validate the key settings without connecting anywhere; return the provider kind.

    Raises ConfigError naming the offending variable: an unknown KMS_PROVIDER, a value the
    chosen provider requires but is missing, a non-https remote URL, or
    MASTER_ENCRYPTION_KEY set for a provider that would ignore it. A malformed
    MASTER_ENCRYPTION_KEY is reported when the provider is built.
    """
    kind = _value(settings, "KMS_PROVIDER") or "local"
    if kind == "aws-kms":
        _require(settings, "AWS_KMS_KEY_ID", kind)
        _require(settings, "AWS_REGION", kind)
        endpoint = _value(settings, "AWS_ENDPOINT_URL")
        if endpoint is not None:
            _check_url("AWS_ENDPOINT_URL", endpoint)
    elif kind == "vault-transit":
        _check_url("VAULT_ADDR", _require(settings, "VAULT_ADDR", kind))
        _require(settings, "VAULT_TOKEN", kind)
        _require(settings, "VAULT_TRANSIT_KEY", kind)
    if kind != "local" and _value(settings, "MASTER_ENCRYPTION_KEY") is not None:
        raise ConfigError(
            f"MASTER_ENCRYPTION_KEY is set but KMS_PROVIDER is {kind}, which does not use it; "
            "unset MASTER_ENCRYPTION_KEY"
        )
    return kind


def provider_from_settings(
    settings: Mapping[str, Any],
    data_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
) -> KeyProvider:
    """Build the provider KMS_PROVIDER names (see :func:`check_server_key_settings`).

    ``settings`` is what ``load_settings(SERVER_KEY_SETTINGS, ...)`` returns (a plain
    mapping of the same names works too). ``data_dir`` holds the local key file.
    ``environ`` (default ``os.environ``) is only read for systemd's CREDENTIALS_DIRECTORY.
    The AWS and Vault client libraries are imported only when chosen.
    """
    kind = check_server_key_settings(settings)
    if kind == "aws-kms":
        from core.keys.providers.aws_kms import AwsKmsProvider

        return AwsKmsProvider(
            _require(settings, "AWS_KMS_KEY_ID", kind),
            _require(settings, "AWS_REGION", kind),
            endpoint_url=_value(settings, "AWS_ENDPOINT_URL"),
        )
    if kind == "vault-transit":
        from core.keys.providers.vault_transit import VaultTransitProvider

        return VaultTransitProvider(
            _require(settings, "VAULT_ADDR", kind),
            _require(settings, "VAULT_TOKEN", kind),
            _require(settings, "VAULT_TRANSIT_KEY", kind),
        )
    return local_provider(
        _value(settings, "MASTER_ENCRYPTION_KEY"),
        data_dir,
        os.environ if environ is None else environ,
    )


def local_key_file(
    settings: Mapping[str, Any],
    data_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """The master key file :func:`provider_from_settings` would read (and create when
    missing) in ``data_dir``; None when the master key comes from elsewhere (a KMS,
    MASTER_ENCRYPTION_KEY or a systemd credential)."""
    if check_server_key_settings(settings) != "local":
        return None
    if _value(settings, "MASTER_ENCRYPTION_KEY"):
        return None
    credentials = (os.environ if environ is None else environ).get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL_NAME).exists():
        return None
    return Path(data_dir) / KEY_FILE_NAME
