"""Likely duplicate patients and merging them (how reads follow a merge: ``merged.py``).

Two workstations registering the same person while offline is normal; after sync the pair
shows up in the review list (the matching rules of registration, ``duplicates.py``). A
merge is one op on the duplicate's record: ``merged_into`` (the survivor) and
``merge_reason`` registers, written together; the op carries who and when, the audit
entry (``patient.merge``) records it too. Nothing else is rewritten, so:

- the same pair merged on two workstations at once converges (equal values agree; a
  duplicate merged into two different survivors is a register conflict in the inbox, the
  newest merge shown meanwhile);
- A into B and B into A at once is a loop, settled by the lowest id surviving;
- an allergy or a note added to the duplicate elsewhere meanwhile lands on the survivor's
  chart (reads gather every merged record), and an edit of its demographics stays visible
  in the survivor's "merged from" list;
- undoing a merge (``patient.unmerge``) clears ``merged_into``: the records go back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.records import crdt, merged
from core.records import validation as v
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.crdt import RecordDoc
from core.records.dismissals import dismissed_pairs, set_dismissed
from core.records.duplicates import describe, matching_pairs
from core.records.errors import ValidationError
from core.records.models import Patient, PatientSummary
from core.records.rows import hlc_time
from core.store.database import Transaction
from core.store.state_codec import unpack_state

_SUMMARY = "id, family, given, birth_date, mrn, sex"


@dataclass(frozen=True)
class Merge:
    """One duplicate merged into a survivor: who did it, when, why."""

    duplicate: str
    survivor: str  # as merged into (chains and loops resolve at read time)
    by: str
    at: str  # ISO-8601 UTC, from the op's clock
    reason: str
    hlc: str = field(default="", compare=False)  # the merge op's clock: orders merges

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        found = asdict(self)
        del found["hlc"]
        return found


@dataclass(frozen=True)
class DuplicatePair:
    """Two charts that may be one person's (the same rules as at registration)."""

    first: PatientSummary
    second: PatientSummary

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"first": self.first.to_dict(), "second": self.second.to_dict()}


def _state(tx: Any, patient_id: str) -> RecordDoc | None:
    rows = tx.query("SELECT state FROM record_states WHERE id = ?", (patient_id,))
    return crdt.load(unpack_state(rows[0][0]), 0) if rows else None


def merge_of(tx: Any, patient_id: str) -> Merge | None:
    """The merge in force on ``patient_id`` (None when it is not merged)."""
    doc = _state(tx, patient_id)
    if doc is None:
        return None
    into = crdt.winner(doc, "merged_into")
    if into is None or not into.value:
        return None
    reason = crdt.winner(doc, "merge_reason")
    return Merge(
        duplicate=patient_id,
        survivor=str(into.value),
        by=into.author,
        at=hlc_time(into.hlc),
        reason=str(reason.value) if reason is not None and reason.value else "",
        hlc=into.hlc,
    )


class Merges:
    """Reviewing and merging duplicates on behalf of the signed-in person."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records

    def candidates(self) -> list[DuplicatePair]:
        """Pairs of charts (neither merged, not dismissed as two people) that may be one
        person's, by birth date then name: born the same day under the same or a similar
        name, or one imported as a likely duplicate of the other (``duplicate_of``)."""
        self.records.require("patients.duplicates")
        db = self.records.db
        hidden = merged.hidden_json(db)
        rows = db.query(
            f"SELECT {_SUMMARY} FROM patients WHERE id NOT IN (SELECT value FROM json_each(?)) "
            "AND birth_date IN (SELECT birth_date FROM patients "
            "WHERE id NOT IN (SELECT value FROM json_each(?)) "
            "GROUP BY birth_date HAVING count(*) > 1) ORDER BY birth_date, sort_key, id",
            (hidden, hidden),
        )
        by_date: dict[str, list[PatientSummary]] = {}
        for r in rows:
            by_date.setdefault(str(r[3]), []).append(PatientSummary(*r))
        # Registration's rules, through the name keys rather than every pair of a day.
        found = [pair for same_day in by_date.values() for pair in matching_pairs(same_day)]
        found += self._flagged(hidden)
        dismissed = dismissed_pairs(db)
        seen: set[tuple[str, str]] = set()
        out = []
        for a, b in found:
            key = (min(a.id, b.id), max(a.id, b.id))
            if key not in dismissed and key not in seen:
                seen.add(key)
                out.append(DuplicatePair(a, b))
        return out

    def _flagged(self, hidden: str) -> list[tuple[PatientSummary, PatientSummary]]:
        """Pairs an import flagged (``duplicate_of``), the existing chart first."""
        cols = ", ".join(f"{side}.{c}" for side in ("o", "d") for c in _SUMMARY.split(", "))
        rows = self.records.db.query(
            f"SELECT {cols} FROM patients d JOIN patients o ON o.id = d.duplicate_of "
            "WHERE d.duplicate_of != '' AND d.id NOT IN (SELECT value FROM json_each(?)) "
            "AND o.id NOT IN (SELECT value FROM json_each(?))",
            (hidden, hidden),
        )
        return [(PatientSummary(*r[:6]), PatientSummary(*r[6:])) for r in rows]

    def dismiss(self, first: str, second: str) -> None:
        """Mark a pair as two people: it leaves the review list on every workstation until
        undone (core/records/dismissals.py)."""
        set_dismissed(self.records, first, second, True)

    def undismiss(self, first: str, second: str) -> None:
        """Undo ``dismiss``: the pair is listed again (if it still matches)."""
        set_dismissed(self.records, first, second, False)

    def merge(self, duplicate: str, survivor: str, reason: str) -> Merge:
        """Merge ``duplicate`` into ``survivor`` (one replicated, audited op on the
        duplicate). Needs ``merge_patients`` on both patients."""
        cleaned = v.text("merge_reason", reason) or ""
        if duplicate == survivor:
            raise ValidationError("survivor", "a patient cannot be merged into itself")
        for pid in (duplicate, survivor):
            self.records.get_patient(pid)  # NotFoundError names a missing one
        # The gate of the write checks the duplicate; the survivor's chart changes too.
        self.records.require("patient.merge", survivor)
        details = {"into": survivor}
        with self.records.db.write(
            self.records.actor, "patient.merge", "patient", duplicate, details
        ) as tx:
            links = merged.pointers(tx)
            if merged.resolve(links, duplicate) != duplicate:
                found = merge_of(tx, duplicate)
                into = found.survivor if found else merged.resolve(links, duplicate)
                raise ValidationError(
                    "duplicate", f"{duplicate!r} is already merged into {into!r}; undo that first"
                )
            if merged.resolve(links, survivor) == duplicate:
                raise ValidationError(
                    "survivor", f"{survivor!r} is merged into {duplicate!r}; undo that first"
                )
            self._write(tx, duplicate, survivor, cleaned)
            found = merge_of(tx, duplicate)
        assert found is not None  # just written
        return found

    def unmerge(self, duplicate: str) -> Merge:
        """Undo the merge of ``duplicate``: its chart is its own again (what was recorded on
        it, before or since, goes with it). Returns the merge undone.

        A duplicate in a loop (opposite merges made at once) undoes the whole loop: the
        surviving side's own pointer, ignored while the loop stood, would otherwise take
        over and hide the survivor behind the chart just split off."""
        self.records.get_patient(duplicate)
        current = merge_of(self.records.db, duplicate)
        if current is None:
            raise ValidationError("duplicate", f"{duplicate!r} is not merged into anyone")
        details = {"was_into": current.survivor}
        with self.records.db.write(
            self.records.actor, "patient.unmerge", "patient", duplicate, details
        ) as tx:
            for pid in merged.loop_of(merged.pointers(tx), duplicate) or [duplicate]:
                self._write(tx, pid, "", None)
        return current

    def merged(self) -> list[tuple[PatientSummary, Merge]]:
        """Every patient merged into another, with its merge, newest merge first (what the
        review screen offers to undo)."""
        self.records.require("patients.duplicates")
        db = self.records.db
        found = []
        for pid in merged.pointers(db):
            merge = merge_of(db, pid)
            rows = db.query(f"SELECT {_SUMMARY} FROM patients WHERE id = ?", (pid,))
            if merge is not None and rows:
                found.append((PatientSummary(*rows[0]), merge))
        return sorted(found, key=lambda pair: (pair[1].hlc, pair[0].id), reverse=True)

    def merged_from(self, patient_id: str) -> list[tuple[Patient, Merge]]:
        """The duplicates whose records show on ``patient_id``'s chart, with their own
        demographics as they stand now (an edit made to one after the merge shows here)."""
        db = self.records.db
        root = merged.survivor(db, patient_id)
        out = []
        for pid in merged.chart_ids(db, root):
            found = merge_of(db, pid) if pid != root else None
            if found is not None:
                out.append((self.records.get_patient(pid), found))
        return out

    def _write(self, tx: Transaction, duplicate: str, into: str, reason: str | None) -> None:
        actor = self.records.actor

        def mutate(doc: RecordDoc, hlc: str) -> None:
            crdt.write(doc, "merged_into", into, hlc, actor)
            crdt.write(doc, "merge_reason", reason, hlc, actor)

        change(tx, actor, duplicate, "patient", mutate)


def describe_pair(pair: DuplicatePair) -> str:
    """Both charts of a pair, for the CLI's text output."""
    return f"{describe(pair.first)}  <->  {describe(pair.second)}"
