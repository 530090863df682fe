"""Exceptions nothing caught in a background thread, or that Python could not raise: logged
by type and traceback, never by message (which may quote patient data), and heard by the
listeners (the desktop app's status bar); never printed by Python's default hooks."""

from __future__ import annotations

import gc
import logging
import sys
import threading

import pytest

from core.config import logs, thread_errors
from core.config.thread_errors import BackgroundFailure

TYPED = "Jane Roe 1970-03-12"


@pytest.fixture
def entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as an entry point leaves it (``withhold_exception_messages``), with
    Python's own default hooks beforehand, all put back afterwards."""
    monkeypatch.setattr(logs, "_withholding", False)
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    logs.withhold_exception_messages()


def _parse_age(text: str) -> int:
    # int()'s ValueError quotes the text: "invalid literal for int() with base 10: ...".
    return int(text)


def _formatted(caplog: pytest.LogCaptureFixture) -> str:
    """The records as the desktop app's and CLI's stderr handler writes them."""
    handler = logging.StreamHandler()
    return "\n".join(handler.format(record) for record in caplog.records)


def test_a_threads_uncaught_exception_is_logged_by_type_and_place_not_message(
    entry_point: None, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    heard: list[BackgroundFailure] = []
    remove = thread_errors.add_listener(heard.append)
    try:
        worker = threading.Thread(target=_parse_age, args=(TYPED,), name="lan-peer-conn")
        worker.start()
        worker.join()
    finally:
        remove()

    assert heard == [BackgroundFailure("thread lan-peer-conn", "ValueError")]
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    written = _formatted(caplog)
    # Where and what, for a bug report: the thread, the frames, the type.
    assert "uncaught ValueError in thread lan-peer-conn" in written
    assert "return int(text)" in written and "ValueError" in written
    assert TYPED not in written
    # Python's default hook, which printed the message on stderr, did not run.
    assert TYPED not in capfd.readouterr().err


def test_an_exception_python_cannot_raise_is_logged_the_same_way(
    entry_point: None, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    class Holder:
        """Something whose finaliser fails (its repr would show what it holds)."""

        def __del__(self) -> None:
            _parse_age(TYPED)

        def __repr__(self) -> str:
            return f"Holder({TYPED})"

    heard: list[BackgroundFailure] = []
    remove = thread_errors.add_listener(heard.append)
    try:
        holder = Holder()
        del holder
        gc.collect()
    finally:
        remove()

    assert [f.kind for f in heard] == ["ValueError"]
    written = _formatted(caplog)
    assert "an exception Python could not raise (" in written and "Holder.__del__)" in written
    assert "return int(text)" in written
    assert TYPED not in written
    assert TYPED not in capfd.readouterr().err


def test_a_hook_installed_before_still_hears_the_exception(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A test runner's or debugger's hook is kept (only Python's default printers go).
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    thread_errors.install_hooks()
    thread_errors.install_hooks()  # a second entry point in the same process: no second hook
    worker = threading.Thread(target=_parse_age, args=(TYPED,), name="careline-heartbeat")
    worker.start()
    worker.join()
    assert seen == [ValueError]
    assert [r.getMessage() for r in caplog.records] == [
        "uncaught ValueError in thread careline-heartbeat"
    ]


def test_a_thread_ending_itself_is_no_failure(
    entry_point: None, caplog: pytest.LogCaptureFixture
) -> None:
    def leave() -> None:
        sys.exit(0)

    worker = threading.Thread(target=leave)
    worker.start()
    worker.join()
    assert caplog.records == []
