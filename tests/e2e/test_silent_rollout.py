"""IT's rollout morning (issue #15, silent install and mass enrollment): the real app on a
virtual X screen, typed at through the X server (xdotool), as the clinic's staff meet it.

A real ``careline-server run`` holds the clinic, its administrator and a nurse whose first
password IT handed out; IT issues one enrollment code good for two workstations and deploys
the machine-wide configuration (``CARELINE_MACHINE_CONFIG``: the server, its CA fingerprint,
the code, and an auto-lock time staff may not change). Each workstation has an OS keyring
(gnome-keyring on a private D-Bus) and an empty data folder.

Workstation 1 starts: no wizard, it joins by itself, the sign-in screen says so; the nurse
types her name and the password IT gave her, chooses her own, and has her worklist.
Workstation 2 does the same, and she signs in there with the password she chose on the
first (it reached the server with workstation 1's sync); her own settings file there asks
for a longer auto-lock than IT allows, which the app says it does not use. Workstation 3
finds the code used up: the app says so in plain words and offers to set it up by hand.
The server's device list holds the two workstations and nothing of the third.

Screenshots of every step are kept in the test's folder (``CARELINE_E2E_SHOTS`` names a
folder to keep them in instead) and their paths printed, so that a person can look at them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from core.sync.ca_pin import pem_fingerprint
from tests.e2e.test_desktop_turns import screen, sign_in
from tests.e2e.xdesktop import Desktop, VirtualScreen, shots_folder
from tests.integration.server_process import ServerProcess, clinic_server, server_admin

__all__ = ["screen"]  # the fixture, shared with the other desktop tests

CLINIC = "Hillside Clinic"
NURSE, NURSE_NAME = "nurse.jo", "Jo Nurse"
FIRST = "tulip window seventeen"  # the first password IT hands out
OWN = "jo's own password 42"  # the one she chooses
LOCKED_MINUTES = 3

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """The clinic server, running, with the clinic's admin and a nurse (first password)."""
    with clinic_server(tmp_path / "server", CLINIC) as (running, clinic):
        server_admin(running.data, {}, "user", "add", clinic, NURSE, "--role", "nurse",
                     "--full-name", NURSE_NAME, stdin=FIRST + "\n")  # fmt: skip
        yield running, clinic


def machine_config(folder: Path, server: ServerProcess, code: str) -> Path:
    """``/etc/careline/careline.toml`` as IT deploys it (the fingerprint as a browser
    shows it: colon-separated pairs)."""
    digest = pem_fingerprint(server.ca_pem)
    pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "careline.toml"
    path.write_text(
        f'server_url = "{server.url}"\n'
        f'server_ca_fingerprint = "{pairs}"\n'
        f'enroll_code = "{code}"\n'
        f"auto_lock_minutes = {LOCKED_MINUTES}\n"
        'locked = ["auto_lock_minutes"]\n'
    )
    return path


def shot(app: Desktop, name: str) -> None:
    print(f"screenshot: {app.shot(name)}")


def staff_member(server: ServerProcess, clinic: str, username: str) -> dict[str, Any]:
    members = server_admin(server.data, {}, "user", "list", clinic)
    return next(m for m in members if m["username"] == username)


def wait_until(probe: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def start_joined(
    screen: VirtualScreen, folder: Path, shots: Path, env: Mapping[str, str], name: str
) -> Desktop:
    """Start the app on an empty data folder; wait for the sign-in screen it joins to."""
    app = Desktop(screen, folder, shots, env)
    # The sign-in screen after joining carries the clinic's name in the window title;
    # the joining page before it does not.
    app.wait_title(f"{CLINIC} — Careline", timeout=40)
    app.pause(0.8)
    app.focus()
    shot(app, f"{name}-joined-sign-in")
    return app


def test_rollout_morning_two_workstations_join_from_one_code_and_a_third_is_told(
    screen: VirtualScreen,
    server: tuple[ServerProcess, str],
    tmp_path: Path,
    secret_service: dict[str, str],
) -> None:
    running, clinic = server
    issued = server_admin(running.data, {}, "enroll-code", clinic, "--uses", "2", "--ttl", "60")
    machine = machine_config(tmp_path / "etc-careline", running, issued["code"])
    env = {
        **secret_service,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        "CARELINE_MACHINE_CONFIG": str(machine),
    }
    shots = shots_folder(tmp_path, "rollout")

    # Workstation 1: joins by itself; the nurse signs in with IT's password, chooses hers.
    first = start_joined(screen, tmp_path / "ws1", shots / "ws1", env, "ws1")
    try:
        sign_in(first, NURSE, FIRST)
        dialog = first.wait_title("Choose your password", timeout=20)
        first.screen.xdotool("windowfocus", "--sync", dialog)
        shot(first, "ws1-choose-password")
        first.type(OWN)
        first.key("Tab")
        first.type(OWN)
        first.key("Return")
        first.wait_title(f"{CLINIC} — Careline", timeout=30)
        first.pause(1.5)
        first.focus()
        shot(first, "ws1-nurse-worklist")
        assert first.title() == f"{CLINIC} — Careline"
        # Her own password reaches the server with this workstation's background sync.
        wait_until(
            lambda: not staff_member(running, clinic, NURSE)["must_change_password"],
            "the nurse's new password to reach the server",
        )
    finally:
        code = first.quit()
    assert code == 0, first.tail()

    # Workstation 2: the same, and her own password works there at once. Its data folder
    # holds nothing of the clinic, only a settings file of her own (copied with her
    # profile) asking for a longer auto-lock than IT allows: the status bar tells her.
    own = tmp_path / "ws2" / "careline.toml"
    own.parent.mkdir()
    own.write_text("auto_lock_minutes = 30\n")
    second = start_joined(screen, tmp_path / "ws2", shots / "ws2", env, "ws2")
    try:
        sign_in(second, NURSE, OWN)
        second.pause(1)
        second.focus()
        shot(second, "ws2-nurse-worklist")  # the status bar: IT sets auto_lock_minutes
        assert "Choose your password" not in second.title()
        assert second.title() == f"{CLINIC} — Careline"
    finally:
        code = second.quit()
    assert code == 0, second.tail()
    assert f"auto_lock_minutes from {own} is ignored" in second.tail()

    # Workstation 3: the code is used up; the app says so and offers a way on.
    third = Desktop(screen, tmp_path / "ws3", shots / "ws3", env)
    try:
        third.wait_title("Could not join the clinic", timeout=40)
        third.pause(0.5)
        shot(third, "ws3-code-used-up")
        third.focus()
        third.key("alt+h")  # "Set up by hand"
        third.wait(lambda: "Could not join" not in third.title(), "the first-run wizard")
        third.pause(0.8)
        shot(third, "ws3-set-up-by-hand")
    finally:
        code = third.quit()
    assert code == 0, third.tail()
    assert "has been used all 2 times; ask IT for a new one" in third.tail()

    devices = server_admin(running.data, {}, "device", "list")
    assert len(devices) == 2, devices
    assert not (tmp_path / "ws3" / "keyslots.json").exists()
