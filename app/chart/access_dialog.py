"""Chart access…: whether the chart is restricted, and its care team, from the chart page.

Core holds the rules and decides (core/records/chart_access.py; changing either needs
``manage_access`` on the chart, checked by core on every write). This dialog reads and
writes on the worker; each change applies at once (a checkbox ticked, a person added or
removed) and the dialog then shows the chart's access as core reports it. The page shows
the button only to people holding ``manage_access`` there, to spare others a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import (
    TypedForm,
    dialog_layout,
    error_label,
    ignore_wheel,
    message_beside,
    paragraph,
)
from app.worker import Job
from core.records import chart_access as ca
from core.records.models import Patient, User


def role_words(role: str) -> str:
    """``front_desk`` -> ``front desk``."""
    return role.replace("_", " ")


def person_text(full_name: str, username: str, roles: Iterable[str]) -> str:
    """``Ada Admin (admin) — admin, clinician``: the person, their user name in brackets,
    their roles after a dash (in one bracket, a user name like a role read as that role
    said twice)."""
    who = f"{full_name} ({username})" if full_name and full_name != username else username
    return f"{who} — {', '.join(role_words(r) for r in roles)}"


@dataclass(frozen=True)
class AccessView:
    """What the dialog shows: the chart's access and the active staff one may add."""

    access: ca.ChartAccess
    staff: tuple[User, ...]


def read_access(records: RecordsProvider, patient_id: str) -> AccessView:
    """On the worker: the chart's access and the clinic's active staff."""
    clinic = records()
    return AccessView(ca.chart_access(clinic, patient_id), tuple(ca.active_staff(clinic)))


class ChartAccessDialog(TypedForm):
    """Restricted chart (a checkbox) and care team (a list, Add and Remove).

    The checkbox, Add and Remove apply at once; what is left unsaved is a staff member
    typed or chosen in the Add box and not yet added, so Close, Escape and the close
    button ask before dropping that one (``TypedForm``)."""

    READ = "chart access"

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient: Patient,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._patient_id = patient.id
        self._view: AccessView | None = None
        self._read_once = False
        self._busy = False
        self._job: Job[ca.ChartAccess] | None = None
        self.setObjectName("chartAccessDialog")
        self.setWindowTitle("Chart access")
        self.setMinimumWidth(520)
        heading = QLabel(f"Who may read the chart of {patient.display_name}")
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        self.restricted = QCheckBox("Restricted chart")
        self.restricted.setObjectName("restrictedCheck")
        self.restricted.clicked.connect(self._restricted_clicked)
        explain = paragraph(
            f"{ca.RESTRICTED_MEANS} Use it for a staff member's own chart or a sensitive "
            "record. A clinician who restricts a chart goes on its care team.",
            "hint",
        )
        team_label = QLabel("Care team")
        team_label.setObjectName("caption")
        self.team_hint = paragraph("", "hint")
        self.team = QListWidget()
        self.team.setObjectName("careTeamList")
        self.team.setMaximumHeight(130)
        self.team.itemSelectionChanged.connect(self._update_buttons)
        self.remove_button = QPushButton("Remove from care team")
        self.remove_button.setObjectName("removeFromCareTeam")
        self.remove_button.clicked.connect(self.remove_selected)
        self.remove_button.setAutoDefault(False)  # Enter is no way to take someone off
        self.person = QComboBox()
        self.person.setObjectName("careTeamPerson")
        self.person.setEditable(True)  # type a name to find a person in a long list
        self.person.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        edit = self.person.lineEdit()
        if edit is not None:
            edit.setPlaceholderText("Choose or type a staff member's name")
        ignore_wheel(self.person)
        self.add_button = QPushButton("Add to care team")
        self.add_button.setObjectName("addToCareTeam")
        self.add_button.clicked.connect(self.add_person)
        self.add_button.setAutoDefault(False)
        add_row = QHBoxLayout()
        add_row.setContentsMargins(0, 0, 0, 0)
        add_row.addWidget(self.person, 1)
        add_row.addWidget(self.add_button)
        add_holder = QWidget()
        add_holder.setLayout(add_row)
        remove_row = QHBoxLayout()
        remove_row.setContentsMargins(0, 0, 0, 0)
        remove_row.addWidget(self.remove_button)
        remove_row.addStretch(1)
        remove_holder = QWidget()
        remove_holder.setLayout(remove_row)
        # The caption and its one-line hint as one part (the dialog spaces parts widely).
        team_head = QWidget()
        head = QVBoxLayout(team_head)
        head.setContentsMargins(0, 6, 0, 0)
        head.setSpacing(2)
        head.addWidget(team_label)
        head.addWidget(self.team_hint)
        self.status = paragraph("Reading the chart's access…", "hint")
        self.error = error_label()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.cancel)
        dialog_layout(
            self,
            heading,
            self.restricted,
            explain,
            team_head,
            self.team,
            remove_holder,
            add_holder,
            self.status,
            message_beside(self.error, close),  # not above Close: it stays put
        )
        self._update_buttons()
        self.reload()

    # ----- reading ----------------------------------------------------------------------

    def form_state(self) -> object:
        """Only the Add box counts: the rest is applied as soon as it is changed, and
        filled by the program as the chart's access is read."""
        return self.person.currentText()

    @property
    def view(self) -> AccessView | None:
        """What the dialog shows (None until the first read arrives)."""
        return self._view

    def reload(self) -> None:
        """Read the chart's access again on the worker."""
        records, patient_id = self._records, self._patient_id
        self._busy = True
        self._update_buttons()
        self._operations.read(
            self.READ, lambda: read_access(records, patient_id), self._show, self._failed
        )

    def _show(self, view: AccessView) -> None:
        self._busy = False
        self._view = view
        access = view.access
        self.status.hide()
        self.restricted.setChecked(access.restricted)
        self.team.clear()
        for m in access.care_team:
            text = person_text(m.full_name, m.username, m.roles)
            if not m.active:
                text += " (deactivated)"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, m.username)
            self.team.addItem(item)
        on_team = set(access.usernames())
        self.person.clear()
        for user in view.staff:
            if user.username not in on_team:
                label = person_text(user.full_name, user.username, [user.role])
                self.person.addItem(label, user.username)
        self.person.setCurrentIndex(-1)
        self.person.setEditText("")
        if not access.care_team:
            hint = "Nobody is on the care team."
        elif access.restricted:
            hint = "They read and change this chart's clinical records."
        else:
            hint = "The care team counts once the chart is restricted."
        self.team_hint.setText(hint)
        first_read = not self._read_once
        self._read_once = True
        self._update_buttons()
        if first_read or (self.team.hasFocus() and self.team.count() == 0):
            # The keyboard starts on the first control there is to use (until the read
            # arrived, the list was the only one enabled and kept it, showing nothing).
            self.restricted.setFocus(Qt.FocusReason.OtherFocusReason)

    def _failed(self, exc: Exception) -> None:
        self._busy = False
        self.status.hide()
        self.error.setText(describe_error(exc))
        self.error.show()
        self._update_buttons()

    def _update_buttons(self) -> None:
        ready = self._view is not None and not self._busy
        # An empty care team is nothing to Tab to (Space there did nothing, and it showed
        # no focus); with people on it, Tab reaches it to choose one to remove.
        self.team.setFocusPolicy(
            Qt.FocusPolicy.StrongFocus if self.team.count() else Qt.FocusPolicy.NoFocus
        )
        self.restricted.setEnabled(ready)
        self.person.setEnabled(ready and self.person.count() > 0)
        self.add_button.setEnabled(ready and self.person.count() > 0)
        self.remove_button.setEnabled(ready and bool(self.team.selectedItems()))

    # ----- changes ----------------------------------------------------------------------

    def _change(self, work: Callable[[], ca.ChartAccess], label: str) -> None:
        self.error.hide()
        self._busy = True
        self._update_buttons()
        self._job = self._operations.submit(work, self._changed, self._change_failed, label)

    def _changed(self, _access: ca.ChartAccess) -> None:
        self._job = None
        self.reload()

    def _change_failed(self, exc: Exception) -> None:
        self._job = None
        self._failed(exc)
        self.reload()  # show what holds now (the checkbox may have been ticked in vain)

    def _restricted_clicked(self, checked: bool) -> None:
        records, patient_id = self._records, self._patient_id
        self._change(
            lambda: ca.set_restricted(records(), patient_id, checked),
            "restrict chart" if checked else "lift restriction",
        )

    def selected_username(self) -> str | None:
        """The care-team member selected."""
        items = self.team.selectedItems()
        return str(items[0].data(Qt.ItemDataRole.UserRole)) if items else None

    def chosen_username(self) -> str | None:
        """The staff member chosen in the add combo (by the list, or by typing a name)."""
        index = self.person.currentIndex()
        if index < 0 or self.person.currentText() != self.person.itemText(index):
            index = self.person.findText(self.person.currentText(), Qt.MatchFlag.MatchContains)
        return str(self.person.itemData(index)) if index >= 0 else None

    def add_person(self) -> None:
        """Put the chosen staff member on the care team."""
        name = self.chosen_username()
        if name is None:
            self.error.setText("Choose a staff member to add.")
            self.error.show()
            return
        records, patient_id = self._records, self._patient_id
        self._change(lambda: ca.add_to_care_team(records(), patient_id, name), "add to care team")

    def remove_selected(self) -> None:
        """Take the selected member off the care team."""
        name = self.selected_username()
        if name is None:
            return
        records, patient_id = self._records, self._patient_id
        self._change(
            lambda: ca.remove_from_care_team(records(), patient_id, name), "remove from care team"
        )

    def done(self, result: int) -> None:
        """Close; a read still in flight is dropped, a change in flight not reported back."""
        self._operations.cancel(self.READ)
        if self._job is not None:
            self._job.cancel()
            self._job = None
        super().done(result)
