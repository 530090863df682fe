"""Taking a file off a chart (added to the wrong chart, the wrong file, a duplicate), and
reading the files taken off.

A removal is one op on the attachment's own record: its ``deleted`` register (as every
record is deleted; it observes every value this replica has seen, so an edit made
elsewhere meanwhile becomes an edit-versus-delete conflict, never a silent loss) and why
(:data:`core.records.types.REMOVED_REASON`). Every release knows ``deleted``, so the file
leaves the chart on a workstation not yet upgraded too; such a workstation keeps and
relays the reason as a field it does not know. Who removed it and when are the ``deleted``
entry's own author and clock, which every replica holds and checks.

Nothing is erased: the record's document keeps the file's details, and the encrypted file
stays on the server and in the workstations' caches (a chart's record is kept, as a
discarded draft's text is); "Show removed" lists them. The removal is audited
(``attachment.delete``, naming the record and its patient, never the reason: it may name
another patient) and needs the matrix's ``attachment.delete`` permission on the chart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.records import crdt
from core.records import validation as v
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.crdt import RecordDoc
from core.records.entries import entry_row
from core.records.errors import NotFoundError
from core.records.rows import hlc_time
from core.records.spec import Mutation
from core.records.types import ATTACHMENT, REMOVED_REASON
from core.store.database import Database
from core.store.state_codec import unpack_state

# The reasons offered first (the app's choices; any other is typed).
WRONG_CHART = "Added to the wrong chart"
REASONS = (WRONG_CHART, "Wrong file", "Added twice")


@dataclass(frozen=True)
class Removal:
    """Who took a file off a chart, when (UTC) and why."""

    by: str
    at: str
    reason: str


@dataclass(frozen=True)
class RemovedRecord:
    """A removed attachment's last values (as its row held them) and its removal."""

    record_id: str
    values: dict[str, Any]
    removal: Removal


def removal(records: ClinicRecords, reason: str) -> Mutation:
    """The mutation removing an attachment: ``deleted`` (observing every live value this
    replica has seen) and the reason, in one op."""
    delete = records.deleter(ATTACHMENT.name)

    def remove(doc: RecordDoc, hlc: str) -> None:
        delete(doc, hlc)
        crdt.write(doc, REMOVED_REASON, reason, hlc, records.actor)

    return remove


def _doc(db: Database, record_id: str) -> RecordDoc | None:
    rows = db.query(
        "SELECT state FROM record_states WHERE id = ? AND type = ?", (record_id, ATTACHMENT.name)
    )
    return crdt.load(unpack_state(rows[0][0]), 1) if rows else None


def _removed(record_id: str, doc: RecordDoc) -> RemovedRecord | None:
    live = crdt.all_live(doc)
    deletes = [e for e in live.get("deleted", []) if e.value is True]
    if not deletes:
        return None
    values = {f: (live[f][0].value if live.get(f) else None) for f in ATTACHMENT.registers}
    created = live.get("created_at")
    values["created_at"] = created[0].value if created else None
    reasons = live.get(REMOVED_REASON, [])
    reason = str(reasons[0].value) if reasons and reasons[0].value else ""
    first = deletes[0]  # the winner shown, as every register's (newest first)
    return RemovedRecord(record_id, values, Removal(first.author, hlc_time(first.hlc), reason))


def remove(records: ClinicRecords, record_id: str, reason: str | None) -> str:
    """Take the attachment off its chart, saying why; returns its patient's id.

    ValidationError without a reason; NotFoundError for no such file, or one already taken
    off (saying when and by whom). The write gate refuses it (audited) to anyone without
    ``attachment.delete`` on the chart, with the matrix's wording."""
    cleaned = v.required_text("reason", reason)
    assert cleaned is not None  # required
    try:
        row = entry_row(records.db, ATTACHMENT.name, record_id)  # the write is checked
    except NotFoundError:
        doc = _doc(records.db, record_id)
        gone = _removed(record_id, doc) if doc is not None else None
        if gone is None:
            raise
        raise NotFoundError(
            f"the file was already removed from the chart, by {gone.removal.by} at "
            f"{gone.removal.at[:16].replace('T', ' ')} UTC"
        ) from None
    patient_id = str(row["patient_id"])
    details = {"patient": patient_id}
    actor = records.actor
    with records.db.write(actor, "attachment.delete", ATTACHMENT.name, record_id, details) as tx:
        change(tx, actor, record_id, ATTACHMENT.name, removal(records, cleaned))
    return patient_id


def removed_from(
    db: Database, patient_ids: Iterable[str] | None, record_ids: Sequence[str] | None = None
) -> list[RemovedRecord]:
    """The attachments taken off the charts of ``patient_ids`` (None: any chart), of
    ``record_ids`` only if given, with NO permission check (callers check
    ``attachments.list``; the audit review reads ids only).

    Only attachment documents without a row are read (a removed file has none), so the cost
    follows the clinic's removed files, not all of its files."""
    wanted = None if patient_ids is None else set(patient_ids)
    query = (
        "SELECT id, state FROM record_states WHERE type = ? "
        f"AND id NOT IN (SELECT id FROM {ATTACHMENT.table})"
    )
    found: list[RemovedRecord] = []
    chunks = [None] if record_ids is None else [
        record_ids[i : i + 500] for i in range(0, len(record_ids), 500)
    ]  # fmt: skip
    for chunk in chunks:
        sql, params = query, [ATTACHMENT.name]
        if chunk is not None:
            sql += f" AND id IN ({', '.join('?' for _ in chunk)})"
            params += chunk
        for record_id, state in db.query(sql, tuple(params)):
            gone = _removed(str(record_id), crdt.load(unpack_state(state), 1))
            if gone is not None and (wanted is None or gone.values.get("patient_id") in wanted):
                found.append(gone)
    return found
