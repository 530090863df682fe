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

An op that breaks one of these is refused with a message naming the op and the note, and
the whole batch with it (the caller rolls back), as for any other forged op.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.records import crdt
from core.records.crdt import RecordDoc, RegisterEntry

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
