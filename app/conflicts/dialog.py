"""The conflicts inbox: every field with competing values, and a way to settle each one.

A conflict arises when two workstations changed the same field before seeing each other's
change (or one edited a record another deleted). Core keeps every value; a person chooses
one, or types a new one, and core records that as a new op that supersedes them all.

A list conflict (allergies, problems, medications) arises when the same item was changed on
two workstations at once. Its card shows what each workstation added and removed; the
person keeps the merged list (as the chart shows it), applies one workstation's changes, or
ticks the items to keep. Either way it is one op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error, validation_text
from app.widgets import TypedForm, error_label, message_beside, paragraph
from app.worker import Job, Submit
from core.records import types
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.models import Conflict, ConflictCandidate, ConflictSide, withheld_text
from core.records.notes import Notes
from core.records.signed_notes import DISCARD_CHOICES, DISCARDED
from core.records.workstation_names import describe_workstation, workstation_names
from core.store.oplog import identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbox:
    """Open conflicts with what the screen needs to name them."""

    conflicts: tuple[Conflict, ...]
    titles: dict[str, str]  # record id -> "Patient GARCIA, Maria"
    this_replica: str
    names: dict[str, str] = field(default_factory=dict)  # user name -> full name
    desks: dict[str, str] = field(default_factory=dict)  # replica -> workstation name
    withheld: int = 0  # open conflicts on records the person may not read (never shown)


def load_inbox(records: ClinicRecords) -> Inbox:
    """Runs on the worker: conflicts, record titles, and this replica's id."""
    conflicts = tuple(records.review_conflicts())
    titles: dict[str, str] = {}
    for conflict in conflicts:
        if conflict.record_id in titles:
            continue
        title = f"{conflict.record_type.capitalize()} {conflict.record_id[:8]}"
        try:
            if conflict.record_type == "patient":
                patient = records.get_patient(conflict.record_id)
                title = f"Patient {patient.family.upper()}, {patient.given}"
            elif conflict.record_type == "note":  # whose chart the note is on
                patient = records.get_patient(Notes(records).get(conflict.record_id).patient_id)
                title = f"Note on {patient.family.upper()}, {patient.given}'s chart"
        except Exception as exc:  # deleted or unreadable: the id still identifies it
            log.info("no title for %s: %s", conflict.record_id, exc)
        titles[conflict.record_id] = title
    return Inbox(
        conflicts,
        titles,
        identity(records.db).replica_id,
        people_of(records, conflicts),
        workstation_names(records.db),
        records.withheld_conflicts(),
    )


def people_of(records: ClinicRecords, conflicts: Collection[Conflict]) -> dict[str, str]:
    """The full name of everyone who made a value or a list change in ``conflicts`` (a user
    name with no account, or no full name, stands for itself)."""
    authors = {c.author for conflict in conflicts for c in conflict.candidates}
    authors |= {e.author for conflict in conflicts for s in conflict.sides for e in s.edits}
    names: dict[str, str] = {}
    for author in sorted(a for a in authors if a):
        user = records.user(author)
        names[author] = (user.full_name if user else "") or author
    return names


def field_label(field: str, record_type: str | None = None) -> str:
    """``birth_date`` -> ``Date of birth`` (as the record type's spec labels it)."""
    return types.field_label(field, record_type)


def describe_value(candidate: ConflictCandidate) -> str:
    """The value as a person reads it."""
    if candidate.field == "deleted":
        return "Delete the record" if candidate.value else "Keep the record"
    if candidate.field == DISCARDED:
        return DISCARD_CHOICES.get(candidate.id, candidate.id)
    if candidate.value is None or candidate.value == "":
        return "(empty)"
    return str(candidate.value)


# Above a discard-versus-edit conflict's two choices: what happened, and what shows now.
DISCARD_HINT = (
    "This draft note was discarded on one workstation while it was still being edited on "
    "another. It stays on the chart until you choose."
)


class Origin(Protocol):
    """Anything made by someone on some workstation at some time."""

    @property
    def author(self) -> str:
        """Who."""

    @property
    def replica(self) -> str:
        """On which workstation."""

    @property
    def time(self) -> str:
        """When (ISO 8601)."""


def workstation_name(
    replica: str, this_replica: str, desks: Mapping[str, str] | None = None
) -> str:
    """``this workstation``, ``Front desk 2 (device 56572a7b)`` when ``desks`` (replica ->
    its name: core/records/workstation_names.py) knows it, else ``workstation 8b73ab47``."""
    return describe_workstation(replica, this_replica, desks or {})


def describe_origin(
    candidate: Origin,
    this_replica: str,
    names: Mapping[str, str] | None = None,
    desks: Mapping[str, str] | None = None,
) -> str:
    """Who (by full name when ``names`` knows them), where (by name when ``desks`` knows
    it) and when."""
    where = workstation_name(candidate.replica, this_replica, desks)
    when = candidate.time.replace("T", " ")[:16]
    who = (names or {}).get(candidate.author) or candidate.author or "unknown"
    return f"by {who} on {where}, {when}"


@dataclass(frozen=True)
class Resolution:
    """What a card asks core to do: choose a value or preset, enter a value, or keep items."""

    choose: str | None = None
    value: str | None = None
    keep: Collection[str] | None = None


class _Card(QFrame):
    """What every conflict card has: the Resolve button, and an inline error beside it
    (not above it: shown there, it pushed Resolve down under the person's next click)."""

    resolve_requested = Signal(object, object)  # card, Resolution

    def _add_footer(self, layout: QVBoxLayout) -> None:
        self.error = error_label()
        self.resolve_button = QPushButton("Resolve")
        self.resolve_button.setObjectName("primary")
        self.resolve_button.clicked.connect(self._resolve)
        layout.addLayout(message_beside(self.error, self.resolve_button))

    def show_error(self, text: str) -> None:
        """An inline message under this conflict."""
        self.error.setText(text)
        self.error.show()
        self.resolve_button.setEnabled(True)

    def _resolve(self) -> None:
        raise NotImplementedError


class ConflictCard(_Card):
    """One conflict: its values as choices, a new-value box, and Resolve."""

    def __init__(
        self,
        conflict: Conflict,
        title: str,
        this_replica: str,
        names: Mapping[str, str] | None = None,
        desks: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.conflict = conflict
        self.setObjectName("card")
        heading = QLabel(f"{title} — {field_label(conflict.field, conflict.record_type)}")
        heading.setObjectName("cardHeading")
        self.group = QButtonGroup(self)
        self.choices: dict[str, QRadioButton] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(6)
        layout.addWidget(heading)
        if conflict.field == DISCARDED:
            layout.addWidget(_hint(DISCARD_HINT))
        for candidate in conflict.candidates:
            button = QRadioButton(describe_value(candidate))
            button.setAccessibleName(describe_value(candidate))
            origin = QLabel(describe_origin(candidate, this_replica, names, desks))
            origin.setObjectName("hint")
            origin.setContentsMargins(26, 0, 0, 4)
            self.group.addButton(button)
            self.choices[candidate.id] = button
            layout.addWidget(button)
            layout.addWidget(origin)
        self.other = QRadioButton("Another value:")
        self.other_value = QLineEdit()
        self.other_value.setPlaceholderText("Type the correct value")
        self.other_value.textEdited.connect(lambda _t: self.other.setChecked(True))
        # Return in the box resolves this conflict with it, as Return saves any form.
        self.other_value.returnPressed.connect(self._return_in_value)
        self.group.addButton(self.other)
        other_row = QHBoxLayout()
        other_row.addWidget(self.other)
        other_row.addWidget(self.other_value, 1)
        if conflict.field not in ("deleted", DISCARDED):  # two choices, nothing to type
            layout.addLayout(other_row)
        else:
            self.other.hide()
            self.other_value.hide()
        self._add_footer(layout)

    def choose(self, candidate_id: str) -> None:
        """Select the value ``candidate_id`` (as a click would)."""
        self.choices[candidate_id].setChecked(True)

    def typed(self) -> str:
        """What is typed in "Another value" (kept until resolved)."""
        return self.other_value.text() if self.other_value.isVisibleTo(self) else ""

    def _return_in_value(self) -> None:
        self.other.setChecked(True)
        if self.resolve_button.isEnabled():
            self.resolve_button.click()

    def _resolve(self) -> None:
        self.error.hide()
        if self.other.isChecked():
            self.resolve_requested.emit(self, Resolution(value=self.other_value.text()))
            return
        chosen = next((cid for cid, b in self.choices.items() if b.isChecked()), None)
        if chosen is None:
            self.show_error("Choose one of the values, or type another.")
            return
        self.resolve_requested.emit(self, Resolution(choose=chosen))


MERGED = "merged"


def _hint(text: str, indent: int = 0) -> QLabel:
    label = paragraph(text, "hint")
    label.setContentsMargins(indent, 0, 0, 0)
    return label


class ListConflictCard(_Card):
    """A list conflict: each workstation's additions and removals, then the choices (keep
    the merged list, apply one workstation's changes, or tick the items to keep)."""

    def __init__(
        self,
        conflict: Conflict,
        title: str,
        this_replica: str,
        names: Mapping[str, str] | None = None,
        desks: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.conflict = conflict
        self.setObjectName("card")
        self._labels = {i.id: i.label for i in conflict.items}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(6)
        heading = QLabel(f"{title} — {field_label(conflict.field, conflict.record_type)} (list)")
        heading.setObjectName("cardHeading")
        layout.addWidget(heading)
        layout.addWidget(
            _hint(
                "The same item was changed on two workstations before either saw the other's "
                "change. The chart shows both changes merged; nothing was lost."
            )
        )
        # What each side did: one labelled line per added or removed item.
        self.side_edits: dict[str, list[QLabel]] = {}
        for side in conflict.sides:
            where = workstation_name(side.id, this_replica, desks)
            side_heading = QLabel(f"On {where}:")
            side_heading.setObjectName("sideHeading")
            layout.addWidget(side_heading)
            lines: list[QLabel] = []
            for edit in side.edits:
                verb = "Added" if edit.action == "added" else "Removed"
                line = paragraph(f"{verb}: {edit.label}")
                line.setObjectName(f"{edit.action}Item")
                line.setContentsMargins(16, 0, 0, 0)
                layout.addWidget(line)
                layout.addWidget(_hint(describe_origin(edit, this_replica, names, desks), 32))
                lines.append(line)
            if not side.edits:
                lines.append(_hint("Added and removed the same item (no net change).", 16))
                layout.addWidget(lines[-1])
            self.side_edits[side.id] = lines
        # The choices: presets that tick the items, or the person's own ticks.
        self.group = QButtonGroup(self)
        self.choices: dict[str, QRadioButton] = {}
        choose_label = QLabel("Resolve by:")
        choose_label.setObjectName("sideHeading")
        layout.addWidget(choose_label)
        self._presets: dict[str, tuple[str, ...]] = {MERGED: conflict.merged}
        self._add_choice(layout, MERGED, "Keeping the merged list, as the chart shows it")
        for side in conflict.sides:
            self._presets[side.id] = side.keep
            where = workstation_name(side.id, this_replica, desks)
            self._add_choice(layout, side.id, f"Applying the changes made on {where}")
        self._add_choice(layout, "items", "Choosing the items to keep:")
        self.items: dict[str, QCheckBox] = {}
        for item in conflict.items:
            box = QCheckBox(item.label)
            box.setAccessibleName(item.label)
            box.clicked.connect(lambda _checked: self.choices["items"].setChecked(True))
            self.items[item.id] = box
            row = QHBoxLayout()
            row.addSpacing(26)
            row.addWidget(box, 1)
            layout.addLayout(row)
        self._add_footer(layout)
        self.choose(MERGED)

    def _add_choice(self, layout: QVBoxLayout, key: str, text: str) -> None:
        button = QRadioButton(text)
        button.setAccessibleName(text)
        if key != "items":
            # Picking a preset shows which items it keeps.
            button.toggled.connect(lambda on: self._tick(self._presets[key]) if on else None)
            kept = ", ".join(self._labels[i] for i in self._presets[key]) or "none of them"
            button.setToolTip(f"Keeps: {kept}")
        self.group.addButton(button)
        self.choices[key] = button
        layout.addWidget(button)

    def _tick(self, keep: Collection[str]) -> None:
        for item_id, box in self.items.items():
            box.setChecked(item_id in keep)

    def choose(self, key: str) -> None:
        """Select ``merged``, a side's id, or ``items`` (as a click would)."""
        self.choices[key].setChecked(True)

    def kept(self) -> set[str]:
        """The items ticked now."""
        return {item_id for item_id, box in self.items.items() if box.isChecked()}

    def _resolve(self) -> None:
        self.error.hide()
        chosen = next(key for key, b in self.choices.items() if b.isChecked())
        if chosen == "items":
            self.resolve_requested.emit(self, Resolution(keep=sorted(self.kept())))
        else:
            self.resolve_requested.emit(self, Resolution(choose=chosen))

    def side(self, side_id: str) -> ConflictSide:
        """One of the conflict's sides by id."""
        return next(s for s in self.conflict.sides if s.id == side_id)


AnyCard = ConflictCard | ListConflictCard


class ConflictsDialog(TypedForm):
    """The inbox: a scrolling list of conflict cards.

    Close is never a default button: Return in "Another value" resolves that conflict
    (it closed the inbox and dropped the value typed). A value typed and not resolved is
    what the person would lose, so Close, Escape and the window's close button ask first
    (``TypedForm``); the program closing it (a sign-out) does not.
    """

    resolved = Signal(str)  # record id whose conflict was settled

    def __init__(
        self,
        worker: Submit,
        records: Callable[[], ClinicRecords],
        parent: QWidget | None = None,
    ) -> None:
        """``worker``: :class:`app.operations.Operations` in the app, so that a resolution
        reaches every screen even if the inbox is closed while it is being written."""
        super().__init__(parent)
        self._worker = worker
        self._records = records
        self._job: Job[Inbox] | None = None
        self._resolving: Job[None] | None = None
        self.cards: list[AnyCard] = []
        self.setObjectName("conflictsDialog")
        self.setWindowTitle("Conflicts")
        self.resize(640, 560)
        heading = QLabel("Conflicts to resolve")
        heading.setObjectName("dialogHeading")
        intro = paragraph(
            "These fields were changed on two workstations before either saw the other's "
            "change. Careline kept both. Choose the correct value, or type another.",
            "hint",
        )
        self.status = QLabel()
        self.status.setObjectName("statusText")
        self.status.setWordWrap(True)
        self.list_widget = QWidget()
        self.list_layout = QVBoxLayout(self.list_widget)
        self.list_layout.setContentsMargins(0, 0, 0, 0)
        self.list_layout.setSpacing(12)
        self.list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.list_widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setAutoDefault(False)  # Return in a card never reaches it
        close.setDefault(False)
        buttons.rejected.connect(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)

    def form_state(self) -> object:
        """The values typed in the cards and not yet resolved (the cards themselves come
        and go as the inbox reloads)."""
        return {
            card.conflict.id: card.typed()
            for card in self.cards
            if isinstance(card, ConflictCard) and card.typed()
        }

    def refresh(self) -> None:
        """Reload the open conflicts on the worker."""
        if self._job is not None:
            self._job.cancel()
        self.status.setText("Loading…")
        records = self._records
        self._job = self._worker.submit(
            lambda: load_inbox(records()), self._arrived, self._load_failed, label="conflicts"
        )

    def done(self, result: int) -> None:
        """Close; results still in flight are dropped."""
        for job in (self._job, self._resolving):
            if job is not None:
                job.cancel()
        super().done(result)

    def _arrived(self, inbox: Inbox) -> None:
        self._job = None
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards = []
        for conflict in inbox.conflicts:
            title = inbox.titles[conflict.record_id]
            new: AnyCard = (
                ListConflictCard(conflict, title, inbox.this_replica, inbox.names, inbox.desks)
                if conflict.kind == "set"
                else ConflictCard(conflict, title, inbox.this_replica, inbox.names, inbox.desks)
            )
            new.resolve_requested.connect(self._resolve)
            self.list_layout.insertWidget(self.list_layout.count() - 1, new)
            self.cards.append(new)
        count = len(inbox.conflicts)
        text = (
            # Only this workstation's records are known: another may hold a conflicting
            # change it has not synced yet.
            "No conflicts to resolve on this workstation."
            if count == 0
            else f"{count} conflict{'s' if count != 1 else ''} to resolve."
        )
        if inbox.withheld:
            text += " " + withheld_text(inbox.withheld)
        self.status.setText(text)

    def _load_failed(self, exc: Exception) -> None:
        self._job = None
        self.status.setText(describe_error(exc))

    def _resolve(self, card: AnyCard, how: Resolution) -> None:
        if self._resolving is not None:
            return
        card.resolve_button.setEnabled(False)
        records, conflict_id = self._records, card.conflict.id
        record_id = card.conflict.record_id

        def done(_: None) -> None:
            self._resolving = None
            self.resolved.emit(record_id)
            self.refresh()

        def failed(exc: Exception) -> None:
            self._resolving = None
            if isinstance(exc, ValidationError):
                card.show_error(validation_text(exc))
            else:
                card.show_error(describe_error(exc))

        self._resolving = self._worker.submit(
            lambda: records().resolve_conflict(
                conflict_id, choose=how.choose, value=how.value, keep=how.keep
            ),
            done,
            failed,
            label="resolve conflict",
        )
