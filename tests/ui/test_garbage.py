"""Garbage holding Qt objects is collected on the GUI thread, never on the worker."""

from __future__ import annotations

import gc
import threading
from typing import ClassVar

from pytestqt.qtbot import QtBot

from app.garbage import GuiThreadCollector
from app.worker import Worker


class _Cycle:
    """Garbage only the cyclic collector frees; notes the thread that freed it."""

    freed_on: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _Cycle.freed_on.append(threading.current_thread().name)


def test_cycles_made_garbage_are_freed_on_the_gui_thread_while_the_worker_allocates(
    qtbot: QtBot, worker: Worker
) -> None:
    # The autouse fixture already runs one collector; this one is checked directly.
    collector = GuiThreadCollector(interval_ms=20)
    _Cycle.freed_on.clear()
    _Cycle()  # unreachable at once: only a collection frees it
    done: list[list[list[int]]] = []

    def allocate() -> list[list[int]]:
        # Far past the first generation's threshold: Python's own collection would run here.
        # The lists outlive the job, so the count stays past the threshold afterwards.
        return [[i] for i in range(50 * gc.get_threshold()[0])]

    worker.submit(allocate, done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    assert not gc.isenabled()
    qtbot.waitUntil(lambda: bool(_Cycle.freed_on), timeout=5_000)
    assert _Cycle.freed_on == [threading.main_thread().name]
    collector.stop()


def test_stopping_collects_what_is_left_and_gives_collection_back() -> None:
    was = gc.isenabled()
    gc.enable()
    try:
        collector = GuiThreadCollector()
        assert not gc.isenabled()
        _Cycle.freed_on.clear()
        _Cycle()
        collector.stop()
        assert _Cycle.freed_on == [threading.main_thread().name]
        assert gc.isenabled()
    finally:
        if not was:
            gc.disable()
