"""``careline password change`` and ``careline keys recovery|rekey|recover`` as operators
script them: real processes, real SQLCipher, the real key file."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.lockout import DELAYS_FILE
from core.records.workstation import FAILED_SIGN_INS_FILE, RECOVERY_ACTOR, Workstation
from core.store.database import DB_FILE_NAME, Database
from core.store.errors import WrongKeyError
from tests.integration.test_cli import PASSWORD, careline
from tests.unit.store.disk import snapshot

NEW_PASSWORD = "a much newer password"
NURSE, NURSE_PASSWORD = "nurse.kim", "nurse's own password"
KEYRING_ENV = {"PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring"}


def new_clinic(data: Path, env: dict[str, str] | None = None) -> str:
    """``careline init`` in ``data``; returns the recovery key it printed."""
    result = careline(
        data, "--json", "--password-stdin", "init", "--clinic", "Harbour Clinic", "--user",
        "admin", stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["recovery_key"])


def opens_with(data: Path, password: str, user: str = "admin") -> int:
    """Exit code of a command that needs ``user`` to sign in with ``password``."""
    result = careline(
        data, "--user", user, "--password-stdin", "patient", "search", "x", stdin=password + "\n"
    )
    return result.returncode


def recover(
    data: Path, recovery_key: str, new_password: str, user: str = "admin"
) -> subprocess.CompletedProcess[str]:
    return careline(
        data, "--json", "--recovery-key-stdin", "keys", "recover", "--user", user,
        stdin=f"{recovery_key}\n{new_password}\n",
    )  # fmt: skip


def audit_entries(data: Path, password: str, user: str = "admin") -> list[tuple[str, str, str]]:
    """(actor, action, entity_id) of every audit entry, read in-process (opened with
    ``user``'s password slot)."""
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_password(user, password)
    try:
        rows = ws.database.query("SELECT actor, action, entity_id FROM audit_log ORDER BY seq")
        return [(str(a), str(b), str(c)) for a, b, c in rows]
    finally:
        ws.lock()


def add_nurse(data: Path, password: str = PASSWORD) -> None:
    """A clinician account that has signed in here once (so it has a password slot)."""
    ws = Workstation(data, FAST_PARAMS)
    ws.sign_in("admin", password)
    ws.records.add_user(NURSE, "Kim Nurse", "clinician", NURSE_PASSWORD)
    ws.sign_in(NURSE, NURSE_PASSWORD)
    ws.lock()


# ----- password change -------------------------------------------------------------------


def test_password_change_refuses_the_old_password_and_accepts_the_new(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    changed = careline(
        data, "--json", "--password-stdin", "password", "change",
        stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {"user": "admin", "password_changed": True}
    assert opens_with(data, PASSWORD) == 3
    assert opens_with(data, NEW_PASSWORD) == 0
    assert ("admin", "user.password_change", "user:admin") in audit_entries(data, NEW_PASSWORD)
    verify = careline(data, "--password-stdin", "audit", "verify", stdin=NEW_PASSWORD)
    assert verify.returncode == 0, verify.stdout


def test_a_staff_member_changes_their_own_password(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    add_nurse(data)
    changed = careline(
        data, "--user", "Nurse.Kim", "--password-stdin", "password", "change",
        stdin=f"{NURSE_PASSWORD}\n{NEW_PASSWORD}\n",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert "Password changed for 'nurse.kim'" in changed.stdout
    assert opens_with(data, NURSE_PASSWORD, NURSE) == 3
    assert opens_with(data, NEW_PASSWORD, NURSE) == 0
    assert opens_with(data, PASSWORD) == 0  # the admin's password is untouched


def test_password_change_failures_change_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    before = snapshot(data)

    wrong = careline(
        data, "--password-stdin", "password", "change", stdin=f"not it at all\n{NEW_PASSWORD}\n"
    )
    assert wrong.returncode == 3
    assert "wrong user name or password" in wrong.stderr

    missing = careline(data, "--password-stdin", "password", "change", stdin=PASSWORD + "\n")
    assert missing.returncode == 2
    assert "no second (new password) line" in missing.stderr

    short = careline(data, "--password-stdin", "password", "change", stdin=f"{PASSWORD}\nshort\n")
    assert short.returncode == 1
    assert "password: must be at least 10 characters" in short.stderr

    same = careline(
        data, "--password-stdin", "password", "change", stdin=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert same.returncode == 1
    assert "the same as the current one" in same.stderr

    no_terminal = careline(data, "password", "change")
    assert no_terminal.returncode == 2
    assert "--password-stdin" in no_terminal.stderr
    for result in (wrong, missing, short, same, no_terminal):
        assert result.stdout == ""
    # Only the note of the refused sign-in (the clinic was closed) and the account's
    # failure count (core/records/lockout.py) were written.
    after = snapshot(data)
    noted = {k for k in after if k.startswith((FAILED_SIGN_INS_FILE, DELAYS_FILE))}
    assert {k: v for k, v in after.items() if k not in noted} == before
    note = (data / FAILED_SIGN_INS_FILE).read_text()
    assert '"user": "admin"' in note and "not it at all" not in note
    assert opens_with(data, PASSWORD) == 0
    # Folded into the audit chain at that sign-in, and the note is gone.
    assert ("(unknown)", "user.sign_in_failed", "admin") in audit_entries(data, PASSWORD)
    assert not (data / FAILED_SIGN_INS_FILE).exists()


# ----- keys recover -------------------------------------------------------------------------


def test_recovery_key_sets_a_forgotten_password(tmp_path: Path) -> None:
    data = tmp_path / "d"
    recovery = new_clinic(data)
    result = recover(data, recovery, NEW_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "user": "admin",
        "password_changed": True,
    }
    assert opens_with(data, PASSWORD) == 3
    assert opens_with(data, NEW_PASSWORD) == 0
    # Audited through the normal write path, naming the key rather than a person.
    entries = audit_entries(data, NEW_PASSWORD)
    assert (RECOVERY_ACTOR, "user.password_change", "user:admin") in entries
    assert careline(data, "--password-stdin", "audit", "verify", stdin=NEW_PASSWORD).returncode == 0
    # The recovery key itself keeps working (only 'keys recovery' replaces it).
    assert recover(data, recovery, PASSWORD).returncode == 0
    assert opens_with(data, PASSWORD) == 0


def test_recovery_key_resets_another_users_password(tmp_path: Path) -> None:
    data = tmp_path / "d"
    recovery = new_clinic(data)
    add_nurse(data)
    plain = careline(
        data, "--password-stdin", "keys", "recover", "--user", NURSE, "--recovery-key-stdin",
        stdin=f"{recovery.lower().replace('-', ' ')}\n{NEW_PASSWORD}\n",
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "New password set for 'nurse.kim'" in plain.stdout
    assert opens_with(data, NURSE_PASSWORD, NURSE) == 3
    assert opens_with(data, NEW_PASSWORD, NURSE) == 0
    assert opens_with(data, PASSWORD) == 0


def test_wrong_recovery_key_exits_3_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    recovery = new_clinic(data)
    before = snapshot(data)
    other = Workstation(tmp_path / "other", FAST_PARAMS)
    other_key = other.init("Other", "admin", "Admin", PASSWORD)  # well-formed, wrong clinic
    other.lock()
    for key in (other_key, "not-a-recovery-key", recovery[:-4] + "AAAA"):
        result = recover(data, key, NEW_PASSWORD)
        assert result.returncode == 3, result.stderr
        assert "the recovery key is not correct" in result.stderr
        assert result.stdout == ""
        assert snapshot(data) == before
    # A right key with a too-short password, or an unknown user, is refused too.
    short = recover(data, recovery, "short")
    assert short.returncode == 1
    assert "at least 10 characters" in short.stderr
    assert snapshot(data) == before
    ghost = recover(data, recovery, NEW_PASSWORD, user="ghost")
    assert ghost.returncode == 1
    assert "no user 'ghost'" in ghost.stderr
    assert opens_with(data, PASSWORD) == 0


def test_recover_needs_its_inputs(tmp_path: Path) -> None:
    data = tmp_path / "d"
    recovery = new_clinic(data)
    no_user = careline(data, "--recovery-key-stdin", "keys", "recover", stdin=recovery)
    assert no_user.returncode == 2
    assert "--user" in no_user.stderr
    no_terminal = careline(data, "keys", "recover", "--user", "admin")
    assert no_terminal.returncode == 2
    assert "--recovery-key-stdin" in no_terminal.stderr
    no_password = careline(
        data, "keys", "recover", "--user", "admin", "--recovery-key-stdin", stdin=recovery + "\n"
    )
    assert no_password.returncode == 2
    assert "no new password line" in no_password.stderr


def test_a_recovery_key_given_to_a_command_that_does_not_read_it_is_refused(
    tmp_path: Path,
) -> None:
    """A script that passed the recovery key to open a closed clinic for another command
    went on as if it had been used (the flag was read by nothing else)."""
    data = tmp_path / "d"
    recovery = new_clinic(data)
    result = careline(
        data, "--recovery-key-stdin", "--password-stdin", "patient", "search", "x",
        stdin=f"{recovery}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--recovery-key-stdin is read only by 'keys recover' and 'backup restore'" in (
        result.stderr
    )


# ----- keys recovery ------------------------------------------------------------------------


def test_new_recovery_key_is_printed_once_and_replaces_the_old(tmp_path: Path) -> None:
    data = tmp_path / "d"
    old = new_clinic(data)
    result = careline(data, "--json", "--password-stdin", "keys", "recovery", stdin=PASSWORD)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert list(doc) == ["recovery_key"]
    new = doc["recovery_key"]
    assert new != old and len(new.split("-")) == 8
    assert result.stdout.count(new) == 1 and new not in result.stderr
    for f in data.iterdir():  # stored in no form: only the slot it opens
        assert new.encode() not in f.read_bytes()
        assert new.replace("-", "").encode() not in f.read_bytes()
    assert ("admin", "keys.recovery_replace") in [e[:2] for e in audit_entries(data, PASSWORD)]

    refused = recover(data, old, NEW_PASSWORD)
    assert refused.returncode == 3
    assert recover(data, new, NEW_PASSWORD).returncode == 0
    assert opens_with(data, NEW_PASSWORD) == 0

    plain = careline(data, "--password-stdin", "keys", "recovery", stdin=NEW_PASSWORD)
    assert plain.returncode == 0, plain.stderr
    assert "shown only now" in plain.stdout and "previous key no longer" in plain.stdout
    third = plain.stdout.strip().splitlines()[-1].strip()
    assert recover(data, new, PASSWORD).returncode == 3
    assert recover(data, third, PASSWORD).returncode == 0


# ----- keys rekey ---------------------------------------------------------------------------


def _db_key(data: Path) -> SecureMemory:
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_password("admin", PASSWORD)
    try:
        keys = ws._keys
        assert keys is not None
        return SecureMemory.from_bytes(bytearray(keys.db_key.read()))
    finally:
        ws.lock()


def test_rekey_keeps_password_and_recovery_key_working(tmp_path: Path) -> None:
    data = tmp_path / "d"
    recovery = new_clinic(data)
    added = careline(
        data, "--json", "--password-stdin", "patient", "add", "--family", "Rekeyed",
        "--given", "Still", "--birth-date", "1970-01-01", stdin=PASSWORD,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    old_key = _db_key(data)
    result = careline(data, "--json", "--password-stdin", "keys", "rekey", stdin=PASSWORD)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"rekeyed": True, "generation": 2}
    with pytest.raises(WrongKeyError):
        Database.open(data / DB_FILE_NAME, old_key)
    old_key.close()
    assert ("admin", "keys.rekey") in [e[:2] for e in audit_entries(data, PASSWORD)]

    found = careline(
        data, "--json", "--password-stdin", "patient", "search", "rekey", stdin=PASSWORD
    )
    assert found.returncode == 0, found.stderr
    assert [p["given"] for p in json.loads(found.stdout)] == ["Still"]
    assert recover(data, recovery, NEW_PASSWORD).returncode == 0
    assert opens_with(data, NEW_PASSWORD) == 0
    assert careline(data, "--password-stdin", "db", "check", stdin=NEW_PASSWORD).returncode == 0


def test_rekey_keeps_the_os_keyring_slot_working(
    tmp_path: Path, secret_service: dict[str, str]
) -> None:
    env = {**secret_service, **KEYRING_ENV}
    data = tmp_path / "d"
    recovery = new_clinic(data, env)
    keyring_only = careline(data, "--json", "patient", "search", "x", env=env)
    assert keyring_only.returncode == 0, keyring_only.stderr

    # Key management wants a person's password: the keyring proves nobody's identity.
    for action in ("rekey", "recovery"):
        refused = careline(data, "keys", action, env=env)
        assert refused.returncode == 2
        assert "the OS keyring is not enough here" in refused.stderr

    rekeyed = careline(data, "--password-stdin", "keys", "rekey", stdin=PASSWORD, env=env)
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert "still open it" in rekeyed.stdout
    after = careline(data, "--json", "patient", "search", "x", env=env)
    assert after.returncode == 0, after.stderr
    assert opens_with(data, PASSWORD) == 0
    assert recover(data, recovery, NEW_PASSWORD).returncode == 0
    assert careline(data, "--json", "patient", "search", "x", env=env).returncode == 0


# ----- roles --------------------------------------------------------------------------------


def test_only_an_admin_may_replace_the_recovery_key_or_rekey(tmp_path: Path) -> None:
    data = tmp_path / "d"
    recovery = new_clinic(data)
    add_nurse(data)
    keyfile = (data / "keyslots.json").read_bytes()
    for action, what in (
        ("recovery", "issue a new recovery key"),
        ("rekey", "re-encrypt the database"),
    ):
        result = careline(
            data, "--json", "--user", NURSE, "--password-stdin", "keys", action,
            stdin=NURSE_PASSWORD,
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stdout == ""
        # The permission matrix's refusal (core/records/permissions.py), audited.
        assert f"Only an admin can {what}" in result.stderr
    assert (data / "keyslots.json").read_bytes() == keyfile
    actions = [e[1] for e in audit_entries(data, PASSWORD)]
    assert "keys.rekey" not in actions and "keys.recovery_replace" not in actions
    assert actions.count("action.refused") == 2
    assert recover(data, recovery, NEW_PASSWORD).returncode == 0


def test_key_commands_leave_existing_commands_alone(tmp_path: Path) -> None:
    """Additive: the global options still parse as before, and 'careline --help' lists the
    new commands."""
    data = tmp_path / "d"
    new_clinic(data)
    helped = careline(data, "--help")
    assert helped.returncode == 0
    for word in ("password", "keys", "--recovery-key-stdin"):
        assert word in helped.stdout
    assert opens_with(data, PASSWORD) == 0


# ----- at a terminal ------------------------------------------------------------------------


def in_terminal(data: Path, args: list[str], answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run ``careline`` on a pseudo-terminal, answering each prompt as it appears (getpass
    reads the controlling terminal, not stdin); returns the exit code and everything shown."""
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    argv = [sys.executable, "-m", "app.entry", "--data-dir", str(data), *args]
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        try:
            os.execve(sys.executable, argv, env)  # noqa: S606 (a fixed argv, no shell)
        finally:
            os._exit(127)  # never back into pytest in the child
    shown, seen = b"", 0
    try:
        for prompt, answer in answers:
            while prompt.encode() not in shown[seen:]:
                ready, _, _ = select.select([fd], [], [], 60)
                if not ready:
                    raise TimeoutError(f"no prompt {prompt!r}; the terminal shows {shown!r}")
                shown += os.read(fd, 4096)
            seen = shown.index(prompt.encode(), seen) + len(prompt)
            os.write(fd, answer.encode() + b"\n")
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_password_change_and_recover_prompt_at_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "d"
    recovery = new_clinic(data)
    code, shown = in_terminal(
        data,
        ["password", "change"],
        [
            ("Current password for admin: ", PASSWORD),
            ("New password: ", NEW_PASSWORD),
            ("Repeat password: ", NEW_PASSWORD),
        ],
    )
    assert code == 0, shown
    assert "Password changed for 'admin'" in shown
    assert PASSWORD not in shown and NEW_PASSWORD not in shown  # never echoed
    assert opens_with(data, NEW_PASSWORD) == 0

    code, shown = in_terminal(
        data,
        ["keys", "recover", "--user", "admin"],
        [
            ("Recovery key: ", recovery),
            ("New password for admin: ", PASSWORD),
            ("Repeat password: ", PASSWORD),
        ],
    )
    assert code == 0, shown
    assert recovery not in shown
    assert opens_with(data, PASSWORD) == 0

    code, shown = in_terminal(
        data, ["keys", "rekey"], [("Password for admin: ", "not the password")]
    )
    assert code == 3
    assert "wrong user name or password" in shown
