"""Throwaway measurement (issue 17, branch perf17): local-write ratio and pages per add for
SQLCipher page sizes and HMAC algorithms, against plain SQLite at the same page size and at
4096. Reuses the store bench's phases (bulk insert, add_patient interleaved, WAL frames).

    python -m tests.bench.notes.perf17_cipher_pages [--patients 20000] [--per-op 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from core.crypto.kdf import FAST_PARAMS
from core.records.clinic import ClinicRecords
from core.store.database import Database
from tests.bench import store_bench as sb
from tests.bench.runner import enforcing
from tests.bench.synthetic import make_patients

WAL_HEADER = 32


def plain(name: str, directory: Path, page: int, pre: tuple[str, ...] = ()) -> sb.Store:
    path = directory / f"{name}.db"
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA page_size = {page}")
    for sql in pre:
        conn.execute(sql)
    sb._configure(conn)
    return sb.Store(name, f"stdlib sqlite page_size {page}", Database(path, conn))


def cipher(
    name: str, directory: Path, page: int, hmac: str, extra: tuple[str, ...] = ()
) -> sb.Store:
    pragmas = (
        f"PRAGMA cipher_page_size = {page}",
        f"PRAGMA cipher_hmac_algorithm = {hmac}",
        *extra,
    )
    return sb._sqlcipher_keyed(name, directory, pragmas, f"sqlcipher page {page} {hmac}")


def nokey(name: str, directory: Path, page: int) -> sb.Store:
    import sqlcipher3

    path = directory / f"{name}.db"
    conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA page_size = {page}")
    sb._configure(conn)
    return sb.Store(name, f"sqlcipher build, no key, page_size {page}", Database(path, conn))


def add_phase(stores: list[sb.Store], people: list[Any], block: int = 25) -> dict[str, Any]:
    """add_patient interleaved in blocks (order rotated); wall and thread-CPU ns per add."""
    import gc
    import time

    wall: dict[str, list[int]] = {s.name: [] for s in stores}
    cpu: dict[str, list[int]] = {s.name: [] for s in stores}
    blocks: dict[str, list[int]] = {s.name: [] for s in stores}
    records = {s.name: s.records for s in stores}
    gc.collect()
    for turn, start in enumerate(range(0, len(people), block)):
        for store in sb.rotated(stores, turn):
            add = records[store.name].add_patient
            b = 0
            for p in people[start : start + block]:
                c0 = time.thread_time_ns()
                t0 = time.perf_counter_ns()
                add(p.family, p.given, p.birth_date, p.sex, p.mrn, p.phone)
                t1 = time.perf_counter_ns()
                c1 = time.thread_time_ns()
                wall[store.name].append(t1 - t0)
                cpu[store.name].append(c1 - c0)
                b += c1 - c0
            blocks[store.name].append(b)
    return {"wall": wall, "cpu": cpu, "blocks": blocks}


def set_up(store: sb.Store) -> sb.Store:
    ClinicRecords(store.db, "bench", FAST_PARAMS).set_up_clinic(
        "Bench Clinic", "bench", "Bench Author", "bench horse battery"
    )
    return store


def frames_per_add(store: sb.Store, page: int, people: list[Any]) -> float:
    conn = store.db._require()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    wal = Path(f"{store.db.path}-wal")
    before = wal.stat().st_size if wal.exists() else 0
    add = store.records.add_patient
    for p in people:
        add(p.family, p.given, p.birth_date, p.sex, p.mrn, p.phone)
    size = wal.stat().st_size - max(before, WAL_HEADER if before == 0 else before)
    conn.execute("PRAGMA wal_autocheckpoint = 1000")
    return round(size / (page + 24) / len(people), 2)


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


def _fts(key: str, value: int) -> str:
    return f"INSERT INTO patients_fts (patients_fts, rank) VALUES ('{key}', {value});"


# Schema variants applied to every store (baseline included: the bench's baseline runs the
# same migration SQL), after the clinic is set up.
SCHEMAS = {
    "base": "",
    "states_without_rowid": WITHOUT_ROWID_STATES,
    "fts_automerge2": _fts("automerge", 2),
    "fts_automerge8": _fts("automerge", 8),
    "fts_automerge16": _fts("automerge", 16) + _fts("crisismerge", 32),
    "fts_pgsz1000": _fts("pgsz", 1000),
}
# Filling record_states for the bulk-inserted patients as a first download would (a state
# of about the deflated size, 24-byte digests); the store bench leaves it nearly empty.
FILL_STATES = (
    "INSERT INTO record_states (id, type, state, derived) "
    "SELECT id, 'patient', randomblob(150), randomblob(24) FROM patients "
    "WHERE id NOT IN (SELECT id FROM record_states)"
)

VARIANTS = {
    "nokey1024": ("nokey", 1024, None),
    "nokey2048": ("nokey", 2048, None),
    "nokey4096": ("nokey", 4096, None),
    # name: (kind, page, hmac)
    "plain1024": ("plain", 1024, None),
    "plain2048": ("plain", 2048, None),
    "plain4096": ("plain", 4096, None),
    "plain8192": ("plain", 8192, None),
    "sc8192_512": ("cipher", 8192, "HMAC_SHA512"),
    "sc8192_256": ("cipher", 8192, "HMAC_SHA256"),
    "sc1024_512": ("cipher", 1024, "HMAC_SHA512"),
    "sc2048_512": ("cipher", 2048, "HMAC_SHA512"),
    "sc4096_512": ("cipher", 4096, "HMAC_SHA512"),
    "sc1024_256": ("cipher", 1024, "HMAC_SHA256"),
    "sc2048_256": ("cipher", 2048, "HMAC_SHA256"),
    "sc4096_256": ("cipher", 4096, "HMAC_SHA256"),
}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--per-op", type=int, default=1_000)
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--schema", default="base", choices=sorted(SCHEMAS))
    ap.add_argument("--fill-states", action="store_true")
    ap.add_argument("--seed", type=int, default=20_240_601)
    args = ap.parse_args(argv)
    names = args.variants.split(",")
    people = make_patients(args.patients + args.per_op + args.sample, args.seed)
    bulk = people[: args.patients]
    extra = people[args.patients : args.patients + args.per_op]
    sample = people[args.patients + args.per_op :]
    load0 = os.getloadavg()
    with enforcing(), tempfile.TemporaryDirectory(prefix="perf17-") as tmp:
        stores = []
        for name in names:
            kind, page, hmac = VARIANTS[name]
            d = Path(tmp) / name
            d.mkdir()
            if kind == "plain":
                s = plain(name, d, page)
            elif kind == "nokey":
                s = nokey(name, d, page)
            else:
                s = cipher(name, d, page, hmac or "HMAC_SHA512")
            stores.append(set_up(s))
            if SCHEMAS[args.schema]:
                s.db._require().executescript(SCHEMAS[args.schema])
        sb.log(f"bulk {args.patients}")
        sb.bulk_insert(stores, bulk, 1000)
        if args.fill_states:
            for s in stores:
                s.db._require().execute(FILL_STATES)
        for s in stores:
            s.db._require().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        bulk_bytes = {s.name: sb.file_bytes(s) for s in stores}
        sb.log(f"add_patient {args.per_op}")
        adds = add_phase(stores, extra)
        sb.log("frames")
        frames = {s.name: frames_per_add(s, VARIANTS[s.name][1], sample) for s in stores}
        settings = {
            s.name: [str(r[0]) for r in s.db.query("PRAGMA page_size")]
            + [str(r[0]) for r in s.db.query("PRAGMA cipher_hmac_algorithm")]
            if VARIANTS[s.name][0] == "cipher"
            else [str(r[0]) for r in s.db.query("PRAGMA page_size")]
            for s in stores
        }
        for s in stores:
            s.close()

    def m(key: str, n: str) -> float:
        return statistics.fmean(adds[key][n]) / 1e6

    out: dict[str, Any] = {
        "schema": args.schema,
        "fill_states": args.fill_states,
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
    }
    for n in names:
        kind, page, _ = VARIANTS[n]
        row: dict[str, Any] = {
            "wall_mean_ms": round(m("wall", n), 4),
            "cpu_mean_ms": round(m("cpu", n), 4),
            "cpu_p50_ms": round(statistics.median(adds["cpu"][n]) / 1e6, 4),
            "frames_per_add": frames[n],
            "bytes_per_add": round(frames[n] * page),
            "bulk_file_B_per_patient": round(bulk_bytes[n] / args.patients, 1),
            "settings": settings[n],
        }
        for base in (f"plain{page}", "plain4096", f"nokey{page}", "nokey4096"):
            against_plain = kind == "nokey" and base.startswith("plain")
            if base in names and base != n and (kind == "cipher" or against_plain):
                row[f"wall_ratio_vs_{base}"] = round(m("wall", n) / m("wall", base), 3)
                row[f"cpu_ratio_vs_{base}"] = round(m("cpu", n) / m("cpu", base), 3)
                per_block = [
                    a / b for a, b in zip(adds["blocks"][n], adds["blocks"][base], strict=True)
                ]
                row[f"cpu_block_median_ratio_vs_{base}"] = round(statistics.median(per_block), 3)
        out[n] = row
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
