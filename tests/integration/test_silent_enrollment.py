"""Silent install and mass enrollment (issue #15 section 2), as IT runs it: a real
``careline-server`` process, one multi-use code, and ``careline enroll --machine`` on
several workstations that read the machine-wide configuration and have an OS keyring
(gnome-keyring on a private D-Bus) but nobody at the keyboard."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from core.sync.ca_pin import pem_fingerprint
from tests.conftest import PASSWORD
from tests.integration.server_process import (
    REPO,
    SERVER,
    ServerProcess,
    child_env,
    clinic_server,
    server_admin,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A running server with a clinic and its ``admin`` (password PASSWORD)."""
    with clinic_server(tmp_path / "server", "Hillside Clinic") as running:
        yield running


def machine_config(
    folder: Path, server: ServerProcess, code: str, fingerprint: str | None = None
) -> Path:
    """The machine-wide file IT deploys, pinning the server's CA by fingerprint."""
    fingerprint = fingerprint or pem_fingerprint(server.ca_pem)
    pairs = {
        "server_url": server.url,
        "server_ca_fingerprint": ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)),
        "enroll_code": code,
    }
    path = folder / "careline.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in pairs.items()))
    return path


def silent(
    data_dir: Path, machine: Path, keyring_env: Mapping[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``careline --data-dir D --json ARGS`` with the machine configuration and a keyring."""
    env = {
        **child_env(),
        **keyring_env,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        "CARELINE_MACHINE_CONFIG": str(machine),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.entry", "--data-dir", str(data_dir), "--json", *args],
        input=stdin, capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
        check=False,
    )  # fmt: skip


def test_one_code_enrolls_three_workstations_and_refuses_a_fourth(
    server: tuple[ServerProcess, str], tmp_path: Path, secret_service: dict[str, str]
) -> None:
    running, clinic = server
    issued = server_admin(running.data, {}, "enroll-code", clinic, "--uses", "3", "--ttl", "60")
    assert issued["uses"] == 3 and issued["clinic"] == clinic and issued["expires_at"]
    machine = machine_config(tmp_path / "etc", running, issued["code"])
    for n in range(3):
        done = silent(tmp_path / f"desk{n}", machine, secret_service, "enroll", "--machine")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["enrolled"] and result["clinic"] == "Hillside Clinic"
        # Nothing in the clear: the key file holds the OS-keyring slot alone.
        slots = json.loads((tmp_path / f"desk{n}" / "keyslots.json").read_text())["slots"]
        assert [s["kind"] for s in slots] == ["keyring"]
    # Run again (a deployment script re-run): nothing to do, still exit 0.
    again = silent(tmp_path / "desk0", machine, secret_service, "enroll", "--machine")
    assert again.returncode == 0 and json.loads(again.stdout)["enrolled"] is False
    fourth = silent(tmp_path / "desk3", machine, secret_service, "enroll", "--machine")
    assert fourth.returncode != 0
    assert "enrollment code has been used all 3 times; ask IT for a new one" in fourth.stderr
    assert not (tmp_path / "desk3" / "keyslots.json").exists()  # nothing kept
    devices = server_admin(running.data, {}, "device", "list")
    assert len(devices) == 3
    # Listed for IT with when each was enrolled (names can repeat: a host name).
    plain = subprocess.run(
        [*SERVER, "--data-dir", str(running.data), "admin", "device", "list"],
        capture_output=True, text=True, cwd=REPO, env=child_env(), timeout=120, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert sorted(line.split("  ")[0] for line in plain) == sorted(d["id"] for d in devices)
    for line, device in zip(sorted(plain), sorted(devices, key=lambda d: d["id"]), strict=True):
        assert f"  enrolled {device['enrolled_at'][:16].replace('T', ' ')}  active" in line
    # A staff member signs in on an enrolled workstation (the keyring opens it, the synced
    # verifier checks the password); the sign-in adds their own password slot.
    signed_in = silent(
        tmp_path / "desk1", machine, secret_service,
        "--user", "admin", "--password-stdin", "patient", "search", "nobody", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert signed_in.returncode == 0, signed_in.stderr
    slots = json.loads((tmp_path / "desk1" / "keyslots.json").read_text())["slots"]
    assert sorted(s["kind"] for s in slots) == ["keyring", "password"]


def test_expired_code_is_refused_and_a_bad_pin_sends_nothing(
    server: tuple[ServerProcess, str],
    tmp_path: Path,
    secret_service: dict[str, str],
    faketime: object,
) -> None:
    running, clinic = server
    shifted = faketime("-2h")  # type: ignore[operator]
    # Issued by an admin command whose clock is two hours behind: 60 minutes from then is
    # an hour ago.
    old = server_admin(running.data, shifted, "enroll-code", clinic, "--uses", "5")
    machine = machine_config(tmp_path / "etc", running, old["code"])
    refused = silent(tmp_path / "desk", machine, secret_service, "enroll", "--machine")
    assert refused.returncode != 0
    assert f"enrollment code expired at {old['expires_at']}; ask IT for a new one" in (
        refused.stderr
    )
    # A wrong fingerprint: refused before the code is sent, so the code keeps its use.
    fresh = server_admin(running.data, {}, "enroll-code", clinic)
    wrong = machine_config(tmp_path / "etc-wrong", running, fresh["code"], "0" * 64)
    mismatch = silent(tmp_path / "desk", wrong, secret_service, "enroll", "--machine")
    assert mismatch.returncode != 0
    assert "server_ca_fingerprint" in mismatch.stderr and "nothing was sent" in mismatch.stderr
    right = machine_config(tmp_path / "etc-right", running, fresh["code"])
    assert silent(tmp_path / "desk", right, secret_service, "enroll", "--machine").returncode == 0


def test_no_keyring_refuses_before_the_code_is_used(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    running, clinic = server
    issued = server_admin(running.data, {}, "enroll-code", clinic)
    machine = machine_config(tmp_path / "etc", running, issued["code"])
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    refused = subprocess.run(
        [sys.executable, "-m", "app.entry", "--data-dir", str(tmp_path / "desk"),
         "enroll", "--machine"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        env={**child_env(), **env, "CARELINE_MACHINE_CONFIG": str(machine)},
    )  # fmt: skip
    assert refused.returncode != 0
    assert "keyring" in refused.stderr and "code was not used" in refused.stderr
    assert not (tmp_path / "desk").exists()
    assert server_admin(running.data, {}, "device", "list") == []


def test_bad_machine_config_names_the_setting_and_the_file(tmp_path: Path) -> None:
    machine = tmp_path / "careline.toml"
    machine.write_text('server_url = "ftp://clinic.lan"\nenroll_code = "X"\n')
    env = {**child_env(), "CARELINE_MACHINE_CONFIG": str(machine)}
    bad = subprocess.run(
        [sys.executable, "-m", "app.entry", "--data-dir", str(tmp_path / "d"), "enroll",
         "--machine"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert "server_url" in bad.stderr and str(machine) in bad.stderr


def test_a_managed_workstation_is_not_enrolled_with_another_server_by_hand(
    tmp_path: Path,
) -> None:
    # IT's machine file names the clinic server (the enrollment settings are then locked):
    # 'careline enroll --server' elsewhere would send this computer's clinic to another
    # server. Refused before anything is made or sent.
    machine = tmp_path / "careline.toml"
    machine.write_text(
        f'server_url = "https://careline.clinic.lan:8443"\nserver_ca_fingerprint = "{"ab" * 32}"\n'
    )
    env = {**child_env(), "CARELINE_MACHINE_CONFIG": str(machine)}
    desk = tmp_path / "desk"
    other = subprocess.run(
        [sys.executable, "-m", "app.entry", "--data-dir", str(desk), "--user", "admin",
         "--password-stdin", "enroll", "--server", "https://127.0.0.1:9", "--code", "X"],
        input="correct horse battery\n", capture_output=True, text=True, cwd=REPO, env=env,
        timeout=60, check=False,
    )  # fmt: skip
    assert other.returncode == 2, other.stderr
    assert "https://careline.clinic.lan:8443" in other.stderr and str(machine) in other.stderr
    assert not desk.exists()
