"""A background task that fails with an exception nothing caught (the database thread, a
plain thread such as a LAN peer's connection) is said in the status bar, by thread and
exception type; the log has its traceback without its message; no dialog is made off the
GUI thread.

The failures are real: pycrdt panicking (pyo3's PanicException, a BaseException the
database worker's ``except Exception`` does not catch) on a record state found by fuzzing,
and int() refusing a typed value on a plain thread.
"""

from __future__ import annotations

import logging
import threading

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from core.records import crdt
from tests.fuzz.campaign import CORPUS

# A note state pycrdt applies, and panics on encoding again.
PANICKING_STATE = (CORPUS / "crdt_update" / "crash-state-panics-pycrdt-on-encoding").read_bytes()[
    2:
]
TYPED = "Jane Roe 1970-03-12"


def _encode_broken_record() -> bytes:
    doc = crdt.load(PANICKING_STATE, 1)
    return doc.get_update()  # pyo3_runtime.PanicException


def _no_message_box() -> bool:
    return not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]


@pytest.mark.qt_no_exception_capture  # the app's own sys.excepthook is under test
def test_a_database_job_that_panics_is_said_in_the_status_bar(
    qtbot: QtBot, signed_in: MainWindow, app_hooks: None, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[Exception] = []
    signed_in.worker.submit(_encode_broken_record, on_error=errors.append, label="encode")

    bar = signed_in.statusBar()
    qtbot.waitUntil(lambda: bar.currentMessage() != "", timeout=5_000)
    assert bar.currentMessage().startswith(
        "A background task failed (thread careline-database: pyo3_runtime.PanicException)."
    )
    assert "Careline logged where" in bar.currentMessage()
    # The job's caller heard it failed (it does not wait for ever), in words of its own.
    qtbot.waitUntil(lambda: len(errors) == 1)
    assert str(errors[0]) == "encode stopped on an unexpected PanicException"
    assert signed_in.worker.pending == 0
    assert _no_message_box()
    [record] = [r for r in caplog.records if r.name == "careline.background"]
    assert "_encode_broken_record" in logging.Formatter().format(record)


def test_a_plain_threads_failure_is_said_in_the_status_bar_without_its_message(
    qtbot: QtBot, signed_in: MainWindow, app_hooks: None, caplog: pytest.LogCaptureFixture
) -> None:
    thread = threading.Thread(target=int, args=(TYPED,), name="lan-peer-conn")
    thread.start()
    thread.join()

    bar = signed_in.statusBar()
    qtbot.waitUntil(lambda: bar.currentMessage() != "", timeout=5_000)
    shown = bar.currentMessage()
    assert shown.startswith("A background task failed (thread lan-peer-conn: ValueError).")
    assert TYPED not in shown
    written = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "uncaught ValueError in thread lan-peer-conn" in written
    assert TYPED not in written
    assert _no_message_box()
