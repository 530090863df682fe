"""Which database pages one local write writes, by b-tree (issue 17, local writes).

SQLCipher encrypts and authenticates every page a transaction writes, so pages per local
write is what the write path pays over plain SQLite. This runs the store bench's setup on a
plain-SQLite store (same schema, PRAGMAs and Python; the stdlib build has ``dbstat``, the
SQLCipher build has not), then adds (``ClinicRecords.add_patient``) and edits
(``ClinicRecords.update_patient``, one field, on patients added before) one at a time with
checkpoints held off, reads the page number of every write-ahead-log frame each commit
appended, and names the b-tree each page belongs to (``dbstat`` after the commit; a page
no b-tree holds after the commit, a free-list page or one freed, is ``(freelist)``; page 1,
which holds the file header, is ``(header)``).

    python -m tests.bench.write_pages [--patients 100000] [--adds 60] [--edits 60]

Authorization is on, as on a workstation (and in the store bench). Prints one JSON
object: mean pages per add and per edit, and per b-tree.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from core.records.clinic import ClinicRecords

from .runner import enforcing
from .store_bench import BASELINE, PAGE_BYTES, WAL_FRAME_HEADER, bulk_insert, open_store
from .synthetic import make_patients

WAL_HEADER = 32


def wal_pages(wal: Path, start: int) -> tuple[list[int], int]:
    """Page numbers of the frames appended to ``wal`` from byte ``start`` (0: its header)."""
    data = wal.read_bytes() if wal.exists() else b""
    offset = max(start, WAL_HEADER)
    pages = []
    while offset + WAL_FRAME_HEADER + PAGE_BYTES <= len(data):
        (page,) = struct.unpack(">I", data[offset : offset + 4])
        pages.append(page)
        offset += WAL_FRAME_HEADER + PAGE_BYTES
    return pages, len(data)


def page_owners(records: ClinicRecords) -> dict[int, str]:
    """Each page's b-tree (dbstat); pages it does not list are free."""
    owners = {int(p): str(n) for n, p in records.db.query("SELECT name, pageno FROM dbstat")}
    owners[1] = "(header) " + owners.get(1, "")
    return owners


def measure(records: ClinicRecords, steps: Sequence[Callable[[], object]]) -> dict[str, Any]:
    """Run each step as its own commit; pages written per step, by b-tree."""
    conn = records.db._require()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    wal = Path(f"{records.db.path}-wal")
    _, end = wal_pages(wal, 0)
    by_tree: Counter[str] = Counter()
    frames = 0
    distinct = 0
    try:
        for step in steps:
            step()
            pages, end_after = wal_pages(wal, end)
            end = end_after
            frames += len(pages)
            distinct += len(set(pages))
            owners = page_owners(records)
            by_tree.update(owners.get(p, "(freelist)") for p in pages)
    finally:
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
    n = len(steps)
    return {
        "commits": n,
        "frames_per_commit": round(frames / n, 2),
        "distinct_pages_per_commit": round(distinct / n, 2),
        "by_btree": {k: round(v / n, 2) for k, v in by_tree.most_common()},
    }


def main(argv: Sequence[str]) -> int:
    """Build the store, add and edit patients one by one, print the breakdown."""
    ap = argparse.ArgumentParser(prog="python -m tests.bench.write_pages")
    ap.add_argument("--patients", type=int, default=100_000, help="bulk-inserted patients")
    ap.add_argument("--warm", type=int, default=300, help="adds before measuring")
    ap.add_argument("--adds", type=int, default=60)
    ap.add_argument("--edits", type=int, default=60)
    ap.add_argument("--seed", type=int, default=20_240_601)
    ap.add_argument(
        "--sql", action="append", default=[], help="statement run on the new store (variants)"
    )
    args = ap.parse_args(argv)
    people = make_patients(args.patients + args.warm + args.adds, args.seed)
    bulk = people[: args.patients]
    warm = people[args.patients : args.patients + args.warm]
    sample = people[args.patients + args.warm :]
    with enforcing(), tempfile.TemporaryDirectory(prefix="careline-pages-") as tmp:
        store = open_store(BASELINE, Path(tmp))
        try:
            for sql in args.sql:
                store.db._require().executescript(sql)
            if bulk:
                bulk_insert([store], bulk, 1_000)
            records = store.records
            added = [
                records.add_patient(p.family, p.given, p.birth_date, p.sex, p.mrn, p.phone).id
                for p in warm
            ]
            adds = measure(
                records,
                [
                    partial(
                        records.add_patient, p.family, p.given, p.birth_date, p.sex, p.mrn, p.phone
                    )
                    for p in sample
                ],
            )
            edits = measure(
                records,
                [
                    partial(records.update_patient, pid, {"phone": f"555-{i:04d}"})
                    for i, pid in enumerate(added[: args.edits])
                ],
            )
            name_edits = measure(
                records,
                [
                    partial(records.update_patient, pid, {"given": f"Renamed{i}"})
                    for i, pid in enumerate(added[-args.edits :])
                ],
            )
        finally:
            store.close()
    report = {
        "patients_bulk": args.patients,
        "added_before": args.warm,
        "variant_sql": args.sql,
        "add_patient": adds,
        "update_patient_phone": edits,
        "update_patient_given_name": name_edits,
        "loadavg": list(os.getloadavg()),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
