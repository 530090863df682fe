"""The local key provider: key file, systemd credential, MASTER_ENCRYPTION_KEY."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from core.config.settings import ConfigError
from core.keys.providers import (
    KeyVersionError,
    LocalKeyProvider,
    MasterKeyFileError,
    ReadOnlyKeySourceError,
    TamperedWrappedKeyError,
    WrappedKey,
    WrappedKeyMismatchError,
)
from core.keys.providers.errors import KeyProviderError
from core.keys.providers.local import KEY_FILE_NAME

T, P = "tenant-a", "records"


@pytest.fixture
def provider(tmp_path: Path) -> LocalKeyProvider:
    return LocalKeyProvider.from_key_file(tmp_path / "data" / KEY_FILE_NAME)


def test_key_file_created_private_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "data" / KEY_FILE_NAME
    with LocalKeyProvider.from_key_file(path) as provider:
        assert path.stat().st_mode & 0o777 == 0o600
        with provider.generate_data_key(T, P) as dk:
            plaintext = dk.key.read()
            assert len(plaintext) == 32
            assert plaintext not in dk.wrapped
            assert dk.version == provider.current_version()
            assert dk.version.startswith("lk-")
            wrapped, version = dk.wrapped, dk.version
    assert plaintext not in path.read_bytes()
    # A restarted server (new provider on the same file) opens it.
    with LocalKeyProvider.from_key_file(path) as again, again.unwrap(T, P, wrapped, version) as k:
        assert k.read() == plaintext


def test_wrong_tenant_purpose_or_version_refused(provider: LocalKeyProvider) -> None:
    with provider.generate_data_key(T, P) as dk:
        with pytest.raises(WrappedKeyMismatchError, match=r"belongs to tenant 'tenant-a', not 'b'"):
            provider.unwrap("b", P, dk.wrapped, dk.version)
        with pytest.raises(WrappedKeyMismatchError, match=r"purpose 'records', not 'audit'"):
            provider.unwrap(T, "audit", dk.wrapped, dk.version)
        with pytest.raises(KeyVersionError, match=r"not 'lk-0000'"):
            provider.unwrap(T, P, dk.wrapped, "lk-0000")
        # Rewriting the cleartext envelope does not get past the AES-GCM binding.
        env = WrappedKey.unpack(dk.wrapped)
        forged = WrappedKey(env.provider, "b", env.purpose, env.version, env.ciphertext).pack()
        with pytest.raises(TamperedWrappedKeyError, match=r"fails authentication"):
            provider.unwrap("b", P, forged, dk.version)


def test_tampered_or_damaged_wrapped_key_refused(provider: LocalKeyProvider) -> None:
    with provider.generate_data_key(T, P) as dk:
        flipped = dk.wrapped[:-1] + bytes([dk.wrapped[-1] ^ 1])
        with pytest.raises(TamperedWrappedKeyError, match=r"tenant 'tenant-a'.*altered"):
            provider.unwrap(T, P, flipped, dk.version)
        with pytest.raises(TamperedWrappedKeyError, match=r"truncated"):
            provider.unwrap(T, P, dk.wrapped[:12], dk.version)
        with pytest.raises(TamperedWrappedKeyError, match=r"not in Careline's format"):
            provider.unwrap(T, P, b"garbage" * 8, dk.version)


def test_rotate_keeps_old_versions_rewrap_and_retire(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    provider = LocalKeyProvider.from_key_file(path)
    other_process = LocalKeyProvider.from_key_file(path)
    old = provider.generate_data_key(T, P)
    v1 = old.version
    v2 = provider.rotate()
    assert v2 != v1 and provider.current_version() == v2
    assert path.stat().st_mode & 0o777 == 0o600
    assert set(json.loads(path.read_text())["keys"][i]["id"] for i in range(2)) == {v1, v2}
    with provider.unwrap(T, P, old.wrapped, v1) as k:
        assert k.read() == old.key.read()
    with provider.generate_data_key(T, P) as new:
        assert new.version == v2
        # A process that loaded the file before the rotation picks the new version up.
        with other_process.unwrap(T, P, new.wrapped, v2) as k:
            assert k.read() == new.key.read()
    wrapped, version = provider.rewrap(T, P, old.wrapped, v1)
    assert version == v2 and wrapped != old.wrapped
    with provider.unwrap(T, P, wrapped, v2) as k:
        assert k.read() == old.key.read()
    with pytest.raises(KeyVersionError, match=r"current and cannot be retired"):
        provider.retire(v2)
    provider.retire(v1)
    with pytest.raises(KeyVersionError, match=r"has been retired"):
        provider.unwrap(T, P, old.wrapped, v1)
    with pytest.raises(KeyVersionError, match=r"has been retired"):
        other_process.unwrap(T, P, old.wrapped, v1)
    assert v1 not in path.read_text()[: path.read_text().index('"retired"')]
    old.close()
    provider.close()
    other_process.close()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_refuses_key_file_others_can_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / KEY_FILE_NAME
    LocalKeyProvider.from_key_file(path).close()
    path.chmod(mode)
    with pytest.raises(MasterKeyFileError) as info:
        LocalKeyProvider.from_key_file(path)
    assert str(path) in str(info.value)
    assert f"mode {mode:04o}" in str(info.value)
    assert "chmod 600" in str(info.value)


def test_refuses_symlinked_or_damaged_key_file(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    LocalKeyProvider.from_key_file(real).close()
    link = tmp_path / KEY_FILE_NAME
    link.symlink_to(real)
    with pytest.raises(MasterKeyFileError, match=r"symlink"):
        LocalKeyProvider.from_key_file(link)
    doc = json.loads(real.read_text())
    doc["keys"][0]["id"] = "lk-0123456789abcdef"
    real.write_text(json.dumps(doc))
    with pytest.raises(MasterKeyFileError, match=r"does not match its fingerprint"):
        LocalKeyProvider.from_key_file(real)
    with pytest.raises(MasterKeyFileError, match=r"missing"):
        LocalKeyProvider.from_key_file(tmp_path / "none.json", create=False)


def test_master_encryption_key_value() -> None:
    secret = base64.b64encode(os.urandom(32)).decode()
    with LocalKeyProvider.from_env_value(secret) as provider:
        assert provider.source == "environment MASTER_ENCRYPTION_KEY"
        with (
            provider.generate_data_key(T, P) as dk,
            provider.unwrap(T, P, dk.wrapped, dk.version) as k,
        ):
            assert k.read() == dk.key.read()
        with pytest.raises(ReadOnlyKeySourceError, match=r"MASTER_ENCRYPTION_KEY"):
            provider.rotate()
    short = base64.b64encode(os.urandom(16)).decode()
    with pytest.raises(ConfigError, match=r"MASTER_ENCRYPTION_KEY decodes to 16 bytes") as info:
        LocalKeyProvider.from_env_value(short)
    assert short not in str(info.value)
    with pytest.raises(ConfigError, match=r"MASTER_ENCRYPTION_KEY is not valid base64"):
        LocalKeyProvider.from_env_value("not base64 at all!")


def test_systemd_credential_same_key_same_version(tmp_path: Path) -> None:
    raw = os.urandom(32)
    (tmp_path / "careline-master-key").write_bytes(raw)
    with (
        LocalKeyProvider.from_credential(tmp_path) as from_credential,
        LocalKeyProvider.from_env_value(base64.b64encode(raw).decode()) as from_env,
    ):
        assert "systemd credential" in from_credential.source
        assert from_credential.current_version() == from_env.current_version()
        with (
            from_env.generate_data_key(T, P) as dk,
            from_credential.unwrap(T, P, dk.wrapped, dk.version) as k,
        ):
            assert k.read() == dk.key.read()
        with pytest.raises(ReadOnlyKeySourceError, match=r"systemd credential"):
            from_credential.retire(from_credential.current_version())
    # An exported key file works as a credential too, with all its versions.
    key_file = tmp_path / KEY_FILE_NAME
    with LocalKeyProvider.from_key_file(key_file) as file_provider:
        old = file_provider.generate_data_key(T, P)
        file_provider.rotate()
    (tmp_path / "careline-master-key").write_bytes(key_file.read_bytes())
    with (
        LocalKeyProvider.from_credential(tmp_path) as from_credential,
        from_credential.unwrap(T, P, old.wrapped, old.version) as k,
    ):
        assert k.read() == old.key.read()
    old.close()
    (tmp_path / "careline-master-key").write_bytes(b"c2hvcnQ=\n")
    with pytest.raises(ConfigError, match=r"careline-master-key decodes to 5 bytes"):
        LocalKeyProvider.from_credential(tmp_path)


def test_closed_provider_refuses_and_bad_labels(provider: LocalKeyProvider) -> None:
    with pytest.raises(ValueError, match=r"tenant must be a non-empty string"):
        provider.generate_data_key("", P)
    with pytest.raises(ValueError, match=r"control characters"):
        provider.generate_data_key(T, "a\nb")
    dk = provider.generate_data_key(T, P)
    provider.close()
    with pytest.raises(KeyProviderError, match=r"has been closed"):
        provider.unwrap(T, P, dk.wrapped, dk.version)
    with pytest.raises(KeyProviderError, match=r"has been closed"):
        provider.generate_data_key(T, P)
    dk.close()
    assert dk.key.closed
