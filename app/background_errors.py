"""The desktop app's side of ``core.config.thread_errors``: a background task that failed
with an exception nothing caught (the sync thread, the database thread, a LAN peer's
connection) is said in the status bar, not only logged.

Core stays Qt-free: it calls listeners on the failing thread; :class:`BackgroundErrors`
re-emits what it hears as a Qt signal, which Qt queues to the GUI thread (Electrum's
Qt-side listener, DESIGN.md section 5). Exceptions raised in a slot of a QThread reach
``sys.excepthook`` rather than ``threading.excepthook``: the app's ``sys.excepthook``
sends those to the same place (:func:`report_off_gui_thread`).
"""

from __future__ import annotations

import threading
from types import TracebackType

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from core.config import thread_errors
from core.config.thread_errors import BackgroundFailure
from core.errors import sentence

# How long the status bar shows it.
MESSAGE_MS = 60_000


def status_text(failure: BackgroundFailure) -> str:
    """The status bar's words: what failed, by thread and exception type only (the log
    holds where; never the exception's message, which may quote patient data)."""
    return (
        f"{sentence(failure.sentence())} Careline logged where; what was saved is kept. "
        "If it happens again, restart Careline and tell the clinic's IT."
    )


class BackgroundErrors(QObject):
    """Hears every background failure core reports while it lives (until :meth:`close`)
    and emits :attr:`failed` with the status bar's text, on the GUI thread."""

    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._remove = remove = thread_errors.add_listener(self._heard)
        # Not left behind by a window that is never shut down (a test's, say).
        self.destroyed.connect(lambda *_: remove())

    def _heard(self, failure: BackgroundFailure) -> None:
        # On the failing thread: the signal crosses to this object's (the GUI) thread.
        self.failed.emit(status_text(failure))

    def close(self) -> None:
        """Stop listening."""
        self._remove()


def on_gui_thread() -> bool:
    """Whether the caller runs on the thread of the QApplication (True with none)."""
    app = QCoreApplication.instance()
    return app is None or QThread.currentThread() is app.thread()


def report_off_gui_thread(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """``sys.excepthook`` for an exception a QThread's slot raised: logged and heard as a
    background failure (a message box cannot be made off the GUI thread)."""
    name = QThread.currentThread().objectName() or threading.current_thread().name
    thread_errors.report(f"thread {name}", exc_type, exc, tb)
