"""A person's own setting that IT locked in the machine-wide configuration is not silently
ignored: the status bar says which one, that IT sets it, and that their value is not used."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.locked_settings import locked_settings_text
from app.main import create_main_window
from core.config.settings import IgnoredValue
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from tests.ui.conftest import sign_in


def _machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    machine = tmp_path / "etc" / "careline.toml"
    machine.parent.mkdir()
    machine.write_text('auto_lock_minutes = 4\nlocked = ["auto_lock_minutes"]\n')
    monkeypatch.setenv("CARELINE_MACHINE_CONFIG", str(machine))
    monkeypatch.delenv("CARELINE_AUTO_LOCK_MINUTES", raising=False)
    return machine


def test_the_status_bar_says_an_own_locked_setting_is_not_used(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = _machine(tmp_path, monkeypatch)
    own = clinic.data_dir / "careline.toml"
    own.write_text("auto_lock_minutes = 30\nclose_after_idle_hours = 2\n")
    args = argparse.Namespace(data_dir=clinic.data_dir, user=None)
    window = create_main_window(args, workstation=clinic, kdf_params=FAST_PARAMS)
    qtbot.addWidget(window)
    try:
        assert window.idle.timeout_ms == 4 * 60_000  # IT's value, not hers
        window.show()
        window.start()
        sign_in(qtbot, window)
        notice = window.locked_settings
        assert notice.isVisible()
        # Her unlocked setting (close_after_idle_hours) is used, and not mentioned.
        assert notice.text() == (
            "auto_lock_minutes is set by your IT department; your own value 30 is not used."
        )
        assert f"in {own}" in notice.toolTip() and str(machine) in notice.toolTip()
    finally:
        window.shutdown()


def test_nothing_is_said_when_the_own_settings_are_all_allowed(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine(tmp_path, monkeypatch)
    (clinic.data_dir / "careline.toml").write_text("close_after_idle_hours = 2\n")
    args = argparse.Namespace(data_dir=clinic.data_dir, user=None)
    window = create_main_window(args, workstation=clinic, kdf_params=FAST_PARAMS)
    qtbot.addWidget(window)
    try:
        window.show()
        window.start()
        sign_in(qtbot, window)
        assert window.statusBar().isVisible() and not window.locked_settings.isVisible()
        assert window.locked_settings.text() == ""
    finally:
        window.shutdown()


def test_one_sentence_per_setting_given_in_two_places() -> None:
    ignored = [
        IgnoredValue("auto_lock_minutes", 30, "/home/jo/careline.toml", "/etc/careline.toml"),
        IgnoredValue("auto_lock_minutes", "45", "environment X", "/etc/careline.toml"),
    ]
    assert locked_settings_text(ignored).count("auto_lock_minutes") == 1
