from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys.errors import (
    KeyringUnavailableError,
    NoSlotError,
    SlotFileError,
    WrongSecretError,
)
from core.keys.keychain import Keychain
from core.keys.recovery import normalize_recovery_key

PW = "admin password 1"


def _create(tmp_path: Path) -> tuple[Keychain, str]:
    chain, keys, recovery = Keychain.create(tmp_path / "keyslots.json", "admin", PW, FAST_PARAMS)
    keys.close()
    return chain, recovery


def test_file_holds_no_key_and_is_private(tmp_path: Path) -> None:
    chain, _ = _create(tmp_path)
    keys = chain.unlock_with_password("admin", PW)
    raw = (tmp_path / "keyslots.json").read_bytes()
    assert keys.db_key.read() not in raw and keys.db_key.read().hex().encode() not in raw
    assert (tmp_path / "keyslots.json").stat().st_mode & 0o777 == 0o600
    keys.close()


def test_password_and_recovery_open_the_same_key(tmp_path: Path) -> None:
    chain, recovery = _create(tmp_path)
    by_password = chain.unlock_with_password("admin", PW)
    by_recovery = Keychain.load(chain.path).unlock_with_recovery_key(recovery.lower())
    assert by_password.db_key.read() == by_recovery.db_key.read()
    assert chain.matches(by_password.db_key.read())
    with pytest.raises(WrongSecretError, match="wrong password"):
        chain.unlock_with_password("admin", "not it at all")
    with pytest.raises(WrongSecretError, match="recovery key is not correct"):
        chain.unlock_with_recovery_key("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA")


def test_add_remove_slots_and_change_password(tmp_path: Path) -> None:
    chain, _ = _create(tmp_path)
    keys = chain.unlock_with_password("admin", PW)
    chain.add_password_slot(keys, "nurse", "nurse password", FAST_PARAMS)
    reloaded = Keychain.load(chain.path)
    assert reloaded.unlock_with_password("nurse", "nurse password").db_key.read() == (
        keys.db_key.read()
    )
    reloaded.change_password("nurse", "nurse password", "new nurse pass", FAST_PARAMS)
    with pytest.raises(WrongSecretError):
        Keychain.load(chain.path).unlock_with_password("nurse", "nurse password")
    assert Keychain.load(chain.path).unlock_with_password("nurse", "new nurse pass")
    slot = Keychain.load(chain.path).password_slot("nurse")
    assert slot is not None
    Keychain.load(chain.path).remove_slot(slot.slot_id)
    with pytest.raises(NoSlotError, match="no password slot"):
        Keychain.load(chain.path).unlock_with_password("nurse", "new nurse pass")
    keys.close()


def test_last_password_or_recovery_slot_cannot_be_removed(tmp_path: Path) -> None:
    chain, _ = _create(tmp_path)
    recovery_slot = next(s for s in chain.slots if s.kind == "recovery")
    chain.remove_slot(recovery_slot.slot_id)
    admin_slot = chain.password_slot("admin")
    assert admin_slot is not None
    with pytest.raises(NoSlotError, match="last password or recovery slot"):
        chain.remove_slot(admin_slot.slot_id)
    assert Keychain.load(chain.path).password_slot("admin") is not None


def test_without_keyring_password_slot_still_opens(tmp_path: Path, no_keyring: None) -> None:
    chain, _ = _create(tmp_path)
    keys = chain.unlock_with_password("admin", PW)
    with pytest.raises(KeyringUnavailableError, match="no OS keyring is available"):
        chain.add_keyring_slot(keys)
    assert all(s.kind != "keyring" for s in Keychain.load(chain.path).slots)
    with pytest.raises(NoSlotError, match="no OS-keyring slot"):
        chain.unlock_with_keyring()
    assert chain.unlock_with_password("admin", PW).db_key.read() == keys.db_key.read()
    keys.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not valid JSON"),
        (b"\x00\xff garbage", "not valid JSON"),
        (b'{"format": "other"}', "not a Careline key file"),
        (b'{"format": "careline-keyslots", "version": 9}', "version 9"),
        (b'{"format": "careline-keyslots", "version": 1, "slots": "x"}', "malformed"),
    ],
)
def test_damaged_key_file_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "keyslots.json"
    path.write_bytes(content)
    with pytest.raises(SlotFileError, match=message):
        Keychain.load(path)
    assert path.read_bytes() == content


def test_a_password_slot_without_argon2_parameters_is_a_damaged_file(tmp_path: Path) -> None:
    # Found by fuzzing (tests/fuzz/corpus/keyslot_file/crash-password-slot-without-kdf):
    # such a file loaded, then signing in raised a bare ValueError instead of naming it.
    chain, _ = _create(tmp_path)
    data = json.loads(chain.path.read_text())
    [slot] = [s for s in data["slots"] if s["kind"] == "password"]
    slot["kdf"] = None
    chain.path.write_text(json.dumps(data))
    with pytest.raises(SlotFileError, match="password key slot must have Argon2id parameters"):
        Keychain.load(chain.path)


def test_altered_wrapped_key_is_detected(tmp_path: Path) -> None:
    chain, _ = _create(tmp_path)
    data = json.loads(chain.path.read_text())
    data["db_key"]["generation"] = 7
    chain.path.write_text(json.dumps(data))
    with pytest.raises(SlotFileError, match="fails authentication"):
        Keychain.load(chain.path).unlock_with_password("admin", PW)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SlotFileError, match="missing"):
        Keychain.load(tmp_path / "nope.json")


def test_new_recovery_key_replaces_the_old_one(tmp_path: Path) -> None:
    chain, old_recovery = _create(tmp_path)
    keys = chain.unlock_with_password("admin", PW)
    new_recovery = chain.new_recovery_key(keys)
    assert new_recovery != old_recovery
    reloaded = Keychain.load(chain.path)
    assert [s.kind for s in reloaded.slots].count("recovery") == 1
    with pytest.raises(WrongSecretError, match="recovery key is not correct"):
        reloaded.unlock_with_recovery_key(old_recovery)
    by_new = reloaded.unlock_with_recovery_key(new_recovery)
    assert by_new.db_key.read() == keys.db_key.read()
    # Shown once: returned to the caller, and kept nowhere in any form.
    raw = chain.path.read_bytes()
    secret = normalize_recovery_key(new_recovery)
    for form in (new_recovery.encode(), new_recovery.replace("-", "").encode(), secret,
                 secret.hex().encode(), base64.b64encode(secret)):  # fmt: skip
        assert form not in raw
    assert reloaded.unlock_with_password("admin", PW).db_key.read() == keys.db_key.read()
    by_new.close()
    keys.close()
