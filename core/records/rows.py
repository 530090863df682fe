"""Pure helpers of the derived rows: HLC times, conflict ids (the patient list's sort key is
``core.store.search.sort_key``, which the search index's migrations also call).

They sit below the record-type declarations (whose hooks use them) and the materializer.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

Rows = list[tuple[Any, ...]]


def hlc_time(hlc: str) -> str:
    """ISO-8601 UTC time of an HLC's wall-clock part."""
    if type(hlc) is str:  # anything else fails below, as it always did (not in the cache)
        return _hlc_time(hlc)
    return _hlc_time.__wrapped__(hlc)


@functools.lru_cache(maxsize=16_384)
def _hlc_time(hlc: str) -> str:
    # Pure; list items keep their stamps, so the same HLCs are formatted over and over.
    wall = int(hlc.split(".", 1)[0])
    if 0 <= wall < _YEAR_2100_MS:
        # What the datetime below gives, by arithmetic (a first download formats as many
        # stamps as it has records, none seen before): half the cost.
        day, ms = divmod(wall, 86_400_000)
        second, ms = divmod(ms, 1000)
        hour, second = divmod(second, 3600)
        minute, second = divmod(second, 60)
        return f"{_utc_date(day)}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}+00:00"
    return datetime.fromtimestamp(wall / 1000, UTC).isoformat(timespec="milliseconds")


# 2100-01-01T00:00:00Z. Up to there ``wall / 1000`` as a float, rounded to microseconds as
# datetime does, is the exact millisecond; far beyond, float rounding shows (9999-12-31's
# last millisecond formats as .998): stamps past it keep datetime's reading.
_YEAR_2100_MS = 4_102_444_800_000


@functools.lru_cache(maxsize=1024)
def _utc_date(day: int) -> str:
    """ISO date of the ``day``-th day after 1970-01-01."""
    return (_EPOCH + timedelta(days=day)).isoformat()


_EPOCH = date(1970, 1, 1)


def conflict_id(record_id: str, field: str) -> str:
    """Stable id of the conflict on one field of one record (the same on every replica)."""
    return hashlib.sha256(f"{record_id}|{field}".encode()).hexdigest()[:16]
