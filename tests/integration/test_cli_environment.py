"""A read-only folder and a full disk are named as what they are, never as damage to the
database, and never as a traceback; nothing committed is lost.

Real file systems: a small tmpfs mounted for the test (remounted read-only, or filled to the
last byte). Mounting needs root (CAP_SYS_ADMIN); elsewhere these tests skip. Plain chmod is
no test here: root writes through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records.workstation import Workstation
from core.store.errors import StoreEnvironmentError
from tests.integration.test_cli import PASSWORD, careline
from tests.integration.test_cli_keys import new_clinic


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own, unmounted afterwards."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, mode: str) -> None:
    """Make the tmpfs read-only (``ro``) or writable again (``rw``)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def admin(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return careline(data, "--password-stdin", *args, stdin=PASSWORD + "\n")


def add_patient(data: Path, family: str) -> subprocess.CompletedProcess[str]:
    return admin(data, "patient", "add", "--family", family, "--given", "Ann",
                 "--birth-date", "1980-02-03")  # fmt: skip


def fill(mount: Path) -> Path:
    """Fill the file system to its last byte; returns the filler file."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def add_until_refused(ws: Workstation) -> None:
    """Add patients until a write fails (the WAL outgrows the pages it already holds)."""
    for n in range(200):
        ws.records.add_patient(f"Full{n}", "Ann", "1980-02-03")


def families(data: Path) -> set[str]:
    found = careline(data, "--json", "--password-stdin", "patient", "search", "Ann",
                     stdin=PASSWORD + "\n")  # fmt: skip
    assert found.returncode == 0, found.stderr
    doc = json.loads(found.stdout)
    rows = doc["patients"] if isinstance(doc, dict) else doc
    return {str(p["family"]) for p in rows}


def assert_named_not_damage(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert words in result.stderr, result.stderr
    assert "damaged" not in result.stderr + result.stdout
    assert "FAILED" not in result.stdout
    assert "Traceback" not in result.stderr


def test_a_read_only_folder_is_named_and_the_database_not_called_damaged(tmpfs: Path) -> None:
    data = tmpfs / "clinic"
    new_clinic(data)
    assert add_patient(data, "Rowe").returncode == 0
    remount(tmpfs, "ro")

    for args in (("patient", "search", "Ann"), ("db", "check")):
        assert_named_not_damage(admin(data, *args), f"the folder {data} is read-only")
    assert_named_not_damage(add_patient(data, "Kerr"), "is read-only")
    fresh = careline(tmpfs / "new", "--password-stdin", "init", "--clinic", "C", "--user",
                     "admin", stdin=PASSWORD + "\n")  # fmt: skip
    assert_named_not_damage(fresh, "is read-only")

    remount(tmpfs, "rw")
    assert families(data) == {"Rowe"}
    assert admin(data, "db", "check").returncode == 0


def test_a_full_disk_is_named_and_nothing_committed_is_lost(tmpfs: Path) -> None:
    data = tmpfs / "clinic"
    new_clinic(data)
    assert add_patient(data, "Rowe").returncode == 0

    # A workstation already open when the disk fills (the -wal file exists): the failed
    # write names the full disk, not the rollback that SQLite had already done itself.
    ws = Workstation(data)
    ws.sign_in("admin", PASSWORD)
    try:
        filler = fill(tmpfs)
        with pytest.raises(StoreEnvironmentError, match=r"is full \(\d+ bytes free\)") as err:
            add_until_refused(ws)
        assert "rollback" not in str(err.value)
    finally:
        ws.lock()
    fill(tmpfs)  # closing freed the write-ahead log's space: take that too

    assert_named_not_damage(admin(data, "patient", "search", "Ann"), "is full (")
    assert_named_not_damage(admin(data, "db", "check"), "is full (")
    fresh = careline(tmpfs / "new", "--password-stdin", "init", "--clinic", "C", "--user",
                     "admin", stdin=PASSWORD + "\n")  # fmt: skip
    assert fresh.returncode == 1 and "Traceback" not in fresh.stderr
    assert "disk is full" in fresh.stderr or "is full (" in fresh.stderr, fresh.stderr

    filler.unlink()
    found = families(data)
    assert "Rowe" in found
    # Every patient whose write returned is there (those before the disk filled).
    assert {f for f in found if f.startswith("Full")} == {f"Full{n}" for n in range(len(found) - 1)}
    assert admin(data, "db", "check").returncode == 0
