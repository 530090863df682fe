"""Unsaved forms survive a sign-out, for the person who typed them and nobody else.

When a session ends (auto-logoff or "Sign out"), every open dialog that implements
:class:`DraftForm` and holds unsaved input is asked for its :meth:`DraftForm.draft` before it
is closed. The drafts are kept here, in memory only and keyed by user name; they are never
written to disk. When the same person signs in again, the dialogs are opened again and
refilled with :meth:`DraftForm.restore`. A different person signing in never sees them, and
closing the clinic on this computer drops them all. (The values are Python ``str`` objects:
dropping them removes the references; Python cannot overwrite the strings themselves.)

A form editing an existing record keeps, with the fields the person changed, what each held
when the form was opened (app/edit_base.py): a value someone else saved meanwhile is asked
about when the draft comes back, never silently replaced.

A form that belongs to one patient's chart (the Vitals tab) is also put aside when the
person leaves that chart without saving (opening another patient, back to the list), and
given back when the same person comes back to that patient (:meth:`DraftKeeper.put_aside`,
:meth:`DraftKeeper.take_back`): kept the same way, per user and in memory only, across a
sign-out too, and dropped with the rest when the clinic closes here.

A form opened from another kept form (the registration opened by the booking dialog's
"Register new patient…") is kept by that form, inside its draft, and comes back from it on
top of it: kept on its own, it came back as a separate window behind the other form, which
blocked it, and a second, empty one was opened from the other form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from PySide6.QtWidgets import QDialog, QWidget


@runtime_checkable
class DraftForm(Protocol):
    """A dialog whose unsaved input can be kept across a sign-out."""

    def draft(self) -> dict[str, Any] | None:
        """What the person typed that is not saved yet; None when there is nothing to keep.
        Include what is needed to open the form again (e.g. the patient's id)."""
        ...

    def restore(self, draft: dict[str, Any]) -> None:
        """Fill the form with a draft this dialog's class returned."""
        ...


@dataclass(frozen=True)
class Draft:
    """One kept form: which dialog (its object name), its title, and its values."""

    kind: str
    title: str
    values: dict[str, Any]
    # The titles of forms kept inside this one's values (its registration), for the notice.
    inner: tuple[str, ...] = ()


# Opens the dialog of a draft's kind again and restores the draft into it.
Reopener = Callable[[Draft], None]


class DraftKeeper:
    """Drafts of signed-out people, per user, in memory."""

    def __init__(self) -> None:
        self._drafts: dict[str, list[Draft]] = {}
        self._reopeners: dict[str, Reopener] = {}
        # Forms left without saving, per user, by (kind, what they belong to: a patient id).
        self._aside: dict[str, dict[tuple[str, str], Draft]] = {}

    def reopen_with(self, kind: str, reopener: Reopener) -> None:
        """How to open the dialog named ``kind`` (its object name) again."""
        self._reopeners[kind] = reopener

    def keep(self, username: str, window: QWidget) -> list[Draft]:
        """Take the drafts of ``window``'s open dialogs for ``username`` (before the caller
        closes them). Dialogs nobody knows how to reopen are not kept; a form opened from
        another kept form is kept in that form's draft (its owner's), not on its own."""
        kept: list[Draft] = []
        # Dialogs, and forms that live in a page (the chart's Vitals tab), by object name.
        for dialog in window.findChildren(QWidget):
            if not self._keeps(dialog) or self._owner(dialog, window) is not None:
                continue
            assert isinstance(dialog, DraftForm)
            values = dialog.draft()
            if values is not None:
                inner = tuple(
                    form.windowTitle()
                    for form in dialog.findChildren(QWidget)
                    if self._keeps(form)
                    and self._owner(form, window) is dialog
                    and cast(DraftForm, form).draft() is not None
                )
                kept.append(Draft(dialog.objectName(), dialog.windowTitle(), values, inner))
        if kept:
            self._drafts.setdefault(username, []).extend(kept)
        return kept

    def _keeps(self, widget: QWidget) -> bool:
        """``widget`` is a form whose draft can be kept: a known kind, open, a DraftForm."""
        if widget.objectName() not in self._reopeners:
            return False
        if isinstance(widget, QDialog) and not widget.isVisible():
            return False
        return isinstance(widget, DraftForm)

    def _owner(self, widget: QWidget, window: QWidget) -> QWidget | None:
        """The kept form ``widget`` was opened from (its nearest such ancestor under
        ``window``), which keeps it in its own draft; None if it stands alone."""
        parent = widget.parentWidget()
        while parent is not None and parent is not window:
            if self._keeps(parent):
                return parent
            parent = parent.parentWidget()
        return None

    def has_drafts(self, username: str) -> bool:
        """True if ``username`` has forms waiting."""
        return bool(self._drafts.get(username))

    def restore(self, username: str) -> list[Draft]:
        """Reopen ``username``'s forms (and forget them here); returns what was reopened."""
        drafts = self._drafts.pop(username, [])
        for draft in drafts:
            self._reopeners[draft.kind](draft)
        return drafts

    def put_aside(self, username: str, owner: str, draft: Draft) -> None:
        """Keep ``username``'s unsaved ``draft`` of a form belonging to ``owner`` (a
        patient's id) until they come back to it (replacing one kept before)."""
        self._aside.setdefault(username, {})[(draft.kind, owner)] = draft

    def take_back(self, username: str, kind: str, owner: str) -> Draft | None:
        """``username``'s form of ``kind`` put aside for ``owner``, forgotten here; None if
        there is none (another person's is never given)."""
        mine = self._aside.get(username, {})
        draft = mine.pop((kind, owner), None)
        if not mine:
            self._aside.pop(username, None)
        return draft

    def drop_all(self) -> None:
        """Forget every draft (the clinic is closing on this computer)."""
        self._drafts.clear()
        self._aside.clear()


# In a draft's values: the form's input was saved at the sign-out; the draft only opens
# it again where the person was (the note editor, which saves as its person types).
SAVED_OPEN = "_saved_open"


def restored_notice(drafts: list[Draft]) -> str:
    """``Your unsaved New patient form was restored.``; a form whose input was saved and
    that was only opened again is said so, never called unsaved."""
    unsaved = [d for d in drafts if not d.values.get(SAVED_OPEN)]
    reopened = [d.title for d in drafts if d.values.get(SAVED_OPEN)]
    titles = [title for d in unsaved for title in (d.title, *d.inner)]
    said = []
    if len(titles) == 1:
        said.append(f"Your unsaved {titles[0]} form was restored.")
    elif titles:
        said.append(f"Your unsaved forms were restored: {', '.join(titles)}.")
    if reopened:
        said.append(
            f"The {' and '.join(reopened)} you had open {'is' if len(reopened) == 1 else 'are'} "
            "open again, as saved when you signed out."
        )
    return " ".join(said)
