"""Scheduled backups into a folder, keeping the newest N (the app's timer and
``careline backup create --dir D --keep N`` from cron or a systemd timer)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from core.records.workstation import Workstation
from core.sync.backup import BackupError, BackupResult, create_backup

SUFFIX = ".clbackup"
_NAME = re.compile(r"careline-backup-(\d{8}T\d{6}Z)(?:-(\d+))?\.clbackup")
# What a backup is written as until it is whole (sealed_file.write_bundle_file): a hidden
# name no listing above matches, so it never passes for a backup. One is left behind only
# when Careline was killed while writing; a day later it is no one's work in progress.
_PARTIAL = re.compile(r"\.careline-backup-\d{8}T\d{6}Z(?:-\d+)?\.clbackup\.partial-[0-9a-f]+")
STALE_PARTIAL = dt.timedelta(days=1)


def backup_name(now: dt.datetime) -> str:
    """``careline-backup-20261205T102000Z.clbackup``: names sort by time."""
    return f"careline-backup-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}{SUFFIX}"


def scheduled_backups(folder: Path) -> list[Path]:
    """The scheduled backups in ``folder``, oldest first (other files are not ours).

    Ordered by the time in the name, then by the number a second backup within the same
    second gets (``...Z-1.clbackup``): by name alone, ``-`` sorts before ``.``, which put the
    first backup of a second after the later ones."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if _NAME.fullmatch(p.name) and p.is_file()), key=_order
    )


def _order(path: Path) -> tuple[str, int]:
    match = _NAME.fullmatch(path.name)
    assert match is not None  # scheduled_backups lists only such names
    return match[1], int(match[2] or 0)


def last_backup_time(folder: Path) -> dt.datetime | None:
    """When the newest scheduled backup in ``folder`` was made (from its name)."""
    found = scheduled_backups(folder)
    return _made_at(found[-1]) if found else None


def is_due(folder: Path, every_hours: float, now: dt.datetime) -> bool:
    """True when no scheduled backup in ``folder`` is younger than ``every_hours``. One
    named after ``now`` (made while the clock was wrong) does not count: waiting for its
    date could mean no backup for years."""
    made = [_made_at(p) for p in scheduled_backups(folder)]
    last = max((t for t in made if t <= now), default=None)
    return last is None or now - last >= dt.timedelta(hours=every_hours)


def _made_at(path: Path) -> dt.datetime:
    match = _NAME.fullmatch(path.name)
    assert match is not None  # scheduled_backups lists only such names
    return dt.datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def prune(folder: Path, keep: int, now: dt.datetime | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest scheduled backups, and the partial files of
    backups cut off while being written (older than ``STALE_PARTIAL``: a younger one may
    be another process's backup in progress); returns what was deleted."""
    if keep < 1:
        raise BackupError("keep at least one backup (--keep 1 or more)")
    old = scheduled_backups(folder)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    cutoff = (now or dt.datetime.now(dt.UTC)) - STALE_PARTIAL
    for path in folder.iterdir() if folder.is_dir() else ():
        if _PARTIAL.fullmatch(path.name) and path.is_file():
            written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            if written < cutoff:
                path.unlink(missing_ok=True)
                old.append(path)
    return old


def backup_into(
    ws: Workstation,
    folder: Path,
    keep: int,
    actor: str,
    passphrase: str | None = None,
    now: dt.datetime | None = None,
    action: str = "backup.scheduled",
) -> tuple[BackupResult, list[Path]]:
    """One scheduled backup into ``folder`` (made if missing, mode 0700), then pruning to
    ``keep``. Returns the backup and the files pruned. ``action``: "backup.scheduled" for
    the app's own timer (set up by an admin), "backup.create" when a person asks."""
    if keep < 1:
        raise BackupError("keep at least one backup (--keep 1 or more)")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot make the backup folder {folder}: {exc.strerror}") from None
    when = now or dt.datetime.now(dt.UTC)
    target = folder / backup_name(when)
    n = 1
    while target.exists():  # two backups within a second
        target = folder / backup_name(when).replace(SUFFIX, f"-{n}{SUFFIX}")
        n += 1
    result = create_backup(ws, target, passphrase, actor, action)
    return result, prune(folder, keep)
