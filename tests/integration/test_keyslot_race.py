"""``password change`` racing another process's sign-in, with real ``careline`` processes.

The race: process B reads the person's synced verifier and spends an Argon2id check on the
old password; meanwhile process A commits the new verifier and re-wraps the key slot under
the new password. B's sign-in then succeeds (the old password was right when it was read)
and must not re-wrap the slot under the old password labelled with the new verifier: that
locked the person out with both passwords. The harness moves B's start until B signs in with
the old password after A's change has committed (seen in the audit log), which is exactly
the window; every attempt on the way must leave the person able to get in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.keys.keychain import Keychain
from core.records.workstation import Workstation
from tests.integration.test_cli import PASSWORD, careline
from tests.integration.test_cli_keys import NEW_PASSWORD, new_clinic, opens_with

ATTEMPTS = 12


def start(data: Path, stdin: str, *args: str) -> subprocess.Popen[str]:
    """A ``careline`` process reading ``stdin`` (the --password-stdin lines)."""
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    lines = data.parent / f"{data.name}-{args[0]}.stdin"
    lines.write_text(stdin)
    with lines.open() as fh:
        command = [sys.executable, "-m", "app.entry", "--data-dir", str(data)]
        return subprocess.Popen(
            [*command, "--password-stdin", *args],
            stdin=fh,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Exit code and stderr of a started process."""
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def actions_after_change(data: Path, recovery_key: str) -> list[str]:
    """Audit actions recorded after the password change (read with the recovery key, which
    opens the clinic whatever happened to the password slots)."""
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_recovery_key(recovery_key)
    try:
        rows = ws.database.query("SELECT action FROM audit_log ORDER BY seq")
    finally:
        ws.lock()
    actions = [str(r[0]) for r in rows]
    return actions[actions.index("user.password_change") + 1 :]


def test_password_change_racing_a_sign_in_never_locks_the_person_out(
    tmp_path: Path, production_kdf: None
) -> None:
    # Production Argon2id cost: B's check of the old password is the window aimed at.
    base = tmp_path / "base"
    recovery_key = new_clinic(base)
    # One sign-in first, so the slot is labelled with the verifier (as on a used workstation).
    assert opens_with(base, PASSWORD) == 0

    delay, step, caught = 1.0, 0.4, False
    outcomes: list[str] = []
    for attempt in range(ATTEMPTS):
        data = tmp_path / f"race-{attempt}"
        shutil.copytree(base, data)
        change = start(data, f"{PASSWORD}\n{NEW_PASSWORD}\n", "password", "change")
        time.sleep(delay)  # where B starts relative to A: moved towards the window below
        sign_in = start(data, f"{PASSWORD}\n", "patient", "search", "x")
        changed, change_err = finish(change)
        signed_in, _ = finish(sign_in)
        assert changed == 0, change_err
        # Read before anything else signs in: a sign-in after the change is B's.
        b_after_change = signed_in == 0 and "user.sign_in" in actions_after_change(
            data, recovery_key
        )

        # Whatever the interleaving: the new password gets in, the old one does not, and
        # the key file is whole.
        assert opens_with(data, NEW_PASSWORD) == 0, f"locked out after a start {delay:.2f}s"
        assert opens_with(data, PASSWORD) == 3
        chain = Keychain.load(data / "keyslots.json")
        assert chain.password_users() == ["admin"]
        assert json.loads((data / "keyslots.json").read_text())["slot_verifiers"]["admin"]

        outcomes.append(f"{delay:.2f}s: B exit {signed_in}, after change: {b_after_change}")
        if b_after_change:
            caught = True  # B checked the old password across A's commit: the window
            break
        if signed_in == 0:
            delay += step  # B finished before A's change committed: start it later
        else:
            delay = max(0.0, delay - step)  # B read the new verifier: start it earlier
            step /= 2
    assert caught, "the race window was never reached: " + "; ".join(outcomes)
    assert careline(data, "--password-stdin", "db", "check", stdin=NEW_PASSWORD).returncode == 0
