"""Reading break-glass grants, and marking the audit entries of work done under one.

A grant (a ``break_glass`` record, opened by :mod:`core.records.break_glass`) counts while
``opened_at <= now < expires_at``; nothing is written at expiry, so every replica reading
the same records at the same time agrees, and a grant that syncs late still ends on time.
While a grant of person U on patient P counts, every unit of work U does on P's chart (the
chart opening, which is how a view is audited, and every change of the patient or of a
record on their chart) carries ``break_glass: <grant id>`` in its audit details; it is
hashed into the audit chain with the rest of the entry.

Times are the workstation's clock in UTC: a workstation whose clock runs behind keeps a
grant counting for longer than it should (the audit entries still name the grant, and the
review list shows when it was opened and until when it was meant to last).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.records.types import BREAK_GLASS, RECORD_TYPES
from core.store.database import Database, Row, Transaction

Clock = Callable[[], datetime]
# How long an opening may last, in minutes (as the break_glass_minutes setting allows):
# core/records/break_glass.py opens them, remote apply refuses a longer one from elsewhere.
MIN_MINUTES, MAX_MINUTES = 5, 720

_COLUMNS = ", ".join(BREAK_GLASS.column_names)


def system_clock() -> datetime:
    """This computer's time, in UTC."""
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The stored form of a time: ISO-8601 UTC with milliseconds (as ``utc_now``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Grant:
    """One break-glass opening, as stored."""

    id: str
    patient_id: str
    username: str
    reason: str
    opened_at: str
    expires_at: str
    reviewed_by: str | None
    reviewed_at: str | None

    def active(self, now: datetime) -> bool:
        """Whether the grant counts at ``now``."""
        at = stamp(now)
        return self.opened_at <= at < self.expires_at

    @property
    def expires(self) -> datetime:
        """``expires_at`` as a time."""
        return datetime.fromisoformat(self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return dict(self.__dict__)


def _grant(row: Row) -> Grant:
    values = dict(zip(BREAK_GLASS.column_names, row, strict=True))
    return Grant(
        str(values["id"]),
        str(values["patient_id"]),
        str(values["username"] or ""),
        str(values["reason"] or ""),
        str(values["opened_at"] or ""),
        str(values["expires_at"] or ""),
        values["reviewed_by"],
        values["reviewed_at"],
    )


def _read(db: Database | Transaction, sql: str, params: tuple[Any, ...]) -> list[Row]:
    return list(db.query(sql, params))


def grants(
    db: Database | Transaction, where: str = "1 = 1", params: tuple[Any, ...] = ()
) -> list[Grant]:
    """Grants matching ``where`` (SQL over the ``break_glass`` table), newest first."""
    rows = _read(
        db, f"SELECT {_COLUMNS} FROM break_glass WHERE {where} ORDER BY opened_at DESC, id", params
    )
    return [_grant(r) for r in rows]


def active_grants(db: Database | Transaction, now: datetime) -> list[tuple[str, str]]:
    """``(patient_id, username)`` of every grant that counts at ``now``: what the tuple
    reader yields as ``patient:P#break_glass@user:U``."""
    at = stamp(now)
    rows = _read(
        db,
        "SELECT DISTINCT patient_id, username FROM break_glass "
        "WHERE opened_at <= ? AND expires_at > ? AND username IS NOT NULL ORDER BY 1, 2",
        (at, at),
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def grant_for(
    db: Database | Transaction, patient_id: str, username: str, now: datetime
) -> Grant | None:
    """The grant of ``username`` on ``patient_id`` that counts at ``now`` and lasts the
    longest, or None."""
    at = stamp(now)
    found = grants(
        db,
        "patient_id = ? AND username = ? AND opened_at <= ? AND expires_at > ?",
        (patient_id, username, at, at),
    )
    return max(found, key=lambda g: (g.expires_at, g.id)) if found else None


def patient_of(tx: Database | Transaction, entity: str, entity_id: str) -> str | None:
    """The patient whose chart an audited unit of work touched, or None: the patient
    itself, or the patient of a record on their chart (read after the change, so a record
    just created is found too)."""
    if entity == "patient":
        return entity_id
    rtype = RECORD_TYPES.get(entity)
    if rtype is None or "patient_id" not in rtype.column_names or entity == BREAK_GLASS.name:
        return None
    rows = _read(tx, f"SELECT patient_id FROM {rtype.table} WHERE id = ?", (entity_id,))
    return str(rows[0][0]) if rows and rows[0][0] else None


# Audited with the id of the grant they are about, but not done under it: a review is an
# administrator's, who holds no grant. Entries stored before this release name the grant
# as ``break_glass`` in their details, so readers ask :func:`worked_under`, not the key.
ABOUT_A_GRANT = frozenset({"break_glass.review"})


def worked_under(action: str, details: Any) -> str | None:
    """The grant an audit entry's work was done under (its details' ``break_glass``), or
    None: also for a review of an opening, which is about the grant, not under it."""
    if action in ABOUT_A_GRANT or not isinstance(details, dict):
        return None
    value = details.get("break_glass")
    return str(value) if value else None


class Annotator:
    """Adds ``break_glass: <grant id>`` to the audit details of work done under a grant
    (installed on the database as its ``annotate_audit``)."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock

    def __call__(
        self,
        tx: Transaction,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The details to record: ``details`` plus the grant, when one counts."""
        patient = patient_of(tx, entity, entity_id)
        if patient is None:
            return details
        grant = grant_for(tx, patient, actor, self.clock())
        if grant is None:
            return details
        return {**(details or {}), "break_glass": grant.id}


def install(db: Database, clock: Clock | None = None) -> Annotator:
    """Make ``db``'s audited work carry break-glass grants (idempotent; ``clock``, when
    given, replaces the clock: tests move time with it)."""
    current = db.annotate_audit
    if isinstance(current, Annotator):
        if clock is not None:
            current.clock = clock
        return current
    annotator = Annotator(clock or system_clock)
    db.annotate_audit = annotator
    return annotator
