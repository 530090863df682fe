"""The database worker: one background thread, results and errors back on the GUI thread."""

from __future__ import annotations

import functools
import threading

import pytest
from pytestqt.qtbot import QtBot

from app.worker import Worker


def test_runs_off_the_gui_thread_and_reports_on_it(qtbot: QtBot, worker: Worker) -> None:
    gui = threading.get_ident()
    ran_on: list[int] = []
    delivered_on: list[int] = []
    results: list[int] = []

    def job() -> int:
        ran_on.append(threading.get_ident())
        return 42

    def done(value: int) -> None:
        delivered_on.append(threading.get_ident())
        results.append(value)

    worker.submit(job, done)
    qtbot.waitUntil(lambda: results == [42])
    assert ran_on[0] != gui
    assert delivered_on == [gui]


def test_every_job_runs_on_the_same_thread_in_order(qtbot: QtBot, worker: Worker) -> None:
    threads: set[int] = set()
    order: list[int] = []

    def job(i: int) -> int:
        threads.add(threading.get_ident())
        return i

    for i in range(20):
        worker.submit(functools.partial(job, i), order.append)
    qtbot.waitUntil(lambda: len(order) == 20)
    assert order == list(range(20))
    assert len(threads) == 1


def test_errors_reach_on_error_not_the_caller(qtbot: QtBot, worker: Worker) -> None:
    errors: list[Exception] = []

    def boom() -> None:
        raise ValueError("disk on fire")

    worker.submit(boom, lambda _r: pytest.fail("no result expected"), errors.append)
    qtbot.waitUntil(lambda: len(errors) == 1)
    assert isinstance(errors[0], ValueError)
    assert str(errors[0]) == "disk on fire"


def test_an_error_without_handler_is_emitted(qtbot: QtBot, worker: Worker) -> None:
    def boom() -> None:
        raise RuntimeError("nobody listens")

    with qtbot.waitSignal(worker.unhandled_error) as blocker:
        worker.submit(boom)
    assert isinstance(blocker.args[0], RuntimeError)


def test_a_cancelled_job_delivers_nothing(qtbot: QtBot, worker: Worker) -> None:
    started, release = threading.Event(), threading.Event()
    delivered: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(5)
        return "slow"

    running = worker.submit(slow, delivered.append)
    assert started.wait(5)
    queued = worker.submit(lambda: "queued", delivered.append)
    running.cancel()
    queued.cancel()
    worker.submit(lambda: "after", delivered.append)
    release.set()
    qtbot.waitUntil(lambda: delivered == ["after"])
    assert worker.pending == 0


def test_stop_ends_the_thread_and_refuses_new_work(worker: Worker) -> None:
    worker.stop()
    job = worker.submit(lambda: 1)
    assert job.cancelled
    assert not worker.running


def test_a_job_that_outlives_the_session_runs_and_reports_where_it_was_handed(
    qtbot: QtBot, worker: Worker
) -> None:
    """A session ending cancels what screens asked for, but not a backup or a new key being
    put in force: that runs, and its outcome reaches whoever its callbacks name by then."""
    started, release = threading.Event(), threading.Event()
    delivered: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(5)
        return "backup saved"

    kept = worker.submit(slow, lambda r: delivered.append(f"dialog: {r}"),
                         outlives_session=True)  # fmt: skip
    assert started.wait(5)
    queued_kept = worker.submit(lambda: "key in force", delivered.append, outlives_session=True)
    dropped = worker.submit(lambda: "a search", delivered.append)
    worker.cancel_all()  # the session ends
    kept.on_done = lambda r: delivered.append(f"told: {r}")  # the dialog closed: handed on
    release.set()
    qtbot.waitUntil(lambda: worker.pending == 0)
    assert delivered == ["told: backup saved", "key in force"]
    assert dropped.cancelled and not kept.cancelled and not queued_kept.cancelled


def test_stop_cancels_even_what_outlives_a_session(worker: Worker) -> None:
    """Quitting finishes the running job and runs nothing queued (the app settles what
    must be settled itself, once the thread has ended)."""
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(5)

    worker.submit(slow, outlives_session=True)
    assert started.wait(5)
    queued = worker.submit(lambda: ran.append("queued"), outlives_session=True)
    threading.Timer(0.2, release.set).start()
    worker.stop()
    assert queued.cancelled and ran == []
