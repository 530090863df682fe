"""What the bytes of a replica's database file are: a per-table breakdown.

The SQLCipher build Careline uses has no ``dbstat`` table, so the breakdown is read from a
plaintext copy (``sqlcipher_export`` into a database attached with an empty key) with the
standard library's SQLite, which has it. The copy holds the same rows, indexes and
full-text index, packed as the export rewrote them, without SQLCipher's per-page reserve
(IV and HMAC); the real encrypted file's size is reported beside it. The copy is made in
the benchmark's own temporary folder, holds only the benchmark's synthetic records, and is
deleted at once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core.store.database import Database


def _owner(name: str, tables: dict[str, str], virtual: list[str]) -> str:
    """The table a b-tree belongs to: an index's table, a virtual table's shadow tables'
    virtual table (``patients_fts_data`` -> ``patients_fts``)."""
    owner = tables.get(name, name)
    for vtab in virtual:
        if owner.startswith(f"{vtab}_"):
            return vtab
    return owner


def file_bytes(db: Database) -> int:
    """The database file's size once its write-ahead log is checkpointed into it."""
    db.query("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{db.path}-wal")
    return db.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def breakdown(db: Database, records: int, scratch: Path) -> dict[str, Any]:
    """The file's size per record, and each table's share (its indexes and, for the
    full-text index, its shadow tables counted with it) from ``dbstat``."""
    total = file_bytes(db)
    [(page_size,)] = db.query("PRAGMA page_size")
    [(page_count,)] = db.query("PRAGMA page_count")
    [(free_pages,)] = db.query("PRAGMA freelist_count")
    plain = scratch / "dbstat-plain-copy.db"
    plain.unlink(missing_ok=True)
    db.query("ATTACH DATABASE ? AS dbstat_copy KEY ''", (str(plain),))
    try:
        db.query("SELECT sqlcipher_export('dbstat_copy')")
    finally:
        db.query("DETACH DATABASE dbstat_copy")
    try:
        conn = sqlite3.connect(plain)
        try:
            master = conn.execute("SELECT name, tbl_name, type, sql FROM sqlite_master").fetchall()
            tables = {str(n): str(t) for n, t, _, _ in master}
            virtual = [str(n) for n, _, _, sql in master if "VIRTUAL TABLE" in str(sql).upper()]
            stats = conn.execute(
                "SELECT name, sum(pgsize), sum(payload), sum(unused), count(*) FROM dbstat "
                "GROUP BY name"
            ).fetchall()
        finally:
            conn.close()
    finally:
        plain.unlink(missing_ok=True)
    by_table: dict[str, dict[str, float]] = {}
    by_btree: dict[str, int] = {}
    for name, size, payload, unused, pages in stats:
        owner = _owner(str(name), tables, virtual)
        entry = by_table.setdefault(owner, {"bytes": 0, "payload": 0, "unused": 0, "pages": 0})
        entry["bytes"] += int(size)
        entry["payload"] += int(payload)
        entry["unused"] += int(unused)
        entry["pages"] += int(pages)
        by_btree[str(name)] = int(size)
    ordered = dict(sorted(by_table.items(), key=lambda kv: -kv[1]["bytes"]))
    for entry in ordered.values():
        entry["bytes_per_record"] = round(entry["bytes"] / records, 1) if records else 0
    return {
        "file_bytes": total,
        "bytes_per_record": round(total / records, 1) if records else None,
        "page_size": int(page_size),
        "pages": int(page_count),
        "free_pages": int(free_pages),
        "by_table": ordered,
        "by_btree": dict(sorted(by_btree.items(), key=lambda kv: -kv[1])),
        "how": "file_bytes: the encrypted file after a WAL checkpoint; by_table: dbstat of a "
        "plaintext export (same rows and indexes, no SQLCipher page reserve), indexes and "
        "FTS shadow tables counted with their table",
    }
