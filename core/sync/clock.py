"""Clock offsets between replicas: measured at every sync, told to the person when large.

Every sync reply carries the responder's clock (``now_ms``; see core.sync.protocol). The
requester reads its own clock before and after the round trip and takes the midpoint: the
reply was written somewhere in between, so the estimate is off by at most half the round
trip. A session keeps the estimate of its quickest round trip.

A clock more than ``WARN_FROM_MS`` from the clinic server's is worth a warning, worded by
:func:`clock_notice` for the status bar and ``careline sync`` alike. The offset from the
server is also kept (``core.store.clinic_time``) so this replica's changes are stamped with
about the server's time. A LAN peer's clock is no such reference (which of two workstations
is right?): its offset is only reported.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass

from core.store import clinic_time
from core.store.database import Database

WARN_FROM_MS = clinic_time.CORRECT_FROM_MS
# A kept offset is rewritten (an audited write) only when it moved by more than this, or
# to keep it fresh: every sync would otherwise add an audit entry for network jitter.
_REWRITE_BEYOND_MS = 5_000
_REFRESH_AFTER_MS = 3_600_000

# Whom the offset was measured against, as the notice names them.
SERVER = "the clinic server"
PEER = "the workstation it synced with"
PEERS = "the workstations it synced with"


@dataclass(frozen=True)
class Sample:
    """One round trip's estimate."""

    offset_ms: int  # this computer's clock minus the other side's
    round_trip_ms: int


class OffsetMeter:
    """Measures this computer's clock against the other side's over a session's requests."""

    def __init__(self) -> None:
        self.best: Sample | None = None
        self._wall = 0
        self._started = 0.0

    def start(self) -> None:
        """Call just before a request goes out."""
        self._wall = clinic_time.wall_ms()
        self._started = time.monotonic()

    def reply(self, remote_now_ms: int | None) -> None:
        """Call when the reply is in, with the clock it carried (None: an older peer)."""
        if remote_now_ms is None:
            return
        # The round trip is timed on the monotonic clock: the wall clock may be stepped by
        # NTP meanwhile, and is the very thing being measured.
        round_trip = max(int((time.monotonic() - self._started) * 1000), 0)
        sample = Sample(self._wall + round_trip // 2 - remote_now_ms, round_trip)
        if self.best is None or sample.round_trip_ms < self.best.round_trip_ms:
            self.best = sample


def _amount(ms: int) -> str:
    """``2 hours``, ``45 minutes``, ``3 days``, ``24 years``: the largest unit that still
    reads as a number a person can picture, rounded to it."""
    minutes = round(ms / 60_000)
    for size, unit, below in ((1, "minute", 120), (60, "hour", 24 * 60),
                              (24 * 60, "day", 730 * 24 * 60)):  # fmt: skip
        if minutes < below:
            n = round(minutes / size)
            return f"{n:,} {unit}{'' if n == 1 else 's'}"
    years = round(minutes / (365.25 * 24 * 60))
    return f"{years:,} years"


def clock_notice(offset_ms: int | None, against: str = SERVER) -> str | None:
    """What to tell the person at this computer when its clock is ``offset_ms`` off the
    clock of ``against`` (SERVER, PEER or PEERS); None when it is close enough or unknown.

    ``This computer's clock is 2 hours ahead of the clinic server`` (no full stop: callers
    add it, as they join it to other sentences).
    """
    if offset_ms is None or abs(offset_ms) < WARN_FROM_MS:
        return None
    way = "ahead of" if offset_ms > 0 else "behind"
    return f"This computer's clock is {_amount(abs(offset_ms))} {way} {against}"


def closest(offsets: Iterable[int | None]) -> int | None:
    """Of the offsets measured against several LAN peers, the smallest: this computer's
    clock is told wrong only when it is off every peer's (one peer's bad clock is that
    peer's to hear about)."""
    known = [o for o in offsets if o is not None]
    return min(known, key=abs) if known else None


def session_notice(server_offset: int | None, peer_offsets: Iterable[int | None]) -> str | None:
    """The notice after a round of sessions: against the server when there was one, else
    against the LAN peers synced with."""
    if server_offset is not None:
        return clock_notice(server_offset, SERVER)
    peers = [o for o in peer_offsets if o is not None]
    return clock_notice(closest(peers), PEER if len(peers) == 1 else PEERS)


def remember_server_offset(db: Database, offset_ms: int, actor: str) -> bool:
    """Keep the offset measured against the clinic server, so this replica stamps its
    changes in clinic time (``core.store.clinic_time``). Writes (and audits, which also
    lets an auditor read this computer's audit times right) only when it changed; returns
    whether it wrote."""
    now = clinic_time.wall_ms()
    kept = clinic_time.stored(db)
    wanted = None if abs(offset_ms) < clinic_time.CORRECT_FROM_MS else offset_ms
    if wanted is None and kept is None:
        return False
    if (
        wanted is not None
        and kept is not None
        and abs(kept.offset_ms - wanted) <= _REWRITE_BEYOND_MS
        and kept.measured_at_ms <= now < kept.measured_at_ms + _REFRESH_AFTER_MS
    ):
        return False
    with db.write(actor, "sync.clock_offset", "meta", clinic_time.OFFSET_META_KEY,
                  {"offset_ms": offset_ms}) as tx:  # fmt: skip
        clinic_time.remember(tx, None if wanted is None else clinic_time.Offset(wanted, now))
    return True


# How OpenSSL and core.crypto.certs word a certificate refused for its dates.
_DATE_REFUSALS = ("certificate has expired", "not yet valid", "certificate is expired")


def clock_hint(exc: BaseException) -> str:
    """For a certificate refused as expired or not yet valid, which a wrong clock on this
    computer causes too: what the clock says, so a person can tell ("" otherwise)."""
    if not any(words in str(exc) for words in _DATE_REFUSALS):
        return ""
    now = dt.datetime.fromtimestamp(clinic_time.wall_ms() / 1000).astimezone()
    return (
        f" (this computer's clock says {now:%Y-%m-%d %H:%M %Z}: "
        "if that is wrong, set it right and try again)"
    )
