"""The first start of a workstation IT set up for silent enrollment: instead of the
first-run wizard, a page that says the workstation is joining the clinic (core's
:func:`core.sync.silent_join.join_silently`, on the worker), then the staff sign-in.

A failure is shown on the page in plain words with what to do: "Try again", and "Set up by
hand" for the wizard. When the server could not be reached (and the code was therefore not
used), the page tries again by itself every :data:`RETRY_MS`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

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
        self.title = QLabel()
        self.title.setObjectName("appTitle")
        self.title.setWordWrap(True)
        self.status = QLabel()
        self.status.setObjectName("silentJoinStatus")
        self.status.setWordWrap(True)
        # For IT, who may be standing at the desk: where the set-up came from.
        self.details = QLabel(f"Server: {enrollment.server_url}\nSettings: {enrollment.source}")
        self.details.setObjectName("hint")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry = QPushButton("&Try again")
        self.retry.clicked.connect(self.retry_requested)
        self.manual = QPushButton("Set up by &hand")
        self.manual.setToolTip("The first-run wizard: join with a code or a LAN workstation")
        self.manual.clicked.connect(self.manual_requested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.manual)
        buttons.addWidget(self.retry)
        # A centred card like the sign-in screen that follows it.
        card = QFrame()
        card.setObjectName("card")
        card.setFixedWidth(520)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(32, 28, 32, 28)
        inner.setSpacing(14)
        inner.addWidget(self.title)
        inner.addWidget(self.status)
        inner.addWidget(self.details)
        inner.addLayout(buttons)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addLayout(row)
        layout.addStretch(3)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(RETRY_MS)
        self.timer.timeout.connect(self.retry_requested)
        self.show_joining()

    def show_joining(self) -> None:
        """Joining is under way: no buttons to press."""
        self.timer.stop()
        self.title.setText("Joining the clinic")
        self.status.setText(
            "Your IT department has set this workstation up to join the clinic’s server. "
            "This takes a moment; the sign-in screen appears as soon as it is done."
        )
        self.retry.hide()
        self.manual.hide()

    def show_failure(self, exc: Exception) -> None:
        """Why joining failed, and what to do; retries by itself when the server was not
        reachable."""
        self.title.setText("Could not join the clinic")
        text = describe_error(exc)
        if isinstance(exc, ServerUnreachableError):
            text += f" Trying again every {RETRY_MS // 1000} seconds."
            self.timer.start()
        elif "ask it" not in text.lower():
            text += " Ask your IT department to check this workstation’s Careline settings."
        self.status.setText(text)
        self.retry.show()
        self.manual.show()
