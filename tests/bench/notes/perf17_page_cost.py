"""Throwaway (issue 17, branch perf17): what SQLCipher costs per 4096-byte page, in CPU time
(thread time, so other load on the machine counts less), beside OpenSSL's raw throughput.

Read: a table of one ~3.9 KB row per page scanned with a 10-page cache (every page read,
decrypted and authenticated). Write: 2,000 such rows committed at once in WAL mode. Stores:
no key, HMAC-SHA512 (SQLCipher 4's default, Careline's), HMAC-SHA256, no HMAC.

    python -m tests.bench.notes.perf17_page_cost
"""

from __future__ import annotations

import hmac
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlcipher3

KEY = "PRAGMA key = \"x'" + "11" * 32 + "'\""
ROWS = 5000
VARIANTS: dict[str, tuple[list[str], bool]] = {
    "nokey": ([], False),
    "sha512": ([], True),
    "sha256": (["PRAGMA cipher_hmac_algorithm = HMAC_SHA256"], True),
    "nohmac": (["PRAGMA cipher_use_hmac = OFF"], True),
}


def _open(path: Path, pragmas: list[str], key: bool) -> Any:
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    if key:
        conn.execute(KEY)
    for pragma in pragmas:
        conn.execute(pragma)
    return conn


def read_us(path: Path, pragmas: list[str], key: bool) -> float:
    """Best of five: CPU µs per page of a full scan through a 10-page cache."""
    conn = _open(path, pragmas, key)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(3900),) for _ in range(ROWS)])
    conn.execute("COMMIT")
    conn.close()
    best = float("inf")
    for _ in range(5):
        conn = _open(path, pragmas, key)
        conn.execute("PRAGMA cache_size = 10")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        t0 = time.thread_time()
        conn.execute("SELECT sum(length(x)) FROM t").fetchone()
        best = min(best, (time.thread_time() - t0) / pages * 1e6)
        conn.close()
    return best


def write_us(path: Path, pragmas: list[str], key: bool) -> float:
    """CPU µs per page of one WAL commit of 2,000 one-page rows."""
    conn = _open(path, pragmas, key)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("CREATE TABLE t (x)")
    rows = [(os.urandom(3900),) for _ in range(2000)]
    t0 = time.thread_time()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?)", rows)
    conn.execute("COMMIT")
    seconds = time.thread_time() - t0
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    return float(seconds / pages * 1e6)


def main() -> None:
    """Print the per-page figures, then Python's HMAC (OpenSSL) of one page's bytes."""
    with tempfile.TemporaryDirectory(prefix="perf17-page-") as tmp:
        for name, (pragmas, key) in VARIANTS.items():
            r = read_us(Path(tmp) / f"{name}-r.db", pragmas, key)
            w = min(write_us(Path(tmp) / f"{name}-w{i}.db", pragmas, key) for i in range(3))
            print(f"{name:7s} read {r:6.2f} us/page   write {w:6.2f} us/page")
    page, secret = os.urandom(4016), os.urandom(32)
    for alg in ("sha512", "sha256"):
        t0 = time.thread_time()
        for _ in range(20000):
            hmac.new(secret, page, alg).digest()
        print(f"hmac {alg}: {(time.thread_time() - t0) / 20000 * 1e6:.2f} us per 4016 bytes")


if __name__ == "__main__":
    main()
