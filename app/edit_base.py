"""Forms that edit an existing record: what each field held when the form was opened (its
base), kept with the form's draft, and the question asked when someone else changed a
field since (core/records/edit_base.py refuses that save, writing nothing).

The question names the field, the value it holds now, who saved it and when, and what the
person typed; they choose **Keep mine** (their value replaces it) or **Keep theirs** (their
typing in that field is dropped, the field shows the other value). **Back to the form**,
the default (Return, Escape), saves nothing: nobody's value is replaced unasked. A form's
save then goes on with the choices made (``EditBase.settle``: the field's base becomes the
value the person has now seen).

Why ask rather than record a conflict for the conflicts screen (a write superseding only
the base's value would leave both values live, an ordinary register conflict): the person
who typed the value is at the form now and knows what they meant; a conflict would show
their value meanwhile (the newest wins the display), the other one behind a badge, and
leave the choice to whoever opens the inbox later, who knows less; and it would record as
"changed at once" a save that had in fact seen the other value. The conflicts screen stays
for what nobody could have seen: two workstations changing one field before either synced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox, QWidget

from app.conflicts.dialog import workstation_name
from core.records.crdt import Value
from core.records.edit_base import ChangedField

BASE_KEY = "base"  # the draft's entry holding the base of each field it changed


class EditBase:
    """What each field of an edit form held when the form was opened.

    ``values()`` of the form minus this base is what the person changed (only that is
    saved); ``based_on`` is what a save tells core. A field of a draft kept without its
    base (an earlier draft) has an unknown base: core then treats it as changed since.
    """

    def __init__(self, opened_on: Mapping[str, Value]) -> None:
        self._base: dict[str, Value] = dict(opened_on)
        self._unknown: set[str] = set()

    def changed(self, values: Mapping[str, Value]) -> dict[str, Value]:
        """The fields of ``values`` that differ from their base (what the person changed)."""
        return {f: v for f, v in values.items() if f in self._base and v != self._base[f]}

    def based_on(self, fields: Iterable[str]) -> dict[str, Value]:
        """The base of each of ``fields`` whose base is known, for core's check."""
        return {f: self._base[f] for f in fields if f in self._base and f not in self._unknown}

    def for_draft(self, fields: Iterable[str]) -> dict[str, dict[str, Value]]:
        """What a draft keeps of the base of ``fields`` (merged into the draft's values)."""
        return {BASE_KEY: self.based_on(fields)}

    def restore(self, draft: Mapping[str, Any], fields: Iterable[str]) -> None:
        """A draft's ``fields`` came back into a form opened on the record as it is now:
        their base is the draft's (or unknown, for a draft that kept none)."""
        kept = draft.get(BASE_KEY)
        known = kept if isinstance(kept, dict) else {}
        for field in fields:
            if field in known:
                self._base[field] = known[field]
                self._unknown.discard(field)
            else:
                self._unknown.add(field)

    def settle(self, field: str, seen: Value) -> None:
        """The person saw ``seen`` (the field's value now) and chose: it is the base."""
        self._base[field] = seen
        self._unknown.discard(field)


def shown(value: Value) -> str:
    """A value as the question quotes it."""
    return "nothing (empty)" if value is None or value == "" else f"“{value}”"


def origin(field: ChangedField) -> str:
    """``by Ada Adeyemi on this workstation, 2026-12-06 14:02`` (as much as is known)."""
    parts: list[str] = []
    if field.author:
        parts.append(f"by {field.author_name or field.author}")
    if field.replica:
        where = workstation_name(
            field.replica,
            field.replica if field.here else "",
            {field.replica: field.replica_name} if field.replica_name else None,
        )
        parts.append(
            f"on {where}" + (f", {field.time.replace('T', ' ')[:16]}" if field.time else "")
        )
    return " ".join(parts)


def question_text(field: ChangedField, yours: Value) -> tuple[str, str]:
    """The question's text and its detail for one field."""
    who = origin(field)
    by = f" {who}" if who else ""
    if not field.base_known:
        saved = f" (saved {who})" if who else ""
        text = (
            f"{field.label} is {shown(field.current)} now{saved}. This form was kept from "
            "before Careline noted what each field held when a form was opened, so it "
            "cannot tell whether that changed since you began."
        )
    elif field.current is None or field.current == "":
        text = f"{field.label} was emptied{by} since you opened this form."
    else:
        text = (
            f"{field.label} was changed to {shown(field.current)}{by} since you opened this form."
        )
    detail = (
        f"You typed {shown(yours)}.\n\n"
        f"Keep mine: {shown(yours)} replaces it.\n"
        f"Keep theirs: {shown(field.current)} stays and what you typed in {field.label} is "
        "dropped.\n"
        "Back to the form saves nothing."
    )
    return text, detail


QUESTION = "changedSinceQuestion"


class ChangedSinceQuestion(QObject):
    """Asks about each changed field in turn (one window-modal box at a time, ``box``).

    ``decide(field, keep_mine)`` runs as each is answered; ``then(True)`` once every field
    is decided, ``then(False)`` if the person went back to the form (or the box was closed
    without an answer): the fields not yet decided stay undecided."""

    def __init__(
        self,
        parent: QWidget,
        fields: Sequence[ChangedField],
        yours: Mapping[str, Value],
        decide: Callable[[ChangedField, bool], None],
        then: Callable[[bool], None],
    ) -> None:
        super().__init__(parent)
        self._parent = parent
        self._remaining = list(fields)
        self._yours = yours
        self._decide = decide
        self._then = then
        self.box: QMessageBox | None = None
        self._ask_next()

    def _ask_next(self) -> None:
        if not self._remaining:
            self._finish(True)
            return
        field = self._remaining.pop(0)
        text, detail = question_text(field, self._yours.get(field.field))
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Changed since you opened this form",
            text,
            parent=self._parent,
        )
        box.setObjectName(QUESTION)
        box.setInformativeText(detail)
        mine = box.addButton("Keep mine", QMessageBox.ButtonRole.DestructiveRole)
        mine.setObjectName("keepMine")
        theirs = box.addButton("Keep theirs", QMessageBox.ButtonRole.AcceptRole)
        theirs.setObjectName("keepTheirs")
        back = box.addButton("Back to the form", QMessageBox.ButtonRole.RejectRole)
        back.setObjectName("backToForm")
        box.setDefaultButton(back)
        box.setEscapeButton(back)

        def answered(_result: int) -> None:
            clicked = box.clickedButton()
            box.deleteLater()
            self.box = None
            if clicked is mine or clicked is theirs:
                self._decide(field, clicked is mine)
                self._ask_next()
            else:
                self._finish(False)

        box.finished.connect(answered)
        self.box = box
        box.open()
        back.setFocus()  # Return or Space on the focused button: the one that saves nothing

    def _finish(self, decided: bool) -> None:
        self.deleteLater()
        self._then(decided)

    def close(self) -> None:
        """Close the box open now, deciding nothing more (the form is closing)."""
        self._remaining.clear()
        if self.box is not None:
            self.box.reject()
