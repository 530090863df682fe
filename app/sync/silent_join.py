"""The first start of a workstation IT set up for silent enrollment: instead of the
first-run wizard, a page that says the workstation is joining the clinic (core's
:func:`core.sync.silent_join.join_silently`, on the worker), then the staff sign-in.

A failure is shown on the page in plain words with what to do: "Try again", and "Set up by
hand" for the wizard. When the server could not be reached (and the code was therefore not
used), the page tries again by itself every :data:`RETRY_MS`.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.messages import describe_error
from core.sync.enroll import ServerUnreachableError
from core.sync.silent_join import MachineEnrollment

RETRY_MS = 60_000


class SilentJoinPage(QWidget):
    """Joining progress, or why it failed and what to do."""

    retry_requested = Signal()
    manual_requested = Signal()

    def __init__(self, enrollment: MachineEnrollment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("silentJoinPage")
        self.enrollment = enrollment
        self.title = QLabel("Joining the clinic")
        self.title.setObjectName("pageTitle")
        self.status = QLabel()
        self.status.setObjectName("silentJoinStatus")
        self.status.setWordWrap(True)
        self.retry = QPushButton("&Try again")
        self.retry.clicked.connect(self.retry_requested)
        self.manual = QPushButton("Set up by &hand")
        self.manual.setToolTip("The first-run wizard: join with a code or a LAN workstation")
        self.manual.clicked.connect(self.manual_requested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.manual)
        buttons.addWidget(self.retry)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 48, 48, 48)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        layout.addStretch(2)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(RETRY_MS)
        self.timer.timeout.connect(self.retry_requested)
        self.show_joining()

    def show_joining(self) -> None:
        """Joining is under way: no buttons to press."""
        self.timer.stop()
        self.status.setText(
            f"This workstation is joining the clinic at {self.enrollment.server_url}, as "
            f"IT set it up ({self.enrollment.source}). Staff can sign in once it has "
            "received the clinic's records."
        )
        self.retry.hide()
        self.manual.hide()

    def show_failure(self, exc: Exception) -> None:
        """Why joining failed, and what to do; retries by itself when the server was not
        reachable."""
        text = f"This workstation could not join the clinic: {describe_error(exc)}"
        if isinstance(exc, ServerUnreachableError):
            text += f" Trying again every {RETRY_MS // 1000} seconds."
            self.timer.start()
        else:
            text += " Ask IT to check the machine-wide configuration."
        self.status.setText(text)
        self.retry.show()
        self.manual.show()
