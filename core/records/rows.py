"""Pure helpers of the derived rows: the patient list's sort key, HLC times, conflict ids.

They sit below the record-type declarations (whose hooks use them) and the materializer.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from datetime import UTC, datetime
from typing import Any

Rows = list[tuple[Any, ...]]


def sort_key(family: str, given: str) -> str:
    """Case- and accent-insensitive ordering key for the patient list."""
    if type(family) is str and type(given) is str:  # cacheable (hashable, immutable)
        return _sort_key(family, given)
    return _sort_key.__wrapped__(family, given)


@functools.lru_cache(maxsize=16_384)
def _sort_key(family: str, given: str) -> str:
    # Pure, and the same names are re-derived after every change of a record: cache.
    text = f"{family}\x1f{given}".casefold()
    if text.isascii():  # no ASCII character decomposes or combines: NFKD leaves it as is
        return text
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )


def hlc_time(hlc: str) -> str:
    """ISO-8601 UTC time of an HLC's wall-clock part."""
    if type(hlc) is str:  # anything else fails below, as it always did (not in the cache)
        return _hlc_time(hlc)
    return _hlc_time.__wrapped__(hlc)


@functools.lru_cache(maxsize=16_384)
def _hlc_time(hlc: str) -> str:
    # Pure; list items keep their stamps, so the same HLCs are formatted over and over.
    wall = int(hlc.split(".", 1)[0])
    return datetime.fromtimestamp(wall / 1000, UTC).isoformat(timespec="milliseconds")


def conflict_id(record_id: str, field: str) -> str:
    """Stable id of the conflict on one field of one record (the same on every replica)."""
    return hashlib.sha256(f"{record_id}|{field}".encode()).hexdigest()[:16]
