"""Differential: bootstrapping from snapshot pages gives exactly what applying the history
op by op gives, and a page stored as one batch writes exactly what storing its records one
at a time writes.

The history is the golden workload's (``tests/unit/records/golden``): every record type,
list changes, signed notes with addenda, deletions and register, list, edit-vs-delete and
signed-note conflicts.
"""

from __future__ import annotations

import functools
from typing import Any

from core.records.clinic import ClinicRecords
from core.records.replication import (
    SnapshotPage,
    apply_ops,
    apply_snapshot_page,
    finish_snapshot,
    snapshot_page,
)
from core.store import oplog
from core.store.database import Database
from tests.clinic_identity import vouched
from tests.unit.records.golden.workload import load_ops
from tests.unit.sync.replicas import dump_diff, materialized, new_replica

# Each database's own identity, certificate and audit trail (times, page sizes): not data.
_OWN = ("meta", "audit_log", "device_certs")


@functools.cache
def _history() -> tuple[oplog.Op, ...]:
    return tuple(vouched(load_ops()))


def _op_by_op(count: int | None = None) -> ClinicRecords:
    """A replica that applied the first ``count`` ops of the history (all: None), one each."""
    replica = new_replica("test")
    for op in _history()[:count]:
        apply_ops(replica.db, [op], "test")
    return replica


def _pages(db: Database, limit: int, forms: frozenset[str] = frozenset()) -> list[SnapshotPage]:
    pages, after = [], None
    while True:
        page = snapshot_page(db, after, limit, forms)
        pages.append(page)
        if page.next_after is None:
            return pages
        after = page.next_after


def _bootstrap(replica: ClinicRecords, pages: list[SnapshotPage]) -> ClinicRecords:
    for page in pages:
        assert apply_snapshot_page(replica.db, page, "test") == len(page.records)
    finish_snapshot(replica.db, pages[0].vector, "test")
    return replica


def _dump(db: Database) -> dict[str, list[Any]]:
    """Every table but each database's own identity and audit trail, rowids and the
    full-text index's own storage included."""
    out: dict[str, list[Any]] = {}
    for (table,) in db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        if table in _OWN or table == "patients_fts":  # read through its shadow tables
            continue
        try:
            out[table] = db.query(f"SELECT rowid, * FROM {table} ORDER BY rowid")
        except Exception:  # WITHOUT ROWID tables
            out[table] = db.query(f"SELECT * FROM {table} ORDER BY 1")
    return out


def test_a_replica_bootstrapped_from_pages_holds_what_op_by_op_apply_gives() -> None:
    source = _op_by_op()
    fresh = _bootstrap(new_replica("test"), _pages(source.db, 4))
    assert len(_pages(source.db, 4)) > 3  # several pages, each a batch of several records
    differ = dump_diff(materialized(source), materialized(fresh))
    assert not differ, f"the snapshot replica differs in {differ}"
    assert oplog.version_vector(fresh.db) == oplog.version_vector(source.db)
    assert fresh.conflicts() and [c.to_dict() for c in fresh.conflicts()] == [
        c.to_dict() for c in source.conflicts()
    ]


def test_a_snapshot_merged_into_records_already_held_gives_the_same() -> None:
    """Half the history op by op, then a snapshot of all of it: held records are merged,
    their stale rows replaced, new ones inserted."""
    source = _op_by_op()
    half = len(_history()) // 2
    behind = _bootstrap(_op_by_op(half), _pages(source.db, 3))
    differ = dump_diff(materialized(source), materialized(behind))
    assert not differ, f"the merged replica differs in {differ}"


def test_a_page_stored_as_one_batch_writes_what_one_record_at_a_time_writes() -> None:
    """Byte for byte, rowids and the full-text index's storage included: on two replicas
    holding the same first part of the history, the rest arrives as pages of 6 records on
    one and of a single record on the other."""
    source = _op_by_op()
    third = len(_history()) // 3
    batched, single = _op_by_op(third), _op_by_op(third)
    assert _dump(batched.db) == _dump(single.db)
    _bootstrap(batched, _pages(source.db, 6))
    _bootstrap(single, _pages(source.db, 1))
    assert _dump(batched.db) == _dump(single.db)
    assert not dump_diff(materialized(batched), materialized(source))


_STORED = frozenset({"deflate1"})  # pages whose states travel as the source holds them


def test_pages_in_stored_form_give_byte_for_byte_what_plain_pages_give() -> None:
    """States sent deflated (``state_forms``) and kept as received: the same bytes in every
    table as states sent plain and deflated here, for new records and merged ones."""
    source = _op_by_op()
    packed = _pages(source.db, 4, _STORED)
    assert all(page.forms == _STORED for page in packed)
    assert any(state.state.startswith(b"\x81\x00") for page in packed for state in page.records)
    assert _dump(_bootstrap(new_replica("test"), packed).db) == _dump(
        _bootstrap(new_replica("test"), _pages(source.db, 4)).db
    )
    half = len(_history()) // 2
    merged = _bootstrap(_op_by_op(half), _pages(source.db, 3, _STORED))
    assert not dump_diff(materialized(source), materialized(merged))
    assert _dump(merged.db) == _dump(_bootstrap(_op_by_op(half), _pages(source.db, 3)).db)
