"""The desktop app SIGKILLed during a sync: on restart the database is intact and sync
completes.

Real processes on 127.0.0.1: ``careline-server run``, and the desktop app itself
(:mod:`tests.e2e.app_driver`: the real MainWindow, offscreen, signed in with the admin's
password, its own background sync thread pulling). The workstation is behind the server by
thousands of ops; the app is killed as soon as it reports, through its status bar's download
progress, that part of the pull has been applied, so the kill lands inside the pull on fast
and slow machines alike. Then ``careline db check`` passes, and the restarted app syncs to
exactly the server's ops: none lost, none twice.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from core.records.replication import replica_id
from core.records.workstation import Workstation
from core.server.service import ClinicServer
from core.store.database import Database
from core.store.oplog import version_vector
from tests.conftest import PASSWORD
from tests.integration.seed import bulk_patients
from tests.integration.server_fixtures import (
    join_clinic,
    server_process_with_admin,
    sync_at,
)
from tests.integration.server_process import REPO, ServerProcess, careline, child_env

REMOTE_PATIENTS = 3_000  # six batches of 500: a pull the app shows a progress bar for


class AppProcess:
    """The desktop app (``tests.e2e.app_driver``) as a child process; its stdout lines."""

    def __init__(self, data_dir: Path, log: Path, *extra: str) -> None:
        self.log = log
        with log.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.app_driver", "--data-dir", str(data_dir),
                 *extra],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                cwd=REPO, env=child_env(),
            )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(PASSWORD + "\n")
        self.process.stdin.close()
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, wanted: Callable[[str], bool], seconds: float, what: str) -> str:
        """The first new line ``wanted`` accepts; fails on timeout or exit first."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}: {self.describe()}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=10)
                raise AssertionError(f"the app exited before {what}: {self.describe()}")
            self.lines.append(line)
            if wanted(line):
                return line

    def describe(self) -> str:
        """What the app said so far, for failure messages."""
        return f"stdout {self.lines}\nstderr:\n{self.log.read_text(errors='replace')[-3000:]}"

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or locked."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Kill if still running; collect the output pipe."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)  # ends at end of output, once the process is gone
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, ClinicServer, str]]:
    """A running server process; this process's admin view of its data; the clinic id."""
    with server_process_with_admin(tmp_path / "server", "Killed App Clinic") as running:
        yield running


def _held_ops(db: Database) -> dict[str, tuple[int, int, int]]:
    """Per origin: (ops held, lowest seq, highest seq)."""
    rows = db.query("SELECT origin, count(*), min(seq), max(seq) FROM oplog GROUP BY origin")
    return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def _open(desk: Path) -> Workstation:
    ws = Workstation(desk)
    ws.sign_in("admin", PASSWORD)
    return ws


def test_app_killed_during_a_pull_then_restarted_converges(
    server: tuple[ServerProcess, ClinicServer, str], tmp_path: Path, no_keyring: None
) -> None:
    running, admin, clinic = server
    desk = tmp_path / "desk"
    # Enrolled while the clinic is small, then another workstation adds thousands of
    # patients: the app's next sync pulls them op by op, in batches.
    ws, _ = join_clinic(admin, running.url, running.ca_pem, clinic, desk, "front desk")
    ws.lock()
    other, other_credential = join_clinic(
        admin, running.url, running.ca_pem, clinic, tmp_path / "other", "back office"
    )
    bulk_patients(other.database, "Remote", REMOTE_PATIENTS)
    other_origin = replica_id(other.database)
    sync_at(other, other_credential)
    other.lock()
    server_vv = version_vector(admin.replica(clinic))
    assert server_vv[other_origin] == REMOTE_PATIENTS
    ws = _open(desk)
    before = sum(version_vector(ws.database).values())
    ws.lock()

    app = AppProcess(desk, tmp_path / "app1.stderr")
    try:
        app.wait_for(lambda line: line == "signed-in", 60, "the sign-in")
        step = app.wait_for(
            lambda line: line.startswith("progress changes ") and int(line.split()[2]) > 0,
            60,
            "the first applied batch",
        )
        app.kill()
    finally:
        app.stop()
    _, _, done, total = step.split()
    assert int(done) < int(total) == REMOTE_PATIENTS, step

    # The database survived the kill, and holds a whole number of applied batches' worth.
    checked = careline(desk, "--json", "db", "check")
    assert checked.returncode == 0, checked.stderr + checked.stdout
    ws = _open(desk)
    try:
        held = version_vector(ws.database)
        assert ws.database.integrity_problems() == []
    finally:
        ws.lock()
    assert before < sum(held.values()) < sum(server_vv.values()), "not killed mid-pull"

    # The app restarted: it signs in, finishes the pull by itself, and quits once synced.
    again = AppProcess(desk, tmp_path / "app2.stderr", "--quit-when-synced")
    try:
        again.wait_for(lambda line: line == "state synced", 60, "the sync to complete")
        assert again.process.wait(timeout=30) == 0, again.describe()
    finally:
        again.stop()

    # Every op the server holds, each exactly once; the other workstation's from seq 1.
    ws = _open(desk)
    try:
        final_vv = version_vector(admin.replica(clinic))
        assert version_vector(ws.database) == final_vv
        assert (
            ws.database.query(
                "SELECT origin, seq FROM oplog GROUP BY origin, seq HAVING count(*) > 1"
            )
            == []
        )
        held_ops = _held_ops(ws.database)
        assert held_ops[other_origin] == (REMOTE_PATIENTS, 1, REMOTE_PATIENTS)
        for origin, (count, low, high) in held_ops.items():
            assert count == high - low + 1 and high == final_vv[origin], origin
        assert ws.records.count_patients() == REMOTE_PATIENTS
        assert ws.database.integrity_problems() == []
    finally:
        ws.lock()
    checked = careline(desk, "--json", "audit", "verify")
    assert checked.returncode == 0, checked.stderr + checked.stdout
