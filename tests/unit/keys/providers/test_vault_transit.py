"""The Vault transit provider against a real OpenBao dev server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest

from core.config.settings import ConfigError
from core.keys.providers import (
    KeyVersionError,
    ProviderAccessError,
    ProviderUnavailableError,
    TamperedWrappedKeyError,
    WrappedKey,
    WrappedKeyMismatchError,
    provider_from_settings,
)
from core.keys.providers.vault_transit import VaultTransitProvider, transit_context
from tests.services import Service, free_port

T, P = "tenant-a", "records"


@pytest.fixture
def provider(openbao: Service, vault: Any, transit_key_name: str) -> Iterator[VaultTransitProvider]:
    with VaultTransitProvider(openbao.url, openbao.token, transit_key_name) as provider:
        yield provider


def test_creates_derived_key_and_round_trip(
    provider: VaultTransitProvider, vault: Any, transit_key_name: str
) -> None:
    info = vault.secrets.transit.read_key(transit_key_name)["data"]
    assert info["derived"] is True and info["type"] == "aes256-gcm96"
    with provider.generate_data_key(T, P) as dk:
        assert dk.version == "1" == provider.current_version()
        env = WrappedKey.unpack(dk.wrapped)
        assert env.ciphertext.startswith(b"vault:v1:")
        with provider.unwrap(T, P, dk.wrapped, dk.version) as key:
            assert key.read() == dk.key.read() and len(key.read()) == 32


def test_context_binding_really_refuses_other_tenant(
    provider: VaultTransitProvider, vault: Any, transit_key_name: str
) -> None:
    with provider.generate_data_key(T, P) as dk:
        env = WrappedKey.unpack(dk.wrapped)
        ciphertext = env.ciphertext.decode()
        # Straight to Vault, bypassing Careline's envelope check: the derived key refuses.
        for tenant, purpose in (("tenant-b", P), (T, "notes")):
            with pytest.raises(hvac.exceptions.InvalidRequest, match=r"authentication failed"):
                vault.secrets.transit.decrypt_data(
                    transit_key_name, ciphertext, context=transit_context(tenant, purpose)
                )
        with pytest.raises(WrappedKeyMismatchError, match=r"tenant 'tenant-a', not 'tenant-b'"):
            provider.unwrap("tenant-b", P, dk.wrapped, dk.version)
        forged = WrappedKey(env.provider, "tenant-b", P, env.version, env.ciphertext).pack()
        with pytest.raises(TamperedWrappedKeyError, match=r"tenant 'tenant-b'.*authentication"):
            provider.unwrap("tenant-b", P, forged, dk.version)


def test_tampered_or_mislabelled_wrapped_key_refused(provider: VaultTransitProvider) -> None:
    with provider.generate_data_key(T, P) as dk:
        env = WrappedKey.unpack(dk.wrapped)
        body = bytearray(env.ciphertext)
        body[20] = ord("A") if body[20] != ord("A") else ord("B")
        tampered = WrappedKey(env.provider, T, P, env.version, bytes(body)).pack()
        with pytest.raises(TamperedWrappedKeyError, match=r"fails authentication"):
            provider.unwrap(T, P, tampered, dk.version)
        with pytest.raises(KeyVersionError, match=r"not '2'"):
            provider.unwrap(T, P, dk.wrapped, "2")
        relabelled = WrappedKey(env.provider, T, P, "2", env.ciphertext).pack()
        with pytest.raises(TamperedWrappedKeyError, match=r"prefix disagrees"):
            provider.unwrap(T, P, relabelled, "2")


def test_rotate_rewrap_and_retire(provider: VaultTransitProvider) -> None:
    old = provider.generate_data_key(T, P)
    assert provider.rotate() == "2" == provider.current_version()
    with provider.unwrap(T, P, old.wrapped, "1") as key:
        assert key.read() == old.key.read()
    with provider.generate_data_key(T, P) as new:
        assert new.version == "2"
    wrapped, version = provider.rewrap(T, P, old.wrapped, "1")
    assert version == "2" and WrappedKey.unpack(wrapped).ciphertext.startswith(b"vault:v2:")
    with provider.unwrap(T, P, wrapped, "2") as key:
        assert key.read() == old.key.read()
    with pytest.raises(KeyVersionError, match=r"current and cannot be retired"):
        provider.retire("2")
    provider.retire("1")
    with pytest.raises(KeyVersionError, match=r"version 1 has been retired"):
        provider.unwrap(T, P, old.wrapped, "1")
    old.close()


def test_refuses_existing_non_derived_key(
    openbao: Service, vault: Any, transit_key_name: str
) -> None:
    vault.secrets.transit.create_key(transit_key_name)
    with pytest.raises(
        ConfigError, match=rf"VAULT_TRANSIT_KEY: .*{transit_key_name}.*not a derived"
    ):
        VaultTransitProvider(openbao.url, openbao.token, transit_key_name)


def test_bad_token_unreachable_and_missing_engine(
    openbao: Service, vault: Any, transit_key_name: str
) -> None:
    with pytest.raises(ProviderAccessError, match=r"VAULT_TOKEN"):
        VaultTransitProvider(openbao.url, "not-a-token", transit_key_name)
    with pytest.raises(ProviderUnavailableError, match=r"cannot reach Vault"):
        VaultTransitProvider(f"http://127.0.0.1:{free_port()}", openbao.token, transit_key_name)
    with pytest.raises(ProviderUnavailableError, match=r"transit engine enabled"):
        VaultTransitProvider(openbao.url, openbao.token, transit_key_name, mount_point="nowhere")


def test_from_settings(openbao: Service, vault: Any, transit_key_name: str, tmp_path: Path) -> None:
    settings = {
        "KMS_PROVIDER": "vault-transit",
        "VAULT_ADDR": openbao.url,
        "VAULT_TOKEN": openbao.token,
        "VAULT_TRANSIT_KEY": transit_key_name,
    }
    with provider_from_settings(settings, tmp_path) as provider:
        assert isinstance(provider, VaultTransitProvider)
        with (
            provider.generate_data_key(T, P) as dk,
            provider.unwrap(T, P, dk.wrapped, dk.version) as key,
        ):
            assert key.read() == dk.key.read()
