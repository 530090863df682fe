"""An online copy of the database is one consistent snapshot, taken while another
connection keeps writing, and is encrypted under its own key."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from core.crypto.secure_memory import SecureMemory
from core.store.database import Database
from core.store.errors import StoreError, WrongKeyError
from core.store.online_copy import export_copy


def _key() -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(os.urandom(32)))


def _add(db: Database, n: int) -> None:
    # Two rows per unit of work: a copy that split a unit would hold an odd number.
    with db.write("tester", "patient.create", "patient", f"p{n}") as tx:
        for half in ("a", "b"):
            tx.execute(
                "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
                "updated_at) VALUES (?, 'F', 'G', '1970-01-01', 'f', 'x', 'x')",
                (f"p{n}{half}",),
            )


def test_a_copy_taken_while_another_connection_writes_is_whole_units_of_work(
    tmp_path: Path,
) -> None:
    key = _key()
    db = Database.create(tmp_path / "clinic.db", key)
    for n in range(50):
        _add(db, n)
    stop = threading.Event()

    def keep_writing() -> None:
        n = 1000
        while not stop.is_set():
            _add(db, n)
            n += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    copy_key = _key()
    try:
        export_copy(tmp_path / "clinic.db", key, tmp_path / "copy.db", copy_key)
    finally:
        stop.set()
        writer.join()
    written = db.query("SELECT count(*) FROM patients")[0][0]
    db.close()

    copy = Database.open(tmp_path / "copy.db", copy_key)
    copied = copy.query("SELECT count(*) FROM patients")[0][0]
    assert copied % 2 == 0 and 100 <= copied <= written
    assert copy.integrity_problems() == []
    # The audit chain holds exactly the units of work whose rows were copied.
    assert copy.query("SELECT count(*) FROM audit_log")[0][0] == copied // 2
    assert (tmp_path / "copy.db").stat().st_mode & 0o777 == 0o600
    copy.close()
    with pytest.raises(WrongKeyError):
        Database.open(tmp_path / "copy.db", key)


def test_an_existing_target_is_never_overwritten(tmp_path: Path) -> None:
    key = _key()
    Database.create(tmp_path / "clinic.db", key).close()
    (tmp_path / "copy.db").write_bytes(b"keep me")
    with pytest.raises(StoreError, match="already exists"):
        export_copy(tmp_path / "clinic.db", key, tmp_path / "copy.db", _key())
    assert (tmp_path / "copy.db").read_bytes() == b"keep me"
