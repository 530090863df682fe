"""Recovery keys: 160 random bits shown once as eight groups of base32 characters."""

from __future__ import annotations

import base64
import os

RECOVERY_BYTES = 20


def new_recovery_key() -> str:
    """A fresh recovery key such as ``ABCD-EFGH-…`` (8 groups of 4)."""
    text = base64.b32encode(os.urandom(RECOVERY_BYTES)).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def normalize_recovery_key(text: str) -> bytes:
    """Bytes used as the slot secret; tolerant of case, spaces and dashes."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    try:
        raw = base64.b32decode(cleaned)
    except ValueError as exc:
        raise ValueError("the recovery key is not in the expected format") from exc
    if len(raw) != RECOVERY_BYTES:
        raise ValueError("the recovery key has the wrong length")
    return raw
