"""A consistent copy of an open SQLCipher database while it is in use (online backup).

``sqlcipher_export`` copies every table, index and trigger into an attached database under
another key. It runs on a second connection of its own inside one read transaction: in WAL
mode that transaction reads one snapshot (every committed unit of work, none half-done),
while the app's connection keeps writing; nothing waits for the copy. (SQLite's backup
API, ``Connection.backup``, cannot be used here: SQLCipher refuses it between databases
under different keys, and the copy must be under its own key.)
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlcipher3

from core.crypto.secure_memory import SecureMemory
from core.store.database import _connect
from core.store.errors import StoreError


def export_copy(source: Path, key: SecureMemory, target: Path, target_key: SecureMemory) -> None:
    """Write a consistent copy of the database at ``source`` (opened with ``key``) to the
    new file ``target``, encrypted under ``target_key``. ``target`` must not exist."""
    if target.exists():
        raise StoreError(f"{target} already exists; refusing to overwrite it")
    conn = _connect(source, key, read_only=True, immutable=False)
    try:
        # The ATTACH statement holds the key as text: an immutable str we cannot wipe (as
        # for the main key, see core.store.database).
        conn.execute(f"ATTACH DATABASE ? AS copy KEY \"x'{target_key.hex()}'\"", (str(target),))
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fixes the snapshot
            conn.execute("SELECT sqlcipher_export('copy')")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("DETACH DATABASE copy")
        os.chmod(target, 0o600)
    except sqlcipher3.DatabaseError as exc:
        target.unlink(missing_ok=True)
        raise StoreError(f"could not copy {source} for a backup: {exc}") from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
