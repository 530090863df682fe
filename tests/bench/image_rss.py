"""The snapshot image's copy alone, in a child process, and its peak RSS: a quick harness
for the scale benchmark's workstation memory (``scale_bench``, which runs a server and takes
20 minutes and more), to compare clinic sizes in a few minutes.

``python -m tests.bench.image_rss 100000 600000`` makes (once, kept in ``--cache``) a
replica of that many bench patients (``bulk_seed``: the rows a server's image holds), then
for each size starts a child that creates an empty workstation file, copies the image in
with ``import_image`` and reports its RSS before, after every chunk (``on_rows``) and its
peak (``VmHWM``), as one JSON line. The image is the bulk-seeded replica itself: its local
tables (op log, audit) are never copied, the rest are the rows a built image holds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.crypto.secure_memory import SecureMemory
from core.store.database import Database
from core.store.migrations import LATEST_VERSION
from core.sync import snapshot_image

from .bulk_seed import bulk_patients
from .download_client import proc_status_kb

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))  # a throwaway key for throwaway bench files


def _key() -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(KEY))


def image_of(records: int, cache: Path) -> Path:
    """A replica of ``records`` bench patients in ``cache`` (made once)."""
    path = cache / f"image-{records}-v{LATEST_VERSION}.db"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"partial-{records}.db"
    for leftover in cache.glob(f"partial-{records}.db*"):
        leftover.unlink()
    t0 = time.perf_counter()
    db = Database.create(partial, _key())
    try:
        bulk_patients(db, records)
        db.query("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    partial.rename(path)
    print(f"[image-rss] image of {records:,} made in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr, flush=True)  # fmt: skip
    return path


def _sqlite_memory() -> Any:
    """SQLite's own allocation counters (``sqlite3_memory_used``, ``_highwater``), read from
    the sqlcipher3 extension module, which exports them."""
    import ctypes

    import sqlcipher3._sqlite3 as module

    lib = ctypes.CDLL(module.__file__)
    used, highwater = lib.sqlite3_memory_used, lib.sqlite3_memory_highwater
    used.restype = highwater.restype = ctypes.c_int64
    highwater.argtypes = [ctypes.c_int]
    return used, highwater


def _child(image: Path, records: int, folder: Path) -> dict[str, Any]:
    used, highwater = _sqlite_memory()
    offer = snapshot_image.ImageOffer(
        "0" * 32,
        image.stat().st_size,
        snapshot_image._file_sha256(image),
        KEY,
        LATEST_VERSION,
        records,
        {},
    )
    db = Database.create(folder / "desk.db", SecureMemory.from_bytes(bytearray(os.urandom(32))))
    # (rows done, VmRSS, VmHWM, SQLite's bytes now, SQLite's peak since the last: kB;
    # this process's CPU seconds so far)
    samples: list[tuple[int, int, int, int, int, float]] = []
    sqlite_peak = 0

    def on_rows(done: int, total: int) -> None:
        nonlocal sqlite_peak
        peak_since = highwater(1) // 1024
        sqlite_peak = max(sqlite_peak, peak_since)
        rss, hwm = proc_status_kb("self", "VmRSS") or 0, proc_status_kb("self", "VmHWM") or 0
        samples.append((done, rss, hwm, used() // 1024, peak_since, time.process_time()))

    before = proc_status_kb("self", "VmRSS") or 0
    sqlite_before = used() // 1024
    highwater(1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    types = snapshot_image.import_image(db, image, offer, "bench", on_rows)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after = proc_status_kb("self", "VmRSS") or 0
    peak = proc_status_kb("self", "VmHWM") or 0
    db.close()
    step = max(1, len(samples) // 12)
    return {
        "records": records,
        "copied": types,
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        # From the first table's first chunk on: the copy itself, without the checks
        # before it (the file's digest, quick_check), which take longer for this image.
        "copy_cpu_s": round(cpu0 + cpu - samples[0][5], 2) if samples else None,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "peak_kb": peak,
        "peak_over_before_kb": peak - before,
        "sqlite_before_kb": sqlite_before,
        "sqlite_peak_kb": max(sqlite_peak, highwater(0) // 1024),
        "samples": samples[::step] + samples[-1:],
    }


def run_child(image: Path, records: int, folder: Path) -> dict[str, Any]:
    """One copy in a child process; its figures."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.image_rss", "--child", str(image), str(records),
         str(folder)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    """Parent: sizes on the command line; child: ``--child IMAGE RECORDS FOLDER``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="*", type=int)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/careline-image-rss"))
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        image, records, folder = args.child
        print(json.dumps(_child(Path(image), int(records), Path(folder))), flush=True)
        return 0
    images = {n: image_of(n, args.cache) for n in args.sizes}
    import tempfile

    for _ in range(args.repeat):
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="careline-image-rss-") as tmp:
                r = run_child(images[n], n, Path(tmp))
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
