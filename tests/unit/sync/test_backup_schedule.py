"""When the workstation's own timer makes the next scheduled backup."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.sync.backup_schedule import backup_name, is_due, prune

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


def test_backups_made_within_one_second_are_kept_newest_first(tmp_path: Path) -> None:
    """Three backups in one second are named ...Z, ...Z-1, ...Z-2: keeping two keeps the
    last two made, not the first (by name alone, '-' sorts before '.')."""
    second = backup_name(dt.datetime(2026, 12, 5, 17, 53, 29, tzinfo=dt.UTC))
    earlier = backup_name(dt.datetime(2026, 12, 5, 17, 53, 28, tzinfo=dt.UTC))
    names = [earlier, second] + [second.replace(".clbackup", f"-{n}.clbackup") for n in (1, 2)]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    deleted = prune(tmp_path, 2)
    assert sorted(p.name for p in deleted) == sorted(names[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
