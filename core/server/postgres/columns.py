"""Application-side column encryption ("TDE") and blind indexes for the PostgreSQL store.

Every clinical value is sealed with AES-256-GCM before it is sent to PostgreSQL. The AAD
binds the tenant, the table, the row and the key generation, so a sealed value copied to
another clinic, table or row, or relabelled with another generation, fails to open
instead of being read as someone else's data. Lookups by record id use a blind index:
HMAC-SHA256 under a separate per-tenant key, so equal ids match without PostgreSQL ever
seeing the id itself.

Keys are per tenant and generation (``tde:<n>``) from the key provider; re-encryption
seals old rows under a new generation, after which the old one can go. Python cannot
wipe the ``bytes`` copy each AES call makes of its key (see core.crypto.secure_memory).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from core.crypto import aead
from core.crypto.errors import DecryptionError
from core.crypto.secure_memory import SecureMemory

KEY_PURPOSE = "tde"
INDEX_PURPOSE = "tde-index"


class SealedValueError(ValueError):
    """A stored value does not open with its tenant, table, row and key generation."""


def key_purpose(generation: int) -> str:
    """The provider purpose of a generation's data key."""
    return f"{KEY_PURPOSE}:{generation}"


def aad(tenant: str, table: str, row: str, generation: int) -> bytes:
    """Associated data of one sealed value."""
    return f"careline/tde|{tenant}|{table}|{row}|{generation}".encode()


class ColumnCipher:
    """One tenant's column keys: every generation still in use, and the blind-index key."""

    def __init__(
        self,
        tenant: str,
        keys: Mapping[int, SecureMemory],
        index_key: SecureMemory,
    ) -> None:
        if not keys:
            raise ValueError("at least one key generation is needed")
        self.tenant = tenant
        self._keys = dict(keys)
        self._index_key = index_key

    @property
    def current(self) -> int:
        """The generation new values are sealed under."""
        return max(self._keys)

    @property
    def generations(self) -> tuple[int, ...]:
        """Generations this cipher can open."""
        return tuple(sorted(self._keys))

    def seal(self, table: str, row: str, plaintext: bytes) -> tuple[int, bytes]:
        """(generation, ciphertext) of ``plaintext`` for ``table``/``row``."""
        generation = self.current
        key = self._keys[generation].read()
        return generation, aead.encrypt(key, plaintext, aad(self.tenant, table, row, generation))

    def open(self, table: str, row: str, generation: int, sealed: bytes) -> bytes:
        """The plaintext; SealedValueError names the table and row when it does not open."""
        key = self._keys.get(generation)
        if key is None:
            raise SealedValueError(
                f"{table} row {row} is sealed under key generation {generation}, which this "
                "server no longer holds"
            )
        try:
            return aead.decrypt(key.read(), sealed, aad(self.tenant, table, row, generation))
        except DecryptionError as exc:
            raise SealedValueError(
                f"{table} row {row} does not decrypt for this clinic (tampered, moved from "
                "another row or clinic, or damaged)"
            ) from exc

    def blind_index(self, value: str) -> str:
        """Keyed, deterministic stand-in for ``value`` (hex HMAC-SHA256)."""
        message = f"{self.tenant}|{value}".encode()
        return hmac.new(self._index_key.read(), message, hashlib.sha256).hexdigest()

    def close(self) -> None:
        """Zero every key held."""
        for key in self._keys.values():
            key.close()
        self._index_key.close()
