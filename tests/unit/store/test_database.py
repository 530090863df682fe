from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from core.crypto.secure_memory import SecureMemory
from core.store.database import Database
from core.store.errors import (
    DamagedDatabaseError,
    DatabaseMissingError,
    NotCarelineDatabaseError,
    WrongKeyError,
)
from core.store.migrations import LATEST_VERSION
from tests.unit.store.disk import snapshot


def _key() -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(os.urandom(32)))


@pytest.fixture
def db_file(tmp_path: Path) -> tuple[Path, SecureMemory]:
    key = _key()
    db = Database.create(tmp_path / "clinic.db", key)
    with db.write("tester", "patient.create", "patient", "p1") as tx:
        tx.execute(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES ('p1', 'Quixotic', 'Zebedee', '1970-01-01', 'q', 'x', 'x')"
        )
    db.close()
    return tmp_path / "clinic.db", key


def test_new_database_is_migrated_and_private(db_file: tuple[Path, SecureMemory]) -> None:
    path, key = db_file
    db = Database.open(path, key)
    assert db.query("SELECT max(version) FROM schema_version")[0][0] == LATEST_VERSION
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    assert db.integrity_problems() == []
    assert path.stat().st_mode & 0o777 == 0o600
    db.close()


def test_wrong_key_is_refused_and_nothing_changes(db_file: tuple[Path, SecureMemory]) -> None:
    path, _ = db_file
    before = snapshot(path.parent)
    with pytest.raises(WrongKeyError, match="does not decrypt"):
        Database.open(path, _key())
    assert snapshot(path.parent) == before


def test_plain_sqlite_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = snapshot(tmp_path)
    with pytest.raises(NotCarelineDatabaseError, match="plain, unencrypted SQLite"):
        Database.open(path, _key())
    assert snapshot(tmp_path) == before


def test_random_file_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    path.write_bytes(os.urandom(8192))
    (tmp_path / "keyslots.json").write_text("{}")  # a neighbour that must stay untouched
    before = snapshot(tmp_path)
    with pytest.raises(WrongKeyError, match="does not decrypt"):
        Database.open(path, _key())
    # Not even an empty -wal or -shm: the probe opens the file read-only and immutable.
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("keep", [0, 1000, 4096])
def test_truncated_file_is_named(db_file: tuple[Path, SecureMemory], keep: int) -> None:
    path, key = db_file
    with path.open("r+b") as fh:
        fh.truncate(keep)
    before = snapshot(path.parent)
    with pytest.raises(DamagedDatabaseError, match=r"empty|whole number of|truncated|damaged"):
        Database.open(path, key, key_is_known_good=True)
    assert snapshot(path.parent) == before


def test_damaged_first_page_with_known_good_key(db_file: tuple[Path, SecureMemory]) -> None:
    path, key = db_file
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    before = snapshot(path.parent)
    with pytest.raises(DamagedDatabaseError, match="first page fails authentication"):
        Database.open(path, key, key_is_known_good=True)
    # The damaged file is evidence and maybe recoverable: nothing may rewrite or add to it.
    assert snapshot(path.parent) == before


def test_damaged_inner_page_is_found_by_check(db_file: tuple[Path, SecureMemory]) -> None:
    path, key = db_file
    db = Database.open(path, key)
    with db.write("t", "bulk", "patient", "many") as tx:
        tx.executemany(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES (?, ?, 'G', '1970-01-01', 's', 'x', 'x')",
            [(f"id{i}", "F" * 200) for i in range(300)],
        )
    db.close()
    data = bytearray(path.read_bytes())
    data[len(data) - 4096 + 200] ^= 0xFF  # inside the last page
    path.write_bytes(bytes(data))
    db = Database.open(path, key, key_is_known_good=True)
    problems = db.integrity_problems()
    db.close()
    assert problems, "a corrupted page must be reported by db check"


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseMissingError, match="careline init"):
        Database.open(tmp_path / "clinic.db", _key())


def test_write_is_atomic_with_its_audit_entry(db_file: tuple[Path, SecureMemory]) -> None:
    path, key = db_file
    db = Database.open(path, key)
    before = db.query("SELECT count(*) FROM audit_log")[0][0]

    def change_then_crash() -> None:
        with db.write("t", "patient.update", "patient", "p1") as tx:
            tx.execute("UPDATE patients SET family = 'Changed' WHERE id = 'p1'")
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        change_then_crash()
    assert db.query("SELECT family FROM patients WHERE id = 'p1'")[0][0] == "Quixotic"
    assert db.query("SELECT count(*) FROM audit_log")[0][0] == before
    db.close()


def test_rekey_changes_the_key(db_file: tuple[Path, SecureMemory]) -> None:
    path, key = db_file
    db = Database.open(path, key)
    new = _key()
    db.rekey(new)
    db.close()
    with pytest.raises(WrongKeyError):
        Database.open(path, key)
    db = Database.open(path, new)
    assert db.query("SELECT given FROM patients")[0][0] == "Zebedee"
    db.close()


def test_no_plaintext_in_database_wal_or_temp(db_file: tuple[Path, SecureMemory]) -> None:
    path, key = db_file
    db = Database.open(path, key)
    with db.write("t", "patient.update", "patient", "p1") as tx:
        tx.execute("UPDATE patients SET given = 'Zebedee-Xanthippe' WHERE id = 'p1'")
    # While open, the WAL holds the latest pages: check every file in the folder.
    for f in path.parent.iterdir():
        content = f.read_bytes()
        assert b"Quixotic" not in content, f.name
        assert b"Xanthippe" not in content, f.name
    db.close()


def test_hlc_counter_carries_instead_of_widening(db_file: tuple[Path, SecureMemory]) -> None:
    from core.store import oplog

    path, key = db_file
    db = Database.open(path, key)
    with db.write("t", "clock", "meta", "hlc") as tx:
        far = 9_000_000_000_000
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('hlc', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (oplog.format_hlc(far, oplog.HLC_MAX_COUNTER, "r"),),
        )
        nxt = oplog.tick(tx, "r", now_ms=far - 1)  # the wall clock a moment behind
    assert nxt == oplog.format_hlc(far + 1, 0, "r")
    oplog.parse_hlc(nxt)
    db.close()
