"""What opens a backup is what the person is told opens it. A backup is sealed to the
computer's recovery key only when someone was shown that key: the demo clinic's making
shows none, and a restored computer whose new key was never confirmed has none. There the
backup passphrase is required and is the only opener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto import sealed_file
from core.crypto.kdf import FAST_PARAMS
from core.records import demo
from core.records.workstation import Workstation
from core.sync.backup import (
    BackupError,
    create_backup,
    recovery_key_missing,
    restore_backup,
)
from tests.conftest import PASSWORD

PHRASE = "a long backup passphrase"


@pytest.fixture
def demo_ws(tmp_path: Path, no_keyring: None) -> Iterator[Workstation]:
    """The demo clinic, signed in as its demo user."""
    made = demo.create_demo(tmp_path / "clinic", patients=3, kdf_params=FAST_PARAMS)
    ws = Workstation(made.folder, FAST_PARAMS)
    ws.sign_in(demo.DEMO_USER, demo.DEMO_PASSWORD)
    try:
        yield ws
    finally:
        ws.lock()


def openers_of(path: Path) -> list[str]:
    """The kinds of secret the backup file's readable header says open it."""
    with path.open("rb") as src:
        return sealed_file.read_header(src, str(path)).kinds()


def restore_demo(backup: Path, folder: Path, kind: str, secret: str) -> Workstation:
    """Restore a demo backup with ``secret`` and sign in to it."""
    restore_backup(backup, folder, kind, secret, demo.DEMO_USER, demo.DEMO_PASSWORD,
                   lambda ws: ws.sign_in(demo.DEMO_USER, demo.DEMO_PASSWORD),
                   FAST_PARAMS)  # fmt: skip
    ws = Workstation(folder, FAST_PARAMS)
    ws.sign_in(demo.DEMO_USER, demo.DEMO_PASSWORD)
    return ws


def test_a_demo_backup_needs_a_passphrase_and_opens_with_it_alone(
    demo_ws: Workstation, tmp_path: Path
) -> None:
    missing = recovery_key_missing(demo_ws)
    assert missing is not None and "demo clinic's recovery key" in missing

    refused = tmp_path / "no-passphrase.clbackup"
    with pytest.raises(BackupError, match="would open only with a backup passphrase") as exc:
        create_backup(demo_ws, refused, None, demo.DEMO_USER)
    assert exc.value.field == "passphrase"
    assert not refused.exists()

    backup = tmp_path / "demo.clbackup"
    result = create_backup(demo_ws, backup, PHRASE, demo.DEMO_USER)
    assert result.openers == ["passphrase"] == openers_of(backup)
    restored = restore_demo(backup, tmp_path / "restored", "passphrase", PHRASE)
    try:
        assert len(restored.records.list_patients()) == 3
    finally:
        restored.lock()


def test_once_a_recovery_key_is_made_in_the_demo_it_opens_the_backup(
    demo_ws: Workstation, tmp_path: Path
) -> None:
    key = demo_ws.new_recovery_key()  # Settings → New recovery key…: shown to the admin
    assert recovery_key_missing(demo_ws) is None
    backup = tmp_path / "demo.clbackup"
    assert create_backup(demo_ws, backup, None, demo.DEMO_USER).openers == ["recovery"]
    restored = restore_demo(backup, tmp_path / "restored", "recovery", key)
    restored.lock()


def test_a_computer_without_a_recovery_key_backs_up_to_a_passphrase(
    workstation: Workstation, tmp_path: Path
) -> None:
    """A restored computer whose new key nobody confirmed storing has none (it was
    withdrawn): its backups were refused ('no recovery key slot to seal the backup to')."""
    chain = workstation.keychain()
    recovery = chain.recovery_slot()
    assert recovery is not None
    chain.remove_slot(recovery.slot_id)
    missing = recovery_key_missing(workstation)
    assert missing is not None and missing.startswith("This computer has no recovery key")
    with pytest.raises(BackupError, match="would open only with a backup passphrase"):
        create_backup(workstation, tmp_path / "none.clbackup", None, "admin")
    backup = tmp_path / "phrase.clbackup"
    assert create_backup(workstation, backup, PHRASE, "admin").openers == ["passphrase"]
    result = restore_backup(backup, tmp_path / "restored", "passphrase", PHRASE, "admin",
                            PASSWORD, lambda ws: ws.sign_in("admin", PASSWORD),
                            FAST_PARAMS)  # fmt: skip
    assert result.recovery_key


def test_an_ordinary_clinic_backup_still_opens_with_its_recovery_key(
    workstation: Workstation, tmp_path: Path
) -> None:
    assert recovery_key_missing(workstation) is None
    backup = tmp_path / "a.clbackup"
    assert create_backup(workstation, backup, PHRASE, "admin").openers == [
        "recovery",
        "passphrase",
    ]
    assert openers_of(backup) == ["recovery", "passphrase"]
