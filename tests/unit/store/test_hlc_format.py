"""The HLC's text form: every clock a replica ticks parses back to itself, and nothing
else parses (so a replica never stores or relays a clock another one cannot read)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.crypto.secure_memory import SecureMemory
from core.store import oplog
from core.store.database import Database

REPLICA_IDS = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@pytest.fixture(scope="module")
def db() -> Database:
    return Database.in_memory(SecureMemory.from_bytes(bytearray(os.urandom(32))))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    replica=REPLICA_IDS,
    # Wall clocks from the epoch to the last 13-digit millisecond (in 2286), in any order:
    # a clock stepped back a little (NTP) ticks on from the newest time seen; one set back
    # further than MAX_CLOCK_LEAD_MS starts again from itself.
    walls=st.lists(st.integers(0, oplog.HLC_MAX_WALL - 10), min_size=1, max_size=8),
    counter=st.integers(0, oplog.HLC_MAX_COUNTER),
)
def test_every_tick_parses_and_round_trips(
    db: Database, replica: str, walls: list[int], counter: int
) -> None:
    with db.write("test", "hlc.test", "meta", "hlc") as tx:
        # Start from a clock some other replica's op left, as observe() does.
        tx.execute("DELETE FROM meta WHERE key = 'hlc'")
        oplog.observe(tx, oplog.format_hlc(walls[0], counter, "seen"), replica, now_ms=walls[0])
        previous = ""
        for wall in walls:
            hlc = oplog.tick(tx, replica, now_ms=wall)
            parsed = oplog.parse_hlc(hlc)
            assert oplog.format_hlc(*parsed) == hlc
            assert parsed[2] == replica
            if previous and oplog.parse_hlc(previous)[0] > wall + oplog.MAX_CLOCK_LEAD_MS:
                assert parsed[:2] == (wall, 0)  # set back: starts again from the clock
            else:
                assert hlc > previous  # and the text sorts as the clock
            previous = hlc


@pytest.mark.parametrize(
    "hlc",
    [
        "-000000000001.000000.r1",  # negative wall time
        "١٧٩٦٤٢١٩٦٦٣٣٢.000000.r1",  # Arabic-Indic digits: int() accepts them
        "1796421966332.٠٠٠٠٠١.r1",
        "1796421966332. 00001.r1",  # a space: int() strips it
        "1796421966332.+00001.r1",
        "1796421966332.0_0001.r1",  # int() allows digit separators
        "179642196633.0000000.r1",  # the dot one place off
        "1796421966332.000000.",
        "1796421966332.000000.r1\n",  # trailing newline
        "1796421966332.000000.r\x001",
        "1796421966332.000000.réplica",
        "1796421966332.000000.a.b",
        "1796421966332.000000." + "r" * 65,
        "1796421966332.000000." + "r" * 1024 * 1024,
        "",
    ],
)
def test_anything_but_the_exact_format_is_refused(hlc: str) -> None:
    with pytest.raises(ValueError, match="malformed HLC") as refused:
        oplog.parse_hlc(hlc)
    assert len(str(refused.value)) < 300  # a 1 MB part is not repeated in messages


@pytest.mark.parametrize(
    ("wall", "counter", "replica"),
    [(-1, 0, "r"), (10**13, 0, "r"), (0, 10**6, "r"), (0, -1, "r"), (0, 0, "r.1"), (0, 0, "")],
)
def test_a_clock_that_could_not_be_read_back_is_never_written(
    wall: int, counter: int, replica: str
) -> None:
    with pytest.raises(ValueError, match="HLC"):
        oplog.format_hlc(wall, counter, replica)
