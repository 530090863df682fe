"""``careline user ...`` as an administrator scripts it (real processes, the real key file):
staff added with a first password they must change, roles, deactivation, resets, the
last-admin guard, zxcvbn's refusals, sign-in delays (with the process clock moved by
libfaketime) and two-factor sign-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.records import two_factor
from tests.integration.test_cli import PASSWORD, careline
from tests.integration.test_cli_keys import new_clinic

FIRST = "tulip window seventeen"
OWN = "my own quiet harbour"


def admin(data: Path, *args: str, extra: str = "") -> subprocess.CompletedProcess[str]:
    """``careline --json --password-stdin ARGS`` as the admin; ``extra``: more stdin lines."""
    return careline(data, "--json", "--password-stdin", *args, stdin=PASSWORD + "\n" + extra)


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def as_user(
    data: Path, user: str, password: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return careline(
        data, "--json", "--user", user, "--password-stdin", *args, stdin=password + "\n", env=env
    )


def listed(data: Path) -> dict[str, Any]:
    return {m["username"]: m for m in ok(admin(data, "user", "list"))}


def test_a_new_member_changes_the_first_password_before_doing_anything(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    added = ok(
        admin(data, "user", "add", "nina", "--full-name", "Nina Nurse", "--role", "nurse",
              extra=FIRST + "\n")
    )  # fmt: skip
    assert added == {
        "username": "nina", "full_name": "Nina Nurse", "role": "nurse", "active": True,
        "must_change_password": True, "two_factor": False, "roles": ["nurse"],
    }  # fmt: skip
    refused = as_user(data, "nina", FIRST, "patient", "search", "x")
    assert refused.returncode == 3
    assert "must choose a new password before anything else" in refused.stderr
    assert "password change" in refused.stderr
    changed = careline(
        data, "--json", "--user", "nina", "--password-stdin", "password", "change",
        stdin=f"{FIRST}\n{OWN}\n",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert ok(as_user(data, "nina", OWN, "patient", "search", "x")) == []
    assert listed(data)["nina"]["must_change_password"] is False


def test_only_admins_manage_staff_and_the_last_admin_stays(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    ok(admin(data, "user", "add", "cara", "--full-name", "Cara C", "--role", "clinician",
             extra=FIRST + "\n"))  # fmt: skip
    careline(data, "--user", "cara", "--password-stdin", "password", "change",
             stdin=f"{FIRST}\n{OWN}\n")  # fmt: skip
    refused = careline(
        data, "--user", "cara", "--password-stdin", "user", "add", "eve", "--full-name", "Eve",
        "--role", "admin", stdin=f"{OWN}\n{FIRST}\n",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "only an administrator can add a staff member" in refused.stderr
    last = admin(data, "user", "deactivate", "admin")
    assert last.returncode != 0 and "last active administrator" in last.stderr
    demote = admin(data, "user", "role", "admin", "clinician")
    assert demote.returncode != 0 and "Make someone else an administrator first" in demote.stderr
    assert ok(admin(data, "user", "role", "cara", "admin"))["role"] == "admin"
    assert ok(admin(data, "user", "role", "admin", "clinician"))["role"] == "clinician"


def test_deactivated_staff_cannot_sign_in_until_reactivated(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    ok(admin(data, "user", "add", "dora", "--full-name", "Dora Desk", "--role", "front_desk",
             extra=FIRST + "\n"))  # fmt: skip
    careline(data, "--user", "dora", "--password-stdin", "password", "change",
             stdin=f"{FIRST}\n{OWN}\n")  # fmt: skip
    assert ok(admin(data, "user", "deactivate", "dora"))["active"] is False
    refused = as_user(data, "dora", OWN, "patient", "search", "x")
    assert refused.returncode == 3 and "has been deactivated" in refused.stderr
    # That open removed her key slot: her password no longer even opens this computer.
    again = as_user(data, "dora", OWN, "patient", "search", "x")
    assert again.returncode == 3 and "has not signed in on this workstation" in again.stderr
    text = careline(data, "--password-stdin", "user", "list", stdin=PASSWORD + "\n")
    assert "DEACTIVATED" in text.stdout
    assert ok(admin(data, "user", "reactivate", "dora"))["active"] is True
    # Back on staff: a reset gives her a slot here again and a password to change.
    ok(admin(data, "user", "reset-password", "dora", extra="welcome back lantern\n"))
    back = as_user(data, "dora", "welcome back lantern", "patient", "search", "x")
    assert "must choose a new password" in back.stderr


def test_an_admin_reset_forces_a_change_at_next_sign_in(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    ok(admin(data, "user", "add", "rob", "--full-name", "Rob", "--role", "clinician",
             extra=FIRST + "\n"))  # fmt: skip
    weak = admin(data, "user", "reset-password", "rob", extra="password123\n")
    assert weak.returncode != 0
    assert "too easy to guess" in weak.stderr and "common password" in weak.stderr
    reset = ok(admin(data, "user", "reset-password", "rob", extra="fresh start lantern\n"))
    assert reset["must_change_password"] is True
    refused = as_user(data, "rob", "fresh start lantern", "patient", "search", "x")
    assert "must choose a new password" in refused.stderr


def test_weak_first_passwords_are_refused_with_the_reason(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    weak = admin(data, "user", "add", "sam", "--full-name", "Sam Lee", "--role", "nurse",
                 extra="samlee2024\n")  # fmt: skip
    assert weak.returncode != 0
    assert "password: too easy to guess" in weak.stderr
    assert "sam" not in listed(data)


def test_failed_sign_ins_delay_only_that_account_and_time_lifts_it(
    tmp_path: Path, faketime: Callable[[str], dict[str, str]]
) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    ok(admin(data, "user", "add", "nina", "--full-name", "Nina", "--role", "nurse",
             extra=FIRST + "\n"))  # fmt: skip
    for _ in range(4):
        assert as_user(data, "nina", "not her password", "patient", "search", "x").returncode == 3
    delayed = as_user(data, "nina", FIRST, "patient", "search", "x")
    assert delayed.returncode == 3 and "try again in" in delayed.stderr
    # The admin signs in on the same computer meanwhile, and sees it.
    entry = listed(data)["nina"]["sign_in_delay"]
    assert entry["failures"] == 4 and 0 < entry["wait_seconds"] <= 5
    # A process whose clock is a minute on: the delay is over (the right password works,
    # and only now; the first password still must be changed).
    later = as_user(data, "nina", FIRST, "patient", "search", "x", env=faketime("+1m"))
    assert "must choose a new password" in later.stderr, later.stderr
    assert listed(data)["nina"]["sign_in_delay"] is None


def test_an_admin_enrols_two_factor_and_then_signs_in_with_a_code(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    enrol = subprocess.Popen(
        [sys.executable, "-m", "app.entry", "--data-dir", str(data), "--json",
         "--password-stdin", "user", "totp", "enrol"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert enrol.stdin is not None and enrol.stderr is not None
    enrol.stdin.write(PASSWORD + "\n")
    enrol.stdin.flush()
    secret = ""
    while not secret:
        line = enrol.stderr.readline()
        assert line, "no secret was shown"
        if line.strip().startswith("secret:"):
            secret = line.split(":", 1)[1].strip()
    assert enrol.stderr.readline().strip().startswith("uri:    otpauth://totp/")
    out, err = enrol.communicate(two_factor.current_code(secret) + "\n", timeout=120)
    assert enrol.returncode == 0, err
    assert json.loads(out)["two_factor"] is True

    without = admin(data, "patient", "search", "x")
    assert without.returncode != 0 and "two-factor code" in without.stderr
    wrong = "000000" if two_factor.current_code(secret) != "000000" else "111111"
    assert admin(data, "patient", "search", "x", extra=wrong + "\n").returncode == 3
    right = admin(data, "patient", "search", "x", extra=two_factor.current_code(secret) + "\n")
    assert right.returncode == 0, right.stderr
    # password change: old, new, then the code.
    changed = careline(
        data, "--password-stdin", "password", "change",
        stdin=f"{PASSWORD}\n{OWN}\n{two_factor.current_code(secret)}\n",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    off = careline(
        data, "--json", "--password-stdin", "user", "totp", "disable",
        stdin=f"{OWN}\n{two_factor.current_code(secret)}\n",
    )  # fmt: skip
    assert ok(off)["two_factor"] is False
    assert ok(as_user(data, "admin", OWN, "patient", "search", "x")) == []
