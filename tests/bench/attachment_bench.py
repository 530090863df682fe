"""Benchmark of attachment encryption against ``openssl speed`` (AES-256-GCM).

:func:`run` returns one dict and writes progress to stderr only (never stdout), so a bench
runner can merge it into its own JSON report. What it measures, in one process:

1. ``encrypt``: :func:`core.crypto.streaming.encrypt_stream` of a 200 MB temporary file
   (generated block by block, never whole in memory) to ``/dev/null``, 1 MiB chunks; the
   median of three runs. This is the figure compared with OpenSSL.
2. ``upload_path``: :func:`core.store.blobs.put_attachment` of the same file into a
   :class:`FilesystemBlobStore` (encrypt to a spool file while naming it, then an atomic,
   fsync'd store): throughput and the rise of the process's peak RSS (``ru_maxrss``) over
   the run; then again under ``tracemalloc`` for the traced Python peak.
3. ``openssl speed -evp aes-256-gcm -seconds 3``, 16384-byte column, in the same run.
4. The two primitives the encrypt path is built from, on 1 MiB blocks in this process:
   ``blake3`` (the plaintext digest that names the blob) and ``AESGCM.encrypt_into``.
   Together they bound what ``encrypt`` can reach: 1 / (1/aes + 1/blake3).

MB are 10**6 bytes, as in ``openssl speed``.

Standalone: ``python -m tests.bench.attachment_bench`` (the JSON goes to stderr too).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.crypto.streaming import DEFAULT_CHUNK_SIZE, encrypt_stream
from core.store.blobs import FilesystemBlobStore, put_attachment

MB = 1_000_000
MiB = 1024 * 1024
TARGET_RATIO = 0.5
KEK = bytes(range(32))
AAD = b"bench-tenant|attachment"


def _log(message: str) -> None:
    sys.stderr.write(f"[attachment-bench] {message}\n")
    sys.stderr.flush()


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _generate(path: Path, size: int) -> None:
    """Write ``size`` pseudo-random bytes, one 1 MiB block at a time."""
    block = bytearray(os.urandom(MiB))
    with path.open("wb") as out:
        written = 0
        counter = 0
        while written < size:
            n = min(MiB, size - written)
            block[:8] = counter.to_bytes(8, "big")  # no two blocks alike
            out.write(memoryview(block)[:n])
            written += n
            counter += 1


def _encrypt_to_null(path: Path) -> float:
    with path.open("rb") as src, open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        encrypt_stream(src, sink, KEK, AAD, DEFAULT_CHUNK_SIZE)
        return time.perf_counter() - start


def _upload(path: Path, root: Path, id_key: bytes) -> float:
    store = FilesystemBlobStore(root)
    with path.open("rb") as src:
        start = time.perf_counter()
        stored = put_attachment(store, src, kek=KEK, aad=AAD, id_key=id_key, spool_dir=root.parent)
        elapsed = time.perf_counter() - start
    assert not stored.deduplicated
    return elapsed


def _primitive_rates(seconds: float = 0.5) -> dict[str, float]:
    """MB/s of blake3 and AESGCM.encrypt_into on 1 MiB blocks, in this process."""

    data = os.urandom(MiB)
    out = bytearray(MiB + 16)
    cipher = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    digest = blake3.blake3()
    rates: dict[str, float] = {}
    for name, step in (
        ("blake3", lambda: digest.update(data)),
        ("aes_256_gcm", lambda: cipher.encrypt_into(nonce, data, AAD, out)),
    ):
        count = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            step()
            count += 1
        rates[name] = count * MiB / MB / elapsed
    return rates


def openssl_aes_gcm_mb_s(seconds: int = 3) -> tuple[float | None, str]:
    """Run ``openssl speed -evp aes-256-gcm``; return (MB/s at 16384 bytes, version or error)."""
    exe = shutil.which("openssl")
    if exe is None:
        return None, "openssl not found on PATH"
    version = subprocess.run(
        [exe, "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    proc = subprocess.run(
        [exe, "speed", "-evp", "aes-256-gcm", "-seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=False,
    )
    header: list[str] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith("type"):
            header = re.findall(r"(\d+) bytes", line)
        elif header and line.upper().startswith("AES-256-GCM"):
            values = re.findall(r"([\d.]+)k", line)
            if "16384" in header and len(values) == len(header):
                # openssl reports thousands of bytes per second
                return float(values[header.index("16384")]) * 1000 / MB, version
    return None, f"could not parse openssl speed output (exit {proc.returncode})"


def run(size_mb: int = 200, openssl_seconds: int = 3, workdir: str | None = None) -> dict[str, Any]:
    """Run the attachment benchmark; return its figures (progress on stderr only)."""
    size = size_mb * MB
    with tempfile.TemporaryDirectory(prefix="careline-attbench-", dir=workdir) as tmp:
        base = Path(tmp)
        plain = base / "plain.bin"
        rss_before = _maxrss_bytes()
        _log(f"generating {size_mb} MB in {plain}")
        _generate(plain, size)

        _log("upload path: put_attachment into a FilesystemBlobStore (untraced)")
        upload_s = _upload(plain, base / "store-a", os.urandom(32))
        rss_delta = _maxrss_bytes() - rss_before

        _log("upload path again under tracemalloc")
        tracemalloc.start()
        try:
            traced_s = _upload(plain, base / "store-b", os.urandom(32))
            _, traced_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        shutil.rmtree(base / "store-a")
        shutil.rmtree(base / "store-b")

        _log("encrypt_stream to /dev/null, 3 runs")
        runs = [size / MB / _encrypt_to_null(plain) for _ in range(3)]

    _log("primitives: blake3 and AESGCM.encrypt_into on 1 MiB blocks")
    prim = _primitive_rates()
    # The pipeline overlaps hashing (GIL released) with AES-GCM on a second thread, so with a
    # free core the slower of the two bounds it; one after the other would be their sum.
    bound = min(prim["blake3"], prim["aes_256_gcm"])
    sequential = 1 / (1 / prim["blake3"] + 1 / prim["aes_256_gcm"])

    _log(f"openssl speed -evp aes-256-gcm -seconds {openssl_seconds}")
    openssl_mb_s, openssl_version = openssl_aes_gcm_mb_s(openssl_seconds)

    encrypt_mb_s = statistics.median(runs)
    ratio = encrypt_mb_s / openssl_mb_s if openssl_mb_s else None
    return {
        "file_mb": size_mb,
        "chunk_size": DEFAULT_CHUNK_SIZE,
        "encrypt_mb_s": round(encrypt_mb_s, 1),
        "encrypt_mb_s_runs": [round(r, 1) for r in runs],
        "upload_path_mb_s": round(size / MB / upload_s, 1),
        "upload_path_traced_mb_s": round(size / MB / traced_s, 1),
        "upload_path_tracemalloc_peak_mib": round(traced_peak / MiB, 2),
        "upload_path_ru_maxrss_delta_mib": round(rss_delta / MiB, 2),
        "openssl": openssl_version,
        "openssl_aes_256_gcm_16k_mb_s": round(openssl_mb_s, 1) if openssl_mb_s else None,
        "ratio_careline_to_openssl": round(ratio, 3) if ratio is not None else None,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio is not None and ratio >= TARGET_RATIO,
        "python_blake3_mb_s": round(prim["blake3"], 1),
        "python_aes_256_gcm_mb_s": round(prim["aes_256_gcm"], 1),
        "encrypt_ceiling_mb_s": round(bound, 1),
        "encrypt_vs_ceiling": round(encrypt_mb_s / bound, 3),
        "sequential_hash_then_encrypt_mb_s": round(sequential, 1),
        "note": (
            "encrypt = BLAKE3 of the plaintext (names the blob) + AES-256-GCM, in 1 MiB "
            "chunks: AES on a second thread while the caller hashes the chunk and reads the "
            "next, so the ceiling is the slower primitive on a free core. upload_path also "
            "writes the ciphertext twice (spool file, then atomic store with fsync)."
        ),
    }


if __name__ == "__main__":
    sys.stderr.write(json.dumps(run(), indent=2) + "\n")
