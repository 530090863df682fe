"""Clinical notes: a collaborative text body until signed; immutable after, addenda only.
A draft (an unsigned note) started on the wrong chart or visit can be discarded: it leaves
every listing, and stays in the record's history (``Notes.get`` still reads it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from core.records import crdt, merged, signed_notes
from core.records.changes import change
from core.records.chart_lists import check_visit
from core.records.clinic import ClinicRecords, new_id
from core.records.crdt import RecordDoc
from core.records.errors import NotFoundError, ValidationError
from core.records.types import NOTE, NOTE_EDITED
from core.store.database import Database, utc_now
from core.store.state_codec import unpack_state

MAX_NOTE = 100_000

# A new note's body: the headings of a SOAP note, for the clinician to fill in.
SOAP_TEMPLATE = "Subjective:\n\n\nObjective:\n\n\nAssessment:\n\n\nPlan:\n"
# A body that is, whitespace aside, nothing but SOAP headings (any of them, any order): an
# untouched template. Signing it would freeze an empty note as a finished one.
_ONLY_HEADINGS = re.compile(r"(?:subjective:|objective:|assessment:|plan:)*", re.IGNORECASE)
# A note still holding both people's text for one place (``crdt.merge_edits``).
_CONFLICT_MARK = re.compile(r"\[also from [^\]\n]*?: |\[[^\]\n]*? removed: ")


@dataclass(frozen=True)
class Addendum:
    """Text added to a signed note."""

    id: str
    body: str
    recorded_at: str
    recorded_by: str


@dataclass(frozen=True)
class Note:
    """A note as shown on the chart."""

    id: str
    patient_id: str
    encounter_id: str | None
    author: str
    body: str
    signed_at: str | None
    addenda: tuple[Addendum, ...]
    # Who signed it (None while a draft): a nurse may write a note a clinician signs.
    signed_by: str | None = None
    # When the draft was discarded (``Notes.discard``; UTC), None while on the chart.
    discarded_at: str | None = None
    # When it was started (its ``created_at``, UTC; None if the document lacks it).
    started_at: str | None = None
    # Who else changed its text, by user name, in the order of their latest edits
    # (``editors``).
    editors: tuple[str, ...] = ()

    @property
    def authors(self) -> tuple[str, ...]:
        """Everyone who wrote its text: who started it, then who edited it."""
        return (self.author, *self.editors)


@dataclass(frozen=True)
class Discarding:
    """Who discarded a draft, on which workstation (its replica id), and when (UTC)."""

    by: str
    replica: str
    at: str


def checked_body(text: str) -> str:
    """A note's or an addendum's text as the write path takes it (ValidationError: blank,
    or longer than ``MAX_NOTE``); the FHIR import checks each with it too."""
    if not text.strip():
        raise ValidationError("body", "is required")
    if len(text) > MAX_NOTE:
        raise ValidationError("body", f"is longer than {MAX_NOTE} characters")
    return text


def check_signable(text: str) -> None:
    """Refuse to sign a note that says nothing yet, or still holds two people's text for
    one place."""
    if not text.strip():
        raise ValidationError("body", "the note is empty; write the note before signing it")
    if _ONLY_HEADINGS.fullmatch(re.sub(r"\s+", "", text)):
        raise ValidationError(
            "body", "the note holds only its headings; write the note before signing it"
        )
    if _CONFLICT_MARK.search(text):
        raise ValidationError(
            "body",
            "the note still holds text another workstation wrote at the same place, in "
            "brackets ([also from ...]); choose what stays before signing it",
        )


class Notes:
    """Note operations on behalf of the signed-in person."""

    def __init__(self, records: ClinicRecords, clock: Callable[[], str] = utc_now) -> None:
        self.records = records
        # When a note is started, signed or discarded (UTC, as ``utc_now``): the demo
        # clinic's generator gives its past visits' notes their visit's day.
        self.clock = clock

    def create(self, patient_id: str, body: str, encounter_id: str | None = None) -> Note:
        """Start a note on a patient's chart."""
        self.records.get_patient(patient_id)
        text = checked_body(body)
        note_id, actor = new_id(), self.records.actor

        def create(doc: RecordDoc, hlc: str) -> None:
            for field, value in (
                ("patient_id", patient_id),
                ("encounter_id", encounter_id),
                ("author", actor),
                ("created_at", self.clock()),
            ):
                crdt.write(doc, field, value, hlc, actor)
            crdt.text(doc, "body").insert(0, text)

        with self.records.db.write(actor, "note.create", "note", note_id) as tx:
            # Under a visit of this patient only (remote apply refuses any other: visit_chart).
            check_visit(tx, patient_id, encounter_id)
            change(tx, actor, note_id, "note", create)
        return load_note(self.records.db, note_id)  # written: the gate checked write_note

    def edit(self, note_id: str, body: str, base: str | None = None) -> Note:
        """Change an unsigned note's text.

        ``base``: the text the editor started from. If the note changed since (another
        workstation's edit arrived by sync), only the edits from ``base`` to ``body`` are
        made, so the other person's edits stay (``crdt.merge_edits``).
        """
        note = load_note(self.records.db, note_id)  # the change is checked by its write
        if note.signed_at is not None:
            raise ValidationError("body", "the note is signed; add an addendum instead")
        _not_discarded(note, "edited")
        text = checked_body(body)
        if base is not None and base != note.body:
            text = checked_body(crdt.merge_edits(base, text, note.body))
        if text == note.body:
            # Nothing changed: no op (an autosave repeated after a sign-out). No write
            # checks it, and the note is returned: checked as the edit would be.
            self.records.require("note.edit", note.patient_id)
            return note
        actor = self.records.actor

        def edit(doc: RecordDoc, hlc: str) -> None:
            crdt.replace_text(doc, "body", text)
            # Supersedes only this person's own earlier entry: one live entry stays per
            # person who edited the text, which is how a note names its editors.
            own = [e.write_id for e in crdt.live(doc, NOTE_EDITED) if e.author == actor]
            crdt.write(doc, NOTE_EDITED, actor, hlc, actor, supersede=own)

        with self.records.db.write(actor, "note.edit", "note", note_id) as tx:
            change(tx, actor, note_id, "note", edit)
        return load_note(self.records.db, note_id)

    def sign(self, note_id: str) -> Note:
        """Sign the note: its text is frozen as it stands now."""
        note = load_note(self.records.db, note_id)  # the change is checked by its write
        if note.signed_at is not None:
            raise ValidationError("signed_at", "the note is already signed")
        _not_discarded(note, "signed")
        check_signable(note.body)
        actor = self.records.actor

        def sign(doc: RecordDoc, hlc: str) -> None:
            body = str(crdt.text(doc, "body"))
            check_signable(body)  # the text frozen is the document's, checked again
            crdt.write(doc, "signed_body", body, hlc, actor)
            crdt.write(doc, "signed_at", self.clock(), hlc, actor)

        with self.records.db.write(actor, "note.sign", "note", note_id) as tx:
            change(tx, actor, note_id, "note", sign)
        return load_note(self.records.db, note_id)

    def discard(self, note_id: str) -> Note:
        """Take a draft off the chart (started on the wrong patient or visit, or never
        written): one audited write (``note.discard``) of when, by whom. A signed note is
        the legal record and is refused, as is a note already discarded. Its text stays in
        the record's history, as every edit's does: discarding hides, it does not erase."""
        note = load_note(self.records.db, note_id)  # the change is checked by its write
        if note.signed_at is not None:
            raise ValidationError(signed_notes.DISCARDED, signed_notes.SIGNED_REFUSAL)
        if note.discarded_at is not None:
            raise ValidationError(signed_notes.DISCARDED, "the note is already discarded")
        actor = self.records.actor
        with self.records.db.write(actor, "note.discard", "note", note_id) as tx:
            change(tx, actor, note_id, "note", signed_notes.discard(actor, self.clock()))
        return load_note(self.records.db, note_id)

    def add_addendum(self, note_id: str, body: str) -> Note:
        """Append an addendum to a signed note."""
        note = load_note(self.records.db, note_id)  # the change is checked by its write
        if note.signed_at is None:
            raise ValidationError("addendum", "the note is not signed yet; edit it instead")
        text = checked_body(body)
        actor = self.records.actor
        with self.records.db.write(actor, "note.addendum", "note", note_id) as tx:
            change(
                tx,
                actor,
                note_id,
                "note",
                lambda doc, hlc: _add(doc, "addenda", {"body": text}, hlc, actor),
            )
        return load_note(self.records.db, note_id)

    def get(self, note_id: str) -> Note:
        """One note with its addenda; refused (audited) unless the signed-in person may
        read notes on its patient's chart (``notes.list``: on a restricted chart, its care
        team or a break-glass grant)."""
        note = load_note(self.records.db, note_id)
        self.records.require("notes.list", note.patient_id)
        return note

    def discarding(self, note_id: str) -> Discarding | None:
        """Who discarded the note, where and when (the discard entry shown: read from the
        note's document, which every replica holds); None while it is on the chart. Read
        as :meth:`get` reads (the same check)."""
        note = self.get(note_id)
        if note.discarded_at is None:
            return None
        rows = self.records.db.query("SELECT state FROM record_states WHERE id = ?", (note_id,))
        doc = crdt.load(unpack_state(rows[0][0]), 1) if rows else None
        entries = [e for e in crdt.live(doc, signed_notes.DISCARDED) if e.value] if doc else []
        if not entries:  # derived from the document, so this does not happen
            return Discarding("", "", note.discarded_at)
        return Discarding(entries[0].author, entries[0].replica, str(entries[0].value))

    def for_patient(self, patient_id: str) -> list[Note]:
        """A patient's notes on the chart (discarded drafts left out), oldest first: in the
        order they were started, as a visit lists its notes (``started_order``)."""
        self.records.require("notes.list", patient_id)
        rows = self.records.db.query(
            "SELECT n.id FROM notes n JOIN record_states s ON s.id = n.id "
            f"WHERE n.{merged.IN_CHART} AND n.{ON_CHART}",
            (merged.chart_ids_json(self.records.db, patient_id),),
        )
        ids = started_order(self.records.db, [str(r[0]) for r in rows])
        return [load_note(self.records.db, i) for i in ids]  # checked above


def load_note(db: Database, note_id: str) -> Note:
    """One note with its addenda, with NO permission check: for core's own flows that have
    already checked the read they make (``Notes`` after its own check or write, the visit
    view after ``Visits.contents`` checked the visit's chart, printing after
    ``print.visit``, the FHIR export after ``fhir.export``). Anyone else: ``Notes.get``."""
    rows = db.query(f"SELECT {', '.join(NOTE.column_names)} FROM notes WHERE id = ?", (note_id,))
    if not rows:
        raise NotFoundError(f"no note with id {note_id!r}")
    addenda = db.query(
        "SELECT id, body, recorded_at, recorded_by FROM note_addenda WHERE note_id = ? "
        "ORDER BY recorded_at, id",
        (note_id,),
    )
    r = rows[0]
    found = tuple(Addendum(*a) for a in addenda)
    doc = _document(db, note_id)
    started = crdt.winner(doc, "created_at") if doc is not None else None
    return Note(
        r[0], r[1], r[2], r[3], r[4], r[5], found, r[6], r[7],
        str(started.value) if started is not None and started.value else None,
        editors(doc, str(r[3])) if doc is not None else (),
    )  # fmt: skip


def _document(db: Database, record_id: str) -> RecordDoc | None:
    """The record's document as this replica holds it, None if it holds none."""
    rows = db.query("SELECT state FROM record_states WHERE id = ?", (record_id,))
    return crdt.load(unpack_state(rows[0][0]), 1) if rows else None


def editors(doc: RecordDoc, author: str) -> tuple[str, ...]:
    """Who changed the note's text besides ``author`` (who started it), by user name, in
    the order of their latest edits. Each edit writes an entry naming its author
    (``NOTE_EDITED``) that supersedes only that person's own earlier one, so every editor
    keeps one; an edit made by an older release superseded everyone's, so a note edited
    there names only the person who edited it last there (and whoever edited since)."""
    seen: list[str] = []
    for entry in reversed(crdt.live(doc, NOTE_EDITED)):  # oldest first
        if entry.author and entry.author != author and entry.author not in seen:
            seen.append(entry.author)
    return tuple(seen)


def started_order(db: Database, note_ids: list[str]) -> list[str]:
    """``note_ids`` in the order the notes were started (their ``created_at`` register,
    then that write's hybrid logical clock: two notes started in the same millisecond keep
    their order; then the id)."""
    found: dict[str, tuple[str, str]] = {}
    for note_id in note_ids:
        doc = _document(db, note_id)
        entry = crdt.winner(doc, "created_at") if doc is not None else None
        found[note_id] = (str(entry.value), entry.hlc) if entry is not None else ("", "")
    return sorted(note_ids, key=lambda i: (found[i], i))


# Every listing of notes adds this condition (a discarded draft has left the chart).
ON_CHART = "discarded_at IS NULL"


def _not_discarded(note: Note, done: str) -> None:
    """Refuse to change a discarded draft (it is no longer on the chart)."""
    if note.discarded_at is not None:
        raise ValidationError(
            "body", f"the note was discarded and is no longer on the chart; it cannot be {done}"
        )


def _add(doc: RecordDoc, field: str, value: dict[str, crdt.Value], hlc: str, author: str) -> None:
    crdt.add(doc, field, value, hlc, author)
