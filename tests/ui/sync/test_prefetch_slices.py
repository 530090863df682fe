"""The app's prefetch slices (app/sync/prefetching.py) without a server: a slice whose
time ran out mid-file leaves that file "downloading" in the chart (no flicker through
"available when connected") and the next slice resumes the same round."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pytestqt.qtbot import QtBot

from app.sync.prefetching import BackgroundPrefetch, Generation
from app.sync.transfers import AttachmentSettings, AttachmentTransfers
from core.sync.prefetch import PrefetchReport


def test_a_slice_out_of_time_mid_file_does_not_report_it_done(qtbot: QtBot) -> None:
    transfers = AttachmentTransfers(settings=AttachmentSettings(cache_mb=64, prefetch_percent=50))
    stop, pause = threading.Event(), threading.Event()
    prefetch = BackgroundPrefetch(Any, transfers, stop, pause)  # type: ignore[arg-type]
    resumed: list[bool] = []
    reports = [
        PrefetchReport(stopped=True, remaining=1, interrupted=["b1"], stopped_in="b1"),
        PrefetchReport(fetched=["b1"]),
    ]

    def run(should_stop: Callable[[], bool]) -> PrefetchReport:
        resumed.append(prefetch._resume)
        return reports[len(resumed) - 1]

    prefetch._run = run  # type: ignore[method-assign]
    finished: list[str] = []
    transfers.finished.connect(finished.append)
    prefetch.start()
    qtbot.waitUntil(lambda: len(resumed) == 2, timeout=2_000)
    assert resumed == [False, True] and finished == []
    # Stopped by a sign-out or a session instead, the chart is told it is no longer moving.
    reports[:] = [PrefetchReport(stopped=True, remaining=1, interrupted=["b2"], stopped_in="b2")]

    def halted_run(should_stop: Callable[[], bool]) -> PrefetchReport:
        pause.set()  # a session asked for during the slice
        return reports[0]

    prefetch._run = halted_run  # type: ignore[method-assign]
    prefetch.start()
    qtbot.waitUntil(lambda: finished == ["b2"], timeout=2_000)


def test_a_slice_begun_before_a_sign_out_never_runs_on_after_a_quick_sign_in(
    qtbot: QtBot,
) -> None:
    transfers = AttachmentTransfers(settings=AttachmentSettings(cache_mb=64, prefetch_percent=50))
    stop, pause, generation = threading.Event(), threading.Event(), Generation()
    prefetch = BackgroundPrefetch(Any, transfers, stop, pause, generation=generation)  # type: ignore[arg-type]
    seen: list[bool] = []

    def run(should_stop: Callable[[], bool]) -> PrefetchReport:
        seen.append(should_stop())
        stop.set()  # signed out (SyncController.stop) ...
        generation.bump()
        stop.clear()  # ... and straight back in (SyncController.start)
        seen.append(should_stop())
        return PrefetchReport(stopped=True, remaining=1, interrupted=["b"], stopped_in="b")

    prefetch._run = run  # type: ignore[method-assign]
    prefetch.start()
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=2_000)
    assert seen == [False, True]
    qtbot.wait(50)
    assert len(seen) == 2  # the old round does not carry on either
