"""Shared fixtures for the desktop UI tests: real core, temporary clinics, no OS keyring."""

from __future__ import annotations

import gc
import logging
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import pytest
from PySide6.QtCore import QCoreApplication, QDir, QEvent, QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QScreen
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from app.garbage import GuiThreadCollector
from app.main import _report_unexpected, readable_font, resources_dir, stylesheet
from app.main_window import MainWindow
from app.operations import Operations
from app.worker import Worker
from core.config import logs
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.store.database import Database

CLINIC_NAME = "Riverside Family Practice"
ADMIN = "admin"
ADMIN_NAME = "Ada Adeyemi"
PASSWORD = "correct horse battery"
BIG_CLINIC_SIZE = 1_000

# Family, given, birth date, MRN.
PATIENTS = (
    ("Garcia", "Maria", "1984-03-02", "MRN-1001"),
    ("Garcia", "Luis", "1979-11-20", "MRN-1002"),
    ("Okafor", "Chinedu", "1990-06-15", "MRN-1003"),
    ("Lindqvist", "Astrid", "1956-01-30", None),
    ("Nguyen", "Bao", "2012-09-09", "MRN-1005"),
)

WindowFactory = Callable[..., MainWindow]

# A common clinic laptop's screen, and the main window's size when it first opens.
SMALL = QRect(0, 0, 1024, 740)
DEFAULT_SIZE = (1120, 740)

# The offscreen platform (QT_QPA_PLATFORM=offscreen) says this whenever a dialog is shown;
# it is about the test platform, not about Careline.
OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"
# And these when a combo box's list pops up: a test that opens one marks itself with this
# (its own mark replaces the one above, so this names that warning too).
POPUP_NOISE = (
    r"This plugin does not support (propagateSizeHints\(\)|raise\(\)|grabbing the keyboard)"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Ignore the offscreen platform's known warning in these tests only."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@contextmanager
def no_os_keyring() -> Iterator[None]:
    """Use keyring's real "no keyring" backend, then put the previous one back."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def _no_keyring() -> Iterator[None]:
    with no_os_keyring():
        yield


@pytest.fixture(autouse=True)
def _no_windows_left_behind(qapp: QApplication) -> None:
    """Delete the hidden, parentless widgets earlier tests left behind, before this test
    makes any: a main window's chart leaves a dozen (pyqtgraph's plot menus, drop-down
    lists, captions it never placed), whose C++ objects outlive their Python ones, so a
    worker that had run a few hundred UI tests held thousands. Every one is re-styled when
    a test sets the app's stylesheet or font, and walked by each ``topLevelWidgets()``:
    such a test took 6-14 s in the whole suite against about 1 s alone."""
    for widget in qapp.topLevelWidgets():
        if widget.parentWidget() is None and not widget.isVisible():
            widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def _collect_on_gui_thread(qapp: QApplication) -> Iterator[None]:
    """As the app does (app/garbage.py): no collection on the database worker, where a Qt
    object left over from an earlier test would be destroyed off the GUI thread."""
    # What earlier tests left alive is frozen out of every later collection, so the full
    # collection at the end of this test walks only what this test made: on a worker that
    # had run hundreds of tests it walked everything, most of a second per test (a third
    # of the suite's UI time). Only objects alive now are frozen (the previous test's
    # garbage went in its own final collection); one of them that becomes garbage later is
    # left to reference counting, which is all the test process loses.
    gc.freeze()
    collector = GuiThreadCollector(qapp)
    yield
    collector.stop()


@pytest.fixture(autouse=True, scope="session")
def _stylesheet_images() -> None:
    """Where the stylesheet's images are (``careline:check.svg``), for the whole run, as
    app.main registers it for the app's: a styled widget a test leaves behind may still be
    drawn in a later test, and without the path Qt warns, which fails that test."""
    QDir.addSearchPath("careline", str(resources_dir()))


@pytest.fixture
def styled(qapp: QApplication) -> Iterator[None]:
    """The app's font and stylesheet on, as in the app (they decide what fits)."""
    before, font = qapp.styleSheet(), qapp.font()
    qapp.setFont(readable_font(font))
    qapp.setStyleSheet(stylesheet())
    yield
    qapp.setStyleSheet(before)
    qapp.setFont(font)


@pytest.fixture
def small_screen(monkeypatch: pytest.MonkeyPatch, styled: None) -> None:
    """Every screen says it has 1024x740 available (the offscreen platform has 800x800),
    and the app's stylesheet is on."""
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _self: QRect(SMALL))


def new_clinic(data_dir: Path, patients: int = 0) -> Workstation:
    """An initialised, locked clinic with the sample patients and ``patients`` more."""
    ws = Workstation(data_dir, kdf_params=FAST_PARAMS)
    ws.init(CLINIC_NAME, ADMIN, ADMIN_NAME, PASSWORD)
    records = ws.records
    for family, given, born, mrn in PATIENTS:
        records.add_patient(family, given, born, mrn=mrn)
    for i in range(patients):
        records.add_patient(f"Testpatient{i:05d}", "Sam", "1970-01-01")
    ws.lock()
    return ws


def wheel(widget: QWidget, notches: int = -1) -> None:
    """Turn the mouse wheel ``notches`` clicks (negative: towards the person) with the
    pointer over the middle of ``widget``, as the window system delivers it: to whatever is
    under the pointer, which need not have focus or have been clicked."""
    window = widget.window()
    handle = window.windowHandle()
    assert handle is not None and window.isVisible(), "the wheel needs a shown window"
    centre = widget.mapTo(window, widget.rect().center())
    QTest.wheelEvent(handle, QPointF(centre), QPoint(0, 120 * notches))
    QApplication.processEvents()


def click_at(window: QWidget, point: QPoint) -> QWidget:
    """Click at ``point`` in ``window`` as the window system does: whatever is under the
    pointer then gets the click (a label, a blank margin), not a widget the test chose.
    Returns what was clicked."""
    target = window.childAt(point) or window
    QTest.mouseClick(target, Qt.MouseButton.LeftButton, pos=target.mapFrom(window, point))
    return target


def type_at_the_keyboard(text: str) -> None:
    """Type ``text`` as a person does: each key goes to whatever has the keyboard at that
    moment (a Space that presses a button and closes a dialog sends the next keys
    elsewhere), not to a widget the test chose."""
    for char in text:
        target = QApplication.focusWidget() or QApplication.activeWindow()
        assert target is not None, "no window has the keyboard"
        QTest.keyClicks(target, char)


def press(key: Qt.Key) -> None:
    """Press ``key`` where the keyboard is (an open list, else the focused field), as
    ``type_at_the_keyboard`` types."""
    target = QApplication.focusWidget() or QApplication.activeWindow()
    assert target is not None, "no window has the keyboard"
    QTest.keyClick(target, key)


def _question(form: QWidget) -> QMessageBox | None:
    box = form.findChild(QMessageBox, "discardQuestion")
    return box if box is not None and box.isVisible() else None


def discard_question(qtbot: QtBot, form: QWidget) -> QMessageBox:
    """The "Discard what you typed?" question ``form`` asks (waits for it to show)."""
    qtbot.waitUntil(lambda: _question(form) is not None)
    box = _question(form)
    assert box is not None and box.text() == "Discard what you typed?"
    return box


def asks_nothing(form: QWidget) -> bool:
    """True while ``form`` shows no "Discard what you typed?" question."""
    return _question(form) is None


def answer_discard(qtbot: QtBot, form: QWidget, discard: bool = True) -> None:
    """Click Discard (or Keep editing) in the question ``form`` asks, as a person would."""
    box = discard_question(qtbot, form)
    text = "Discard" if discard else "Keep editing"
    button = next(b for b in box.buttons() if b.text() == text)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: asks_nothing(form))


def answer_discard_by_keyboard(qtbot: QtBot, form: QWidget, discard: bool = True) -> None:
    """Answer the question ``form`` asks from the keyboard, as a person does: Escape keeps
    editing; Tab from Keep editing (which has the keyboard) to Discard, then Space."""
    box = discard_question(qtbot, form)
    if discard:
        go = box.findChild(QPushButton, "discardQuestionButton")
        assert go is not None
        for _ in box.buttons():
            if box.focusWidget() is go:
                break
            QTest.keyClick(box.focusWidget() or box, Qt.Key.Key_Tab)
        assert box.focusWidget() is go, "Tab never reached Discard"
        QTest.keyClick(go, Qt.Key.Key_Space)
    else:
        QTest.keyClick(box.focusWidget() or box, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: asks_nothing(form))


class Held(threading.Event):
    """Set to let held work go on; ``entered`` is set once the work has begun (it waits)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()


@contextmanager
def held_on_the_worker(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> Iterator[Held]:
    """``owner.<name>`` (the real function or method, run where the app runs it: on the
    database worker, or the sync thread) starts only once the event yielded is set: the
    test acts while the work is in flight. ``owner`` is a Workstation or the module a screen
    calls it from. Set on the way out in any case."""
    release = Held()
    real = getattr(owner, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        release.entered.set()
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    try:
        yield release
    finally:
        release.set()


@pytest.fixture
def worker() -> Iterator[Worker]:
    """A database worker of its own (stopped after the test)."""
    w = Worker()
    yield w
    w.stop()


def _no_database() -> Database:
    raise RuntimeError("no clinic database in this test")


@pytest.fixture
def operations(worker: Worker) -> Operations:
    """Operations on ``worker`` for screens tested alone: reads only, no clinic database."""
    return Operations(worker, _no_database)


@pytest.fixture
def fresh_workstation(tmp_path: Path) -> Workstation:
    """A data folder with no clinic yet (first run)."""
    return Workstation(tmp_path / "clinic", kdf_params=FAST_PARAMS)


def _copy_of(template: Path, target: Path) -> Workstation:
    """The clinic in ``template`` copied to ``target`` (locked, as it was left)."""
    shutil.copytree(template, target)
    return Workstation(target, kdf_params=FAST_PARAMS)


@pytest.fixture(scope="session")
def _clinic_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Made once per session, copied per test: setting up a clinic (its migrations and
    # Argon2id runs) took a fifth of a second of CPU in each of a hundred-odd tests.
    path = tmp_path_factory.mktemp("sample") / "clinic"
    with no_os_keyring():
        new_clinic(path)
    return path


@pytest.fixture
def clinic(tmp_path: Path, _clinic_template: Path) -> Workstation:
    """A locked clinic holding the five sample patients."""
    return _copy_of(_clinic_template, tmp_path / "clinic")


@pytest.fixture(scope="session")
def _big_clinic_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built once per session (1,000 audited writes take a few seconds), copied per test.
    path = tmp_path_factory.mktemp("big") / "clinic"
    with no_os_keyring():
        new_clinic(path, BIG_CLINIC_SIZE - len(PATIENTS))
    return path


@pytest.fixture
def big_clinic(tmp_path: Path, _big_clinic_template: Path) -> Workstation:
    """A locked clinic of 1,000 patients."""
    return _copy_of(_big_clinic_template, tmp_path / "big")


@pytest.fixture
def make_window(qtbot: QtBot) -> Iterator[WindowFactory]:
    """Build, show and start a main window; always shut it down (worker stopped, locked)."""
    windows: list[MainWindow] = []

    def make(
        ws: Workstation,
        auto_lock_ms: int = 600_000,
        sync_options: dict[str, Any] | None = None,
        close_after_ms: int = 3_600_000,
        demo: bool = False,
    ) -> MainWindow:
        window = MainWindow(
            ws,
            auto_lock_ms=auto_lock_ms,
            sync_options=sync_options,
            close_after_ms=close_after_ms,
            demo=demo,
        )
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        window.start()
        return window

    yield make
    for window in windows:
        window.shutdown()
        assert not window.workstation.is_unlocked


def sign_in(
    qtbot: QtBot, window: MainWindow, username: str = ADMIN, password: str = PASSWORD
) -> None:
    """Type credentials into the sign-in screen and wait for the patient list's first page."""
    page = window.sign_in_page
    qtbot.waitUntil(lambda: window.stack.currentWidget() is page)
    page.username.setText(username)
    page.password.setText(password)
    QTest.mouseClick(page.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    model = window.workspace.patient_list.model
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() > 0, timeout=10_000)


@pytest.fixture
def signed_in(qtbot: QtBot, clinic: Workstation, make_window: WindowFactory) -> MainWindow:
    """A main window on the sample clinic, signed in as the admin, list loaded."""
    window = make_window(clinic)
    sign_in(qtbot, window)
    return window


@pytest.fixture
def app_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks the desktop app runs with (``careline`` installs them at start-up: core's
    for threads and unraisable exceptions, its own ``sys.excepthook``), all put back
    afterwards. Tests using it mark themselves ``qt_no_exception_capture``."""
    monkeypatch.setattr(logs, "_withholding", False)
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    # Kept, not reset to Python's default: careline's hook then hands each unraisable
    # exception on to pytest's, so a socket leaked meanwhile still fails the test.
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    logs.withhold_exception_messages()
    monkeypatch.setattr(sys, "excepthook", _report_unexpected)
