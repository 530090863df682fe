"""The note editor (saved as it is typed; Sign freezes the text) and the addendum form.

The editor saves at each pause of :data:`AUTOSAVE_MS`: core turns the text into the
smallest edits of the note's shared text, starting from the text the editor last saved, so
an edit another workstation made meanwhile stays. Closing the editor (and so signing out,
which clears the chart) sends what is not saved yet.

A new note (New note) opens on the SOAP headings with nothing stored: the first save after
the person types creates it in the visit, so a New note closed untouched leaves no empty
draft behind. Sign asks first: a signed note cannot be changed. "Discard draft…" asks
first too, then takes the draft off the chart (``Notes.discard``: a note started on the
wrong patient or visit); its text stays in the record's history.

A draft discarded elsewhere while open here (another workstation's discard brought by a
sync, or another window of this app) is noticed as soon as the change is broadcast, or at
the latest when an autosave is refused: the editor stops saving, says who discarded it,
where and when, and keeps the text on screen. Nothing is stored until the person chooses
"Keep as a new draft" (a new note in the same visit holding the text as it is, which the
editor then goes on saving); Close asks first, since the text would be lost.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from app.chart.permits import ANY, restrict
from app.chart.visit_view import full_names, local_time
from app.messages import describe_error, validation_text
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.session.drafts import SAVED_OPEN
from app.widgets import TypedForm, action_buttons, ask_first, dialog_layout, error_label
from app.worker import Job
from core.records.changeset import Changes
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.notes import SOAP_TEMPLATE, Note, Notes, check_signable
from core.records.visits import Visits
from core.records.workstation_names import describe_workstation, workstation_names
from core.store.oplog import identity

AUTOSAVE_MS = 800  # a pause in typing this long saves the note
SIGN_QUESTION = "Sign this note?"
SIGN_DETAIL = "A signed note cannot be changed; later corrections are addenda."
DISCARD_QUESTION = "Discard this draft note?"
DISCARD_DETAIL = (
    "It will leave the chart and the visit: for a note started on the wrong patient or "
    "visit. Its text is kept in the record's history (as every edit is), not erased."
)

CLOSE_QUESTION = "Close and lose your text?"
CLOSE_DETAIL = (
    "This draft was discarded, so the text in the editor is stored nowhere: closing loses "
    "it. Keep as a new draft stores it in the visit as a new note."
)
WITHDRAWN = "The discard was withdrawn: this draft is on the chart again."


def ask_to_discard(parent: QWidget, then: Callable[[bool], None]) -> QMessageBox:
    """Ask before discarding a draft; Cancel is the default, so a stray Space or Return
    discards nothing (``ask_first``)."""
    return ask_first(
        parent,
        "confirmDiscardNote",
        "Discard draft",
        DISCARD_QUESTION,
        DISCARD_DETAIL,
        "Discard draft",
        then,
    )


class DiscardedElsewhere(ValidationError):
    """A save refused because the note was discarded meanwhile (elsewhere), worded as core
    refuses it (for a save at closing, said with no editor left); ``said`` is the banner's
    sentence."""

    def __init__(self, said: str, refusal: ValidationError) -> None:
        super().__init__(refusal.field, refusal.reason)
        self.said = said


def sign_detail(records: ClinicRecords, note_id: str | None) -> str:
    """What the question before signing says (on the worker): that a signed note cannot
    be changed, and first, when others wrote some or all of the text, who: the signer
    signs their text too. ``note_id`` None: a note not stored yet, the signer's own."""
    if note_id is None:
        return SIGN_DETAIL
    note = Notes(records).get(note_id)
    others = [a for a in note.authors if a != records.actor]
    if not others:
        return SIGN_DETAIL
    names = full_names(records, set(others))
    who = _and([names[a] for a in others])
    if records.actor in note.authors:
        said = f"{who} also wrote part of this note: signing it, you sign their text too."
    else:
        said = f"{who} wrote this note: signing it, you sign their text."
    return f"{said} {SIGN_DETAIL}"


def _and(names: list[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def discarded_sentence(records: ClinicRecords, note_id: str) -> str | None:
    """ "This draft was discarded by Dr Doug Lee on Exam room 2 (device 8b73ab47) at 2026-12-06
    14:02. Your text is still here." (on the worker); None while the note is on the chart."""
    found = Notes(records).discarding(note_id)
    if found is None:
        return None
    user = records.user(found.by) if found.by else None
    who = f" by {(user.full_name if user else '') or found.by}" if found.by else ""
    here = identity(records.db).replica_id
    where = describe_workstation(found.replica, here, workstation_names(records.db))
    return (
        f"This draft was discarded{who} on {where} at {local_time(found.at)}. "
        "Your text is still here."
    )


class _StoredNote:
    """The id of the note being edited, None until its first save creates it. Written and
    read only by the editor's jobs on the worker, which runs them in order: a save sent at
    closing, right behind the one creating the note, edits that note."""

    def __init__(self, note_id: str | None) -> None:
        self.note_id = note_id


class NoteEditor(QDialog):
    """A note's text, saved as it is typed; Sign freezes it.

    ``note`` None: a new note of visit ``visit_id``, on the SOAP headings, stored only once
    the person types (``note`` is set when it is)."""

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        note: Note | None,
        parent: QWidget | None = None,
        permitted: frozenset[str] = ANY,
        visit_id: str | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations, self._records = operations, records
        self.note = note
        self._visit_id = visit_id if note is None else note.encounter_id
        self._stored_note = _StoredNote(note.id if note is not None else None)
        text = note.body if note is not None else SOAP_TEMPLATE
        self._saved = text  # the text core holds (what the next save starts from)
        self._sent = text  # the text of the save in flight
        self._saving: Job[Note] | None = None
        self.sign_box: QMessageBox | None = None
        self.discard_box: QMessageBox | None = None
        self.discarded = False  # the draft was discarded (the editor then closes)
        # The sentence shown while the note is discarded elsewhere (nothing is saved then).
        self.discarded_elsewhere: str | None = None
        self._keeping = False  # Keep as a new draft's save is in flight
        self._discarding_here = False  # this editor's own Discard draft is in flight
        self.close_box: QMessageBox | None = None
        self._patient_id = note.patient_id if note is not None else None
        self._discarded_note = self._stored_note  # the note discarded, while it is
        self.setObjectName("noteEditor")
        self.setWindowTitle("Note")
        self.resize(640, 560)
        heading = QLabel("Visit note")
        heading.setObjectName("dialogHeading")
        self.body = QPlainTextEdit()
        self.body.setObjectName("noteBody")
        self.body.setPlainText(text)
        self.body.setTabChangesFocus(True)
        self.status = QLabel("Saved" if note is not None else "Nothing is stored until you type.")
        self.status.setObjectName("statusText")
        self.error = error_label()
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(AUTOSAVE_MS)
        self.timer.timeout.connect(self.save)
        self.body.textChanged.connect(self._typed)
        self.sign_button = QPushButton("Sign note")
        self.sign_button.setObjectName("primary")
        self.sign_button.clicked.connect(self.sign)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.buttons.addButton(self.sign_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.discard_button = QPushButton("Discard draft…")
        self.discard_button.setObjectName("discardDraft")
        self.discard_button.setAutoDefault(False)  # Return in the buttons never discards
        self.discard_button.clicked.connect(self.discard)
        self.buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.ActionRole)
        self._permitted = permitted
        self._restrict(enabled=True)
        hint = QLabel("Saved as you type. Once signed, the note can only get addenda.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        self.banner = self._discarded_banner()
        dialog_layout(
            self, heading, hint, self.banner, self.body, self.status, self.error, self.buttons
        )
        self._read_key = f"note editor {id(self)}"  # its own reads supersede each other
        self._sign_key = f"note editor sign {id(self)}"
        operations.changed.connect(self._records_changed)
        self._listening = True
        self.body.setFocus()
        cursor = self.body.textCursor()
        cursor.setPosition(len("Subjective:\n") if text.startswith("Subjective:") else 0)
        self.body.setTextCursor(cursor)

    def _discarded_banner(self) -> QFrame:
        """Shown while the note is discarded elsewhere: what happened, and Keep as a new
        draft (Close, which asks first, is the dialog's own)."""
        banner = QFrame()
        banner.setObjectName("discardedBanner")
        banner.setStyleSheet(
            "#discardedBanner { background: #fdf6e3; border: 1px solid #e8c98a;"
            " border-radius: 6px; } #discardedBanner QLabel { color: #6b4a0f; }"
        )
        self.banner_text = QLabel()
        self.banner_text.setObjectName("discardedText")
        self.banner_text.setWordWrap(True)
        self.keep_button = QPushButton("Keep as a new draft")
        self.keep_button.setObjectName("keepAsNewDraft")
        self.keep_button.setAutoDefault(False)  # Return in the text is a new line
        self.keep_button.clicked.connect(self.keep_as_new_draft)
        row = QHBoxLayout(banner)
        row.setContentsMargins(12, 8, 12, 8)
        row.addWidget(self.banner_text, 1)
        row.addWidget(self.keep_button)
        banner.hide()
        return banner

    def _restrict(self, enabled: bool) -> None:
        """Sign and Discard draft as the person may use them (a nurse writes, a clinician
        signs; who may write a note may discard its draft)."""
        restrict(self.sign_button, self._permitted, "note.sign", enabled=enabled)
        restrict(self.discard_button, self._permitted, "note.discard", enabled=enabled)

    @property
    def unsaved(self) -> bool:
        """True while the text on screen is not what core holds."""
        return self.body.toPlainText() != self._saved

    def _typed(self) -> None:
        if self.discarded_elsewhere is not None:
            return  # stored nowhere until the person chooses Keep as a new draft
        if self.unsaved:
            self.status.setText("Not saved yet…")
        elif self.note is not None:
            self.status.setText("Saved")
        else:
            self.status.setText("Nothing is stored until you type.")
        self.timer.start()

    def _writer(self, text: str, base: str) -> Callable[[], Note]:
        """The job storing ``text``: creating the note in its visit if nothing is stored
        yet, else editing it from ``base``."""
        stored, visit_id, records = self._stored_note, self._visit_id, self._records

        def write() -> Note:
            if stored.note_id is None:
                if visit_id is None:  # an editor opened on a note always has its id
                    raise ValidationError("encounter_id", "the note has no visit")
                note = Visits(records()).add_note(visit_id, text)
                stored.note_id = note.id
                return note
            try:
                return Notes(records()).edit(stored.note_id, text, base)
            except ValidationError as exc:
                said = discarded_sentence(records(), stored.note_id)
                if said is None:
                    raise
                raise DiscardedElsewhere(said, exc) from None

        return write

    def save(self) -> None:
        """Send the text to core (one save in flight at a time; the next pause saves the
        rest)."""
        self.timer.stop()
        if not self.unsaved or self.discarded_elsewhere is not None:
            return
        if self._saving is not None:
            self.timer.start()
            return
        text = self.body.toPlainText()
        self._sent = text
        self.status.setText("Saving…")
        self._saving = self._operations.submit(
            self._writer(text, self._saved), self._stored, self._failed, "save note"
        )

    def flush(self) -> None:
        """Send what is not saved yet, whatever is in flight (signing out, closing); nothing
        while the note is discarded elsewhere (see :meth:`draft`)."""
        self.timer.stop()
        if not self.unsaved or self.discarded_elsewhere is not None:
            return
        text = self.body.toPlainText()
        if not text.strip():
            return  # core refuses an empty note; the last saved text stays
        # Submitted after a sign-out's cancel_all, so it runs before the session ends.
        self._operations.submit(self._writer(text, self._saved), label="save note before closing")
        self._saved = text

    def _stored(self, note: Note) -> None:
        self._saving = None
        self._keeping = False  # a new draft kept exists now: the editor goes on with it
        self._patient_id = note.patient_id  # (a New note's chart, once stored)
        self.note = note
        self._saved = note.body
        if note.body != self._sent:  # another workstation's edits were merged in
            if self.body.toPlainText() == self._sent:
                self._show_merged(note.body)  # show them, cursor kept
            else:
                # Typed on meanwhile, so the screen lacks them: the next save starts from
                # the text sent, and core merges them in again (from the merged text, its
                # diff would take them out).
                self._saved = self._sent
        self.error.hide()
        self.status.setText("Saved" if not self.unsaved else "Not saved yet…")

    def _show_merged(self, text: str) -> None:
        position = self.body.textCursor().position()
        self.body.blockSignals(True)
        self.body.setPlainText(text)
        self.body.blockSignals(False)
        cursor = self.body.textCursor()
        cursor.setPosition(min(position, len(text)))
        self.body.setTextCursor(cursor)

    def _failed(self, exc: Exception) -> None:
        self._saving = None
        if isinstance(exc, DiscardedElsewhere):
            self._gone(exc.said)
            return
        if self._keeping:  # no new draft: the text is still stored nowhere
            self._keeping = False
            self._stored_note = self._discarded_note
            self._gone(self.banner_text.text())
        self.status.setText("Not saved")
        self.error.setText(
            validation_text(exc, "note")
            if isinstance(exc, ValidationError)
            else describe_error(exc)
        )
        self.error.show()

    def sign(self) -> None:
        """Ask first (signing cannot be undone; Cancel is the default), then :meth:`sign_now`.
        The question is asked once it is read who else wrote the note (``sign_detail``)."""
        if self.sign_box is not None:
            self.sign_box.raise_()
            return
        try:  # a note that cannot be signed is said at once, not after the question
            check_signable(self.body.toPlainText())
        except ValidationError as exc:
            self._failed(exc)
            self.body.setFocus()
            return
        # The id read on the worker, after any save in flight (a first one creates the note).
        records, stored = self._records, self._stored_note

        def failed(exc: Exception) -> None:
            self._failed(exc)
            self.body.setFocus()

        # A second click while it is read supersedes the first read (one question).
        self._operations.read(
            self._sign_key,
            lambda: sign_detail(records(), stored.note_id),
            self._ask_to_sign,
            failed,
        )

    def _ask_to_sign(self, detail: str) -> None:
        if self.sign_box is not None or not self.isVisible():
            return
        self._ask(
            "sign_box",
            self.sign_button,
            lambda answered: ask_first(
                self,
                "confirmSignNote",
                "Sign note",
                SIGN_QUESTION,
                detail,
                "Sign note",
                answered,
                icon=QMessageBox.Icon.Question,
            ),
            self.sign_now,
        )

    def _ask(
        self,
        name: str,
        button: QPushButton,
        question: Callable[[Callable[[bool], None]], QMessageBox],
        go: Callable[[], None],
    ) -> None:
        """Ask ``question`` (kept in the attribute ``name``; asked again, the open one is
        raised); ``go`` runs if the person goes ahead while ``button`` and the text still
        allow it, else writing goes on where it was."""
        box: QMessageBox | None = getattr(self, name)
        if box is not None:
            box.raise_()
            return

        def answered(chosen: bool) -> None:
            setattr(self, name, None)
            if chosen and button.isEnabled() and not self.body.isReadOnly():
                go()
            else:
                self.body.setFocus()  # writing goes on where it was

        setattr(self, name, question(answered))

    def sign_now(self) -> None:
        """Save the text as it stands and sign it; the editor closes when signed."""
        self.timer.stop()
        text, records = self.body.toPlainText(), self._records
        stored, write = self._stored_note, self._writer(text, self._saved)

        def save_and_sign() -> Note:
            if stored.note_id is None:
                check_signable(text)  # a note that cannot be signed is not stored either
            try:
                return Notes(records()).sign(write().id)
            except DiscardedElsewhere:
                raise
            except ValidationError as exc:
                said = discarded_sentence(records(), stored.note_id) if stored.note_id else None
                if said is None:
                    raise
                raise DiscardedElsewhere(said, exc) from None

        self.sign_button.setEnabled(False)
        self.body.setReadOnly(True)
        self._operations.submit(save_and_sign, self._signed, self._sign_failed, "sign note")

    def _signed(self, note: Note) -> None:
        self.note = note
        self._saved = note.body
        self.accept()

    def _sign_failed(self, exc: Exception) -> None:
        self.sign_button.setEnabled(True)
        self.body.setReadOnly(False)
        self._failed(exc)

    # ----- discarded elsewhere ---------------------------------------------------------

    def _records_changed(self, changes: Changes) -> None:
        """A change of this note (a sync, another window): read whether it was discarded,
        or, while the banner shows, whether the discard was withdrawn (a discard-or-keep
        conflict settled as keep)."""
        note_id = self._stored_note.note_id
        if note_id is None or self._discarding_here or self._keeping:
            return
        if not self.isVisible() or not changes.touches(note_id):
            return
        records = self._records

        def found(said: str | None) -> None:
            if note_id != self._stored_note.note_id:
                return
            if said is not None and self.discarded_elsewhere is None:
                self._gone(said)
            elif said is None and self.discarded_elsewhere is not None:
                self._back()

        self._operations.read(
            self._read_key, lambda: discarded_sentence(records(), note_id), found, lambda _e: None
        )

    def _gone(self, said: str) -> None:
        """The note was discarded elsewhere: save nothing more, say so, keep the text (the
        person goes on typing; nothing is stored until they choose Keep as a new draft)."""
        if self._discarding_here or self.discarded or not self.isVisible():
            return
        self.timer.stop()
        self.discarded_elsewhere = said
        self._discarded_note = self._stored_note
        self.banner_text.setText(said)
        self.banner.show()
        self.error.hide()
        self.status.setText("Stored nowhere: Keep as a new draft, or Close to drop it.")
        self._restrict(enabled=False)
        self.body.setReadOnly(False)  # a refused signing had frozen it
        restrict(self.keep_button, self._permitted, "note.create", enabled=True)

    def _back(self) -> None:
        """The discard was withdrawn: the draft is on the chart again, and what was typed
        meanwhile is saved into it (keeping it as a new draft would have made two)."""
        self.discarded_elsewhere = None
        self.banner.hide()
        self._restrict(enabled=True)
        self.status.setText(WITHDRAWN)
        self.save()

    def keep_as_new_draft(self) -> None:
        """Store the text as it is now as a new draft note in the same visit (an ordinary
        new note, audited as one) and go on editing that."""
        if self.discarded_elsewhere is None or self._keeping:
            return
        self._keeping = True
        self.discarded_elsewhere = None
        self.banner.hide()
        self._stored_note = _StoredNote(None)  # the next save creates the new note
        self._saved = ""  # what core holds of it: nothing yet
        self._restrict(enabled=True)
        self.body.setFocus()
        self.save()

    def draft(self) -> dict[str, str] | None:
        """While the note is discarded elsewhere, the text typed (a sign-out keeps it for
        its author, as a form's draft: it is stored nowhere). Otherwise a sign-out saves
        the text into the note, and the draft only names the note and where the cursor
        was, so the editor opens again there for its author (``SAVED_OPEN``); None for a
        note not stored yet (its first save runs at the sign-out, its id unknown here)."""
        if self._visit_id is None:
            return None
        if self.discarded_elsewhere is None:
            if self.note is None or self.note.signed_at is not None:
                return None
            return {
                SAVED_OPEN: "1",
                "note_id": self.note.id,
                "visit_id": self._visit_id,
                "patient_id": self._patient_id or self.note.patient_id,
                "cursor": str(self.body.textCursor().position()),
            }
        return {
            "body": self.body.toPlainText(),
            "visit_id": self._visit_id,
            "patient_id": self._patient_id or "",
            "said": self.discarded_elsewhere,
        }

    def put_cursor(self, position: int) -> None:
        """The cursor at ``position`` (within the text), the keyboard in the text."""
        cursor = self.body.textCursor()
        cursor.setPosition(max(0, min(position, len(self.body.toPlainText()))))
        self.body.setTextCursor(cursor)
        self.body.setFocus()

    def restore(self, draft: dict[str, str]) -> None:
        """Show a kept draft of a discarded note again: its text, and the banner."""
        self._patient_id = draft.get("patient_id") or None
        self.body.blockSignals(True)
        self.body.setPlainText(draft.get("body", ""))
        self.body.blockSignals(False)
        self.body.moveCursor(QTextCursor.MoveOperation.End)  # typing goes on where it stopped
        self._gone(draft.get("said", "This draft was discarded. Your text is still here."))

    def discard(self) -> None:
        """Ask first (Cancel is the default), then :meth:`discard_now`."""
        self._ask("discard_box", self.discard_button, lambda then: ask_to_discard(self, then),
                  self.discard_now)  # fmt: skip

    def discard_now(self) -> None:
        """Take the draft off the chart; what is typed and not saved is dropped with it.
        A save in flight runs first (the worker keeps their order), so a note it is
        creating is the one discarded; a note never stored is simply not stored."""
        self.timer.stop()
        stored, records = self._stored_note, self._records

        def discard() -> Note | None:
            if stored.note_id is None:
                return None  # nothing was ever stored: nothing to take off the chart
            return Notes(records()).discard(stored.note_id)

        def failed(exc: Exception) -> None:
            self._discarding_here = False
            self._restrict(enabled=True)
            self.body.setReadOnly(False)
            self._saved = saved  # what core holds, as before
            self._failed(exc)

        self._discarding_here = True  # its broadcast is not a discard made elsewhere
        self._restrict(enabled=False)
        self.body.setReadOnly(True)
        saved, self._saved = self._saved, self.body.toPlainText()  # closing saves no more
        self._operations.submit(discard, self._discarded, failed, "discard note")

    def _discarded(self, note: Note | None) -> None:
        self.discarded = True
        self.note = note
        self.accept()

    def done(self, result: int) -> None:
        """Close: what is typed and not saved yet is saved first. While the note is
        discarded elsewhere, nothing is saved, so Close (Escape, the window's button) asks
        first, Cancel the default; :meth:`leave` closes without asking."""
        if self.discarded_elsewhere is not None and self.body.toPlainText().strip():
            self._ask(
                "close_box",
                self.buttons.button(QDialogButtonBox.StandardButton.Close),
                lambda answered: ask_first(
                    self,
                    "confirmCloseDiscarded",
                    "Close",
                    CLOSE_QUESTION,
                    CLOSE_DETAIL,
                    "Close and lose the text",
                    answered,
                ),
                lambda: self._close(result),
            )
            return
        self._close(result)

    def leave(self) -> None:
        """Close without asking (a sign-out: a discarded note's text is kept as a draft
        first, :meth:`draft`)."""
        self._close(QDialog.DialogCode.Rejected)

    def _close(self, result: int) -> None:
        if self._listening:  # the editor is not opened again: it hears no more changes
            self._listening = False
            self._operations.changed.disconnect(self._records_changed)
        self._operations.cancel(self._read_key)
        self._operations.cancel(self._sign_key)
        for name in ("sign_box", "discard_box", "close_box"):
            box = getattr(self, name)
            if box is not None:
                setattr(self, name, None)
                box.done(QMessageBox.StandardButton.Cancel)  # the question goes with it
        self.flush()
        super().done(result)


class AddendumDialog(TypedForm):
    """Text added to a signed note."""

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        note: Note,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations, self._records = operations, records
        self._note_id, self._patient_id = note.id, note.patient_id
        self._job: Job[Note] | None = None
        self.setObjectName("addendumDialog")
        self.setWindowTitle("Add addendum")
        self.setMinimumWidth(480)
        heading = QLabel("Add to the signed note")
        heading.setObjectName("dialogHeading")
        self.body = QPlainTextEdit()
        self.body.setTabChangesFocus(True)
        self.body.setPlaceholderText("What to add (the signed text stays as it is)")
        self.error = self.general_error  # the one message, about the text
        self.clears_on_edit([(self.body, self.error)])  # (and says which field it is about)
        self.buttons, self.save_button = action_buttons(self, self.save, "Add addendum")
        dialog_layout(self, heading, self.body, self.error, self.buttons)

    def draft(self) -> dict[str, str] | None:
        """Unsaved input (DraftForm), or None."""
        text = self.body.toPlainText()
        return (
            {"body": text, "note_id": self._note_id, "patient_id": self._patient_id}
            if text
            else None
        )

    def restore(self, draft: dict[str, str]) -> None:
        """Fill the form with a kept draft."""
        self.body.setPlainText(draft.get("body", ""))
        self.body.moveCursor(QTextCursor.MoveOperation.End)  # typing goes on where it stopped

    def save(self) -> None:
        """Record the addendum; close when stored."""
        if self._job is not None:
            return
        self.error.hide()
        text, note_id, records = self.body.toPlainText(), self._note_id, self._records
        self.save_button.setEnabled(False)
        self._job = self._operations.submit(
            lambda: Notes(records()).add_addendum(note_id, text),
            self._stored,
            self._failed,
            label="add addendum",
        )

    def done(self, result: int) -> None:
        """Close; a save in flight is not reported back to a closed dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        super().done(result)

    def _stored(self, _note: Note) -> None:
        self._job = None
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self.save_button.setEnabled(True)
        if isinstance(exc, ValidationError) and exc.field == "body":
            # The addendum's own text (the note's "body" is labelled as the note text).
            self.error.setText(
                validation_text(ValidationError("addendum", str(exc).removeprefix("body: ")))
            )
        else:
            self.error.setText(
                validation_text(exc) if isinstance(exc, ValidationError) else describe_error(exc)
            )
        self.error.show()
        # Typing on answers the refusal: the words go into the text, never to Cancel.
        self.focus_field_of(self.error)
