"""Verify the hash-chained audit log and name the first entry that does not fit.

What it can and cannot see: an entry edited in place, deleted or moved breaks its own hash or
the next entry's link. The last entry has no next entry; it is checked against the head
(``"<seq>:<hash>"``) kept in the same database's ``meta`` table. Anyone holding the database
key can rewrite the last entry *and* that head consistently (or, more generally, rewrite the
tail of the log and the head): nothing outside the database anchors the head yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.store import audit_chain
from core.store.database import SqlStore


@dataclass(frozen=True)
class AuditReport:
    """Result of a verification: ``problems`` is empty when the chain is intact."""

    entries: int
    head_seq: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems


def verify_audit_log(db: SqlStore) -> AuditReport:
    """Walk the chain in ``seq`` order; report edits, deletions and reordering by entry."""
    rows = db.query(
        "SELECT seq, ts, actor, action, entity, entity_id, details, prev_hash, hash "
        "FROM audit_log ORDER BY rowid"
    )
    head = db.query("SELECT value FROM meta WHERE key = ?", (audit_chain.HEAD_META_KEY,))
    return verify_chain(rows, str(head[0][0]) if head else None)


def verify_chain(rows: Sequence[Sequence[Any]], head: str | None) -> AuditReport:
    """Verify stored entries (in the order they were written) against the recorded head.

    ``rows`` are ``(seq, ts, actor, action, entity, entity_id, details, prev_hash, hash)``;
    ``head`` is the ``"<seq>:<hash>"`` kept beside the log, or None for an empty log.
    """
    original_seq = _original_positions(rows)
    problems: list[str] = []
    expected_seq, prev_hash = 1, audit_chain.GENESIS_HASH
    for seq, ts, actor, action, entity, entity_id, details, stored_prev, stored_hash in rows:
        entry = audit_chain.AuditEntry(seq, ts, actor, action, entity, entity_id, details)
        if seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
            problems.append(f"audit entry {missing} is missing (deleted)")
        if audit_chain.chain_hash(stored_prev, entry) != stored_hash:
            problems.append(_explain_mismatch(entry, stored_prev, stored_hash, original_seq))
        elif stored_prev != prev_hash and seq == expected_seq:
            # Both entries hash correctly on their own, but the link between them is gone:
            # entry seq-1 was rewritten together with its hash, or the entries at this
            # point were removed or reordered and then renumbered and rehashed.
            problems.append(
                f"audit entry {seq} does not follow entry {seq - 1} (chain broken): entry "
                f"{seq - 1} was altered and its hash recomputed, or entries here were removed "
                "or reordered and renumbered"
            )
        expected_seq, prev_hash = seq + 1, stored_hash
    head_seq = int(head.split(":", 1)[0]) if head else 0
    head_hash = head.split(":", 1)[1] if head else audit_chain.GENESIS_HASH
    last_seq = rows[-1][0] if rows else 0
    if head is None and rows:
        problems.append("the recorded head of the audit log is missing (removed from meta)")
    elif head_seq > last_seq:
        problems.append(f"{_entries(last_seq + 1, head_seq)} missing from the end")
    elif head_seq < last_seq:
        # The write path moves the head in the same transaction as every append.
        problems.append(
            f"{_entries(head_seq + 1, last_seq, 'comes', 'come')} after the recorded head of "
            "the log (added outside Careline's write path)"
        )
    elif rows and head_hash != rows[-1][8]:
        problems.append(
            f"audit entry {last_seq} does not match the recorded head of the log: it was "
            "altered and its hash recomputed, or replaced"
        )
    return AuditReport(entries=len(rows), head_seq=head_seq, problems=tuple(problems))


def _entries(first: int, last: int, one: str = "is", many: str = "are") -> str:
    """``audit entry 7 is`` or ``audit entries 7-9 are``."""
    if first == last:
        return f"audit entry {first} {one}"
    return f"audit entries {first}-{last} {many}"


def _original_positions(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Follow the stored prev-hash links from the genesis: hash -> position it was written at."""
    successor = {str(row[7]): str(row[8]) for row in rows}
    positions: dict[str, int] = {}
    link, position = audit_chain.GENESIS_HASH, 0
    while link in successor and position < len(rows):
        link, position = successor[link], position + 1
        positions[link] = position
    return positions


def _explain_mismatch(
    entry: audit_chain.AuditEntry, stored_prev: str, stored_hash: str, original_seq: dict[str, int]
) -> str:
    """Tell a moved entry (renumbered, otherwise intact) from an edited one."""
    original = original_seq.get(stored_hash)
    if original is not None and original != entry.seq:
        as_written = audit_chain.AuditEntry(
            original,
            entry.ts,
            entry.actor,
            entry.action,
            entry.entity,
            entry.entity_id,
            entry.details,
        )
        if audit_chain.chain_hash(stored_prev, as_written) == stored_hash:
            return f"audit entry {original} was moved to position {entry.seq} (entries reordered)"
    return f"audit entry {entry.seq} was altered: its content does not match its hash"
