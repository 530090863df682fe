"""Vault (or OpenBao) transit: data keys wrapped by a derived transit key.

* One transit key per deployment (``VAULT_TRANSIT_KEY``, default ``careline``), created
  if missing as ``aes256-gcm96`` with ``derived=true``. Every operation passes a context
  (base64 of ``{"purpose": ..., "tenant": ...}``): Vault derives a separate key per
  context, so a data key wrapped for tenant A does not decrypt as tenant B. An existing
  key that is *not* derived is refused: it would ignore the context.
* ``generate_data_key``: ``transit/datakey/plaintext/<key>`` (256 bits).
* ``unwrap``: ``transit/decrypt``; ``rewrap``: ``transit/rewrap`` (the plaintext never
  leaves Vault); ``rotate``: ``transit/keys/<key>/rotate``; ``retire``: raises the key's
  ``min_decryption_version``, which retires that version *and every older one*.
* Versions are the ``N`` of the ``vault:vN:`` ciphertext prefix, as strings.

What stays in memory: Vault returns the plaintext data key as base64 inside a JSON
response; ``requests``/``json`` keep that as immutable ``str``/``bytes`` objects Python
cannot wipe. Careline copies the key into SecureMemory at once. The Vault token
(VAULT_TOKEN) is held by hvac as a ``str`` for the life of the provider.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import hvac
import hvac.exceptions
import requests

from core.config.settings import ConfigError
from core.crypto.secure_memory import SecureMemory
from core.keys.providers.base import DATA_KEY_SIZE, KeyProvider, WrappedKey, secure_key
from core.keys.providers.errors import (
    KeyVersionError,
    ProviderAccessError,
    ProviderUnavailableError,
)

DEFAULT_KEY_NAME = "careline"
DEFAULT_MOUNT = "transit"
_VERSION = re.compile(r"^vault:v([0-9]{1,9}):")


def transit_context(tenant: str, purpose: str) -> str:
    """The key-derivation context for ``tenant``/``purpose`` (deterministic base64 JSON)."""
    doc = json.dumps(
        {"purpose": purpose, "tenant": tenant},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return base64.b64encode(doc.encode("ascii")).decode("ascii")


def ciphertext_version(ciphertext: str) -> str | None:
    """``"3"`` for ``"vault:v3:..."``, None if the prefix is missing."""
    match = _VERSION.match(ciphertext)
    return None if match is None else match.group(1)


class _NotFoundError(ProviderUnavailableError):
    """Vault answered 404: no such transit key (or no transit engine at the mount)."""


def _vault_message(exc: hvac.exceptions.VaultError) -> str:
    if exc.errors:
        return "; ".join(str(e) for e in exc.errors)
    return str(exc.args[0]) if exc.args and exc.args[0] else type(exc).__name__


class VaultTransitProvider(KeyProvider):
    """Data keys from Vault/OpenBao transit, one derived transit key per deployment."""

    kind = "vault-transit"

    def __init__(
        self,
        addr: str,
        token: str,
        key_name: str = DEFAULT_KEY_NAME,
        *,
        mount_point: str = DEFAULT_MOUNT,
        verify: bool | str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Connect, create the transit key if missing, and check it is a derived key.

        ``verify`` is passed to hvac (a CA bundle path, or True/False); None lets hvac
        read VAULT_CACERT / VAULT_SKIP_VERIFY. A key that exists but is not derived raises
        ConfigError naming VAULT_TRANSIT_KEY.
        """
        super().__init__()
        self._addr = addr
        self._name = key_name
        self._mount = mount_point
        self._lock = threading.Lock()
        self._client: Any = hvac.Client(url=addr, token=token, verify=verify, timeout=timeout)
        try:
            info = self._ensure_key()
        except BaseException:
            self._client.adapter.close()
            raise
        self._current = str(info["latest_version"])

    # ----- calls ----------------------------------------------------------------------

    def _call(
        self, what: str, method: Callable[..., Any], env: WrappedKey | None = None, **kwargs: Any
    ) -> Any:
        """Call Vault and translate every hvac/requests failure into a KeyProviderError."""
        self._check_open()
        where = f"transit key {self._name!r} (mount {self._mount!r}) at {self._addr}"
        try:
            return method(name=self._name, mount_point=self._mount, **kwargs)
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
            raise ProviderAccessError(
                f"Vault refused {what} on {where}: {_vault_message(exc)}. Check VAULT_TOKEN "
                "and that its policy allows this transit path"
            ) from None
        except hvac.exceptions.InvalidPath as exc:
            raise _NotFoundError(
                f"Vault has no {where} ({what}: {_vault_message(exc)}); is the transit "
                "engine enabled there?"
            ) from None
        except hvac.exceptions.InvalidRequest as exc:
            message = _vault_message(exc)
            if env is None:
                raise ProviderUnavailableError(
                    f"Vault rejected {what} on {where}: {message}"
                ) from None
            lowered = message.lower()
            if "too old" in lowered or "disallowed by policy" in lowered:
                raise KeyVersionError(
                    f"transit key {self._name!r} version {env.version} has been retired "
                    f"(below min_decryption_version): {message}"
                ) from None
            if "too new" in lowered or "invalid key version" in lowered:
                raise KeyVersionError(
                    f"transit key {self._name!r} has no version {env.version}: {message}"
                ) from None
            raise self._tampered(env, f"Vault: {message}") from None
        except hvac.exceptions.VaultError as exc:
            raise ProviderUnavailableError(
                f"Vault {what} on {where} failed: {_vault_message(exc)}"
            ) from None
        except requests.RequestException as exc:
            raise ProviderUnavailableError(
                f"cannot reach Vault at {self._addr} for {what}: {type(exc).__name__}"
            ) from None

    def _read_key(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("read key", self._client.secrets.transit.read_key)["data"]
        return data

    def _ensure_key(self) -> dict[str, Any]:
        transit = self._client.secrets.transit
        try:
            info = self._read_key()
        except _NotFoundError:
            # Missing key (or missing engine: then create fails with a clear message).
            self._call("create key", transit.create_key, derived=True, key_type="aes256-gcm96")
            info = self._read_key()
        if not info.get("derived"):
            raise ConfigError(
                f"VAULT_TRANSIT_KEY: transit key {self._name!r} exists but is not a derived key "
                "(derived=true), so it would ignore the tenant/purpose context. Name a new key "
                "(Careline creates it) and rewrap, or create this one with derived=true"
            )
        if not (info.get("supports_encryption") and info.get("supports_decryption")):
            raise ConfigError(
                f"VAULT_TRANSIT_KEY: transit key {self._name!r} ({info.get('type')}) "
                "cannot encrypt and decrypt"
            )
        return info

    def _note_version(self, version: str) -> None:
        with self._lock:
            if int(version) > int(self._current):
                self._current = version

    def _ciphertext(self, env: WrappedKey) -> str:
        try:
            text = env.ciphertext.decode("ascii")
        except UnicodeDecodeError:
            raise self._tampered(env, "not a Vault ciphertext") from None
        if ciphertext_version(text) != env.version:
            raise self._tampered(env, "its vault:vN: prefix disagrees with the envelope")
        return text

    @staticmethod
    def _plaintext_key(b64: str) -> SecureMemory:
        try:
            raw = bytearray(base64.b64decode(b64, validate=True))
        except (binascii.Error, ValueError, TypeError):
            raise ProviderUnavailableError("Vault returned a malformed plaintext key") from None
        return secure_key(raw, "Vault transit")

    # ----- interface ------------------------------------------------------------------

    def current_version(self) -> str:
        """Latest transit key version seen by this process (updated by rotate and by every
        data key Vault returns; no network call)."""
        with self._lock:
            return self._current

    def rotate(self) -> str:
        """Rotate the transit key (a new version becomes current) and return its number."""
        self._call("rotate", self._client.secrets.transit.rotate_key)
        version = str(self._read_key()["latest_version"])
        with self._lock:
            self._current = version
        return version

    def retire(self, version: str) -> None:
        """Set ``min_decryption_version`` above ``version``: it and all older versions
        stop decrypting. The current version cannot be retired."""
        try:
            number = int(version)
        except ValueError:
            raise KeyVersionError(f"{version!r} is not a transit key version") from None
        info = self._read_key()
        if number >= int(info["latest_version"]):
            raise KeyVersionError(
                f"transit key version {version} is current and cannot be retired; rotate first"
            )
        if int(info.get("min_decryption_version", 1)) > number:
            return
        self._call(
            "retire",
            self._client.secrets.transit.update_key_configuration,
            min_decryption_version=number + 1,
        )

    def close(self) -> None:
        """Close the HTTP session."""
        if not self._closed:
            self._client.adapter.close()
        super().close()

    def _generate(self, tenant: str, purpose: str) -> tuple[SecureMemory, bytes, str]:
        data = self._call(
            "datakey",
            self._client.secrets.transit.generate_data_key,
            key_type="plaintext",
            context=transit_context(tenant, purpose),
            bits=DATA_KEY_SIZE * 8,
        )["data"]
        ciphertext = str(data["ciphertext"])
        version = ciphertext_version(ciphertext)
        if version is None:
            raise ProviderUnavailableError("Vault returned a ciphertext without vault:vN:")
        key = self._plaintext_key(data["plaintext"])
        self._note_version(version)
        return key, ciphertext.encode("ascii"), version

    def _unwrap(self, env: WrappedKey) -> SecureMemory:
        data = self._call(
            "decrypt",
            self._client.secrets.transit.decrypt_data,
            env,
            ciphertext=self._ciphertext(env),
            context=transit_context(env.tenant, env.purpose),
        )["data"]
        return self._plaintext_key(data["plaintext"])

    def _rewrap(self, env: WrappedKey) -> tuple[bytes, str]:
        data = self._call(
            "rewrap",
            self._client.secrets.transit.rewrap_data,
            env,
            ciphertext=self._ciphertext(env),
            context=transit_context(env.tenant, env.purpose),
        )["data"]
        ciphertext = str(data["ciphertext"])
        version = ciphertext_version(ciphertext)
        if version is None:
            raise ProviderUnavailableError("Vault returned a ciphertext without vault:vN:")
        self._note_version(version)
        return ciphertext.encode("ascii"), version
