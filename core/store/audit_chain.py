"""The hash-chained audit log's encoding: h_i = SHA-256(h_{i-1} || canonical(entry_i)).

Entries are appended by the write path inside the same transaction as the change they
describe. Entries name who did what to which record; they hold record ids and field names,
never clinical values. The chain detects edits, deletions and reordering of entries; like
any hash chain it cannot stop someone holding the database key from rewriting the whole
log consistently. The head (last seq and hash) is also kept in ``meta`` so that cutting
entries off the end shows up. Outside the database, the clinic server records each
workstation's head at every sync and hands back the one it recorded before, which the
workstation checks against its own log (``core.sync.audit_anchor``): a rewrite of anything
the server has seen is caught at the next sync.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64
HEAD_META_KEY = "audit_head"


@dataclass(frozen=True)
class Head:
    """The last entry of a log: its sequence number and hash."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str | None) -> Head | None:
        """A head from its ``"<seq>:<hash>"`` form (None for None)."""
        if text is None:
            return None
        seq, _, digest = text.partition(":")
        return cls(int(seq), digest)


@dataclass(frozen=True)
class AuditEntry:
    """One audit record, as stored."""

    seq: int
    ts: str
    actor: str
    action: str
    entity: str
    entity_id: str
    details: str  # canonical JSON object

    def canonical(self) -> bytes:
        """Deterministic bytes hashed into the chain."""
        return json.dumps(
            {
                "seq": self.seq,
                "ts": self.ts,
                "actor": self.actor,
                "action": self.action,
                "entity": self.entity,
                "entity_id": self.entity_id,
                "details": self.details,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")


def canonical_details(details: dict[str, Any] | None) -> str:
    """Canonical JSON for an entry's details."""
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, entry: AuditEntry) -> str:
    """The entry's hash given its predecessor's."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + entry.canonical()).hexdigest()


@dataclass(frozen=True)
class Link:
    """An entry ready to append: the entry, its predecessor's hash and its own."""

    entry: AuditEntry
    prev_hash: str
    hash: str

    @property
    def head(self) -> str:
        """The ``"<seq>:<hash>"`` to record as the log's new head."""
        return f"{self.entry.seq}:{self.hash}"


def next_link(
    head: str | None,
    ts: str,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    details: dict[str, Any] | None,
) -> Link:
    """The entry that follows the log whose head is ``head`` (None: an empty log)."""
    prev_seq, prev_hash = 0, GENESIS_HASH
    if head is not None:
        seq_text, prev_hash = head.split(":", 1)
        prev_seq = int(seq_text)
    entry = AuditEntry(
        prev_seq + 1, ts, actor, action, entity, entity_id, canonical_details(details)
    )
    return Link(entry, prev_hash, chain_hash(prev_hash, entry))
