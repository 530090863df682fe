"""Dialogs shared by the problem and medication cards: a form that saves through core on
the worker and shows core's errors next to the field they name, and a date dialog for
resolving a problem or stopping a medication (in the patient's open visit, if any)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton, QWidget

from app.chart.visit_view import OpenVisitLink
from app.messages import describe_error, validation_text
from app.operations import Operations
from app.widgets import (
    TypedForm,
    action_buttons,
    check_all,
    dialog_layout,
    error_label,
    form_layout,
    message_beside,
)
from app.worker import Job
from core.records.errors import NotFoundError, ValidationError
from core.records.spec import ListSpec


class SavingDialog(TypedForm):
    """A dialog whose Save runs ``work()`` on the worker; core's ValidationError shows
    next to its field (``self.errors``: each gone once its field is edited, see
    ``clears_on_edit``), anything else under the form."""

    saved = Signal(object)  # what the work returned
    save_button: QPushButton  # set by the subclass's form
    first_field: QWidget | None = None  # focused when the dialog shows
    # What a form changing an item already on the list calls it ("allergy"); None for a
    # form adding one. Items are replaced, never edited in place (core/records/
    # chart_lists.py): one changed or removed since the form opened is gone, and saving
    # refuses (NotFoundError), overwriting nothing; the person is told so in these words.
    edits: str | None = None

    def __init__(self, operations: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._operations = operations
        self._job: Job[Any] | None = None
        self.errors: dict[str, QLabel] = {}

    def showEvent(self, event: QShowEvent) -> None:
        """Start typing in the first field (focus set before showing does not stick)."""
        super().showEvent(event)
        if self.first_field is not None:
            self.first_field.setFocus()

    def items_pass(
        self,
        spec: ListSpec,
        values: Mapping[str, str | None],
        own: Mapping[str, Callable[[], object]] | None = None,
    ) -> bool:
        """Check ``values`` as core checks a ``spec`` list item, every field at once: all
        that is wrong shown together, the keyboard in the first field in error (see
        ``TypedForm.show_problems``); True when nothing is. ``own``: a field checked as
        core checks it for this change instead (a dose change's date, required)."""
        own = own or {}
        checks = (
            (self.errors[f], own.get(f) or partial(spec.item(f).clean, value))
            for f, value in values.items()
            if f in self.errors
        )
        return not self.show_problems(check_all(checks))

    def run(self, work: Callable[[], Any], label: str) -> None:
        """Save: run ``work`` (which writes through core); close when it succeeded."""
        if self._job is not None:
            return
        for error in (*self.errors.values(), self.general_error):
            error.hide()
        self.save_button.setEnabled(False)
        self._job = self._operations.submit(work, self._stored, self.failed, label=label)

    def done(self, result: int) -> None:
        """Close; a save still in flight is not reported back to a closed dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        super().done(result)

    def _stored(self, result: Any) -> None:
        self._job = None
        self.save_button.setEnabled(True)
        self.saved.emit(result)
        self.accept()

    def failed(self, exc: Exception) -> None:
        """Show what core refused, next to the field it names where there is one."""
        self._job = None
        self.save_button.setEnabled(True)
        if isinstance(exc, ValidationError) and exc.field in self.errors:
            label = self.errors[exc.field]
            label.setText(validation_text(exc))
        elif isinstance(exc, NotFoundError) and self.edits is not None:
            label = self.general_error
            label.setText(
                f"This {self.edits} was changed or removed since you opened this form (by "
                "someone else, or on another workstation): nothing was saved. Close the "
                "form to see the list as it is now."
            )
        else:
            label = self.general_error
            label.setText(describe_error(exc))
        label.show()
        self.focus_field_of(label)  # the field in error (else the one last typed in)


class DateDialog(SavingDialog):
    """Ask for the date something happened (today, typed as text), then save it: in the
    patient's open visit, when ``visit_link`` finds one (the form names it, as the Start
    and Add forms do), else in no visit (the form says nothing of a visit)."""

    def __init__(
        self,
        operations: Operations,
        title: str,
        heading: str,
        field: tuple[str, str],  # (core's field name, label)
        work: Callable[[str, str | None], Any],  # (the date typed, the visit or None)
        accept_text: str,
        parent: QWidget | None = None,
        edits: str | None = None,
        visit_link: OpenVisitLink | None = None,
    ) -> None:
        super().__init__(operations, parent)
        self.edits = edits
        self.visit_link = visit_link
        self.setObjectName("dateDialog")
        self.setWindowTitle(title)
        self.setMinimumWidth(380)
        self._work = work
        text = QLabel(heading)
        text.setObjectName("dialogHeading")
        text.setWordWrap(True)
        self.date = QLineEdit(dt.date.today().isoformat())
        self.date.setPlaceholderText("YYYY-MM-DD")
        self.date.selectAll()
        self.first_field = self.date
        name, label = field
        self.errors[name] = error_label()
        self.clears_on_edit([(self.date, self.errors[name])])
        form = form_layout()
        form.addRow(label, self.date)
        form.addRow("", self.errors[name])
        self.buttons, self.save_button = action_buttons(self, self.save, accept_text)
        shown = (visit_link.label,) if visit_link is not None else ()
        # The form's message beside the buttons: above them, it pushed them down.
        dialog_layout(self, text, form, *shown, message_beside(self.general_error, self.buttons))

    def save(self) -> None:
        """Save with the date as typed (core reads it strictly), in the open visit the
        form names (if any)."""
        typed, work = self.date.text(), self._work
        visit = self.visit_link.encounter() if self.visit_link is not None else lambda: None
        self.run(lambda: work(typed, visit()), self.windowTitle().lower())

    def done(self, result: int) -> None:
        """Close; the open-visit read still in flight is not delivered."""
        if self.visit_link is not None:
            self.visit_link.cancel()
        super().done(result)
