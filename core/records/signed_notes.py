"""A signed note stays signed: the check every replica runs on a remote change to a note.

The local API refuses to edit a signed note (``Notes.edit``), but a remote replica's op is
just a Yjs update, which could delete or overwrite anything in the document. So the
receiving side checks each op against the note as it stood before the op:

* the signature (``signed_at``, ``signed_body``) and the fields that place the note
  (``patient_id``, ``encounter_id``, ``author``) may only be superseded by an entry that
  keeps one of the values it supersedes: that is how a conflict between two concurrent
  signings is resolved, and nothing else is legitimate. A new entry that did not see the
  signing (a concurrent one) is allowed: it shows up as a conflict, never silently;
* nobody ever writes an empty signature, so ``None`` in ``signed_at``/``signed_body`` is
  refused;
* addenda are never removed or rewritten;
* an op that saw the signing (its dependencies cover everything this replica holds of the
  note) may change the body text only back to the signed text (how a person resolves a
  concurrent edit). A body edit that did not see the signing is kept and shown as a
  conflict next to the signed text (``materialize._note_body``).

A discard (``discarded_at``, written by ``Notes.discard`` on a draft) is no threat to a
signed note: the derive hook never shows a signed note as discarded, whoever wrote the
discard and whenever it arrived, so a discard concurrent with the signing loses to it (a
signed note is the legal record).

An op that breaks one of these is refused with a message naming the op and the note, and
the whole batch with it (the caller rolls back), as for any other forged op.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.records import crdt
from core.records.crdt import RecordDoc, RegisterEntry
from core.records.errors import ValidationError
from core.records.rows import Rows, conflict_id, hlc_time
from core.records.spec import Mutation
from core.store.database import utc_now

# Written with every edit of a note's text (value: who edited), so a note-body conflict can
# say who made the edit and when. Not one of the note's registers: concurrent text edits
# merge, so several live values of it are no conflict.
NOTE_EDITED = "edited"
# Written by ``Notes.discard`` (value: when, UTC), observing the live NOTE_EDITED entries it
# saw. Bookkeeping too: the derive hook decides what it means (``discard_rows``), so two
# people discarding the same draft at once are no conflict.
DISCARDED = "discarded_at"
# The choices of a discard-versus-edit conflict (candidate ids), as people read them.
DISCARD_CHOICES = {
    "discard": "Discard the draft: it leaves the chart",
    "keep": "Keep the draft on the chart, with the edit made meanwhile",
}
FROZEN = ("patient_id", "encounter_id", "author", "signed_at", "signed_body")
SIGNATURE = ("signed_at", "signed_body")


@dataclass(frozen=True)
class SignedNote:
    """What of a signed note must survive a remote op."""

    entries: dict[str, dict[str, RegisterEntry]]  # field -> write id -> live entry
    addenda: dict[str, str]  # element id -> its raw entry
    signed_bodies: frozenset[str]
    body: str


def signed_note(doc: RecordDoc) -> SignedNote | None:
    """The protected parts of a note document, or None while the note is unsigned."""
    live = crdt.all_live(doc)
    if not any(e.value is not None for e in live.get("signed_at", [])):
        return None
    entries = {f: {e.write_id: e for e in live.get(f, [])} for f in FROZEN}
    bodies = frozenset(str(e.value) for e in live.get("signed_body", []) if e.value is not None)
    return SignedNote(entries, _addenda(doc), bodies, str(crdt.text(doc, "body")))


def _addenda(doc: RecordDoc) -> dict[str, str]:
    raw = crdt.raw_set_entries(doc)
    prefix = "addenda/"
    return {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}


def violation(before: SignedNote, doc: RecordDoc, saw_everything: bool) -> str | None:
    """How the op just applied to ``doc`` breaks the signed note, or None if it does not.

    ``saw_everything``: the op's dependencies cover the whole document as it stood before
    the op, so it certainly saw the signature.
    """
    live = crdt.all_live(doc)
    for field in FROZEN:
        was = before.entries[field]
        now = {e.write_id: e for e in live.get(field, [])}
        for entry in now.values():
            if entry.write_id in was:
                continue
            if field in SIGNATURE and entry.value is None:
                return f"clears the {field} of a signed note"
            replaced = [was[w] for w in (*entry.supersedes, *entry.observes) if w in was]
            if replaced and entry.value not in {e.value for e in replaced}:
                return f"changes the {field} of a signed note"
        gone = [w for w in was if w not in now]
        kept_by = {w for e in now.values() if e.write_id not in was for w in e.supersedes}
        if any(w not in kept_by for w in gone):
            return f"removes the {field} of a signed note"
    addenda = _addenda(doc)
    for element_id, raw in before.addenda.items():
        if element_id not in addenda:
            return "removes an addendum of a signed note"
        if addenda[element_id] != raw:
            return "rewrites an addendum of a signed note"
    if saw_everything:
        text = str(crdt.text(doc, "body"))
        if text != before.body and text not in before.signed_bodies:
            return "edits the text of a signed note"
    return None


class SignedNoteRules:
    """The note type's hooks: the signed body shown, and remote ops checked (see above)."""

    @staticmethod
    def derive(record_id: str, doc: RecordDoc, values: dict[str, Any]) -> Rows:
        """Show the signed body of a signed note (``values["body"]``, read as the current
        text, becomes it); a text edited concurrently with the signing is a conflict a
        person settles (it can become an addendum)."""
        text = values["body"]
        values["signed_by"] = None
        values[DISCARDED] = None
        live = crdt.all_live(doc, in_transaction=True)
        if values["signed_at"] is None:
            return discard_rows(record_id, live, values)
        # Signed: a discard is ignored, even one that did not see the signing.
        signed = values["signed_body"] if isinstance(values["signed_body"], str) else ""
        values["body"] = signed
        # Whoever wrote the signature shown (the entry signed_at's value came from): the
        # register's entries carry their author, checked at remote apply like every write.
        values["signed_by"] = live["signed_at"][0].author
        if text == signed:
            return []
        candidates = [
            _body_candidate("signed", signed, _newest(live.get("signed_at", []))),
            _body_candidate("unsigned-edit", text, _newest(live.get(NOTE_EDITED, []))),
        ]
        return [(conflict_id(record_id, "body"), record_id, "note", "body",
                 json.dumps(candidates, sort_keys=True))]  # fmt: skip

    @staticmethod
    def settle(
        field: str,
        candidates: dict[str, Any],
        chosen: str | None,
        typed: str | None,
        author: str,
    ) -> Mutation | None:
        """Settle a body conflict: the note stays as signed; the text edited concurrently
        with the signing is kept, if the person wants it, as an addendum. A discard
        conflict: see ``settle_discard``."""
        if field == DISCARDED:
            return settle_discard(chosen, typed, author)
        if field != "body":
            return None
        signed = str(candidates["signed"])
        keep = typed
        if chosen is not None and chosen != "signed":
            keep = str(candidates[chosen])

        def settle(doc: RecordDoc, hlc: str) -> None:
            crdt.replace_text(doc, "body", signed)
            if keep:
                crdt.add(doc, "addenda", {"body": keep}, hlc, author)

        return settle

    @staticmethod
    def protect(doc: RecordDoc) -> SignedNote | None:
        """What of a signed note must survive a remote op (None while unsigned)."""
        return signed_note(doc)

    @staticmethod
    def violation(protected: SignedNote, doc: RecordDoc, saw_everything: bool) -> str | None:
        """How the op just applied breaks the signed note, or None."""
        return violation(protected, doc, saw_everything)


def discard_rows(
    record_id: str, live: dict[str, list[RegisterEntry]], values: dict[str, Any]
) -> Rows:
    """Whether an unsigned note is discarded (``values["discarded_at"]``), and the conflict
    when it is in doubt.

    Discarded: a live discard entry exists and it observed every live edit entry. An edit
    it did not observe was made elsewhere while it was discarded here (a local edit of a
    discarded note is refused): the note stays on the chart, and the person settles it.
    """
    discards = [e for e in live.get(DISCARDED, []) if e.value is not None]
    if not discards:
        return []
    observed = {w for e in discards for w in e.observes}
    unseen = [e for e in live.get(NOTE_EDITED, []) if e.write_id not in observed]
    if not unseen:
        values[DISCARDED] = discards[0].value
        return []
    candidates = [
        _candidate("discard", DISCARDED, discards[0].value, discards[0]),
        _candidate("keep", DISCARDED, None, unseen[0]),
    ]
    return [(conflict_id(record_id, DISCARDED), record_id, "note", DISCARDED,
             json.dumps(candidates, sort_keys=True))]  # fmt: skip


def discard(author: str, when: str) -> Mutation:
    """The write discarding a draft: ``when`` by ``author``, observing every edit it sees
    (so only an edit made elsewhere meanwhile keeps the note, as a conflict)."""

    def write(doc: RecordDoc, hlc: str) -> None:
        if any(e.value is not None for e in crdt.live(doc, "signed_at")):
            raise ValidationError(DISCARDED, SIGNED_REFUSAL)
        seen = [e.write_id for e in crdt.live(doc, NOTE_EDITED)]
        crdt.write(doc, DISCARDED, when, hlc, author, observe=seen)

    return write


SIGNED_REFUSAL = (
    "the note is signed: a signed note is the legal record and cannot be discarded "
    "(correct it with an addendum)"
)


def settle_discard(chosen: str | None, typed: str | None, author: str) -> Mutation:
    """Settle a discard made while the note was edited elsewhere: ``discard`` discards it
    again, observing every edit; ``keep`` withdraws the discard (None supersedes it)."""
    if typed is not None or chosen not in DISCARD_CHOICES:
        raise ValidationError(
            DISCARDED, "choose whether to discard the draft or keep it; no value can be typed"
        )
    if chosen == "discard":
        return discard(author, utc_now())

    def keep(doc: RecordDoc, hlc: str) -> None:
        crdt.write(doc, DISCARDED, None, hlc, author)

    return keep


def _newest(entries: list[crdt.RegisterEntry]) -> crdt.RegisterEntry | None:
    return entries[0] if entries else None


def _body_candidate(
    candidate_id: str, value: str, entry: crdt.RegisterEntry | None
) -> dict[str, Any]:
    """One side of a note-body conflict: who signed (or last edited the text), where, when."""
    return _candidate(candidate_id, "body", value, entry)


def _candidate(
    candidate_id: str, field: str, value: crdt.Value, entry: crdt.RegisterEntry | None
) -> dict[str, Any]:
    """One side of a conflict this module raises: the value, and who made the write it
    stands for, on which workstation, when."""
    who = {"author": "", "replica": "", "time": "", "hlc": ""}
    if entry is not None:
        who = {"author": entry.author, "replica": entry.replica,
               "time": hlc_time(entry.hlc), "hlc": entry.hlc}  # fmt: skip
    return {"id": candidate_id, "field": field, "value": value, **who}
