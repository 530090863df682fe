"""When the workstation's own timer makes the next scheduled backup."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.sync.backup_schedule import backup_name, is_due

NOW = dt.datetime(2026, 12, 5, 11, 0, tzinfo=dt.UTC)


def test_a_backup_is_due_once_the_newest_is_old_enough(tmp_path: Path) -> None:
    assert is_due(tmp_path, 24, NOW)
    (tmp_path / backup_name(NOW - dt.timedelta(hours=2))).write_bytes(b"x")
    assert not is_due(tmp_path, 24, NOW)
    assert is_due(tmp_path, 1, NOW)


def test_a_backup_named_in_the_future_does_not_stop_the_schedule(tmp_path: Path) -> None:
    # A clock once wrong (a flat CMOS battery, a mistyped date) named a backup years
    # ahead; once the clock is right, waiting for that date would mean no backup for years.
    (tmp_path / backup_name(NOW + dt.timedelta(days=3 * 365))).write_bytes(b"x")
    assert is_due(tmp_path, 24, NOW)
    # Then the one made now counts: not due again at every tick of the timer.
    (tmp_path / backup_name(NOW)).write_bytes(b"x")
    assert not is_due(tmp_path, 24, NOW + dt.timedelta(minutes=5))
