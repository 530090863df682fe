"""``db check``'s comparison of the derived tables with the record documents.

The documents in ``record_states`` are the source of truth; every table row (and the
patients' search index) is derived from them. A row edited, added or removed directly in
SQL, under the documents, is found here: every record is derived again (in batches) and
compared with what the tables hold, and the records that differ are named.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.records import crdt
from core.records.materialize import derive
from core.records.rows import Rows
from core.records.types import RECORD_TYPES, RecordType
from core.store.database import Database
from core.store.state_codec import unpack_state

BATCH = 500
# A document is only read here; a client id is needed to load one, never used to write.
_READER_CLIENT_ID = 1


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def _rows_by_id(
    db: Database, table: str, columns: Iterable[str], key: str, ids: list[str]
) -> dict[str, list[tuple[Any, ...]]]:
    cols = list(columns)
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in db.query(
        f"SELECT {', '.join(cols)} FROM {table} WHERE {key} IN ({_marks(len(ids))})", tuple(ids)
    ):
        found.setdefault(str(row[cols.index(key)]), []).append(tuple(row))
    return found


def _same(stored: list[tuple[Any, ...]], derived: Rows) -> bool:
    return sorted(map(repr, stored)) == sorted(repr(tuple(r)) for r in derived)


def _check_batch(db: Database, batch: list[tuple[str, RecordType, bytes]]) -> list[str]:
    """Names of the records in ``batch`` whose rows differ from their documents."""
    differ: dict[str, str] = {}
    by_type: dict[str, list[tuple[str, Any]]] = {}
    for record_id, rtype, state in batch:
        derived = derive(record_id, rtype, crdt.load(state, _READER_CLIENT_ID))
        by_type.setdefault(rtype.name, []).append((record_id, derived))
    for type_name, items in by_type.items():
        rtype = RECORD_TYPES[type_name]
        ids = [record_id for record_id, _ in items]
        main = _rows_by_id(db, rtype.table, rtype.column_names, "id", ids)
        children = {
            child.table: _rows_by_id(db, child.table, child.column_names, child.parent, ids)
            for child in rtype.lists
        }
        for record_id, derived in items:
            if not _same(main.get(record_id, []), derived.main):
                differ[record_id] = f"{type_name} {record_id}: its {rtype.table} row"
                continue
            for child in rtype.lists:
                if not _same(
                    children[child.table].get(record_id, []),
                    derived.children.get(child.table, []),
                ):
                    differ[record_id] = f"{type_name} {record_id}: its {child.table} rows"
                    break
    return list(differ.values())


def _orphans(db: Database) -> list[str]:
    """Rows of the records' own tables with no document behind them."""
    found: list[str] = []
    for rtype in RECORD_TYPES.values():
        for (row_id,) in db.query(
            f"SELECT id FROM {rtype.table} WHERE id NOT IN (SELECT id FROM record_states)"
        ):
            found.append(f"{rtype.name} {row_id}: a {rtype.table} row with no record document")
    return found


def _search_index(db: Database) -> list[str]:
    """FTS5's own check of the patients' search index against the patients table."""
    try:
        db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")
    except Exception as exc:  # the driver's error says what is wrong with the index
        return [f"the patient search index does not match the patients table ({exc})"]
    return []


def derived_differences(db: Database, batch_size: int = BATCH) -> list[str]:
    """Every record whose table rows differ from what its document derives, named by type
    and id with the table that differs; rows with no document; a search index out of step.
    Empty when the tables are exactly what the documents say."""
    problems: list[str] = []
    after = ""
    while True:
        rows = db.query(
            "SELECT id, type, state FROM record_states WHERE id > ? ORDER BY id LIMIT ?",
            (after, batch_size),
        )
        if not rows:
            break
        after = str(rows[-1][0])
        batch = [
            (str(r[0]), RECORD_TYPES[str(r[1])], unpack_state(r[2]))
            for r in rows
            if str(r[1]) in RECORD_TYPES  # a newer version's type has no table here
        ]
        problems += _check_batch(db, batch)
    return problems + _orphans(db) + _search_index(db)
