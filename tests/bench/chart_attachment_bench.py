"""Benchmark of a chart attachment's whole trip (issue #16) at 200 MB: added on workstation
A while offline (encrypted into its cache), uploaded through a live HTTPS server with the
connection cut half-way and resumed, fetched and decrypted on workstation B; then the
server's disk is searched for the file's plaintext marker. Returns one dict (timings in
seconds, throughput in MB/s, MB = 10**6 bytes); progress goes to stderr.

Standalone: ``python -m tests.bench.chart_attachment_bench``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.sync import blob_client
from core.sync.attachments import Attachments
from tests.attachment_content import as_named
from tests.integration.server_fixtures import add_clinic, join_clinic, live_server, sync_at

SIZE = 200 * 10**6
MARKER = b"CHART-ATTACHMENT-BENCH-MARKER-01"


class _Cut(Exception):
    pass


def _write(path: Path) -> None:
    block = MARKER * (1024 * 1024 // len(MARKER))
    with path.open("wb") as out:
        left = SIZE
        while left:
            n = min(left, len(block))
            out.write(as_named(path.name, block[:n]) if left == SIZE else block[:n])
            left -= n


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while piece := src.read(8 * 1024 * 1024):
            digest.update(piece)
    return digest.hexdigest()


def _marker_in(root: Path) -> bool:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as src:
                while piece := src.read(8 * 1024 * 1024):
                    if MARKER in piece:
                        return True
    return False


def run() -> dict[str, Any]:
    """Time each step of the trip; check that no plaintext reached the server."""
    with tempfile.TemporaryDirectory(prefix="careline-chart-att-") as tmp:
        root = Path(tmp)
        source = root / "scan.pdf"
        _write(source)
        with live_server(root / "server") as live:
            clinic = add_clinic(live.server, "Bench")
            a, a_cred = join_clinic(live.server, live.url, live.ca_pem, clinic, root / "a", "a")
            b, b_cred = join_clinic(live.server, live.url, live.ca_pem, clinic, root / "b", "b")
            patient = a.records.add_patient("Bench", "Ben", "1970-01-01").id
            t0 = time.perf_counter()
            item = Attachments(a.records, root / "a").add(patient, source, title="Scan")
            added = time.perf_counter() - t0
            on_a = Attachments(a.records, root / "a", credential=a_cred)
            [blob_id] = on_a.pending()
            path = on_a.cache.path_for(blob_id)
            sha = _sha256(path)

            def cut(done: int, total: int) -> None:
                if done > total // 2:
                    raise _Cut

            t0 = time.perf_counter()
            with contextlib.suppress(_Cut):
                blob_client.push(a_cred, blob_id, path, sha, cut)
            held, _ = blob_client.upload_offset(a_cred, blob_id)
            on_a.push_pending()
            uploaded = time.perf_counter() - t0
            sync_at(a, a_cred)
            sync_at(b, b_cred)
            t0 = time.perf_counter()
            out = root / "copy.pdf"
            Attachments(b.records, root / "b", credential=b_cred).open_to(item.id, out)
            opened = time.perf_counter() - t0
            same = _sha256(out) == _sha256(source)
            leaked = _marker_in(root / "server")
            a.lock()
            b.lock()
    mb = SIZE / 10**6
    return {
        "size_mb": mb,
        "add_offline_s": round(added, 2),
        "add_mb_per_s": round(mb / added, 1),
        "upload_cut_and_resumed_s": round(uploaded, 2),
        "resumed_from_byte": held,
        "fetch_and_open_on_second_s": round(opened, 2),
        "opened_intact": same,
        "plaintext_on_server": leaked,
    }


if __name__ == "__main__":
    sys.stderr.write(json.dumps(run(), indent=2) + "\n")
