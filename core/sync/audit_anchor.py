"""The clinic server as the outside anchor of a workstation's audit log.

The audit log's hash chain catches an edited, deleted or reordered entry, but its head
lives in the same database: someone holding the database key could rewrite the last
entries and the head together. So at every sync the workstation tells the server its
head, and the server answers with the head it recorded at the previous sync. The
workstation's log must still hold that entry with that hash; since each hash covers every
entry before it, any rewrite of an entry the server has seen changes it. The server never
moves a workstation's recorded head backwards.
"""

from __future__ import annotations

import logging

from core.store.audit_chain import Head
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


def advance(recorded: Head | None, offered: Head) -> bool:
    """Whether the server should record ``offered`` over ``recorded``: never backwards."""
    return recorded is None or offered.seq >= recorded.seq


def log_refused(device: str, offered: Head, recorded: Head) -> None:
    """Log a device offering a head behind the one recorded (a cut or restored log)."""
    log.warning(
        "device %s offered audit head %s behind the recorded %s: its log was cut or "
        "replaced; keeping the recorded head",
        device,
        offered.seq,
        recorded.seq,
    )
