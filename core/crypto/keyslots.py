"""LUKS-style key slots: one key wrapped (AES-256-GCM) under several independent secrets.

A slot binds, through the AEAD associated data, the database it belongs to, its own id,
kind and label. Copying a slot to another database, or relabelling it to another user,
makes it fail to open rather than silently unlock something else.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from core.crypto import aead
from core.crypto.kdf import Argon2Params, derive_key, new_salt

SLOT_KINDS = ("keyring", "recovery", "password")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"key slot field {what!r} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ValueError(f"key slot field {what!r} is not valid base64") from exc


@dataclass(frozen=True)
class KeySlot:
    """One wrapped copy of the key-encryption key."""

    slot_id: str
    kind: str
    label: str
    salt: bytes
    params: Argon2Params | None  # None: the secret is already a 32-byte random key
    wrapped: bytes

    def aad(self, db_id: str) -> bytes:
        """Associated data binding this slot to its database and identity."""
        return f"careline-keyslot|v1|{db_id}|{self.slot_id}|{self.kind}|{self.label}".encode()

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the slot file."""
        return {
            "id": self.slot_id,
            "kind": self.kind,
            "label": self.label,
            "salt": _b64(self.salt),
            "kdf": None if self.params is None else {"name": "argon2id", **self.params.to_dict()},
            "wrapped": _b64(self.wrapped),
        }

    @classmethod
    def from_dict(cls, data: Any) -> KeySlot:
        """Parse a slot from the slot file, refusing anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("key slot must be an object")
        kind = data.get("kind")
        if kind not in SLOT_KINDS:
            raise ValueError(f"key slot kind {kind!r} is not one of {', '.join(SLOT_KINDS)}")
        slot_id, label = data.get("id"), data.get("label")
        if not isinstance(slot_id, str) or not isinstance(label, str):
            raise ValueError("key slot id and label must be strings")
        kdf = data.get("kdf")
        params = None if kdf is None else Argon2Params.from_dict(kdf)
        if params is None and kind != "keyring":
            # Only the keyring's secret is a random 32-byte key; a password or recovery key
            # must be stretched, so a slot claiming otherwise is damaged, not openable.
            raise ValueError(f"a {kind} key slot must have Argon2id parameters")
        return cls(
            slot_id=slot_id,
            kind=kind,
            label=label,
            salt=_unb64(data.get("salt"), "salt"),
            params=params,
            wrapped=_unb64(data.get("wrapped"), "wrapped"),
        )


def _wrapping_key(secret: bytes, salt: bytes, params: Argon2Params | None) -> bytes:
    if params is None:
        if len(secret) != aead.KEY_SIZE:
            raise ValueError("a raw slot secret must be 32 bytes")
        return secret
    return derive_key(secret, salt, params)


def make_slot(
    key: bytes,
    db_id: str,
    kind: str,
    label: str,
    secret: bytes,
    params: Argon2Params | None,
) -> KeySlot:
    """Wrap ``key`` under ``secret`` (stretched with Argon2id when ``params`` is given)."""
    if kind not in SLOT_KINDS:
        raise ValueError(f"unknown key slot kind {kind!r}")
    salt = new_salt()
    slot = KeySlot(secrets.token_hex(8), kind, label, salt, params, b"")
    wrapped = aead.encrypt(_wrapping_key(secret, salt, params), key, slot.aad(db_id))
    return KeySlot(slot.slot_id, kind, label, salt, params, wrapped)


def open_slot(slot: KeySlot, db_id: str, secret: bytes) -> bytes:
    """Unwrap the slot's key; raises DecryptionError for a wrong secret or altered slot."""
    return aead.decrypt(
        _wrapping_key(secret, slot.salt, slot.params), slot.wrapped, slot.aad(db_id)
    )
