"""The one thread that talks to the clinic database.

The store holds a single SQLCipher connection and Workstation methods are synchronous, so
every database call runs here, one at a time and in submission order; the GUI thread only
submits callables and receives their results as queued Qt signals. The idea follows
Anki's ``aqt.operations`` (run on a background thread, report back on the main thread)
and Electrum's Qt-side listener (core stays Qt-free; Qt code re-emits on the GUI thread).

A job can be cancelled: a cancelled job that has not started is skipped, and the result of
one that was already running is dropped, so a screen never sees stale answers (an older
search, or data that arrives after an auto-lock). A job submitted with
``outlives_session=True`` (a backup, a re-encryption, a recovery key being put in use) is
not cancelled when a session ends (:meth:`Worker.cancel_all`): it runs, and its outcome is
delivered to whatever its callbacks are by then, which tell the person who started it
(app/session/outcomes.py) rather than a screen that has closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

T = TypeVar("T")


class Job(Generic[T]):
    """One submitted callable, its callbacks, and whether anyone still wants its result."""

    def __init__(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None] | None,
        on_error: Callable[[Exception], None] | None,
        label: str,
        outlives_session: bool = False,
    ) -> None:
        self.fn = fn
        # Reassignable until delivery: a dialog closing hands its job's outcome on.
        self.on_done = on_done
        self.on_error = on_error
        self.label = label
        self.outlives_session = outlives_session
        # An Event rather than a bool: it is read on the worker and set on the GUI thread.
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Skip the job if it has not started; drop its result if it has."""
        self._cancelled.set()

    def __repr__(self) -> str:
        return f"<Job {self.label}{' cancelled' if self.cancelled else ''}>"


class Submit(Protocol):
    """What a screen needs to run a job: :meth:`Worker.submit`, or
    :meth:`app.operations.Operations.submit` for a write whose changes every screen hears of."""

    def submit(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        label: str = "",
    ) -> Job[T]:
        """Queue ``fn``; ``on_done``/``on_error`` are called on the GUI thread."""
        ...


class _Runner(QObject):
    """Lives on the worker thread and runs jobs as their queued signals arrive."""

    finished = Signal(object, object)  # job, result
    failed = Signal(object, object)  # job, exception

    @Slot(object)
    def run(self, job: Job[Any]) -> None:
        if job.cancelled:
            self.finished.emit(job, None)  # still reported, so the pending count stays right
            return
        try:
            result = job.fn()
        except Exception as exc:  # every error goes back to the GUI thread to be shown
            self.failed.emit(job, exc)
            return
        except BaseException as exc:
            # Not an Exception (a library's panic, say): the screen waiting on the job still
            # hears that it failed, and the exception goes on to the hook that logs it and
            # tells the status bar (app/background_errors).
            self.failed.emit(job, RuntimeError(f"{job.label} stopped on an unexpected "
                                               f"{type(exc).__name__}"))  # fmt: skip
            raise
        self.finished.emit(job, result)


class Worker(QObject):
    """Runs callables on one background thread; results arrive on the GUI thread.

    ``submit(fn, on_done, on_error)`` returns a :class:`Job`. ``on_done(result)`` or
    ``on_error(exception)`` is called on the GUI thread unless the job was cancelled. An
    error with no ``on_error`` is re-emitted as :attr:`unhandled_error`.
    """

    unhandled_error = Signal(object)
    idle = Signal()
    _enqueue = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("careline-database")
        self._runner = _Runner()
        self._runner.moveToThread(self._thread)
        # Receiver on another thread: Qt queues these across threads in both directions.
        self._enqueue.connect(self._runner.run)
        self._runner.finished.connect(self._on_finished)
        self._runner.failed.connect(self._on_failed)
        self._pending: list[Job[Any]] = []
        self._stopped = False
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted whose outcome has not been delivered yet."""
        return len(self._pending)

    @property
    def running(self) -> bool:
        """False after :meth:`stop`."""
        return not self._stopped

    def submit(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        label: str = "",
        outlives_session: bool = False,
    ) -> Job[T]:
        """Queue ``fn`` to run on the worker thread after every job submitted before it;
        ``outlives_session``: a session ending (:meth:`cancel_all`) does not cancel it."""
        name = label or getattr(fn, "__name__", "job")
        job: Job[T] = Job(fn, on_done, on_error, name, outlives_session)
        if self._stopped:
            job.cancel()
            return job
        self._pending.append(job)
        self._enqueue.emit(job)
        return job

    def cancel_all(self) -> None:
        """Cancel every job not yet delivered (used when a session ends), except those
        submitted with ``outlives_session``."""
        for job in self._pending:
            if not job.outlives_session:
                job.cancel()

    def stop(self, timeout_ms: int = 30_000) -> None:
        """Finish the running job, drop the rest, and end the thread."""
        if self._stopped:
            return
        self._stopped = True
        for job in self._pending:  # those that outlive a session too: the app is ending
            job.cancel()
        self._thread.quit()
        if not self._thread.wait(timeout_ms):
            log.error("the database thread did not stop within %d ms", timeout_ms)
        self._pending.clear()

    def _forget(self, job: Job[Any]) -> None:
        if job in self._pending:
            self._pending.remove(job)
        if not self._pending:
            self.idle.emit()

    @Slot(object, object)
    def _on_finished(self, job: Job[Any], result: object) -> None:
        self._forget(job)
        if not job.cancelled and job.on_done is not None:
            job.on_done(result)

    @Slot(object, object)
    def _on_failed(self, job: Job[Any], exc: Exception) -> None:
        self._forget(job)
        if job.cancelled:
            log.info("error in cancelled job %s: %s", job.label, exc)
            return
        if job.on_error is not None:
            job.on_error(exc)
        else:
            self.unhandled_error.emit(exc)
