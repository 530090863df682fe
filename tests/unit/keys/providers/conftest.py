"""Fixtures for the key-provider tests: real moto (AWS KMS) and OpenBao (Vault transit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest

from tests.services import Service

REGION = "eu-west-1"


@pytest.fixture
def aws_session() -> Any:
    """A boto3 session with moto's dummy credentials (nothing read from the host)."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture
def kms(moto: Service, aws_session: Any) -> Iterator[Any]:
    """A raw boto3 KMS client on the moto server, for arranging and checking."""
    client = aws_session.client("kms", endpoint_url=moto.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kms_key(kms: Any) -> str:
    """ARN of a fresh symmetric KMS key on the moto server."""
    return str(kms.create_key(Description="careline test")["KeyMetadata"]["Arn"])


@pytest.fixture
def vault(openbao: Service) -> Iterator[Any]:
    """An hvac client (root token) on the OpenBao server, with transit enabled.

    The server lives for the whole session and other tests may share it, so enabling
    the engine tolerates "already in use".
    """
    client = hvac.Client(url=openbao.url, token=openbao.token)
    if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
        try:
            client.sys.enable_secrets_engine("transit", path="transit")
        except hvac.exceptions.InvalidRequest as exc:
            if "already in use" not in str(exc):
                raise
    try:
        yield client
    finally:
        client.adapter.close()


@pytest.fixture
def transit_key_name() -> str:
    """A transit key name no other test uses."""
    return f"careline-test-{uuid.uuid4().hex[:12]}"
