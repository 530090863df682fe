"""No plaintext reaches SQLite temp files: sort spills, FTS queries and VACUUM stay in RAM.

SQLCipher encrypts the database and its WAL, but not the sorter's spill files; only
``PRAGMA temp_store = MEMORY`` (set by :class:`Database`) keeps those off the disk. SQLite
unlinks a temp file as soon as it opens it, so a folder listing afterwards proves nothing:
the child process below looks at its own open file descriptors (``/proc/self/fd``) while the
work runs, from SQLite's progress handler, and reads any temp file through its descriptor.
It runs in a fresh process because SQLite reads SQLITE_TMPDIR/TMPDIR once, at start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

NAME = "Xanthippe"

_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from core.crypto.secure_memory import SecureMemory
    from core.store.database import Database

    temp_dir, data_dir, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].encode()
    seen = {}

    def look_at_open_files():
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                if not (target.startswith(str(temp_dir)) or target.endswith("(deleted)")):
                    continue
                with open(f"/proc/self/fd/{fd}", "rb") as fh:
                    hits = fh.read().count(name)
            except OSError:
                continue  # closed meanwhile
            seen[target] = max(seen.get(target, 0), hits)
        return 0

    def heavy_work(db):
        # Make the sorter spill after a few pages (the default 64 MiB cache would hide it).
        db.query("PRAGMA cache_size = 8")
        db._conn.set_progress_handler(look_at_open_files, 2000)
        try:
            db.query("SELECT given, family FROM patients ORDER BY given || family DESC")
            db.query("SELECT count(*) FROM (SELECT DISTINCT family || random() FROM patients)")
            db.query(
                "SELECT rowid, family FROM patients_fts WHERE patients_fts MATCH ? ORDER BY rank",
                (name.decode().lower()[:4] + "*",),
            )
            db.query("VACUUM")
        finally:
            db._conn.set_progress_handler(None, 0)

    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    db = Database.create(data_dir / "clinic.db", key)
    with db.write("t", "bulk", "patient", "many") as tx:
        tx.executemany(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES (?, ?, ?, '1970-01-01', ?, 'x', 'x')",
            [(f"id{i}", f"{name.decode()}{i}", f"{name.decode()}-{'g' * 100}", f"{i:08d}")
             for i in range(20000)],
        )
    result = {"temp_store": db.query("PRAGMA temp_store")[0][0]}
    heavy_work(db)
    result["careline"] = seen
    db.close()

    # Control: the same work with temp files allowed must be seen by the probe above,
    # or the test would pass without looking at anything.
    seen = {}
    db = Database.open(data_dir / "clinic.db", key)
    db.query("PRAGMA temp_store = FILE")
    heavy_work(db)
    result["control"] = seen
    # A build with SQLITE_TEMP_STORE=3 ignores the pragma and never spills at all.
    result["always_memory"] = ("TEMP_STORE=3",) in db.query("PRAGMA compile_options")
    db.close()
    print(json.dumps(result))
    """
)


def test_sort_fts_and_vacuum_leave_no_plaintext_temp_file(tmp_path: Path) -> None:
    temp_dir, data_dir = tmp_path / "tmp", tmp_path / "data"
    temp_dir.mkdir()
    data_dir.mkdir()
    env = {**os.environ, "SQLITE_TMPDIR": str(temp_dir), "TMPDIR": str(temp_dir)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(temp_dir), str(data_dir), NAME],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["temp_store"] == 2  # MEMORY
    # While the clinic's own connection sorted, searched and vacuumed: no temp file at all.
    assert result["careline"] == {}
    # The probe does see spills when they happen, and they hold the name in plaintext.
    if not result["always_memory"]:
        spilled = {t: n for t, n in result["control"].items() if t.startswith(str(temp_dir))}
        assert spilled and max(spilled.values()) > 0, result["control"]
    # Afterwards: nothing left in the temp folder, and no file in either folder holds the name.
    assert list(temp_dir.iterdir()) == []
    for f in data_dir.iterdir():
        assert NAME.encode() not in f.read_bytes(), f.name
