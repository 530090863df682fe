"""The app's background prefetch (app/sync/prefetching.py) with a live server: a file added
on another workstation for a patient booked today arrives in this app's cache on the sync
thread, and the open chart's "Where" column goes from "available when connected" to "here"
without anyone opening it; signing out stops a prefetch at its next piece, keeping the
partial file, and signing in again finishes it from there."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.sync.transfers import DOWNLOAD, AttachmentSettings
from core.records.schedule import Schedule
from core.sync.attachments import HERE, REMOTE, Attachments
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at
from tests.ui.conftest import WindowFactory, sign_in
from tests.ui.sync.test_attachments_sync import section_of, where
from tests.ui.sync.test_server import SYNC_OPTIONS, WAIT_MS, open_chart, synced

PREFETCH = AttachmentSettings(cache_mb=64, prefetch_percent=50)


def test_the_chart_shows_a_prefetched_file_as_here(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    clinic = add_clinic(live.server, "Prefetch Clinic")
    ws_a, cred_a = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "A")
    nia = ws_a.records.add_patient("Bello", "Nia", "1985-05-05").id
    Schedule(ws_a.records).book(nia, f"{dt.date.today()}T12:00", "admin", minutes=20)
    sync_at(ws_a, cred_a)
    ws_b, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "B")
    ws_b.lock()
    window = make_window(ws_b, sync_options={**SYNC_OPTIONS, "attachments": PREFETCH})
    sign_in(qtbot, window)
    qtbot.waitUntil(partial(synced, window), timeout=WAIT_MS)
    open_chart(qtbot, window, nia)
    section = section_of(window)
    shown: list[str] = []
    window.sync.transfers.progressed.connect(lambda *_: shown.append(where(section)))

    # Added on A while B's chart is open: B's sync brings the record, then the file.
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 scan " * 150_000)  # two pieces
    on_a = Attachments(ws_a.records, tmp_path / "a", credential=cred_a)
    item = on_a.add(nia, scan, title="scan")
    on_a.push_pending()
    sync_at(ws_a, cred_a)
    qtbot.waitUntil(lambda: where(section) == HERE, timeout=WAIT_MS)
    # A real percentage on the way, not just "downloading 100%".
    percents = [int(m[1]) for t in shown if (m := re.fullmatch(rf"{DOWNLOAD} (\d+)%", t))]
    assert any(0 < p < 100 for p in percents), shown
    on_b = Attachments(ws_b.records, tmp_path / "b")
    assert item.blob_id in on_b.prefetched()  # fetched ahead, nobody opened it
    assert on_b.read(item.id) == scan.read_bytes()


def test_signing_out_stops_the_prefetch_and_signing_in_finishes_it(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    clinic = add_clinic(live.server, "Sign-out Clinic")
    ws_a, cred_a = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "A")
    omar = ws_a.records.add_patient("Haddad", "Omar", "1979-07-07").id
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4 big " * 700_000)  # about 9 MiB
    on_a = Attachments(ws_a.records, tmp_path / "a", credential=cred_a)
    item = on_a.add(omar, big, title="big")
    on_a.push_pending()
    sync_at(ws_a, cred_a)
    assert item.blob_id is not None
    ws_b, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "B")
    ws_b.lock()
    # No periodic session to pause it: only the sign-out stops this prefetch.
    options = {**SYNC_OPTIONS, "interval_ms": 600_000, "attachments": PREFETCH}
    window = make_window(ws_b, sync_options=options)
    transfers = window.sync.transfers
    real = transfers.progress

    def slow(blob_id: str, direction: str) -> Callable[[int, int], None]:
        sink = real(blob_id, direction)

        def report(done: int, total: int) -> None:
            time.sleep(0.01)  # a slow line: 144 reads of 64 KiB, about 1.5 s
            sink(done, total)

        return report

    transfers.progress = slow  # type: ignore[method-assign]
    moving: list[int] = []
    transfers.progressed.connect(lambda _blob, _way, percent: moving.append(percent))
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: bool(moving), timeout=WAIT_MS)
    window.sign_out()
    # Left alone, the download ends within about 1.5 s: stopped, it never does.
    qtbot.wait(1_500)
    cache = tmp_path / "b" / "attachments"
    assert not list(cache.glob(f"??/{item.blob_id}"))
    part = next(cache.glob(f"??/{item.blob_id}.part"))  # kept for the next round
    held = part.stat().st_size
    assert 0 < held < big.stat().st_size
    prefetch = window.sync.prefetch
    assert prefetch is not None and prefetch.last is not None and prefetch.last.stopped
    assert prefetch.last.interrupted == [item.blob_id]

    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: bool(list(cache.glob(f"??/{item.blob_id}"))), timeout=WAIT_MS)
    assert not part.exists()
    open_chart(qtbot, window, omar)
    section = section_of(window)
    qtbot.waitUntil(lambda: where(section) == HERE, timeout=WAIT_MS)
    assert where(section) != REMOTE
