"""Clinic time: this replica's wall clock, corrected by the offset last measured against the
clinic server's clock.

A workstation whose clock is wrong (a flat CMOS battery, a time zone set by hand) keeps
working; once it has synced with the server it stamps its changes (their HLCs) with about
the server's time, so they sort among everyone else's changes as they happened and a
chart's history shows when they were made. ``core.sync`` measures the offset at every
server session and keeps it here (``remember``); this module only reads it back.

A kept offset is used only while it plausibly still holds: it is at least
``CORRECT_FROM_MS`` (smaller errors are left to the hybrid logical clock), it was measured
less than ``MAX_AGE_MS`` ago, and this computer's clock has not been set back since (a
clock that reads earlier than at the measurement was changed: someone set it right, or a
flat battery reset it at boot). Otherwise the computer's own clock is used as it is.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from core.store.database import Database, Transaction

log = logging.getLogger(__name__)

OFFSET_META_KEY = "clock_offset"
# A clock this far from the server's is wrong enough to correct (and to tell the person at
# it, core.sync.clock): network delays and ordinary drift stay well below it.
CORRECT_FROM_MS = 2 * 60_000
# A measurement is trusted this long without a newer one (a sync at least every few hours
# keeps it fresh; the desktop app syncs every minute).
MAX_AGE_MS = 12 * 3_600_000
# The clock may read this much earlier than at the measurement (NTP slewing, the
# measurement's own uncertainty) before the offset is taken to be out of date.
MAX_STEP_BACK_MS = 60_000


@dataclass(frozen=True)
class Offset:
    """How far this computer's clock was from the clinic server's, and when."""

    offset_ms: int  # this computer's clock minus the server's: positive means ahead
    measured_at_ms: int  # this computer's own clock reading at the measurement


def wall_ms() -> int:
    """This computer's wall clock, in milliseconds since the epoch (as it says, right or not)."""
    return int(time.time() * 1000)


def parse(value: str | None) -> Offset | None:
    """A kept offset from its meta value; None for none or one this version cannot read."""
    if value is None:
        return None
    try:
        data = json.loads(value)
        offset, at = data["offset_ms"], data["measured_at_ms"]
    except (ValueError, TypeError, KeyError):
        log.warning("the kept clock offset cannot be read; using this computer's clock as it is")
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, at)):
        return None
    return Offset(offset, at)


def correction_ms(offset: Offset | None, wall: int) -> int:
    """What to subtract from the wall clock reading ``wall`` to get clinic time (0: none)."""
    if offset is None or abs(offset.offset_ms) < CORRECT_FROM_MS:
        return 0
    if not offset.measured_at_ms - MAX_STEP_BACK_MS <= wall <= offset.measured_at_ms + MAX_AGE_MS:
        return 0  # the clock was set since, or the measurement is old: it may not hold
    return offset.offset_ms


def corrected(wall: int, kept: str | None) -> int:
    """Clinic time for the wall clock reading ``wall`` and the kept offset's meta value."""
    return wall - correction_ms(parse(kept), wall)


def stored(db: Database | Transaction) -> Offset | None:
    """The offset kept from the last server session, if any."""
    rows = db.query("SELECT value FROM meta WHERE key = ?", (OFFSET_META_KEY,))
    return parse(str(rows[0][0])) if rows else None


def now_ms(db: Database | Transaction) -> int:
    """Clinic time now, as this replica best knows it."""
    wall = wall_ms()
    return wall - correction_ms(stored(db), wall)


def remember(tx: Transaction, offset: Offset | None) -> None:
    """Keep ``offset`` (None: forget the kept one) for :func:`now_ms` and the HLC."""
    if offset is None:
        tx.execute("DELETE FROM meta WHERE key = ?", (OFFSET_META_KEY,))
        return
    value = json.dumps({"offset_ms": offset.offset_ms, "measured_at_ms": offset.measured_at_ms})
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (OFFSET_META_KEY, value),
    )
