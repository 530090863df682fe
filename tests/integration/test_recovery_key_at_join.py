"""Only an administrator ever holds a workstation's recovery key: a front-desk (or nurse)
join makes none and shows none, so ``keys recover`` cannot reset an administrator's
password with it; an administrator's join still shows one; an administrator replaces a key
that a non-administrator saw before this was so, and the old key stops opening the
computer. Real TLS server, real ``careline`` processes, real SQLCipher and key file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys.errors import WrongSecretError
from core.records.workstation import Workstation
from core.sync.join import JoinRequest, join_clinic
from core.sync.lan import identity as lan_id
from core.sync.lan.server import PeerServer
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, live_server
from tests.integration.test_cli import careline
from tests.integration.test_cli_keys import audit_entries, opens_with
from tests.services import free_port_pair

DESK, ITADMIN = "rita", "itadmin"
STOLEN = "Stolen-Admin-Pass-4471"
MAKE_ONE = "An administrator makes this computer's recovery key after signing in here"


@dataclass(frozen=True)
class Clinic:
    """A clinic on a live server: its admin ``itadmin``, front desk ``rita``, and
    ``newadmin``, an admin who must still replace the password set for them."""

    live: Live
    clinic_id: str
    ca_file: Path

    def code(self) -> str:
        """A new one-time enrollment code."""
        return self.live.server.registry.issue_enroll_code(self.clinic_id, 10)[0]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    folder = tmp_path_factory.mktemp("server")
    with live_server(folder / "server") as live:
        clinic_id = add_clinic(live.server, "Hillside Clinic")
        server = live.server
        server.add_user(clinic_id, ITADMIN, "Ian Tadmin", "admin", PASSWORD, False)
        server.add_user(clinic_id, DESK, "Rita Desk", "front_desk", PASSWORD, False)
        server.add_user(clinic_id, "newadmin", "Nell Newadmin", "admin", PASSWORD, True)
        ca_file = folder / "ca.pem"
        ca_file.write_text(live.ca_pem)
        yield Clinic(live, clinic_id, ca_file)


def enroll(clinic: Clinic, data: Path, user: str, *json_flag: str) -> tuple[int, str, str]:
    """``careline enroll`` into the empty ``data`` as ``user``."""
    result = careline(
        data, *json_flag, "--password-stdin", "--user", user, "enroll", "--server",
        clinic.live.url, "--ca-file", str(clinic.ca_file), "--code-stdin",
        stdin=f"{PASSWORD}\n{clinic.code()}\n",
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def itadmin_signs_in_after_rita(data: Path) -> None:
    """Rita opens the computer and signs out, and itadmin signs in (as at the app's
    sign-in screen): his first sign-in here gives him a password slot, so the commands
    below open this keyring-less computer with his password too."""
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_password(DESK, PASSWORD)
    ws.sign_in(ITADMIN, PASSWORD)
    ws.lock()


def recover_as_itadmin(data: Path, key: str) -> tuple[int, str]:
    """The tester's step: the recovery key, then a new password for ``itadmin``."""
    result = careline(
        data, "keys", "recover", "--user", ITADMIN, "--recovery-key-stdin",
        stdin=f"{key}\n{STOLEN}\n",
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_a_front_desk_enrollment_shows_no_recovery_key_and_cannot_reset_an_admin(
    clinic: Clinic, tmp_path: Path
) -> None:
    data = tmp_path / "wsA"
    code, out, err = enroll(clinic, data, DESK, "--json")
    assert code == 0, err
    doc = json.loads(out)
    # Still one parseable document: the key is null and the reason says why.
    assert doc["clinic"] == "Hillside Clinic" and doc["records"] > 0
    assert (doc["recovery_key"], doc["recovery_key_reason"]) == (None, "not_an_administrator")
    ws = Workstation(data, FAST_PARAMS)
    assert ws.keychain().recovery_slot() is None  # nothing anyone could have been shown

    # Plain words say who makes the key, and nothing looks like one.
    code, out, err = enroll(clinic, tmp_path / "wsB", DESK)
    assert code == 0, err
    assert MAKE_ONE in out and "RECOVERY KEY" not in out

    # The tester's steps, with any key at all: refused, itadmin's password unchanged, and
    # rita cannot make herself an admin.
    itadmin_signs_in_after_rita(data)
    code, said = recover_as_itadmin(data, "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567")
    assert code != 0 and "no recovery slot" in said and "New password set" not in said
    assert opens_with(data, STOLEN, ITADMIN) != 0 and opens_with(data, PASSWORD, ITADMIN) == 0
    promote = careline(
        data, "--user", ITADMIN, "--password-stdin", "user", "role", DESK, "admin",
        stdin=STOLEN + "\n",
    )  # fmt: skip
    assert promote.returncode != 0 and "is now admin" not in promote.stdout

    # A front-desk person cannot make one either; an administrator can, here.
    refused = careline(data, "--user", DESK, "--password-stdin", "keys", "recovery",
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert refused.returncode != 0 and "issue a new recovery key" in refused.stderr
    made = careline(data, "--json", "--user", ITADMIN, "--password-stdin", "keys", "recovery",
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    ws.unlock_with_recovery_key(json.loads(made.stdout)["recovery_key"])
    ws.lock()


def test_an_administrators_enrollment_still_shows_the_recovery_key(
    clinic: Clinic, tmp_path: Path
) -> None:
    data = tmp_path / "wsA"
    code, out, err = enroll(clinic, data, ITADMIN, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["recovery_key"] and doc["recovery_key_reason"] is None
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_recovery_key(doc["recovery_key"])
    ws.lock()
    # Made as the admin who was shown it, in the audit log.
    assert (ITADMIN, "keys.recovery_replace") in [
        e[:2] for e in audit_entries(data, PASSWORD, ITADMIN)
    ]
    plain = enroll(clinic, tmp_path / "wsB", ITADMIN)
    assert plain[0] == 0 and "RECOVERY KEY for this workstation" in plain[1]


def test_an_admin_who_must_change_their_password_first_gets_no_key_at_join(
    clinic: Clinic, tmp_path: Path
) -> None:
    ws = Workstation(tmp_path / "ws", FAST_PARAMS)
    request = JoinRequest(
        "newadmin", PASSWORD, server_url=clinic.live.url, enroll_code=clinic.code(),
        ca_pem=clinic.live.ca_pem,
    )  # fmt: skip
    result = join_clinic(ws, request)
    assert (result.recovery_key, result.recovery_key_reason) == (None, "password_change_pending")
    assert "choose your own password" in result.recovery.words
    assert ws.keychain().recovery_slot() is None


def test_a_key_a_non_admin_saw_before_the_fix_stops_working_once_an_admin_replaces_it(
    clinic: Clinic, tmp_path: Path
) -> None:
    """Workstations joined by a non-admin under an earlier release have a recovery key she
    was shown: an administrator's ``careline keys recovery`` replaces it, and from then on
    it neither resets a password nor opens the computer."""
    data = tmp_path / "wsA"
    assert enroll(clinic, data, DESK)[0] == 0
    # What the earlier release's join left: a recovery slot whose key rita was shown.
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_password(DESK, PASSWORD)
    seen_by_rita = ws.keychain().new_recovery_key(ws.unlocked_keys)
    ws.lock()

    itadmin_signs_in_after_rita(data)
    replaced = careline(data, "--json", "--user", ITADMIN, "--password-stdin", "keys",
                        "recovery", stdin=PASSWORD + "\n")  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    code, said = recover_as_itadmin(data, seen_by_rita)
    assert code == 3 and "the recovery key is not correct" in said
    assert opens_with(data, PASSWORD, ITADMIN) == 0
    with pytest.raises(WrongSecretError):
        ws.unlock_with_recovery_key(seen_by_rita)
    ws.unlock_with_recovery_key(json.loads(replaced.stdout)["recovery_key"])
    ws.lock()


def test_a_nurse_pairing_over_the_lan_is_shown_no_recovery_key(
    workstation: Workstation, tmp_path: Path
) -> None:
    workstation.records.add_user("nina", "Nina Nurse", "nurse", PASSWORD)
    identity = lan_id.ensure_identity(workstation.database, "admin")
    code = lan_id.new_pair_code(workstation.database, "admin")
    joiner = tmp_path / "joiner"
    with PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as server:
        result = careline(
            joiner, "--json", "--password-stdin", "--user", "nina", "pair", "join",
            "--peer", f"127.0.0.1:{server.port}", "--code-stdin", stdin=f"{PASSWORD}\n{code}\n",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["recovery_key"], doc["recovery_key_reason"]) == (None, "not_an_administrator")
    assert Workstation(joiner, FAST_PARAMS).keychain().recovery_slot() is None
