"""AWS KMS: data keys from GenerateDataKey, bound to tenant and purpose by EncryptionContext.

* ``generate_data_key``: ``GenerateDataKey`` (``KeySpec=AES_256``) under the current KMS
  key with ``EncryptionContext={"tenant": ..., "purpose": ...}``. KMS refuses to decrypt
  the blob under any other context.
* ``unwrap``: ``Decrypt`` with the same context and ``KeyId`` = the version, so a blob is
  only ever opened by the key it names.
* ``rewrap``: ``ReEncrypt`` to the current key; the plaintext never leaves KMS.
* Versions are KMS key ARNs. ``rotate`` switches to a new KMS key (created with
  ``CreateKey``, or one the operator made) and, when ``AWS_KMS_KEY_ID`` is an alias, points
  the alias at it, so a restarted server picks it up. With a plain key id, set
  AWS_KMS_KEY_ID to the returned ARN. Old keys keep decrypting until retired
  (``retire`` calls ``DisableKey``). KMS's own automatic rotation of key material is
  independent of this and invisible to versions.

What stays in memory: boto3 returns the plaintext data key as an immutable ``bytes``
object (and botocore has base64-decoded it from a response ``str``). Careline copies it
into SecureMemory at once, but those copies stay in Python's heap until reused. The
encryption context (tenant ids, purposes) appears in CloudTrail logs; it must carry no
patient data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from core.config.settings import ConfigError
from core.crypto.secure_memory import SecureMemory
from core.keys.providers.base import KeyProvider, WrappedKey, secure_key
from core.keys.providers.errors import (
    KeyProviderError,
    KeyVersionError,
    ProviderAccessError,
    ProviderUnavailableError,
)

DEFAULT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10
)

_ACCESS_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
}


def _alias_name(key_id: str) -> str | None:
    """``alias/x`` for an alias name or alias ARN, else None."""
    if key_id.startswith("alias/"):
        return key_id
    if key_id.startswith("arn:") and ":alias/" in key_id:
        return "alias/" + key_id.split(":alias/", 1)[1]
    return None


class AwsKmsProvider(KeyProvider):
    """Data keys from AWS KMS (or anything speaking its API, such as moto in tests)."""

    kind = "aws-kms"

    def __init__(
        self,
        key_id: str,
        region: str,
        *,
        endpoint_url: str | None = None,
        session: Any = None,
        client_config: Any = None,
    ) -> None:
        """Connect and resolve ``key_id`` (key id, key ARN, alias name or alias ARN).

        Credentials come from ``session`` or boto3's default chain (environment, shared
        files, instance or task role). A key that does not exist or cannot encrypt raises
        ConfigError naming AWS_KMS_KEY_ID.
        """
        super().__init__()
        self._configured = key_id
        self._region = region
        self._lock = threading.Lock()
        session = session if session is not None else boto3.session.Session()
        self._client: Any = session.client(
            "kms",
            region_name=region,
            endpoint_url=endpoint_url,
            config=client_config if client_config is not None else DEFAULT_CONFIG,
        )
        try:
            self._current = self._resolve(key_id)
        except KeyVersionError as exc:
            self._client.close()
            raise ConfigError(f"AWS_KMS_KEY_ID: {exc}") from None
        except KeyProviderError:
            self._client.close()
            raise

    # ----- calls ----------------------------------------------------------------------

    def _call(
        self, what: str, method: Callable[..., Any], env: WrappedKey | None = None, **kwargs: Any
    ) -> Any:
        """Call KMS and translate every botocore failure into a KeyProviderError."""
        self._check_open()
        try:
            return method(**kwargs)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")) or code
            key = env.version if env is not None else kwargs.get("KeyId", self._configured)
            if code == "InvalidCiphertextException" and env is not None:
                raise self._tampered(env, "KMS: InvalidCiphertextException") from None
            if code == "IncorrectKeyException":
                raise KeyVersionError(
                    f"AWS KMS: the ciphertext was not made by KMS key {key!r} ({what})"
                ) from None
            if code in {"DisabledException", "KMSInvalidStateException"}:
                raise KeyVersionError(
                    f"AWS KMS key {key!r} is disabled or pending deletion (retired?): {message}"
                ) from None
            if code == "NotFoundException":
                raise KeyVersionError(
                    f"AWS KMS key {key!r} was not found in region {self._region}: {message}"
                ) from None
            if code in _ACCESS_CODES:
                raise ProviderAccessError(
                    f"AWS KMS refused {what} with key {key!r} ({code}): check the credentials "
                    f"and the key policy. {message}"
                ) from None
            raise ProviderUnavailableError(f"AWS KMS {what} failed ({code}): {message}") from None
        except botocore.exceptions.NoCredentialsError:
            raise ProviderAccessError(
                "no AWS credentials found (environment, shared config or instance role)"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderUnavailableError(f"cannot reach AWS KMS for {what}: {exc}") from None

    @staticmethod
    def _context(tenant: str, purpose: str) -> dict[str, str]:
        return {"tenant": tenant, "purpose": purpose}

    def _resolve(self, key_id: str) -> str:
        meta = self._call("DescribeKey", self._client.describe_key, KeyId=key_id)["KeyMetadata"]
        if meta.get("KeyState") != "Enabled":
            raise KeyVersionError(f"KMS key {key_id!r} is {meta.get('KeyState')}, not Enabled")
        if (
            meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT"
            or meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT"
        ):
            raise KeyVersionError(
                f"KMS key {key_id!r} is not a symmetric encryption key "
                f"({meta.get('KeySpec')}, {meta.get('KeyUsage')})"
            )
        return str(meta["Arn"])

    # ----- interface ------------------------------------------------------------------

    def current_version(self) -> str:
        """ARN of the KMS key new data keys are generated under."""
        with self._lock:
            return self._current

    def rotate(self, next_key_id: str | None = None) -> str:
        """Switch to ``next_key_id``, or to a new KMS key made with CreateKey; return its ARN.

        If AWS_KMS_KEY_ID is an alias, the alias is moved to the new key. Otherwise the
        operator must set AWS_KMS_KEY_ID to the returned ARN before the next restart.
        """
        if next_key_id is None:
            created = self._call(
                "CreateKey",
                self._client.create_key,
                Description=f"Careline data-key wrapping key (rotated from {self._current})",
                KeyUsage="ENCRYPT_DECRYPT",
                KeySpec="SYMMETRIC_DEFAULT",
                Tags=[{"TagKey": "careline", "TagValue": "data-key-wrapping"}],
            )
            next_key_id = str(created["KeyMetadata"]["Arn"])
        arn = self._resolve(next_key_id)
        alias = _alias_name(self._configured)
        if alias is not None:
            self._call("UpdateAlias", self._client.update_alias, AliasName=alias, TargetKeyId=arn)
        with self._lock:
            self._current = arn
        return arn

    def retire(self, version: str) -> None:
        """Disable KMS key ``version`` (DisableKey): KMS then refuses to decrypt with it.

        Reversible with EnableKey; schedule deletion yourself once nothing needs it.
        """
        if version == self.current_version():
            raise KeyVersionError(
                f"KMS key {version!r} is current and cannot be retired; rotate first"
            )
        # DisableKey takes the bare key id (it works within the key's own account only).
        key_id = version.split(":key/", 1)[1] if ":key/" in version else version
        self._call("DisableKey", self._client.disable_key, KeyId=key_id)

    def close(self) -> None:
        """Close the HTTP connections."""
        if not self._closed:
            self._client.close()
        super().close()

    def _generate(self, tenant: str, purpose: str) -> tuple[SecureMemory, bytes, str]:
        resp = self._call(
            "GenerateDataKey",
            self._client.generate_data_key,
            KeyId=self.current_version(),
            KeySpec="AES_256",
            EncryptionContext=self._context(tenant, purpose),
        )
        key = secure_key(resp["Plaintext"], "AWS KMS")
        return key, bytes(resp["CiphertextBlob"]), str(resp["KeyId"])

    def _unwrap(self, env: WrappedKey) -> SecureMemory:
        resp = self._call(
            "Decrypt",
            self._client.decrypt,
            env,
            CiphertextBlob=env.ciphertext,
            EncryptionContext=self._context(env.tenant, env.purpose),
            KeyId=env.version,
        )
        if str(resp.get("KeyId")) != env.version:
            raise KeyVersionError(
                f"AWS KMS decrypted with key {resp.get('KeyId')!r}, not {env.version!r}"
            )
        return secure_key(resp["Plaintext"], "AWS KMS")

    def _rewrap(self, env: WrappedKey) -> tuple[bytes, str]:
        context = self._context(env.tenant, env.purpose)
        resp = self._call(
            "ReEncrypt",
            self._client.re_encrypt,
            env,
            CiphertextBlob=env.ciphertext,
            SourceEncryptionContext=context,
            SourceKeyId=env.version,
            DestinationKeyId=self.current_version(),
            DestinationEncryptionContext=context,
        )
        return bytes(resp["CiphertextBlob"]), str(resp["KeyId"])
