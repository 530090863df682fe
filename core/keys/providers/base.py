"""The one interface every server-side key provider implements.

A provider holds (or reaches) master keys and hands out per-tenant *data keys*: 32 random
bytes used with AES-256-GCM, returned both in plaintext (in a :class:`SecureMemory`) and
wrapped under the provider's current master key version. Only the wrapped form is stored.

Every wrapped key is bound to its tenant and purpose twice:

* cryptographically, by the provider: AES-GCM associated data (local), the KMS
  EncryptionContext ``{"tenant": ..., "purpose": ...}`` (AWS KMS), or the key-derivation
  context of a derived transit key (Vault);
* in a small cleartext envelope (:class:`WrappedKey`) naming the provider, tenant, purpose
  and master key version, so that a mix-up is reported as exactly that ("belongs to tenant
  'a', not 'b'") instead of as a generic authentication failure. The envelope is only a
  diagnostic: forging it does not get past the cryptographic binding.
"""

from __future__ import annotations

import abc
import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from core.crypto.secure_memory import SecureMemory
from core.keys.providers.errors import (
    KeyProviderError,
    KeyVersionError,
    TamperedWrappedKeyError,
    WrappedKeyMismatchError,
)

DATA_KEY_SIZE = 32
MAX_LABEL_BYTES = 255

_MAGIC = b"CLWK"
_FORMAT = 1
_LEN = struct.Struct(">H")


def check_binding(tenant: str, purpose: str) -> None:
    """Refuse empty, oversized or control-character tenant and purpose labels (ValueError)."""
    for what, value in (("tenant", tenant), ("purpose", purpose)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{what} must be a non-empty string")
        if len(value.encode("utf-8")) > MAX_LABEL_BYTES:
            raise ValueError(f"{what} is longer than {MAX_LABEL_BYTES} bytes")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError(f"{what} contains control characters")


def secure_key(raw: bytes | bytearray, source: str) -> SecureMemory:
    """Copy a 32-byte plaintext key into SecureMemory.

    A ``bytearray`` argument is zeroed; a ``bytes`` one (what boto3 and base64 return) is
    immutable and stays in Python's heap until the allocator reuses it.
    """
    if len(raw) != DATA_KEY_SIZE:
        raise KeyProviderError(
            f"{source} returned a {len(raw)}-byte data key; expected {DATA_KEY_SIZE} bytes"
        )
    return SecureMemory.from_bytes(raw if isinstance(raw, bytearray) else bytearray(raw))


@dataclass(frozen=True)
class WrappedKey:
    """A wrapped data key: cleartext envelope plus the provider's ciphertext.

    Layout: ``b"CLWK" | format (1 byte) | provider | tenant | purpose | version |
    ciphertext``, each label a 2-byte big-endian length followed by UTF-8.
    """

    provider: str
    tenant: str
    purpose: str
    version: str
    ciphertext: bytes

    def header(self) -> bytes:
        """The envelope without the ciphertext (the local provider's AES-GCM AAD)."""
        out = bytearray(_MAGIC)
        out.append(_FORMAT)
        for label in (self.provider, self.tenant, self.purpose, self.version):
            raw = label.encode("utf-8")
            out += _LEN.pack(len(raw)) + raw
        return bytes(out)

    def pack(self) -> bytes:
        """The bytes to store."""
        return self.header() + self.ciphertext

    @classmethod
    def unpack(cls, blob: bytes) -> WrappedKey:
        """Parse stored bytes; anything malformed raises TamperedWrappedKeyError."""
        if not isinstance(blob, bytes | bytearray):
            raise TypeError("a wrapped key must be bytes")
        blob = bytes(blob)
        if blob[:4] != _MAGIC:
            raise TamperedWrappedKeyError(
                "the wrapped data key is not in Careline's format (damaged or not a wrapped key)"
            )
        if len(blob) < 5 or blob[4] != _FORMAT:
            raise TamperedWrappedKeyError(
                "the wrapped data key has an unknown format version (damaged?)"
            )
        pos = 5
        labels: list[str] = []
        try:
            for _ in range(4):
                (size,) = _LEN.unpack_from(blob, pos)
                pos += _LEN.size
                if pos + size > len(blob):
                    raise ValueError("label runs past the end")
                labels.append(blob[pos : pos + size].decode("utf-8"))
                pos += size
        except (struct.error, ValueError):
            raise TamperedWrappedKeyError(
                "the wrapped data key is truncated or damaged (its envelope cannot be read)"
            ) from None
        if pos >= len(blob):
            raise TamperedWrappedKeyError("the wrapped data key is truncated (no ciphertext)")
        return cls(labels[0], labels[1], labels[2], labels[3], blob[pos:])


@dataclass
class DataKey:
    """A fresh data key: plaintext in SecureMemory, the wrapped form to store, its version.

    The caller owns ``key`` and must close it (or use the DataKey as a context manager).
    """

    key: SecureMemory
    wrapped: bytes
    version: str

    def close(self) -> None:
        """Zero the plaintext key."""
        self.key.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KeyProvider(abc.ABC):
    """Master keys behind one interface: local file/credential, AWS KMS, Vault transit.

    Thread-safe: one provider is shared by a server's request threads.

    Public methods check the tenant/purpose labels and the envelope, then call the
    provider-specific ``_generate``, ``_unwrap`` and ``_rewrap``.
    """

    #: Short name stored in every envelope: "local", "aws-kms" or "vault-transit".
    kind: ClassVar[str]

    def __init__(self) -> None:
        self._closed = False

    # ----- the interface --------------------------------------------------------------

    def generate_data_key(self, tenant: str, purpose: str) -> DataKey:
        """A new random 32-byte data key for ``tenant``/``purpose``, wrapped under the
        current master key version. The caller owns (and must close) ``DataKey.key``."""
        check_binding(tenant, purpose)
        self._check_open()
        key, ciphertext, version = self._generate(tenant, purpose)
        wrapped = WrappedKey(self.kind, tenant, purpose, version, ciphertext).pack()
        return DataKey(key, wrapped, version)

    def unwrap(self, tenant: str, purpose: str, wrapped: bytes, version: str) -> SecureMemory:
        """The plaintext data key of ``wrapped``; the caller owns (and must close) it.

        Raises WrappedKeyMismatchError (other tenant, purpose or provider), KeyVersionError
        (wrong, unknown or retired version) or TamperedWrappedKeyError (altered or damaged).
        """
        return self._unwrap(self._open_envelope(tenant, purpose, wrapped, version))

    def rewrap(self, tenant: str, purpose: str, wrapped: bytes, version: str) -> tuple[bytes, str]:
        """Re-wrap under the current master key version; returns (new wrapped, new version).

        Vault transit and AWS KMS do this server-side, so the plaintext data key never
        reaches this process. The local provider necessarily decrypts in process.
        """
        env = self._open_envelope(tenant, purpose, wrapped, version)
        ciphertext, new_version = self._rewrap(env)
        return WrappedKey(self.kind, tenant, purpose, new_version, ciphertext).pack(), new_version

    @abc.abstractmethod
    def rotate(self) -> str:
        """Make a new master key version current and return it.

        Older versions stay usable for unwrap (and rewrap) until retired.
        """

    @abc.abstractmethod
    def current_version(self) -> str:
        """The master key version new data keys are wrapped under (no network call)."""

    @abc.abstractmethod
    def retire(self, version: str) -> None:
        """Stop ``version`` from unwrapping anything; the current version cannot be retired.

        Rewrap every data key wrapped under ``version`` first.
        """

    def close(self) -> None:
        """Release connections and zero any master key held in memory. Safe to call twice."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- for implementations --------------------------------------------------------

    @abc.abstractmethod
    def _generate(self, tenant: str, purpose: str) -> tuple[SecureMemory, bytes, str]:
        """Return (plaintext key, provider ciphertext, version)."""

    @abc.abstractmethod
    def _unwrap(self, env: WrappedKey) -> SecureMemory:
        """Decrypt an envelope already checked against tenant, purpose and version."""

    @abc.abstractmethod
    def _rewrap(self, env: WrappedKey) -> tuple[bytes, str]:
        """Return (ciphertext under the current version, current version)."""

    def _check_open(self) -> None:
        if self._closed:
            raise KeyProviderError(f"the {self.kind} key provider has been closed")

    def _open_envelope(self, tenant: str, purpose: str, wrapped: bytes, version: str) -> WrappedKey:
        check_binding(tenant, purpose)
        self._check_open()
        env = WrappedKey.unpack(wrapped)
        if env.provider != self.kind:
            raise WrappedKeyMismatchError(
                f"the wrapped data key was made by the {env.provider!r} key provider; "
                f"this server uses {self.kind!r} (was KMS_PROVIDER changed?)"
            )
        if env.tenant != tenant:
            raise WrappedKeyMismatchError(
                f"the wrapped data key belongs to tenant {env.tenant!r}, not {tenant!r}"
            )
        if env.purpose != purpose:
            raise WrappedKeyMismatchError(
                f"the wrapped data key is for purpose {env.purpose!r}, not {purpose!r}"
            )
        if env.version != version:
            raise KeyVersionError(
                f"the wrapped data key for tenant {tenant!r} was wrapped under master key "
                f"version {env.version!r}, not {version!r}"
            )
        return env

    def _tampered(self, env: WrappedKey, detail: str = "") -> TamperedWrappedKeyError:
        extra = f" ({detail})" if detail else ""
        return TamperedWrappedKeyError(
            f"the wrapped data key for tenant {env.tenant!r}, purpose {env.purpose!r} "
            f"(master key version {env.version!r}) fails authentication: it was altered, "
            f"damaged, or its envelope was rewritten{extra}"
        )
