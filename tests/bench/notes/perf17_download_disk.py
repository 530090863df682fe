"""Throwaway measurement (issue 17, branch perf17): bytes per record after a first download,
for SQLCipher page sizes / HMAC algorithms and schema variants of the workstation's file.

One server (seeded once, in its own process as in desktop_sync_bench); one new workstation
per variant, downloading the whole clinic; its file's size after a TRUNCATE checkpoint and a
dbstat breakdown of a plaintext export made at the same page size.

    python -m tests.bench.notes.perf17_download_disk [records] [variant ...]
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail

import core.store.database as dbmod
from core.crypto.kdf import FAST_PARAMS
from core.keys.providers import provider_from_settings
from core.records import op_trust
from core.records.workstation import Workstation
from core.server.service import ClinicServer
from core.server.settings import load_server_settings
from core.sync.enroll import adopt_credential, enroll, tls_trust
from core.sync.http_transport import HttpTransport
from core.sync.session import sync
from tests.bench.desktop_sync_bench import PASSWORD, _bulk_patients
from tests.bench.disk_usage import _owner, file_bytes
from tests.bench.server_bench import server_process

WITHOUT_ROWID_STATES = """
CREATE TABLE record_states_new (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, state BLOB NOT NULL,
    derived TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
INSERT INTO record_states_new SELECT id, type, state, derived FROM record_states;
DROP TABLE record_states;
ALTER TABLE record_states_new RENAME TO record_states;
CREATE INDEX record_states_authz ON record_states (type) WHERE type IN ('user', 'relation');
"""


def fts(key: str, value: int) -> str:
    return f"INSERT INTO patients_fts (patients_fts, rank) VALUES ('{key}', {value});"


# name: (cipher pragmas, SQL run on the new, empty replica before the download)
VARIANTS: dict[str, tuple[tuple[str, ...], str]] = {
    "p4096_sha512": ((), ""),
    "p2048_sha512": (("PRAGMA cipher_page_size = 2048",), ""),
    "p1024_sha512": (("PRAGMA cipher_page_size = 1024",), ""),
    "p4096_sha256": (("PRAGMA cipher_hmac_algorithm = HMAC_SHA256",), ""),
    "p2048_sha256": (
        ("PRAGMA cipher_page_size = 2048", "PRAGMA cipher_hmac_algorithm = HMAC_SHA256"),
        "",
    ),
    "p1024_sha256": (
        ("PRAGMA cipher_page_size = 1024", "PRAGMA cipher_hmac_algorithm = HMAC_SHA256"),
        "",
    ),
    "p8192_sha512": (("PRAGMA cipher_page_size = 8192",), ""),
    "p16384_sha512": (("PRAGMA cipher_page_size = 16384",), ""),
    "p4096_sha512_states_without_rowid": ((), WITHOUT_ROWID_STATES),
    "p2048_sha256_states_without_rowid": (
        ("PRAGMA cipher_page_size = 2048", "PRAGMA cipher_hmac_algorithm = HMAC_SHA256"),
        WITHOUT_ROWID_STATES,
    ),
    # FTS5 leaf size (pgsz, default 4050) fitted to a smaller page's usable bytes.
    "p2048_sha256_fts_pgsz": (
        ("PRAGMA cipher_page_size = 2048", "PRAGMA cipher_hmac_algorithm = HMAC_SHA256"),
        fts("pgsz", 1900),
    ),
    "p1024_sha256_fts_pgsz": (
        ("PRAGMA cipher_page_size = 1024", "PRAGMA cipher_hmac_algorithm = HMAC_SHA256"),
        fts("pgsz", 900),
    ),
}

_extra: tuple[str, ...] = ()
_original_apply_key = dbmod._apply_key


def _apply_key(conn: Any, key: Any) -> None:
    _original_apply_key(conn, key)
    for pragma in _extra:
        conn.execute(pragma)


dbmod._apply_key = _apply_key


def by_table(db: Any, records: int, scratch: Path, page: int) -> dict[str, Any]:
    plain = scratch / "copy.db"
    plain.unlink(missing_ok=True)
    db.query("ATTACH DATABASE ? AS cp KEY ''", (str(plain),))
    try:
        db.query(f"PRAGMA cp.page_size = {page}")
        db.query("SELECT sqlcipher_export('cp')")
    finally:
        db.query("DETACH DATABASE cp")
    conn = sqlite3.connect(plain)
    master = conn.execute("SELECT name, tbl_name, type, sql FROM sqlite_master").fetchall()
    tables = {str(n): str(t) for n, t, _, _ in master}
    virtual = [str(n) for n, _, _, sql in master if "VIRTUAL TABLE" in str(sql).upper()]
    stats = conn.execute("SELECT name, sum(pgsize), count(*) FROM dbstat GROUP BY name").fetchall()
    copy_page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    plain.unlink()
    out: dict[str, float] = {}
    btrees: dict[str, float] = {}
    for name, size, _pages in stats:
        owner = _owner(str(name), tables, virtual)
        out[owner] = out.get(owner, 0) + size
        btrees[str(name)] = round(size / records, 1)
    top = {k: round(v / records, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])[:6]}
    big = dict(sorted(btrees.items(), key=lambda kv: -kv[1])[:10])
    return {"copy_page_size": copy_page, "by_table": top, "by_btree": big}


def _bulk_real_ids(db: Any, count: int) -> None:
    """As desktop_sync_bench._bulk_patients, but with ids shaped like ClinicRecords' own
    (``new_id``: 16 random hex digits) instead of the bench's 8-character ``p0000001``."""
    import random

    from core.records.changes import change
    from core.records.crdt import RecordDoc, write

    rng = random.Random(17)
    for start in range(0, count, 1000):
        with db.write("bench", "patient.create", "patient", "many") as tx:
            for i in range(start, min(start + 1000, count)):

                def create(doc: RecordDoc, hlc: str, i: int = i) -> None:
                    for f, v in (
                        ("family", f"Fam{i:06d}"),
                        ("given", "G"),
                        ("birth_date", "1980-01-01"),
                    ):
                        write(doc, f, v, hlc, "bench")

                change(tx, "bench", f"{rng.getrandbits(64):016x}", "patient", create)


def main(argv: list[str]) -> int:
    global _extra
    real_ids = os.environ.get("PERF17_REAL_IDS") == "1"
    records = int(argv[0]) if argv else 20_000
    names = argv[1:] or list(VARIANTS)
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    results: dict[str, Any] = {
        "records": records,
        "real_ids": real_ids,
        "loadavg_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="perf17-dl-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "server"
        settings = load_server_settings(cli={"data_dir": data_dir}, env={})
        server = ClinicServer(data_dir, provider_from_settings(settings, data_dir), FAST_PARAMS)
        try:
            clinic = server.create_clinic("Download Bench Clinic").id
            server.add_user(clinic, "admin", "Ada Admin", "admin", PASSWORD)
            (_bulk_real_ids if real_ids else _bulk_patients)(server.replica(clinic), records)
            codes = [server.registry.issue_enroll_code(clinic, 30)[0] for _ in names]
        finally:
            server.close()
        with server_process(data_dir) as running:
            for name, code in zip(names, codes, strict=True):
                pragmas, sql = VARIANTS[name]
                _extra = pragmas
                try:
                    ws = Workstation(folder / name, FAST_PARAMS)
                    ws.prepare_join("admin", PASSWORD)
                    db = ws.database
                    if sql:
                        db._require().executescript(sql)
                    cred = enroll(running.url, code, running.ca_pem, name, op_trust.binding_for(db))
                    adopt_credential(db, cred, "admin")
                    transport = HttpTransport(
                        cred.server_url, cred.token, verify=tls_trust(cred.server_ca_pem)
                    )
                    t0 = time.perf_counter()
                    c0 = time.process_time()
                    sync(db, transport, "admin")
                    cpu = time.process_time() - c0
                    wall = time.perf_counter() - t0
                    transport.close()
                    total = file_bytes(db)
                    [(page,)] = db.query("PRAGMA page_size")
                    [(pages,)] = db.query("PRAGMA page_count")
                    [(free,)] = db.query("PRAGMA freelist_count")
                    [(count,)] = db.query("SELECT count(*) FROM patients")
                    settings_read = [str(r[0]) for r in db.query("PRAGMA cipher_settings")]
                    breakdown = by_table(db, records, folder, int(page))
                    ws.lock()
                finally:
                    _extra = ()
                row = {
                    "B_per_record": round(total / records, 1),
                    "file_bytes": total,
                    "page_size": page,
                    "pages": pages,
                    "free_pages": free,
                    "patients": count,
                    "client_cpu_s": round(cpu, 2),
                    "wall_s": round(wall, 2),
                    "cipher": [s for s in settings_read if "page_size" in s or "hmac_alg" in s],
                    **breakdown,
                }
                print(name, json.dumps(row), file=sys.stderr, flush=True)
                results[name] = row
    results["loadavg_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
