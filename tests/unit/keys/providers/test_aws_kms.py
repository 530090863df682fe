"""The AWS KMS provider against a real moto_server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.config import Config

from core.config.settings import ConfigError
from core.keys.providers import (
    KeyVersionError,
    ProviderUnavailableError,
    TamperedWrappedKeyError,
    WrappedKey,
    WrappedKeyMismatchError,
    provider_from_settings,
)
from core.keys.providers.aws_kms import AwsKmsProvider
from tests.services import Service, free_port
from tests.unit.keys.providers.conftest import REGION

T, P = "tenant-a", "records"


@pytest.fixture
def provider(moto: Service, kms_key: str, aws_session: Any) -> Iterator[AwsKmsProvider]:
    with AwsKmsProvider(kms_key, REGION, endpoint_url=moto.url, session=aws_session) as provider:
        yield provider


def test_round_trip_and_encryption_context(
    provider: AwsKmsProvider, kms: Any, kms_key: str
) -> None:
    with provider.generate_data_key(T, P) as dk:
        assert dk.version == kms_key == provider.current_version()
        env = WrappedKey.unpack(dk.wrapped)
        assert (env.provider, env.tenant, env.purpose) == ("aws-kms", T, P)
        with provider.unwrap(T, P, dk.wrapped, dk.version) as key:
            assert key.read() == dk.key.read() and len(key.read()) == 32
        # KMS itself binds the context: it decrypts only with tenant and purpose.
        plain = kms.decrypt(
            CiphertextBlob=env.ciphertext, EncryptionContext={"tenant": T, "purpose": P}
        )["Plaintext"]
        assert plain == dk.key.read()
        with pytest.raises(botocore.exceptions.ClientError, match=r"InvalidCiphertext"):
            kms.decrypt(
                CiphertextBlob=env.ciphertext, EncryptionContext={"tenant": "b", "purpose": P}
            )


def test_wrong_tenant_purpose_version_or_tampering_refused(
    provider: AwsKmsProvider, kms: Any
) -> None:
    with provider.generate_data_key(T, P) as dk:
        with pytest.raises(WrappedKeyMismatchError, match=r"tenant 'tenant-a', not 'b'"):
            provider.unwrap("b", P, dk.wrapped, dk.version)
        with pytest.raises(WrappedKeyMismatchError, match=r"purpose 'records', not 'notes'"):
            provider.unwrap(T, "notes", dk.wrapped, dk.version)
        other = str(kms.create_key()["KeyMetadata"]["Arn"])
        with pytest.raises(KeyVersionError, match=r"wrapped under master key version"):
            provider.unwrap(T, P, dk.wrapped, other)
        env = WrappedKey.unpack(dk.wrapped)
        forged = WrappedKey(env.provider, "b", env.purpose, env.version, env.ciphertext).pack()
        with pytest.raises(TamperedWrappedKeyError, match=r"tenant 'b'.*InvalidCiphertext"):
            provider.unwrap("b", P, forged, dk.version)
        flipped = dk.wrapped[:-1] + bytes([dk.wrapped[-1] ^ 1])
        with pytest.raises(TamperedWrappedKeyError, match=r"fails authentication"):
            provider.unwrap(T, P, flipped, dk.version)
        with pytest.raises(TamperedWrappedKeyError, match=r"fails authentication"):
            provider.rewrap(T, P, flipped, dk.version)


def test_rotate_alias_rewrap_and_retire(
    moto: Service, kms: Any, kms_key: str, aws_session: Any, tmp_path: Path
) -> None:
    alias = f"alias/careline-{tmp_path.name[-20:].replace('_', '-')}"
    kms.create_alias(AliasName=alias, TargetKeyId=kms_key)
    provider = AwsKmsProvider(alias, REGION, endpoint_url=moto.url, session=aws_session)
    old = provider.generate_data_key(T, P)
    assert old.version == kms_key
    new_version = provider.rotate()
    assert new_version != kms_key and provider.current_version() == new_version
    # The alias follows, so a restarted server uses the new key.
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"] == new_version
    with provider.unwrap(T, P, old.wrapped, old.version) as key:
        assert key.read() == old.key.read()
    with provider.generate_data_key(T, P) as new:
        assert new.version == new_version
    wrapped, version = provider.rewrap(T, P, old.wrapped, old.version)
    assert version == new_version
    assert WrappedKey.unpack(wrapped).version == new_version
    with provider.unwrap(T, P, wrapped, version) as key:
        assert key.read() == old.key.read()
    # Switching to a key the operator made works too.
    premade = str(kms.create_key()["KeyMetadata"]["Arn"])
    assert provider.rotate(premade) == premade == provider.current_version()
    with pytest.raises(KeyVersionError, match=r"is current and cannot be retired"):
        provider.retire(premade)
    provider.retire(kms_key)
    assert kms.describe_key(KeyId=kms_key)["KeyMetadata"]["KeyState"] == "Disabled"
    old.close()
    provider.close()


def test_unknown_key_and_unreachable_endpoint(moto: Service, aws_session: Any) -> None:
    with pytest.raises(ConfigError, match=r"AWS_KMS_KEY_ID: .*alias/nope"):
        AwsKmsProvider("alias/nope", REGION, endpoint_url=moto.url, session=aws_session)
    with pytest.raises(ProviderUnavailableError, match=r"cannot reach AWS KMS"):
        AwsKmsProvider(
            "alias/x",
            REGION,
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            session=aws_session,
            client_config=Config(retries={"max_attempts": 1}, connect_timeout=1),
        )


def test_from_settings(
    moto: Service, kms_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    settings = {
        "KMS_PROVIDER": "aws-kms",
        "AWS_KMS_KEY_ID": kms_key,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": moto.url,
    }
    with provider_from_settings(settings, tmp_path) as provider:
        assert isinstance(provider, AwsKmsProvider)
        with (
            provider.generate_data_key(T, P) as dk,
            provider.unwrap(T, P, dk.wrapped, dk.version) as key,
        ):
            assert key.read() == dk.key.read()
    assert not (tmp_path / "master-keys.json").exists()
