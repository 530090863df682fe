"""When the workstation's own timer makes the next scheduled backup."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from core.crypto import sealed_file
from core.records.workstation import Workstation
from core.sync.backup import BackupError
from core.sync.backup_schedule import backup_into, backup_name, is_due, prune, scheduled_backups

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


def test_a_backup_cut_off_while_written_leaves_nothing_that_passes_for_one(
    workstation: Workstation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is written under a hidden partial name and renamed once whole: a backup
    that stops half-way leaves no file named as a backup, and the schedule stays due."""
    folder = tmp_path / "scheduled"
    real_write = sealed_file.write

    def cut_off(dst: BinaryIO, *args: Any, **kwargs: Any) -> None:
        real_write(dst, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sealed_file, "write", cut_off)
    # Said as a backup problem naming the file (it was an OSError the app called an error
    # it did not expect, "your last change may not have been saved").
    with pytest.raises(BackupError, match=r"cannot write the backup .*\.clbackup: No space left"):
        backup_into(workstation, folder, 7, "admin", now=NOW)
    assert list(folder.iterdir()) == []
    assert is_due(folder, 24, NOW)


def test_a_partial_file_left_by_a_killed_backup_goes_a_day_later(tmp_path: Path) -> None:
    """Killed while writing, Careline leaves the hidden partial file (never listed as a
    backup); the next backup's pruning removes it once it is a day old, and leaves a
    younger one (another process's backup may be writing it) and other files alone."""
    name = backup_name(NOW)
    stale = tmp_path / f".{name}.partial-0a1b2c3d"
    fresh = tmp_path / f".{backup_name(NOW - dt.timedelta(hours=1))}.partial-4e5f6071"
    other = tmp_path / "notes.txt"
    for path in (stale, fresh, other):
        path.write_bytes(b"half")
    for path, age in ((stale, dt.timedelta(days=2)), (fresh, dt.timedelta(hours=1))):
        when = (NOW - age).timestamp()
        os.utime(path, (when, when))
    assert scheduled_backups(tmp_path) == []
    assert prune(tmp_path, 2, now=NOW) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name])
