"""A log of refused connections that an attacker cannot flood.

Each kind of refusal from each source address is logged at most once per interval; the
next line logged for it says how many were left out since. All addresses together get a
bounded number of lines per interval, so many addresses cannot flood it either. Memory is
bounded the same way: at most 4096 (address, kind) pairs are remembered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

INTERVAL = 10.0  # seconds between two lines for the same address and kind
LINES_PER_INTERVAL = 100  # for all addresses together
_MAX_TRACKED = 4096


class RefusalLog:
    """Rate-limited warnings, keyed by source address and kind of refusal."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = INTERVAL,
        lines_per_interval: int = LINES_PER_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.lines_per_interval = lines_per_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], list[float]] = {}  # key -> [logged at, left out]
        self._window_start = clock()
        self._lines = 0
        self._overflow = 0  # lines left out by the overall bound, not yet reported

    def warning(self, address: str, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless this address logged this kind within the interval."""
        now = self._clock()
        with self._lock:
            key = (address, kind)
            entry = self._last.get(key)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                return
            if now - self._window_start >= self.interval:
                self._window_start, self._lines = now, 0
            if self._lines >= self.lines_per_interval:
                self._overflow += 1
                return
            self._lines += 1
            left_out = int(entry[1]) if entry is not None else 0
            overflow, self._overflow = self._overflow, 0
            if entry is None and len(self._last) >= _MAX_TRACKED:
                self._forget(now)
            self._last[key] = [now, 0]
        if left_out:
            message += " (%d more like it from this address since the last such line)"
            args = (*args, left_out)
        if overflow:
            message += " (%d refusals from other addresses were not logged)"
            args = (*args, overflow)
        self.logger.warning(message, *args)

    def flush(self) -> None:
        """Log how many refusals were left out and not yet reported (the listener stops)."""
        with self._lock:
            pending = [(k, int(e[1])) for k, e in self._last.items() if e[1]]
            overflow, self._overflow = self._overflow, 0
            self._last.clear()
        for (address, kind), count in pending[: self.lines_per_interval]:
            self.logger.warning(
                "%d more refusals (%s) from %s were not logged", count, kind, address
            )
        if overflow:
            self.logger.warning("%d more refusals were not logged", overflow)

    def _forget(self, now: float) -> None:
        # A forgotten pair's unreported count goes into the overall one, so it is not lost.
        stale = [k for k, e in self._last.items() if now - e[0] >= self.interval]
        if len(stale) == 0 and len(self._last) >= _MAX_TRACKED:
            stale = [min(self._last, key=lambda k: self._last[k][0])]
        for key in stale:
            self._overflow += int(self._last.pop(key)[1])
