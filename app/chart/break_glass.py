"""Break-glass on the chart: the "Break the glass…" button, the dialog asking why, and the
banner across the chart while the emergency access lasts.

Core decides what a grant allows and audits every view and change made under it
(:mod:`core.records.break_glass`); this screen only asks for the reason, re-opens the chart
(so the view under the grant is audited as such) and says plainly, for as long as the grant
counts, that everything is recorded. The banner goes at expiry by itself: a timer compares
the grant's end with the clock (``clock``, which tests move).

The button is offered only where it is needed: to a clinician or nurse on a restricted
chart whose care team they are not on (:func:`core.records.break_glass.needs_break_glass`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QWidget

from app.chart.list_dialogs import SavingDialog
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import action_buttons, dialog_layout, error_label, message_beside
from core.records.break_glass import BreakGlass, configured_minutes, needs_break_glass
from core.records.break_glass_audit import Clock, Grant, system_clock
from core.records.changeset import Changes
from core.records.models import Patient
from core.records.types import BREAK_GLASS


@dataclass(frozen=True)
class ActiveGrant:
    """A grant that counts, and the full name of the person holding it."""

    grant: Grant
    person: str


def active_grant(provider: RecordsProvider, patient_id: str) -> ActiveGrant | None:
    """The signed-in person's grant on ``patient_id`` that counts now (on the worker)."""
    records = provider()
    grant = BreakGlass(records).active(patient_id)
    if grant is None:
        return None
    user = records.user(grant.username)
    return ActiveGrant(grant, (user.full_name if user else "") or grant.username)


@dataclass(frozen=True)
class GlassState:
    """What the chart shows of break-glass: the grant that counts, or whether to offer one."""

    active: ActiveGrant | None
    offer: bool


def glass_state(provider: RecordsProvider, patient_id: str) -> GlassState:
    """Read on the worker: the signed-in person's grant here, and whether they need one."""
    active = active_grant(provider, patient_id)
    offer = active is None and needs_break_glass(provider(), patient_id)
    return GlassState(active, offer)


def banner_text(active: ActiveGrant) -> str:
    """``Emergency access by Ann Lee until 14:32 — every view and change is recorded``."""
    until = active.grant.expires.astimezone().strftime("%H:%M")
    return f"Emergency access by {active.person} until {until} — every view and change is recorded"


class BreakGlassDialog(SavingDialog):
    """Ask why the chart is opened in an emergency, then open it (``saved`` carries the
    grant). The reason is required; core refuses an empty one."""

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient: Patient,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(operations, parent)
        self._records = records
        self._patient = patient
        self.setObjectName("breakGlassDialog")
        self.setWindowTitle("Break the glass")
        self.setMinimumWidth(460)
        heading = QLabel(f"Emergency access to the chart of {patient.display_name}")
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        explain = QLabel(
            "Use this only when the patient needs care now and you have no other way to "
            "reach their chart. Access lasts a limited time. Every view and change is "
            "recorded with your reason, and an administrator reviews each opening."
        )
        explain.setWordWrap(True)
        self.reason = QPlainTextEdit()
        self.reason.setObjectName("breakGlassReason")
        self.reason.setPlaceholderText("Why you need this chart now (required)")
        self.reason.setTabChangesFocus(True)
        self.reason.setFixedHeight(80)
        self.errors["reason"] = error_label()
        self.clears_on_edit([(self.reason, self.errors["reason"])])
        buttons, self.save_button = action_buttons(self, self.save, "Break the glass")
        self.first_field = self.reason
        reason_label = QLabel("Reason")
        reason_label.setObjectName("caption")
        dialog_layout(
            self,
            heading,
            explain,
            reason_label,
            self.reason,
            self.errors["reason"],
            message_beside(self.general_error, buttons),  # not above: they stay
        )

    def save(self) -> None:
        """Open the chart under a grant (on the worker)."""
        records, patient_id = self._records, self._patient.id
        reason = self.reason.toPlainText()

        def work() -> Grant:
            clinic = records()
            return BreakGlass(clinic).open(
                patient_id, reason, configured_minutes(clinic.db.path.parent)
            )

        self.run(work, "break the glass")


class BreakGlassBanner(QFrame):
    """The banner across the chart while a grant counts; hides itself at expiry."""

    expired = Signal()

    def __init__(self, parent: QWidget | None = None, clock: Clock = system_clock) -> None:
        super().__init__(parent)
        self.setObjectName("breakGlassBanner")
        self.setStyleSheet(
            "#breakGlassBanner { background: #fdecea; border: 2px solid #b42318;"
            " border-radius: 6px; } #breakGlassBanner QLabel { color: #7a1a12; font-weight: 600; }"
        )
        self.clock = clock
        self.text = QLabel()
        self.text.setObjectName("breakGlassText")
        self.text.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.text, 1)
        self._until: datetime | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(1000)  # the clock is read each second: it may jump
        self.timer.timeout.connect(self.check_expiry)
        self.hide()

    @property
    def until(self) -> datetime | None:
        """When the grant shown ends (None: none shown)."""
        return self._until

    def show_grant(self, active: ActiveGrant | None) -> None:
        """Show ``active`` (or hide for None)."""
        if active is None or not active.grant.active(self.clock()):
            self.clear()
            return
        self._until = active.grant.expires
        self.text.setText(banner_text(active))
        self.show()
        self.timer.start()

    def check_expiry(self) -> None:
        """Hide once the grant has ended (the timer calls this)."""
        if self._until is not None and self.clock() >= self._until:
            self.clear()
            self.expired.emit()

    def clear(self) -> None:
        """Hide and forget the grant."""
        self.timer.stop()
        self._until = None
        self.text.clear()
        self.hide()


class BreakGlassSection:
    """The chart's break-glass button and banner (a :class:`app.chart.section.ChartSection`
    whose widget is the banner; the page puts the button in its top bar)."""

    READ = "break glass"

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient: Callable[[], Patient | None],
        parent: QWidget,
        reopen: Callable[[str], None],
    ) -> None:
        self._operations = operations
        self._records = records
        self._patient = patient
        self._parent = parent
        self._reopen = reopen
        self._patient_id: str | None = None
        self.banner = BreakGlassBanner(parent)
        self.button = QPushButton("Break the glass…")
        self.button.setObjectName("breakGlassButton")
        self.button.setToolTip(
            "Emergency access to this chart for a stated reason; recorded and reviewed"
        )
        self.button.clicked.connect(self.ask)
        self.button.hide()  # offered only on a chart the person cannot otherwise read
        self.dialog: BreakGlassDialog | None = None
        operations.changed.connect(self._records_changed)

    def widget(self) -> QWidget:
        """The banner."""
        return self.banner

    def show_patient(self, patient_id: str) -> None:
        """Show the signed-in person's grant on this chart, if one counts."""
        self._patient_id = patient_id
        self._read()

    def _read(self) -> None:
        patient_id, records = self._patient_id, self._records
        if patient_id is None:
            return
        self._operations.read(self.READ, lambda: glass_state(records, patient_id), self._show)

    def _show(self, state: GlassState) -> None:
        self.banner.show_grant(state.active)
        self.button.setVisible(state.offer)

    def _records_changed(self, changes: Changes) -> None:
        if self._patient_id is not None and changes.changed(BREAK_GLASS.name):
            self._read()

    def clear(self) -> None:
        """Forget the chart: no banner, no dialog."""
        self._operations.cancel(self.READ)
        self._patient_id = None
        self.button.hide()
        self.banner.clear()
        if self.dialog is not None:
            self.dialog.reject()

    def ask(self) -> None:
        """Open the dialog asking for the reason."""
        patient = self._patient()
        if patient is None or self.dialog is not None:
            return
        dialog = BreakGlassDialog(self._operations, self._records, patient, self._parent)
        dialog.saved.connect(lambda grant: self._opened(grant))
        dialog.finished.connect(self._forget_dialog)
        self.dialog = dialog
        dialog.open()

    def _forget_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    def _opened(self, grant: Grant) -> None:
        # Re-open the chart (once the dialog has closed): the view under the grant is
        # audited as break-glass.
        QTimer.singleShot(0, lambda: self._reopen(grant.patient_id))
