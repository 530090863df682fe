"""What a write or a sync session changed: record ids by type, so screens refresh precisely.

Worked out from the ids a write or a sync touched, never by comparing record contents: the
op log says which record (and type) each op changed, and a snapshot page names its records.
A snapshot download of a whole clinic brings too many records to list them all (a million
ids would be most of a new workstation's memory): past a bound it is reported as counts per
type, and every record of those types may have changed (``unlisted``).
The idea follows Anki's ``OpChanges`` (an operation reports what it changed; each screen
decides whether that concerns it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from core.store import oplog
from core.store.database import Database

# Ids per query (well under SQLite's bound-parameter limit).
_CHUNK = 500


@dataclass(frozen=True)
class Changes:
    """Records a write or a sync changed.

    ``records`` maps a record type (``patient``, ``user``, ...) to the ids changed; a
    patient's allergies and other lists live in the patient record, so they count as a
    change of that patient. ``conflicted`` holds the changed records that have open
    conflicts afterwards; ``local`` is True when this replica's own writes are among them.
    ``unlisted`` maps a record type to how many more of its records changed than
    ``records`` lists (a large snapshot download's): any record of that type may have
    changed, so :meth:`changed` and :meth:`touches` answer yes for it.
    """

    records: Mapping[str, frozenset[str]] = field(default_factory=dict)
    conflicted: frozenset[str] = frozenset()
    local: bool = False
    unlisted: Mapping[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> frozenset[str]:
        """Every listed changed record id, of any type (see ``unlisted``)."""
        return frozenset().union(*self.records.values())

    def of_type(self, type_name: str) -> frozenset[str]:
        """The listed changed ids of one record type; when the type is ``unlisted``, others
        may have changed too: ask :meth:`changed` whether any did."""
        return self.records.get(type_name, frozenset())

    @property
    def patients(self) -> frozenset[str]:
        """Listed patients whose record (demographics, allergies, lists) changed."""
        return self.of_type("patient")

    def changed(self, type_name: str) -> bool:
        """True if any record of ``type_name`` changed (listed or not)."""
        return bool(self.records.get(type_name)) or self.unlisted.get(type_name, 0) > 0

    def changed_besides(self, type_name: str, record_ids: Collection[str]) -> bool:
        """True if a record of ``type_name`` other than ``record_ids`` changed."""
        if self.unlisted.get(type_name, 0) > 0:
            return True
        return any(rid not in record_ids for rid in self.of_type(type_name))

    def touches(self, record_id: str) -> bool:
        """True if ``record_id`` changed (or may have: a record type is ``unlisted``)."""
        if any(n > 0 for n in self.unlisted.values()):
            return True
        return any(record_id in ids for ids in self.records.values())

    def may_change_conflicts(self, open_conflicts: Collection[str]) -> bool:
        """True if the open conflicts may differ now: a changed record has one, or a record
        that had one (``open_conflicts``, as last counted) changed and may have lost it."""
        return bool(self.conflicted) or any(self.touches(r) for r in open_conflicts)

    def __bool__(self) -> bool:
        return any(self.records.values()) or any(n > 0 for n in self.unlisted.values())

    def __or__(self, other: Changes) -> Changes:
        merged = {t: self.of_type(t) | other.of_type(t) for t in {*self.records, *other.records}}
        unlisted = {t: self.unlisted.get(t, 0) + other.unlisted.get(t, 0)
                    for t in {*self.unlisted, *other.unlisted}}  # fmt: skip
        return Changes(
            merged, self.conflicted | other.conflicted, self.local or other.local, unlisted
        )

    def counts(self) -> dict[str, int]:
        """``{type: how many changed}``, for reports and logs (a record both listed and
        among a type's ``unlisted``, e.g. brought by a snapshot and changed again by a pull
        of the same session, counts twice)."""
        found = {t: len(self.of_type(t)) + self.unlisted.get(t, 0)
                 for t in {*self.records, *self.unlisted}}  # fmt: skip
        return {t: n for t, n in sorted(found.items()) if n}


def _chunks(ids: list[str]) -> Iterable[tuple[str, ...]]:
    for start in range(0, len(ids), _CHUNK):
        yield tuple(ids[start : start + _CHUNK])


def _conflicted(db: Database, ids: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for chunk in _chunks(list(ids)):
        marks = ", ".join("?" for _ in chunk)
        sql = f"SELECT DISTINCT record_id FROM conflicts WHERE record_id IN ({marks})"
        rows = db.query(sql, chunk)
        found.update(str(r[0]) for r in rows)
    return frozenset(found)


def _changes(db: Database, typed: Mapping[str, set[str]], local: bool) -> Changes:
    records = {t: frozenset(ids) for t, ids in typed.items() if ids}
    every = {i for ids in typed.values() for i in ids}
    return Changes(records, _conflicted(db, every), local)


def describe(
    db: Database, record_ids: Iterable[str], unlisted: Mapping[str, int] | None = None
) -> Changes:
    """The changes made to ``record_ids`` (by a sync: not this replica's own writes), and
    to ``unlisted`` records, counted per type (a large snapshot download's, too many to
    list): of those, the ones with open conflicts are named all the same."""
    typed: dict[str, set[str]] = {}
    for chunk in _chunks(list(dict.fromkeys(record_ids))):
        marks = ", ".join("?" for _ in chunk)
        for rid, rtype in db.query(
            f"SELECT id, type FROM record_states WHERE id IN ({marks})", chunk
        ):
            typed.setdefault(str(rtype), set()).add(str(rid))
    listed = _changes(db, typed, local=False)
    counted = {t: n for t, n in (unlisted or {}).items() if n > 0}
    if not counted:
        return listed
    types = tuple(sorted(counted))
    marks = ", ".join("?" for _ in types)
    # Open conflicts are few whatever the clinic's size: name every one of those types.
    rows = db.query(
        f"SELECT DISTINCT record_id FROM conflicts WHERE record_type IN ({marks})", types
    )
    conflicted = listed.conflicted | {str(r[0]) for r in rows}
    return Changes(listed.records, frozenset(conflicted), False, counted)


def mark(db: Database) -> dict[str, int]:
    """Where the op log stands now; :func:`changes_since` reports what came after."""
    return oplog.version_vector(db)


def changes_since(db: Database, before: Mapping[str, int], others_only: bool = False) -> Changes:
    """The records changed by ops logged after ``before`` (a :func:`mark`), by any replica
    or, with ``others_only``, by other replicas. Records that arrived in a snapshot have no
    ops: see :func:`describe`."""
    own = oplog.identity(db).replica_id
    typed: dict[str, set[str]] = {}
    local = False
    for origin, seq in mark(db).items():
        held = before.get(origin, 0)
        if seq <= held or (others_only and origin == own):
            continue
        rows = db.query(
            "SELECT record_id, record_type FROM oplog WHERE origin = ? AND seq > ?",
            (origin, held),
        )
        local = local or (origin == own and bool(rows))
        for rid, rtype in rows:
            typed.setdefault(str(rtype), set()).add(str(rid))
    return _changes(db, typed, local)
