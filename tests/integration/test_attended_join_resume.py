"""An attended join (a person's password; the wizard or ``careline enroll``) whose first
sync fails after the server accepted the code: the computer keeps its enrollment behind
that person's password and the next attempt finishes it without a code (whose use is
spent); another server, another person or the silent path are refused, and the attempt
can be discarded on request. Real TLS server (stopped mid-download), real SQLCipher, the
real ``careline`` command."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys.errors import NoSlotError
from core.records import two_factor
from core.records.errors import AuthenticationError, SecondFactorRequiredError
from core.records.workstation import Workstation
from core.sync.ca_pin import pem_fingerprint
from core.sync.enroll import EnrollmentError
from core.sync.join import (
    FirstSyncUnfinishedError,
    JoinRequest,
    NoAccountError,
    PendingJoin,
    UnfinishedJoinError,
    discard_unfinished_join,
    first_sync_pending,
    join_clinic,
    pending_join,
)
from core.sync.silent_join import MachineEnrollment, join_silently
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, live_server, sync_at
from tests.integration.server_fixtures import join_clinic as enrolled_desk
from tests.integration.test_cli import careline
from tests.services import free_port


def _request(live: Live, code: str, password: str = PASSWORD, url: str = "") -> JoinRequest:
    return JoinRequest(
        "admin", password, server_url=url or live.url, enroll_code=code, ca_pem=live.ca_pem,
        device_name="Front desk",
    )  # fmt: skip


@dataclass(frozen=True)
class HaltedJoin:
    """A desk's attended join whose server went away during the first download: the desk
    (in ``folder``), the spent one-use code, and the server's data and port."""

    desk: Workstation
    folder: Path
    code: str
    data: Path
    port: int

    def server_again(self) -> AbstractContextManager[Live]:
        """The same server (its data, on its port) running again."""
        return live_server(self.data, port=self.port)


def _halted_join(tmp_path: Path) -> HaltedJoin:
    """A real server; a desk's attended join of a one-use code; the server stopped after the
    first page of the download. The failure says the attempt is kept and how to finish it."""
    data, port = tmp_path / "server", free_port()
    folder = tmp_path / "desk"
    desk = Workstation(folder, kdf_params=FAST_PARAMS)
    with live_server(data, port=port) as live:
        clinic = add_clinic(live.server, "Hillside Clinic")
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)  # one use
        with pytest.raises(FirstSyncUnfinishedError, match="no new code is needed") as failed:
            join_clinic(desk, _request(live, code), on_progress=lambda _report: live.halt())
        (device,) = live.server.registry.devices(clinic)
    # The device left enrolled, by the ID IT revokes it by.
    assert f"enrolled as device {device.id}, but the first sync failed" in str(failed.value)
    assert failed.value.device_id == device.id
    assert "same user name and password" in str(failed.value)
    return HaltedJoin(desk, folder, code, data, port)


def test_an_attended_join_whose_first_sync_failed_is_finished_without_a_code(
    tmp_path: Path,
) -> None:
    halted = _halted_join(tmp_path)
    desk, folder, code = halted.desk, halted.folder, halted.code
    assert first_sync_pending(desk) and not desk.is_unlocked
    assert pending_join(desk) == PendingJoin(True, "admin")

    with halted.server_again() as live:
        # The code is spent: a second computer cannot use it.
        other = Workstation(tmp_path / "other", kdf_params=FAST_PARAMS)
        with pytest.raises(EnrollmentError, match="refused enrollment"):
            join_clinic(other, _request(live, code))
        assert not other.is_initialized()
        # Never mixed: another server, the silent path, a LAN peer, another password.
        elsewhere = live.url.replace("127.0.0.1", "localhost")
        with pytest.raises(UnfinishedJoinError, match="was not contacted"):
            join_clinic(desk, _request(live, "", url=elsewhere))
        silent = MachineEnrollment(
            live.url, code, None, pem_fingerprint(live.ca_pem), "Front desk", "machine.toml"
        )
        with pytest.raises(UnfinishedJoinError, match="started by admin"):
            join_silently(desk, silent)
        with pytest.raises(UnfinishedJoinError, match="unfinished"):
            join_clinic(desk, JoinRequest("admin", PASSWORD, pair_code="X", peer="h:1"))
        with pytest.raises(AuthenticationError, match=r"started with \(admin\)"):
            join_clinic(desk, _request(live, "", password="not the password"))
        assert first_sync_pending(desk) and not desk.is_unlocked
        # ``careline enroll`` run again (the same command; the spent code is not sent)
        # finishes it as the person who started it.
        ca = tmp_path / "ca.pem"
        ca.write_text(live.ca_pem)
        done = careline(
            folder, "--json", "--password-stdin", "--user", "admin", "enroll",
            "--server", live.url, "--ca-file", str(ca), "--code", code, stdin=PASSWORD + "\n",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["clinic"] == "Hillside Clinic" and result["recovery_key"]
    assert not first_sync_pending(desk) and not desk.is_unlocked
    desk.sign_in("admin", PASSWORD)
    desk.lock()
    # The recovery key shown now opens it (the first attempt's was never shown).
    desk.unlock_with_recovery_key(result["recovery_key"])
    desk.lock()
    assert not discard_unfinished_join(desk)  # a finished clinic is never removed
    assert desk.is_initialized()


def test_an_unfinished_attended_join_is_resumed_or_discarded_from_the_command_line(
    tmp_path: Path,
) -> None:
    halted = _halted_join(tmp_path)
    desk, folder = halted.desk, halted.folder
    # --resume needs no code; with the server still away it keeps the attempt.
    again = careline(
        folder, "--password-stdin", "--user", "admin", "enroll", "--resume",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert again.returncode == 1
    assert "no new code is needed" in again.stderr and "Traceback" not in again.stderr
    assert first_sync_pending(desk)
    gone = careline(folder, "--json", "enroll", "--discard-unfinished")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["discarded"] is True
    assert not desk.is_initialized() and not first_sync_pending(desk)
    assert sorted(p.name for p in folder.iterdir()) == []
    nothing = careline(folder, "enroll", "--discard-unfinished")
    assert nothing.returncode != 0 and "holds no unfinished join" in nothing.stderr


def test_records_without_the_persons_account_leave_nothing_even_once_enrolled(
    tmp_path: Path,
) -> None:
    """A server that cannot check the account before the code is spent (an older release;
    test_join_account_check.py for today's): the code is spent, but a replica of the clinic
    is not left behind a password the clinic does not know: the attempt is removed."""
    folder = tmp_path / "desk"
    desk = Workstation(folder, kdf_params=FAST_PARAMS)
    with live_server(tmp_path / "server", without_routes=("/v1/enroll/account",)) as live:
        clinic = add_clinic(live.server, "Hillside Clinic")
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        ghost = JoinRequest(
            "ghost", PASSWORD, server_url=live.url, enroll_code=code, ca_pem=live.ca_pem
        )
        with pytest.raises(NoAccountError):
            join_clinic(desk, ghost)
    assert not folder.exists() and not first_sync_pending(desk)


def test_a_person_with_two_factor_sign_in_joins_and_resumes(tmp_path: Path) -> None:
    """Two-factor sign-in (admins, who set up workstations): the right password, with the
    code asked for next, proves the account arrived; the person signs in with their code
    afterwards. Neither the join nor its resume is discarded for it. Without the code the
    join has not proved the second factor, so it makes no recovery key (which resets other
    accounts' passwords): the admin makes it once signed in with the code."""
    data, port = tmp_path / "server", free_port()
    desk = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS)
    other = Workstation(tmp_path / "other", kdf_params=FAST_PARAMS)
    secret = two_factor.new_secret()
    with live_server(data, port=port) as live:
        clinic = add_clinic(live.server, "Hillside Clinic")
        first, credential = enrolled_desk(
            live.server, live.url, live.ca_pem, clinic, tmp_path / "a"
        )
        assert first.staff().enrol_totp(secret, two_factor.current_code(secret)).two_factor
        sync_at(first, credential)
        first.lock()
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        result = join_clinic(desk, _request(live, code))
        assert not first_sync_pending(desk) and desk.is_initialized()
        assert (result.recovery_key, result.recovery_key_reason) == (None, "second_factor_pending")
        # A resume after a failed first sync finishes too (the code was spent).
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        with pytest.raises(FirstSyncUnfinishedError):
            join_clinic(other, _request(live, code), on_progress=lambda _report: live.halt())
    with live_server(data, port=port) as live:
        resumed = join_clinic(other, _request(live, ""))
    assert resumed.recovery_key is None and not first_sync_pending(other)
    for ws in (desk, other):
        assert ws.keychain().recovery_slot() is None
        with pytest.raises(SecondFactorRequiredError):
            ws.sign_in("admin", PASSWORD)
        ws.sign_in("admin", PASSWORD, totp_code=two_factor.current_code(secret))
        made = ws.new_recovery_key()
        ws.lock()
        ws.unlock_with_recovery_key(made)
        ws.lock()


def test_nothing_but_the_join_opens_a_kept_attended_attempt(
    tmp_path: Path, secret_service: dict[str, str]
) -> None:
    """A kept attempt holds records of a clinic that may not know the person who started
    it: until the join finishes (with the account check), neither the OS keyring nor any
    other command opens it; the keyring slot is added once the account is checked."""
    halted = _halted_join(tmp_path)
    desk, folder = halted.desk, halted.folder
    assert not desk.has_keyring_slot()
    with pytest.raises(NoSlotError):
        desk.unlock_with_keyring()
    assert desk.unfinished_join_by() == "admin"
    env = {**secret_service, "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring"}
    for given, command in (
        ((), ("sync",)),
        ((), ("patient", "search", "x")),
        (("--password-stdin", "--user", "admin"), ("patient", "search", "x")),
        (("--password-stdin", "--user", "admin"), ("db", "check")),
    ):
        refused = careline(folder, *given, *command, stdin=PASSWORD + "\n", env=env)
        assert refused.returncode == 3, (command, refused.stderr)
        assert "admin's unfinished join" in refused.stderr
        assert "enroll --resume" in refused.stderr and "--discard-unfinished" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert first_sync_pending(desk) and not desk.is_unlocked
    with halted.server_again() as live:
        join_clinic(desk, _request(live, ""))
    assert not first_sync_pending(desk) and desk.unfinished_join_by() is None
    assert desk.has_keyring_slot()  # now that the account is checked
    desk.unlock_with_keyring()
    desk.lock()
