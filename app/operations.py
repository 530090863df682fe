"""Operations: work on the database worker, and one broadcast of what changed.

Every write a screen makes goes through :meth:`Operations.submit`; after it the worker
works out which records changed (from the op log, :mod:`core.records.changeset`) and
:attr:`Operations.changed` carries that :class:`~core.records.changeset.Changes` to every
screen on the GUI thread. Sync publishes what a session brought in the same way, so a local
edit and a synced change refresh screens alike, and each screen refreshes only when its own
records changed. The idea follows Anki's ``CollectionOp`` and ``operation_did_execute``;
re-emitting from the worker onto the GUI thread follows Electrum's Qt-side listener.

Reads go through :meth:`Operations.read` under a key: a new read under the same key cancels
the one still in flight, so a slow, stale answer (an older search, the previous chart) is
never shown. That bookkeeping lives here, not in each screen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal, Slot

from app.worker import Job, Worker
from core.records import changeset
from core.records.changeset import Changes
from core.store.database import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


class Operations(QObject):
    """Runs reads and writes on the :class:`~app.worker.Worker` and broadcasts changes."""

    changed = Signal(object)  # Changes, on the GUI thread
    # Emitted on the worker thread; Qt queues it to this object's (GUI) thread.
    _collected = Signal(object)

    def __init__(
        self, worker: Worker, database: Callable[[], Database], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._worker = worker
        self._database = database
        self._reads: dict[str, Job[Any]] = {}
        self._active = False
        # Where the op log stood after the last broadcast. Read and written on the worker
        # thread only (jobs run one at a time there), so it needs no lock.
        self._mark: dict[str, int] | None = None
        self._collected.connect(self._deliver)

    @property
    def worker(self) -> Worker:
        """The worker everything runs on."""
        return self._worker

    def start(self) -> None:
        """Someone signed in: broadcast changes from now on."""
        self._active = True
        self._worker.submit(self._reset_mark, label="operations mark")

    def stop(self) -> None:
        """Locking: cancel every read in flight and broadcast nothing more."""
        self._active = False
        self.cancel(*self._reads)

    # ----- writes -----------------------------------------------------------------------

    def submit(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        label: str = "",
    ) -> Job[T]:
        """Run ``fn`` (which may write) on the worker, then broadcast what it changed.

        The broadcast happens even if ``fn`` fails part-way or the job is cancelled while it
        runs: what was written is on every screen. A job cancelled before it starts writes
        nothing and broadcasts nothing.
        """

        def operation() -> T:
            try:
                return fn()
            finally:
                self._collect()

        return self._worker.submit(
            operation, on_done, on_error, label or getattr(fn, "__name__", "operation")
        )

    def catch_up(self) -> None:
        """Broadcast writes made outside :meth:`submit` (e.g. by another connection)."""
        self._worker.submit(self._collect, label="catch up")

    def publish(self, changes: Changes) -> None:
        """Broadcast changes that arrived another way (a sync session), on the GUI thread."""
        self._deliver(changes)

    # ----- reads ------------------------------------------------------------------------

    def read(
        self,
        key: str,
        fn: Callable[[], T],
        on_done: Callable[[T], None],
        on_error: Callable[[Exception], None] | None = None,
        label: str = "",
    ) -> Job[T]:
        """Run ``fn`` on the worker, superseding the read still in flight under ``key``."""
        self.cancel(key)
        job: Job[T]

        def done(result: T) -> None:
            self._finished(key, job)
            on_done(result)

        def failed(exc: Exception) -> None:
            self._finished(key, job)
            if on_error is not None:
                on_error(exc)
            else:
                self._worker.unhandled_error.emit(exc)

        job = self._worker.submit(fn, done, failed, label or key)
        self._reads[key] = job
        return job

    def reading(self, key: str) -> bool:
        """True while a read under ``key`` is in flight."""
        return key in self._reads

    def cancel(self, *keys: str) -> None:
        """Cancel the reads in flight under ``keys``: their results are never delivered."""
        for key in keys:
            job = self._reads.pop(key, None)
            if job is not None:
                job.cancel()

    def _finished(self, key: str, job: Job[Any]) -> None:
        if self._reads.get(key) is job:
            del self._reads[key]

    # ----- what changed -----------------------------------------------------------------

    def _reset_mark(self) -> None:
        # Worker thread.
        try:
            self._mark = changeset.mark(self._database())
        except Exception as exc:  # locked meanwhile: the next write sets it
            log.info("no change mark: %s", exc)
            self._mark = None

    def _collect(self) -> None:
        # Worker thread, right after a write. The new mark is taken first: ops the sync
        # thread applies in between are then reported twice at worst, never missed.
        try:
            db = self._database()
            before, self._mark = self._mark, changeset.mark(db)
            if before is None:
                return
            changes = changeset.changes_since(db, before)
        except Exception as exc:  # locked meanwhile: nothing on screen to refresh
            log.info("changes not collected: %s", exc)
            return
        if changes:
            self._collected.emit(changes)

    @Slot(object)
    def _deliver(self, changes: Changes) -> None:
        if self._active and changes:
            self.changed.emit(changes)
