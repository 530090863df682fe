"""Start-up: settings decide the data folder and the auto-lock; the look is applied."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.main import create_main_window, load_desktop_settings, set_up_application, stylesheet
from app.main_window import window_title
from app.messages import describe_error, validation_text
from core.config.settings import ConfigError
from core.crypto.kdf import FAST_PARAMS
from core.keys.errors import SlotFileError
from core.records.errors import AuthenticationError, ValidationError


def args(data_dir: Path, user: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(data_dir=data_dir, user=user, json=False, password_stdin=False)


def test_auto_lock_minutes_come_from_settings(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINE_AUTO_LOCK_MINUTES", "3")
    window = create_main_window(args(tmp_path, "nurse.joy"), kdf_params=FAST_PARAMS)
    qtbot.addWidget(window)
    try:
        assert window.idle.timeout_ms == 3 * 60_000
        assert window.workstation.data_dir == tmp_path
        assert window.workstation.kdf_params == FAST_PARAMS
        window.start()
        assert window.first_run is not None  # an empty folder: first run
    finally:
        window.shutdown()


def test_config_file_in_the_data_folder_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARELINE_AUTO_LOCK_MINUTES", raising=False)
    (tmp_path / "careline.toml").write_text("auto_lock_minutes = 7\n", encoding="utf-8")
    assert load_desktop_settings(tmp_path)["auto_lock_minutes"] == 7


def test_a_bad_setting_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELINE_AUTO_LOCK_MINUTES", "0")
    with pytest.raises(ConfigError, match="auto_lock_minutes"):
        create_main_window(args(tmp_path))


def test_stylesheet_is_found_and_applied(qapp: QApplication) -> None:
    sheet = stylesheet()
    assert "QPushButton#primary" in sheet
    previous_sheet, previous_font = qapp.styleSheet(), qapp.font()
    try:
        set_up_application(qapp)
        assert qapp.styleSheet() == sheet
        assert qapp.font().pointSizeF() >= 10.5
    finally:
        qapp.setStyleSheet(previous_sheet)
        qapp.setFont(previous_font)


def test_window_title_names_careline_once_and_last() -> None:
    assert window_title() == "Careline"
    assert window_title("Riverside") == "Riverside — Careline"
    assert window_title("Riverside", "Maria Garcia") == "Maria Garcia — Riverside — Careline"
    # A clinic named like the app does not make the title say it twice.
    assert window_title("Careline") == "Careline"
    assert window_title("careline", "Bao Nguyen") == "Bao Nguyen — Careline"


def test_errors_read_as_sentences() -> None:
    assert validation_text(ValidationError("birth_date", "is in the future")) == (
        "Date of birth is in the future."
    )
    assert describe_error(AuthenticationError("wrong user name or password")) == (
        "Wrong user name or password."
    )
    assert describe_error(SlotFileError("bad json")).startswith(
        "This workstation's key file cannot be read"
    )
    assert describe_error(ZeroDivisionError("oops")).startswith("Something went wrong")


class _Pinger(QObject):
    ping = Signal()


def test_signal_emission_does_not_leak_references() -> None:
    # PySide6 6.12.0 loses a reference to True on every emit(); on Python 3.11 the
    # interpreter then aborts after a few thousand emissions. pyproject excludes 6.12.0;
    # this guards against a binding with the same defect coming back.
    pinger = _Pinger()
    before = sys.getrefcount(True)
    for _ in range(2_000):
        pinger.ping.emit()
    assert before - sys.getrefcount(True) < 100, "this PySide6 leaks references on emit()"
