"""The app's background prefetch of chart attachments (:mod:`core.sync.prefetch`), on the
sync thread, between sessions.

After a session that reached the clinic server (or, with no server, LAN peers), the sync
thread fetches files not cached here in short slices (``SLICE_S``): each slice is one call
into the thread's event loop, so a pending-count or a session asked for meanwhile waits at
most one slice, and a session asked for (``pause``) or a lock, sign-out or quit (``stop``)
ends the slice at its next downloaded piece, the partial file kept for the next slice to
resume with ``Range``. The next slice is queued behind whatever else the thread was asked
to do; after the last, nothing runs until the next session's round.

Each file's progress and arrival reach the chart as :class:`AttachmentTransfers` signals,
so its "Where" column shows "downloading 45%", then "here". A slice whose time was up
mid-file does not report that file done (the chart would flicker back to "available when
connected"), and the next slice carries on the same round, with its plan (one plan a
round, not a slice).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Slot

from app.sync.transfers import DOWNLOAD, AttachmentTransfers
from core.records.schedule import now_local
from core.records.workstation import Workstation
from core.sync.attachments import Attachments
from core.sync.enroll import load_credential
from core.sync.prefetch import Prefetcher, PrefetchReport

log = logging.getLogger(__name__)

SLICE_S = 3.0  # seconds one slice may run before yielding the sync thread


class Generation:
    """Counts the stops (sign-out, lock, quit) of a sync controller, so work begun before
    one never carries on after it, even when a quick sign-in clears the stop again before
    that work looked at it (it would go on with the signed-out person's records)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    @property
    def value(self) -> int:
        """The current generation (from any thread)."""
        with self._lock:
            return self._value

    def bump(self) -> None:
        """A stop: whatever began before it ends at its next check."""
        with self._lock:
            self._value += 1


class BackgroundPrefetch(QObject):
    """Lives on the sync thread; :meth:`start` after a successful session."""

    def __init__(
        self,
        workstation: Workstation,
        transfers: AttachmentTransfers,
        stop: threading.Event,
        pause: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        generation: Generation | None = None,
    ) -> None:
        super().__init__()
        self._ws = workstation
        self._transfers = transfers
        self._stop = stop
        self._pause = pause
        self._clock = clock
        self._generation = generation or Generation()
        self._queued_in = self._generation.value  # the generation a queued slice is of
        self.prefetcher = Prefetcher(transfers.settings.prefetch_percent)
        self._queued = False
        self._resume = False  # the next slice carries on the round the last one began
        self.last: PrefetchReport | None = None  # the last slice's report (tests, logs)

    def start(self) -> None:
        """Begin a round (on the sync thread, after a session reached the clinic)."""
        self._resume = False  # a new session: plan anew (new records, new bookings)
        self._queue()

    def _queue(self) -> None:
        if self.prefetcher.due() and not self._queued:
            self._queued = True
            self._queued_in = self._generation.value
            QTimer.singleShot(0, self._slice)

    def _halted(self, born: int | None = None) -> bool:
        return (
            self._stop.is_set()
            or self._pause.is_set()
            or (born is not None and self._generation.value != born)
        )

    @Slot()
    def _slice(self) -> None:
        self._queued = False
        born = self._queued_in
        if self._halted(born):  # stopped, or queued before a sign-out: that round is over
            self._resume = False
            return
        deadline = self._clock() + SLICE_S
        try:
            report = self._run(lambda: self._halted(born) or self._clock() > deadline)
        except Exception as exc:  # signed out meanwhile, a disk problem: next round
            log.warning("attachment prefetch stopped: %s", exc)
            return
        finally:
            self._resume = False
        self.last = report
        if report.error is not None:
            log.warning("attachment prefetch backs off: %s", report.error)
        # The chart shows where these are now (not the progress of a download that ended).
        for blob_id in report.refused:
            log.warning("attachment %s arrived damaged and was dropped", blob_id)
            self._transfers.done(blob_id)
        carry_on = report.stopped and report.remaining > 0 and not self._halted(born)
        for blob_id in report.interrupted:
            if not (carry_on and blob_id == report.stopped_in):  # still downloading
                self._transfers.done(blob_id)
        if carry_on:  # the slice's time was up: carry on after what else is queued
            self._resume = True
            self._queue()

    def _run(self, should_stop: Callable[[], bool]) -> PrefetchReport:
        records = self._ws.records  # the signed-in person's (refused while locked)
        db = records.db
        transfers = self._transfers
        with Attachments(
            records, self._ws.data_dir, cache_mb=transfers.settings.cache_mb,
            credential=load_credential(db), peers=transfers.peers_for(db),
        ) as attachments:  # fmt: skip
            return self.prefetcher.run(
                attachments,
                now_local().date(),  # the clinic's date, as the schedule's
                should_stop,
                progress_of=lambda blob_id: transfers.progress(blob_id, DOWNLOAD),
                fetched=transfers.done,
                resume=self._resume,
            )
