"""Idle auto-logoff (HIPAA 164.312(a)(2)(iii)): sign the person out after a quiet spell with
no input. The screen then shows the sign-in page; the clinic stays open for the next person
until ``close_after_idle_hours`` pass with nobody signed in (app/main_window.py)."""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

# Events that show a person is at the keyboard. Paint, timer and focus events do not.
ACTIVITY_EVENTS = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.KeyRelease,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonRelease,
        QEvent.Type.MouseButtonDblClick,
        QEvent.Type.MouseMove,
        QEvent.Type.Wheel,
        QEvent.Type.TouchBegin,
        QEvent.Type.TouchUpdate,
        QEvent.Type.TabletPress,
    }
)


def minutes_to_ms(minutes: int) -> int:
    """Settings give minutes; timers want milliseconds."""
    return minutes * 60_000


def hours_to_ms(hours: int) -> int:
    """``close_after_idle_hours`` in milliseconds (0 stays 0: close at once)."""
    return hours * 3_600_000


class IdleWatcher(QObject):
    """Emits :attr:`timed_out` once after ``timeout_ms`` with no key, mouse or touch input.

    Installed as an application-wide event filter while armed. Input only restarts a
    cheap elapsed-time clock; the single timer re-arms itself for the remaining time when
    it fires, so a stream of mouse moves does not restart a QTimer thousands of times.
    """

    timed_out = Signal()

    def __init__(self, timeout_ms: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        self._timeout_ms = timeout_ms
        self._since_input = QElapsedTimer()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._check)
        self._armed = False

    @property
    def timeout_ms(self) -> int:
        """Idle time before locking."""
        return self._timeout_ms

    @property
    def armed(self) -> bool:
        """True while watching for idleness."""
        return self._armed

    def start(self) -> None:
        """Arm: count from now, and watch every input event of the application."""
        app = QApplication.instance()
        if not self._armed and app is not None:
            app.installEventFilter(self)
        self._armed = True
        self._since_input.start()
        self._timer.start(self._timeout_ms)

    def stop(self) -> None:
        """Disarm (while signed out there is nothing on screen to protect)."""
        app = QApplication.instance()
        if self._armed and app is not None:
            app.removeEventFilter(self)
        self._armed = False
        self._timer.stop()

    def poke(self) -> None:
        """Count activity now (what any input event does)."""
        if self._armed:
            self._since_input.restart()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Note input activity; never consume the event."""
        if self._armed and event.type() in ACTIVITY_EVENTS:
            self._since_input.restart()
        return False

    def _check(self) -> None:
        if not self._armed:
            return
        remaining = self._timeout_ms - self._since_input.elapsed()
        if remaining > 0:
            self._timer.start(int(remaining))
            return
        self.stop()
        self.timed_out.emit()
