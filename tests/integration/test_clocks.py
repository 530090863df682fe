"""Clocks that lie, with real programs: a workstation whose clock is hours ahead or days
behind (libfaketime, see tests.faketime) sends and receives every write through a real
``careline-server run`` process and with a LAN peer, and ``careline sync --once`` says how
far off its clock is. On PostgreSQL too, changes stamped days ahead and days behind are
kept and drag no clock along.

The workstation with the wrong clock is a ``careline`` process; the one with the right
clock runs in this process, to keep the tests quick.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.store import clinic_time
from core.store.database import Database
from core.store.oplog import parse_hlc
from core.sync import clock
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import pair_and_sync
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.session import sync
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import add_clinic, enroll_desk, live_server, sync_at
from tests.integration.server_process import (
    REPO,
    ServerProcess,
    child_env,
    clinic_server,
    server_admin,
)
from tests.services import free_port_pair

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
Shift = Callable[[str], dict[str, str]]


def _careline(
    clock: dict[str, str], data: Path, *args: str, user: bool = True
) -> subprocess.CompletedProcess[str]:
    """One ``careline`` command on ``data`` (as admin unless ``user`` is False, password on
    stdin), its clock shifted by the environment ``clock`` (libfaketime)."""
    who = ["--user", "admin"] if user else []
    return subprocess.run(
        [sys.executable, "-m", "app.entry", "--data-dir", str(data), *who, "--password-stdin",
         *args],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO,
        env={**child_env(), **clock}, timeout=120, check=False,
    )  # fmt: skip


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _add_patient(clock: dict[str, str], data: Path, given: str) -> str:
    """``careline patient add`` (family Skew) with the shifted clock; the new patient's id."""
    added = _careline(clock, data, "--json", "patient", "add", "--family", "Skew", "--given",
                      given, "--birth-date", "1990-01-01")  # fmt: skip
    patient_id: str = json.loads(_ok(added))["id"]
    return patient_id


def _stamp_of(db: Database, record_id: str) -> int:
    """Wall time (ms) in the HLC of the newest op on ``record_id`` held in ``db``."""
    rows = db.query("SELECT hlc FROM oplog WHERE record_id = ? ORDER BY rowid DESC", (record_id,))
    return parse_hlc(str(rows[0][0]))[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A real ``careline-server run`` with the right time; its clinic's id."""
    with clinic_server(tmp_path_factory.mktemp("clocks") / "server", "Clock Clinic") as running:
        yield running


def _code(running: ServerProcess, clinic: str) -> str:
    code: str = server_admin(running.data, {}, "enroll-code", clinic, "--ttl", "10")["code"]
    return code


@pytest.mark.parametrize(("shift", "name", "words", "as_json"), [
    ("+2h", "Ahead", "This computer's clock is 2 hours ahead of the clinic server", False),
    ("-2d", "Behind", "This computer's clock is 2 days behind the clinic server", True),
], ids=["hours-ahead", "days-behind"])  # fmt: skip
@pytest.mark.mdns
def test_a_desk_whose_clock_is_off_syncs_both_ways_through_the_server_and_is_told(
    server: tuple[ServerProcess, str],
    faketime: Shift,
    tmp_path: Path,
    no_keyring: None,
    shift: str,
    name: str,
    words: str,
    as_json: bool,
) -> None:
    running, clinic = server
    right, credential = enroll_desk(running.url, running.ca_pem, _code(running, clinic),
                                    tmp_path / "right")  # fmt: skip
    off, fake = tmp_path / "off", faketime(shift)
    # Enrolling means TLS with the server: its certificate is newer than this clock says.
    _ok(_careline(fake, off, "enroll", "--server", running.url, "--code", _code(running, clinic),
                  "--ca-file", str(running.data / "tls" / "server.pem")))  # fmt: skip
    theirs = right.records.add_patient("Mensah", f"Ama {name}", "1979-05-05").id
    sync_at(right, credential)
    mine = _add_patient(fake, off, name)

    if as_json:
        report = json.loads(_ok(_careline(fake, off, "--json", "sync", "--once")))
        pushed, pulled, said = report["pushed"], report["pulled"], report["clock_notice"]
        assert abs(report["clock_offset_ms"] + 2 * DAY) < MINUTE
    else:
        line = _ok(_careline(fake, off, "sync", "--once"))
        found = re.match(r"Synced: (\d+) received, (\d+) sent\. (.*)\.$", line.strip())
        assert found is not None, line
        pulled, pushed, said = int(found[1]), int(found[2]), found[3]
    assert said == words
    assert pushed >= 1 and pulled >= 1
    # Both writes went all the way: the wrong clock's to the right one, and back.
    shown = json.loads(_ok(_careline(fake, off, "--json", "patient", "show", theirs)))
    assert shown["given"] == f"Ama {name}"
    sync_at(right, credential)
    assert right.records.get_patient(mine).given == name
    # Its enrollment measured its clock against the server's: its change is stamped with
    # the clinic's time, not two hours ahead or two days behind.
    assert abs(_stamp_of(right.database, mine) - clinic_time.wall_ms()) < 2 * MINUTE


@contextmanager
def _serving(clock: dict[str, str], data: Path, port: int) -> Iterator[None]:
    """``careline serve`` on 127.0.0.1, its clock shifted by ``clock``, until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "app.entry", "--data-dir", str(data), "--json",
         "--password-stdin", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO, env={**child_env(), **clock},
    )  # fmt: skip
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(PASSWORD + "\n")
        process.stdin.flush()
        started = json.loads(process.stdout.readline() or "null")
        assert started is not None, process.stderr.read() if process.stderr else ""
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def test_a_desk_hours_ahead_syncs_both_ways_with_a_lan_peer_and_is_told(
    faketime: Shift, tmp_path: Path, workstation: Workstation
) -> None:
    # The peer with the right clock set up the clinic and serves it; the desk whose clock is
    # two hours ahead pairs with it and syncs with ``careline sync --peer``.
    identity = lan_id.ensure_identity(workstation.database, "admin")
    with PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as peer:
        address, desk, fake = f"127.0.0.1:{peer.port}", tmp_path / "desk", faketime("+2h")
        code = lan_id.new_pair_code(workstation.database, "admin")
        _ok(_careline(fake, desk, "pair", "join", "--peer", address, "--code", code))
        theirs = workstation.records.add_patient("Mensah", "Ama", "1979-05-05").id
        mine = _add_patient(fake, desk, "Sam")
        line = _ok(_careline(fake, desk, "sync", "--peer", address, "--once"))
        assert line.strip().endswith(
            "This computer's clock is 2 hours ahead of the workstation it synced with."
        )
        assert workstation.records.get_patient(mine).given == "Sam"
        shown = json.loads(_ok(_careline(fake, desk, "--json", "patient", "show", theirs)))
        assert shown["given"] == "Ama"


def test_a_peer_a_day_behind_serves_and_receives_every_write(
    faketime: Shift, tmp_path: Path, no_keyring: None
) -> None:
    # The workstation whose clock is a day behind set up the clinic (so it issued every
    # certificate of the clinic under its own clock) and serves it; one with the right
    # clock pairs with it and syncs.
    behind, fake, port = tmp_path / "behind", faketime("-1d"), free_port_pair()
    _ok(_careline(fake, behind, "init", "--clinic", "Slow Clock Clinic", "--user", "admin",
                  user=False))  # fmt: skip
    with _serving(fake, behind, port):
        code = json.loads(_ok(_careline(fake, behind, "--json", "pair", "code")))["code"]
        right = Workstation(tmp_path / "right", FAST_PARAMS)
        right.prepare_join("admin", PASSWORD)
        joined = pair_and_sync(right.database, "127.0.0.1", port, code, "admin")
        right.lock()
        right.sign_in("admin", PASSWORD)
        try:
            theirs = right.records.add_patient("Mensah", "Ama", "1979-05-05").id
            mine = _add_patient(fake, behind, "Sam")
            with LanTransport(f"127.0.0.1:{port}", joined.identity) as transport:
                report = sync(right.database, transport, "admin")
            assert report.pushed >= 1 and report.pulled >= 1
            assert clock.clock_notice(report.clock_offset_ms, clock.PEER) == (
                "This computer's clock is 1 day ahead of the workstation it synced with"
            )
            assert right.records.get_patient(mine).given == "Sam"
            shown = json.loads(_ok(_careline(fake, behind, "--json", "patient", "show", theirs)))
            assert shown["given"] == "Ama"
        finally:
            right.lock()


def test_postgres_keeps_changes_stamped_days_ahead_and_behind_and_its_clock_stays(
    tmp_path: Path, postgres_url: str, no_keyring: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with live_server(tmp_path / "server", {"DATABASE_URL": postgres_url}) as live:
        clinic = add_clinic(live.server, "Clock Clinic")
        desks = []
        real = clinic_time.wall_ms
        for name, off in (("ahead", 3 * DAY), ("behind", -3 * DAY)):
            code, _ = live.server.registry.issue_enroll_code(clinic, 10)
            ws, credential = enroll_desk(live.url, live.ca_pem, code, tmp_path / name)
            with monkeypatch.context() as patch:  # this desk's clock is three days off
                patch.setattr(clinic_time, "wall_ms", lambda off=off, real=real: real() + off)
                pid = ws.records.add_patient("Skew", name, "1990-01-01").id
            assert abs(_stamp_of(ws.database, pid) - (real() + off)) < MINUTE
            sync_at(ws, credential)  # pushed to the PostgreSQL replica: nothing refused
            desks.append((ws, credential, pid))
        for ws, credential, _ in desks:
            sync_at(ws, credential)
        for ws, _, _ in desks:
            assert sorted(p.given for p in ws.records.search_patients("Skew")) == [
                "ahead",
                "behind",
            ]
        # The server's own next change (an account it adds) is stamped now, not three days
        # ahead: it did not follow the desk whose clock ran fast.
        live.server.add_user(clinic, "nora", "Nora Nurse", "clinician", PASSWORD)
        ws, credential, _ = desks[1]
        sync_at(ws, credential)
        [stamp] = [
            parse_hlc(str(h))[0]
            for (h,) in ws.database.query(
                "SELECT hlc FROM oplog WHERE origin NOT IN (SELECT value FROM meta "
                "WHERE key = 'replica_id') ORDER BY rowid DESC LIMIT 1"
            )
        ]
        assert abs(stamp - clinic_time.wall_ms()) < MINUTE
        for ws, _, _ in desks:
            ws.lock()
