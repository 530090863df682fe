"""The derived rows' pure helpers."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from core.records.rows import _hlc_time, hlc_time


def _by_datetime(wall: int) -> str:
    return datetime.fromtimestamp(wall / 1000, UTC).isoformat(timespec="milliseconds")


def test_an_hlc_time_is_what_datetime_formats_for_its_wall_clock() -> None:
    rng = random.Random(17)
    walls = [0, 1, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000, 1_796_489_352_200]
    walls += [4_102_444_799_999, 4_102_444_800_000, 253_402_300_799_999]
    walls += [rng.randrange(0, 4_102_444_800_000) for _ in range(100_000)]
    for wall in walls:
        assert _hlc_time.__wrapped__(f"{wall}.000007.replica") == _by_datetime(wall), wall
    assert hlc_time("1796489352200.000000.r") == "2026-12-05T16:49:12.200+00:00"


@pytest.mark.parametrize("wall", [-1, -86_400_001, 253_402_300_800_000, 10**20])
def test_stamps_outside_the_years_1970_to_9999_go_through_datetime_as_before(wall: int) -> None:
    try:
        expected: str | type[Exception] = _by_datetime(wall)
    except (ValueError, OverflowError, OSError) as exc:
        expected = type(exc)
    if isinstance(expected, str):
        assert _hlc_time.__wrapped__(f"{wall}.0.r") == expected
    else:
        with pytest.raises(expected):
            _hlc_time.__wrapped__(f"{wall}.0.r")
