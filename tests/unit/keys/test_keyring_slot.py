"""The OS-keyring slot against a real Secret Service (gnome-keyring on a private bus)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys import keyring_store
from core.keys.errors import KeyringUnavailableError, WrongSecretError
from core.keys.keychain import Keychain
from core.records.workstation import Workstation
from tests.conftest import PASSWORD


def test_init_adds_keyring_slot_that_unlocks(tmp_path: Path, secret_service: object) -> None:
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    ws.init("Clinic", "admin", "Admin", PASSWORD)
    assert ws.keyring_note is None
    ws.records.add_patient("Keyring", "Opened", "1980-01-01")
    ws.lock()
    chain = ws.keychain()
    assert {s.kind for s in chain.slots} == {"password", "recovery", "keyring"}
    stored = keyring.get_password(keyring_store.SERVICE, chain.keyring_account)
    assert stored is not None
    assert "Clinic" not in chain.keyring_account and "admin" not in chain.keyring_account
    ws.unlock_with_keyring()
    assert ws.unlock_for("admin").search_patients("keyring")[0].given == "Opened"
    ws.lock()


def test_removing_keyring_slot_deletes_the_secret(tmp_path: Path, secret_service: object) -> None:
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    ws.init("Clinic", "admin", "Admin", PASSWORD)
    ws.lock()
    chain = ws.keychain()
    slot = next(s for s in chain.slots if s.kind == "keyring")
    chain.remove_slot(slot.slot_id)
    assert keyring.get_password(keyring_store.SERVICE, chain.keyring_account) is None
    ws.sign_in("admin", PASSWORD)  # the password slot still opens it
    ws.lock()


def test_wrong_secret_in_keyring(tmp_path: Path, secret_service: object) -> None:
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    ws.init("Clinic", "admin", "Admin", PASSWORD)
    ws.lock()
    chain = Keychain.load(ws.keyfile_path)
    keyring_store.store_secret(chain.keyring_account, b"x" * 32)
    with pytest.raises(WrongSecretError, match="does not open this workstation"):
        chain.unlock_with_keyring()


def test_plaintext_keyring_backends_are_refused() -> None:
    class PlainFileKeyring(keyring.backend.KeyringBackend):
        """Stands in for keyrings.alt's plaintext file backend."""

        priority = 1

        def get_password(self, service: str, username: str) -> str | None:
            return None

        def set_password(self, service: str, username: str, password: str) -> None:
            raise AssertionError("a plaintext backend must never receive the secret")

        def delete_password(self, service: str, username: str) -> None:
            return None

    previous = keyring.get_keyring()
    keyring.set_keyring(PlainFileKeyring())  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(KeyringUnavailableError, match="does not store secrets encrypted"):
            keyring_store.store_secret("workstation-x", b"s" * 32)
    finally:
        keyring.set_keyring(previous)


def test_keyring_slot_without_a_keyring_says_what_to_do(
    tmp_path: Path, secret_service: dict[str, str]
) -> None:
    """The workstation was set up with a keyring; now none is reachable (an SSH session, a
    headless service). The message names the problem and the way in, and a password works."""
    ws = Workstation(tmp_path / "d", kdf_params=FAST_PARAMS)
    ws.init("Clinic", "admin", "Admin", PASSWORD)
    ws.lock()
    assert any(s.kind == "keyring" for s in ws.keychain().slots)

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(KeyringUnavailableError) as caught:
            ws.unlock_with_keyring()
    finally:
        keyring.set_keyring(previous)
    assert str(caught.value) == (
        "no OS keyring is available on this machine (common on headless Linux); "
        "unlock with a staff password or the recovery key instead"
    )

    # The command line, as a script runs it: exit 3 and the same explanation, plus how to
    # give the password unattended.
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    cmd = [sys.executable, "-m", "app.entry", "--data-dir", str(ws.data_dir)]
    result = subprocess.run(
        [*cmd, "patient", "search", "x"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 3
    assert result.stderr == (
        "careline: error: cannot unlock: no OS keyring is available on this machine (common "
        "on headless Linux); unlock with a staff password or the recovery key instead. Give "
        "the password of 'admin' with --password-stdin or CARELINE_PASSWORD_FILE\n"
    )
    with_password = subprocess.run(
        [*cmd, "--password-stdin", "patient", "search", "x"],
        input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert with_password.returncode == 0, with_password.stderr
