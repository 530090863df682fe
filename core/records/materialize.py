"""Derive the queryable tables (and the FTS index, via triggers) from record documents.

Materialized rows are a pure function of the document, so replicas holding the same
documents hold byte-for-byte the same rows. Runs inside the caller's transaction.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from core.records import crdt, set_conflicts
from core.records.crdt import RecordDoc
from core.records.rows import Rows
from core.records.rows import conflict_id as conflict_id
from core.records.rows import hlc_time as hlc_time
from core.records.spec import ListSpec
from core.records.types import RECORD_TYPES, SYSTEM_REGISTERS, RecordType
from core.store.database import Transaction
from core.store.state_codec import StoredStateError


class MalformedRecordError(ValueError):
    """A document holds entries that are not valid Careline values. The message names the
    part of the document and the kind of problem, never its content (``content_problem``)."""


def content_problem(exc: BaseException) -> str:
    """The kind of problem reading a document (a peer's op or snapshot state) raised, never
    the content: Careline's own errors about stored content keep their words (they name
    parts, records and sizes), any other exception gives its type only, since its message
    may quote the value that failed (``int()``'s "invalid literal for int() with base 10:
    'Jane Roe'").

    Refusals built on this reach the log of the replica refusing, the peer's reply, and
    from there the peer's log and screen: none of them may carry what the record holds.
    """
    if isinstance(exc, MalformedRecordError | StoredStateError | crdt.InvalidUpdateError):
        return str(exc)
    return type(exc).__name__


Live = dict[str, list[crdt.RegisterEntry]]


def read_live(doc: RecordDoc, rtype: RecordType, cache: bool = True) -> tuple[Live, list[str]]:
    """Every register's live values, read once (within ``derive``'s pycrdt transaction),
    and the registers present that ``rtype`` does not declare (a newer version's fields).
    ``cache``: see ``crdt.all_live``."""
    try:
        found = crdt.all_live(doc, in_transaction=True, cache=cache)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise MalformedRecordError(
            f"{malformed_register(doc, rtype)} holds a malformed entry ({content_problem(exc)})"
        ) from exc
    live = {field: found.get(field, []) for field in _live_fields(rtype)}
    return live, [
        f"field:{name}" for name in found if name not in live and name not in rtype.bookkeeping
    ]


_ENTRY_ERRORS = (ValueError, KeyError, TypeError, AttributeError, RecursionError)


def malformed_register(doc: RecordDoc, rtype: RecordType) -> str:
    """Which register of a document holds an entry that is no Careline entry (its JSON, or
    its stamp), for a refusal: "the register 'birth_date'" for a field the type declares,
    "a register" otherwise. A peer chooses the keys, so an undeclared field's name may be
    any text (a patient's name): it is never quoted. Only called once reading failed."""
    try:
        raw = crdt.raw_entries(doc, "r")
    except _ENTRY_ERRORS:
        return "a register"
    for key, content in raw.items():
        name, _, write_id = str(key).partition("/")
        try:
            entry = crdt.parse_entry(write_id, content)
            hlc_time(entry.hlc)
            if not write_id or not isinstance(entry.author, str):
                raise ValueError("malformed entry")
        except _ENTRY_ERRORS:
            if name in _live_fields(rtype) or name in rtype.bookkeeping:
                return f"the register {name!r}"
            return "a register"
    return "a register"


@functools.cache
def _live_fields(rtype: RecordType) -> tuple[str, ...]:
    return (*rtype.registers, *SYSTEM_REGISTERS)


Unseen = list[tuple[str, crdt.RegisterEntry]]


def deletion_state(live: Live, rtype: RecordType) -> tuple[bool, Unseen]:
    """(deleted?, (field, edit) pairs made concurrently with the deletion, unobserved by it)."""
    deletes = [e for e in live["deleted"] if e.value is True]
    if not deletes:
        return False, []
    observed = set().union(*(set(e.observes) for e in deletes))
    unseen: Unseen = []
    for field in rtype.registers:
        unseen += [(field, e) for e in live[field] if e.write_id not in observed]
    return True, unseen


@dataclass(frozen=True)
class Derived:
    """Everything derived from one record document, as rows per part.

    Parts: ``main`` (the record's own table row, absent when deleted), ``children`` (rows
    of the patient's set tables, keyed by table) and ``conflicts``.
    """

    main: Rows
    children: dict[str, Rows]
    conflicts: Rows
    # Parts of the document this version of Careline does not know (written by a newer
    # one): kept in the state and relayed, shown once this replica is upgraded.
    unknown: tuple[str, ...] = ()

    def digests(self) -> dict[str, str]:
        """One short hash per part, stored with the state so unchanged parts are skipped
        (and, under ``unknown``, the parts this version could not show)."""
        digests = {
            "main": _digest(repr(self.main)),
            "children": _digest(repr(self.children)),
            "conflicts": _digest(repr(self.conflicts)),
        }
        if self.unknown:
            digests[UNKNOWN_KEY] = ",".join(self.unknown)
        return digests


# The key of a record's stored digests naming what this version could not show of it.
UNKNOWN_KEY = "unknown"
# What ``unknown`` says of a record whose whole type this version does not know.
UNKNOWN_TYPE = "type"


def _digest(text: str) -> str:
    if len(text) <= _DIGEST_CACHED_LENGTH:
        return _short_digest(text)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Short parts repeat across records (no conflicts, empty lists): their hashes are cached.
_DIGEST_CACHED_LENGTH = 256


@functools.lru_cache(maxsize=1024)
def _short_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _conflict_rows(
    record_id: str, rtype: RecordType, live: Live, deleted: bool, unseen: Unseen
) -> Rows:
    rows: Rows = []
    if deleted and not unseen:
        # Deleted by someone who saw every live value: nothing is left to choose between,
        # and resolving would only bring the record back as an edit-vs-delete conflict.
        return rows
    for field in rtype.registers:
        entries = live[field]
        if len(entries) > 1:
            # Identical values written concurrently (two people typing the same fix) agree.
            if len({e.value for e in entries}) > 1:
                rows.append(_conflict_row(record_id, rtype, field, [(field, e) for e in entries]))
        elif entries:
            hash(entries[0].value)  # a malformed (unhashable) value fails as the set did
    if deleted and unseen:
        deletes = [("deleted", e) for e in live["deleted"] if e.value is True]
        rows.append(_conflict_row(record_id, rtype, "deleted", deletes + unseen))
    return rows


def _conflict_row(
    record_id: str, rtype: RecordType, field: str, entries: Unseen
) -> tuple[Any, ...]:
    candidates = [
        {
            "id": e.write_id,
            "field": entry_field,
            "value": e.value,
            "author": e.author,
            "replica": e.replica,
            "time": hlc_time(e.hlc),
            "hlc": e.hlc,
        }
        for entry_field, e in entries
    ]
    return (
        conflict_id(record_id, field),
        record_id,
        rtype.name,
        field,
        json.dumps(candidates, sort_keys=True),
    )


def _values(live: Live) -> dict[str, Any]:
    values: dict[str, Any] = {}
    hlcs = [""]
    for field, entries in live.items():
        if not entries:
            values[field] = None
            continue
        values[field] = entries[0].value
        if len(entries) == 1:
            hlcs.append(entries[0].hlc)
        else:
            hlcs += [e.hlc for e in entries]
    # One max over every stamp, in the order the per-field maxima took them: the same
    # result (and the same TypeError for a malformed, non-text stamp).
    latest = max(hlcs)
    values["updated_at"] = hlc_time(latest) if latest else None
    return values


def derive(record_id: str, rtype: RecordType, doc: RecordDoc, cache: bool = True) -> Derived:
    """Compute (without writing) every row one record document stands for. ``cache=False``
    for a document derived once (see ``crdt.all_live``): the same rows."""
    # Every read below shares one pycrdt transaction instead of opening one per call.
    with doc.transaction():
        try:
            return _derive(record_id, rtype, doc, cache)
        except MalformedRecordError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            # A peer's update can put anything in an entry (an HLC that is not one, a value
            # of the wrong kind): whatever deriving it raised, the record is malformed.
            raise MalformedRecordError(
                f"{malformed_register(doc, rtype)} holds a malformed entry ({content_problem(exc)})"
            ) from exc


def _derive(record_id: str, rtype: RecordType, doc: RecordDoc, cache: bool = True) -> Derived:
    # Listed before any root is read (cheap then): a list root that does not exist is known
    # empty without reading it, and a root no field of the type uses is a newer version's.
    roots = crdt.root_names(doc)
    live, unknown = read_live(doc, rtype, cache)
    unknown += [f"part:{root}" for root in roots if root not in _known_roots(rtype)]
    values = _values(live)
    deleted, unseen = deletion_state(live, rtype)
    # Edit-vs-delete keeps the record visible (with its conflict) until a person decides.
    visible = not deleted or bool(unseen)
    main: Rows = []
    children: dict[str, Rows] = {}
    conflicts = _conflict_rows(record_id, rtype, live, deleted, unseen)
    for text in rtype.texts:
        values[text.name] = crdt.text_value(doc, text.name)
    if rtype.derive_hook is not None:
        conflicts += rtype.derive_hook(record_id, doc, values)
    if visible and (rtype.row_requires is None or values[rtype.row_requires] is not None):
        main = [_main_row(record_id, rtype, values)]
    if main and rtype.lists:
        sets = _read_sets(doc, roots)
        children = _children(record_id, rtype, sets)
        conflicts += _set_conflict_rows(record_id, rtype, doc, sets, roots)
        unknown += _unknown_in_lists(rtype, sets)
    elif "s" in roots and not rtype.lists:
        unknown.append("lists")
    return Derived(main, children, conflicts, tuple(sorted(unknown)))


@functools.cache
def _known_roots(rtype: RecordType) -> frozenset[str]:
    """The document roots a type's fields are kept under (registers, sets and their
    history, one per text field)."""
    return frozenset({"r", "s", "h", *(f"t:{text.name}" for text in rtype.texts)})


@functools.cache
def _list_values(rtype: RecordType) -> dict[str, frozenset[str]]:
    return {child.name: frozenset(f.name for f in child.items) for child in rtype.lists}


def understands(rtype: RecordType, part: str) -> bool:
    """Whether ``rtype`` (as this version declares it) knows a part that ``Derived.unknown``
    once named for a record of its type (under an older version)."""
    kind, _, name = part.partition(":")
    if kind == "field":
        return name in rtype.registers or name in rtype.bookkeeping
    if kind == "part":
        return name in _known_roots(rtype)
    if kind == "list":
        list_name, _, value = name.partition(".")
        values = _list_values(rtype).get(list_name)
        return values is not None and (not value or value in values)
    if part == "lists":
        return bool(rtype.lists)
    return part == UNKNOWN_TYPE  # the type itself: known, since rtype is it


def _unknown_in_lists(rtype: RecordType, sets: dict[str, list[crdt.SetElement]]) -> list[str]:
    """Lists, and values of list items, this version does not know."""
    known = _list_values(rtype)
    unknown: set[str] = set()
    for name, elements in sets.items():
        values = known.get(name)
        if values is None:
            unknown.add(f"list:{name}")
            continue
        for element in elements:
            extra = element.value.keys() - values if isinstance(element.value, dict) else ()
            unknown.update(f"list:{name}.{key}" for key in extra)
    return sorted(unknown)


def _read_sets(doc: RecordDoc, roots: set[str] | None = None) -> dict[str, list[crdt.SetElement]]:
    try:
        return crdt.all_elements(doc, in_transaction=True, roots=roots)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise MalformedRecordError(
            f"a set holds a malformed element ({content_problem(exc)})"
        ) from exc


def _set_conflict_rows(
    record_id: str,
    rtype: RecordType,
    doc: RecordDoc,
    sets: dict[str, list[crdt.SetElement]],
    roots: set[str] | None = None,
) -> Rows:
    """Conflicts on list fields (the same item changed on two workstations at once)."""
    if not _has_keyed_lists(rtype):
        return []
    try:
        history = crdt.all_history(doc, in_transaction=True, roots=roots)
    except (ValueError, KeyError, TypeError, RecursionError, AttributeError) as exc:
        raise MalformedRecordError(
            f"a set's history holds a malformed entry ({content_problem(exc)})"
        ) from exc
    if not history:  # no list ever changed: analyse() would find nothing on any field
        return []
    rows: Rows = []
    for list_field in rtype.sets:
        found = set_conflicts.analyse(
            list_field, history.get(list_field, []), sets.get(list_field, [])
        )
        if found is not None:
            rows.append(
                (
                    conflict_id(record_id, list_field),
                    record_id,
                    rtype.name,
                    list_field,
                    json.dumps(found.to_json(), sort_keys=True),
                )
            )
    return rows


@functools.cache
def _has_keyed_lists(rtype: RecordType) -> bool:
    return any(f in set_conflicts.KEY_COLUMNS for f in rtype.sets)


def _children(
    record_id: str, rtype: RecordType, sets: dict[str, list[crdt.SetElement]]
) -> dict[str, Rows]:
    out: dict[str, Rows] = {}
    for child in rtype.lists:
        columns, stamped = child.value_columns, child.stamped
        rows: Rows = []
        for element in sets.get(child.name, []):
            row = [element.element_id, record_id, *(element.value.get(c) for c in columns)]
            if stamped:
                row += [hlc_time(element.hlc), element.author]
            row += [c.compute(element.value) for c in child.computed if c.compute]
            rows.append(tuple(row))
        out[child.table] = rows
    return out


def _main_row(record_id: str, rtype: RecordType, values: dict[str, Any]) -> tuple[Any, ...]:
    # One comprehension over the spec's column plan (runs for every record changed).
    return (
        record_id,
        *[
            (values[name] if fallback is None else values[name] or fallback)
            if compute is None
            else compute(values)
            for name, fallback, compute in rtype.plan
        ],
    )


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


@functools.lru_cache(maxsize=64)
def _upsert_sql(table: str, columns: tuple[str, ...]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    return f"{_insert_sql(table, columns)} ON CONFLICT (id) DO UPDATE SET {updates}"


@functools.lru_cache(maxsize=256)
def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {table} SET {sets} WHERE id = ?"


@functools.lru_cache(maxsize=64)
def _select_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} WHERE id = ?"


def _same(new: Any, stored: Any) -> bool:
    """True when storing ``new`` would leave the stored value exactly as it is: equal and of
    the same kind (1 and 1.0, or '1' and 1, are stored differently, so they count as a
    change; a bool is stored as the integer SQLite reads back)."""
    if isinstance(new, bool):
        new = int(new)
    if isinstance(new, memoryview):
        new = bytes(new)
    return type(new) is type(stored) and new == stored


def _queue_main_row(
    tx: Transaction, writes: Writes, rtype: RecordType, record_id: str, row: tuple[Any, ...]
) -> None:
    """Queue the record's own row, rewriting only the columns whose value changed.

    SQLite rewrites the entry of every index on a column an UPDATE sets, even to the value
    it holds, and each entry rewritten dirties a page that is then written (and, on the
    encrypted file, encrypted and authenticated). Setting every column, as the upsert does,
    made a phone number edit write a page of each of the patients' name, birth date and MRN
    indexes (README, Performance: local writes). Same row afterwards either way; reads the
    row first, so only for a record stored alone (the rows queued before it in ``writes``
    are its own list rows, which never change its own row)."""
    columns = rtype.column_names
    current = tx.query(_select_sql(rtype.table, columns[1:]), (record_id,))
    if not current:
        writes.add(rtype.table, record_id, _upsert_sql(rtype.table, columns), row)
        return
    changed = [i for i, stored in enumerate(current[0], 1) if not _same(row[i], stored)]
    if changed:
        sql = _update_sql(rtype.table, tuple(columns[i] for i in changed))
        writes.add(rtype.table, record_id, sql, (*(row[i] for i in changed), record_id))


def _insert(
    writes: Writes, table: str, record_id: str, columns: tuple[str, ...], rows: Rows
) -> None:
    sql = _insert_sql(table, columns)
    for row in rows:
        writes.add(table, record_id, sql, row)


# Table pairs a foreign key links: each list's child table and its record's own table.
_LINKED: frozenset[tuple[str, str]] = frozenset(
    pair
    for rtype in RECORD_TYPES.values()
    for child in rtype.lists
    for pair in ((child.table, rtype.table), (rtype.table, child.table))
)


@dataclass
class _Group:
    table: str
    sql: str
    rows: Rows
    records: set[str]


class Writes:
    """Row writes of one or more records' materializations, run as few ``executemany``.

    Statements are added in the order writing one record after another runs them. One
    joins the latest queued group of the same statement when it commutes with every group
    queued after that group: they write other tables, and none linked to its own by a
    foreign key on behalf of the same record (child rows always name their own record, so
    the writes of two records never touch or check each other's rows). So every table
    receives its statements in the original order (same rows, rowids and FTS trigger work)
    and every foreign-key check sees what it saw before. Only a batch that fails anyway
    (a constraint broken) may report another of its failing statements first.
    """

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._groups: list[_Group] = []

    def add(self, table: str, record_id: str, sql: str, row: tuple[Any, ...]) -> None:
        """Queue one statement (``sql`` with ``row``) writing ``table`` for ``record_id``."""
        for group in reversed(self._groups):
            if group.sql == sql:
                group.rows.append(row)
                group.records.add(record_id)
                return
            if group.table == table or (
                record_id in group.records and (group.table, table) in _LINKED
            ):
                break
        self._groups.append(_Group(table, sql, [row], {record_id}))

    def flush(self) -> None:
        """Run every queued statement."""
        groups, self._groups = self._groups, []
        for group in groups:
            if (
                group.table in _INDEXED
                and len(group.rows) > 1
                and len(group.records) == len(group.rows)
                and group.sql.startswith("INSERT ")
            ):
                _insert_rows(self._tx, group)
            else:
                self._tx.executemany(group.sql, group.rows)


# Tables whose rows a trigger copies into a full-text index (patients -> patients_fts).
# SQLite opens a statement savepoint for every statement that writes through such a
# trigger, and FTS5 writes the terms it holds in memory to disk as a new index segment at
# every savepoint, then merges segments: with one ``executemany`` row per patient, every
# patient was a segment of its own and its merges, about 18 of a first download's 90 µs per
# patient. Their inserts run as multi-row INSERTs instead (the same rows, in the same order,
# through the same triggers, so the same rowids and index content): one savepoint, one
# segment per statement. Only when each row is another record's (a record's second row in
# one statement would meet its first, where ``executemany`` ran them one after the other).
_INDEXED = frozenset({"patients"})
# Bound parameters per statement (SQLite's default limit since 3.32): a whole snapshot page
# of patients (2,000 rows of 14 values) in one statement, so one index segment per page.
# In statements of 250 rows the segments were merged as they came, leaving freed pages in
# the file: 2,443 pages against 2,266 (as before) after 20,000 patients, for no less CPU.
_MAX_VARIABLES = 32766


def _insert_rows(tx: Transaction, group: _Group) -> None:
    """``group``'s INSERT (one row per record) as a few multi-row statements."""
    width = len(group.rows[0])
    per = max(1, _MAX_VARIABLES // width)
    for start in range(0, len(group.rows), per):
        chunk = group.rows[start : start + per]
        params = tuple(itertools.chain.from_iterable(chunk))
        tx.execute(_many_rows_sql(group.sql, width, len(chunk)), params)


@functools.lru_cache(maxsize=16)
def _many_rows_sql(sql: str, width: int, count: int) -> str:
    """``sql`` (an INSERT of one row of ``width`` values, as ``_insert_sql`` writes it) for
    ``count`` rows."""
    one = "(" + ", ".join("?" * width) + ")"
    head, values, tail = sql.partition(f" VALUES {one}")
    if not values:
        raise ValueError(f"not a one-row INSERT of {width} values: {sql}")
    return f"{head} VALUES {', '.join([one] * count)}{tail}"


def mark_unknown(
    writes: Writes, record_id: str, type_name: str, unknown: str, fresh: bool = False
) -> None:
    """Queue the record's entry among those this version cannot fully show (or its removal
    when ``unknown`` is empty): the count behind "Update Careline to see N newer records".
    ``fresh``: the record was never stored, so it has no entry to remove."""
    if not fresh:
        writes.add(
            "unknown_records", record_id, "DELETE FROM unknown_records WHERE id = ?", (record_id,)
        )
    if unknown:
        writes.add(
            "unknown_records",
            record_id,
            "INSERT INTO unknown_records (id, type, parts) VALUES (?, ?, ?)",
            (record_id, type_name, unknown),
        )


def materialize(
    tx: Transaction,
    record_id: str,
    rtype: RecordType,
    doc: RecordDoc,
    previous: dict[str, str] | None = None,
    writes: Writes | None = None,
    fresh: bool = False,
    narrow: bool = False,
) -> dict[str, str]:
    """Bring the derived rows of one record up to date; returns the new part digests.

    ``previous`` holds the digests stored after the last materialization: parts whose
    digest did not change are left alone, which keeps remote apply fast. With ``writes``
    the statements are only queued there (the caller flushes them, with other records').
    ``fresh``: nothing was ever derived from the record (it was never stored), so no row
    is deleted before the new ones are inserted (a first download's records).
    ``narrow``: the record is stored alone (a local change); its own row, if it exists,
    is updated in the columns that changed only (see ``_queue_main_row``).
    """
    own = writes is None
    out = Writes(tx) if writes is None else writes
    # A record never stored (a first download's) is derived once here: its entries are
    # parsed without filling the cache that edits of records already held are read through.
    derived = derive(record_id, rtype, doc, cache=not fresh)
    digests = derived.digests()
    old = previous or {}
    tables: tuple[ListSpec, ...] = rtype.lists
    children_changed = old.get("children") != digests["children"]
    if children_changed and not fresh:
        for child in tables:
            out.add(
                child.table,
                record_id,
                f"DELETE FROM {child.table} WHERE {child.parent} = ?",
                (record_id,),
            )
    if old.get("main") != digests["main"]:
        if derived.main and narrow and not fresh:
            _queue_main_row(tx, out, rtype, record_id, derived.main[0])
        elif derived.main:
            out.add(
                rtype.table,
                record_id,
                _upsert_sql(rtype.table, rtype.column_names),
                derived.main[0],
            )
        elif not fresh:
            out.add(rtype.table, record_id, f"DELETE FROM {rtype.table} WHERE id = ?", (record_id,))
    if children_changed:
        for child in tables:
            rows = derived.children.get(child.table, [])
            _insert(out, child.table, record_id, child.column_names, rows)
    if old.get(UNKNOWN_KEY, "") != digests.get(UNKNOWN_KEY, ""):
        mark_unknown(out, record_id, rtype.name, digests.get(UNKNOWN_KEY, ""), fresh)
    if old.get("conflicts") != digests["conflicts"]:
        if not fresh:
            out.add(
                "conflicts", record_id, "DELETE FROM conflicts WHERE record_id = ?", (record_id,)
            )
        columns = ("id", "record_id", "record_type", "field", "candidates")
        _insert(out, "conflicts", record_id, columns, derived.conflicts)
    if own:
        out.flush()
    return digests
