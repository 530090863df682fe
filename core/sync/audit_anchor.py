"""The clinic server as the outside anchor of a workstation's audit log.

The audit log's hash chain catches an edited, deleted or reordered entry, but its head
lives in the same database: someone holding the database key could rewrite the last
entries and the head together. So at every sync the workstation tells the server its
head, and the server answers with the head it recorded at the previous sync. The
workstation's log must still hold that entry with that hash; since each hash covers every
entry before it, any rewrite of an entry the server has seen changes it.

The server moves a recorded head only on proof that the offered head extends it: the
entries between them (their canonical bytes: record ids, actions and field names, never
clinical values, as the audit log holds them), from which it recomputes each link of the
chain from the recorded hash to the offered one. It verifies and forgets them. So the
device token, which whoever holds the database key also holds, cannot move the anchor to a
rewritten log. A device's first head is recorded as offered (there is nothing to extend).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from core.store.audit_chain import AuditEntry, Head
from core.store.database import Database

log = logging.getLogger(__name__)


def local_head(db: Database) -> Head | None:
    """This replica's last audit entry, read from the log itself (not from ``meta``)."""
    rows = db.query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    return Head(int(rows[0][0]), str(rows[0][1])) if rows else None


def anchor_problem(db: Database, anchor: Head) -> str | None:
    """Why this replica's audit log contradicts the head the server recorded, or None."""
    rows = db.query("SELECT hash FROM audit_log WHERE seq = ?", (anchor.seq,))
    if not rows:
        return (
            f"audit entry {anchor.seq}, which the clinic server recorded for this "
            "workstation, is missing: the audit log was cut or replaced"
        )
    if str(rows[0][0]) != anchor.hash:
        return (
            f"audit entry {anchor.seq} differs from what the clinic server recorded for this "
            f"workstation: the audit log was altered at or before entry {anchor.seq}"
        )
    return None


# A proof carries at most this many entries and bytes; a workstation further ahead of its
# anchor offers the last entry that fits, and the anchor catches up over several syncs.
MAX_PROOF_ENTRIES = 5000
MAX_PROOF_BYTES = 4 * 1024 * 1024
MAX_ENTRY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Anchoring:
    """What the server did with an offered head: the head it held before, and whether it
    now holds the offered one."""

    recorded: Head | None
    moved: bool


def proof(db: Database, anchor: Head, head: Head) -> tuple[Head, list[bytes]]:
    """The canonical entries after ``anchor`` up to ``head`` (cut to the proof limits) and
    the head they reach: what the server needs to check that the log extends ``anchor``."""
    rows = db.query(
        "SELECT seq, ts, actor, action, entity, entity_id, details, hash FROM audit_log "
        "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (anchor.seq, head.seq, MAX_PROOF_ENTRIES),
    )
    reached, total = anchor, 0
    entries: list[bytes] = []
    for row in rows:
        entry = AuditEntry(int(row[0]), *(str(v) for v in row[1:7])).canonical()
        total += len(entry)
        if len(entry) > MAX_ENTRY_BYTES or (total > MAX_PROOF_BYTES and entries):
            break
        entries.append(entry)
        reached = Head(int(row[0]), str(row[7]))
    return reached, entries


def extends(recorded: Head, offered: Head, entries: Sequence[bytes]) -> bool:
    """Whether ``entries`` are the entries after ``recorded`` and their chain, recomputed
    from ``recorded``'s hash, ends at ``offered``."""
    if offered.seq - recorded.seq != len(entries):
        return False
    digest = recorded.hash
    for seq, entry in enumerate(entries, recorded.seq + 1):
        try:
            stated = json.loads(entry).get("seq")
        except (ValueError, RecursionError, AttributeError):  # not a JSON object
            return False
        if stated != seq or isinstance(stated, bool):
            return False
        digest = hashlib.sha256(bytes.fromhex(digest) + entry).hexdigest()
    return hmac.compare_digest(digest, offered.hash)


def proven_entries(recorded: Head | None, entries: Sequence[bytes] | None) -> list[AuditEntry]:
    """The entries of a proof that moved a recorded head (checked by :func:`extends`), as
    entries the server keeps; none for a first head (nothing proves what came before)."""
    if recorded is None or not entries:
        return []
    out: list[AuditEntry] = []
    for raw in entries:
        doc = json.loads(raw)
        text = {k: str(doc.get(k, "")) for k in ("ts", "actor", "action", "entity", "entity_id")}
        details = str(doc.get("details", "{}"))
        out.append(AuditEntry(int(doc["seq"]), **text, details=details))
    return out


# The kept entries of other workstations (``device_audit``, V11), as the server stores them.
KEEP_ENTRY_SQL = (
    "INSERT INTO device_audit (device, seq, ts, actor, action, entity, entity_id, details, "
    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device, seq) DO NOTHING"
)


def advance(recorded: Head | None, offered: Head, entries: Sequence[bytes] | None) -> bool:
    """Whether the server should record ``offered`` over ``recorded``: a first head as
    offered; after that only with ``entries`` proving that ``offered`` extends ``recorded``
    (none, as from Careline 0.1.0: the recorded head stays)."""
    if recorded is None:
        return True
    return entries is not None and extends(recorded, offered, entries)


def log_refused(device: str, offered: Head, recorded: Head, proved: bool) -> None:
    """Log a device offering a head not proved to extend the one recorded (a cut, restored
    or rewritten log, or an older Careline that sends no proof)."""
    if proved:
        why = "the entries it sent do not lead from it to the offered head"
    else:
        why = "it sent no proof that its log extends the recorded head"
    log.warning(
        "device %s offered audit head %s over the recorded %s, but %s; keeping the recorded head",
        device,
        offered.seq,
        recorded.seq,
        why,
    )


def refusal(anchor: Head) -> str:
    """What a workstation reports when the server kept ``anchor`` instead of its head."""
    return (
        f"the clinic server did not accept this workstation's audit log as extending audit "
        f"entry {anchor.seq}, which it recorded: the log was altered after that entry"
    )
