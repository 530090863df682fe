"""A new recovery key staged beside the one in force, put in force only once the person it
was shown to confirms storing it (``Keychain.stage_recovery_key``, and the Workstation
calls the app uses): until then the previous key keeps working, and a key nobody
confirmed is withdrawn rather than left to open the records."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys.errors import NoSlotError, SlotFileError, WrongSecretError
from core.keys.keychain import Keychain, UnlockedKeys
from core.keys.recovery import normalize_recovery_key
from core.records.workstation import NotAllowedError, Workstation

PW = "admin password 1"


def _chain(tmp_path: Path) -> tuple[Keychain, UnlockedKeys, str]:
    chain, keys, recovery = Keychain.create(tmp_path / "keyslots.json", "admin", PW, FAST_PARAMS)
    return chain, keys, recovery


def _opens(path: Path, recovery: str) -> bool:
    try:
        Keychain.load(path).unlock_with_recovery_key(recovery).close()
    except WrongSecretError:
        return False
    return True


def test_a_staged_key_opens_nothing_until_confirmed_then_replaces_the_old(
    tmp_path: Path,
) -> None:
    chain, keys, old = _chain(tmp_path)
    new, slot_id = chain.stage_recovery_key(keys)
    assert new != old
    assert _opens(chain.path, old) and not _opens(chain.path, new)
    # Shown once: returned to the caller, and kept nowhere in any form.
    raw = chain.path.read_bytes()
    secret = normalize_recovery_key(new)
    for form in (new.encode(), new.replace("-", "").encode(), secret,
                 secret.hex().encode(), base64.b64encode(secret)):  # fmt: skip
        assert form not in raw
    assert Keychain.load(chain.path).pending_recovery is not None

    assert Keychain.load(chain.path).confirm_recovery_key(slot_id) is True
    reloaded = Keychain.load(chain.path)
    assert reloaded.pending_recovery is None
    assert [s.kind for s in reloaded.slots].count("recovery") == 1
    assert _opens(chain.path, new) and not _opens(chain.path, old)
    by_new = reloaded.unlock_with_recovery_key(new)
    assert by_new.db_key.read() == keys.db_key.read()
    # Asked again (a sign-out re-sent it): nothing changes.
    assert reloaded.confirm_recovery_key(slot_id) is False
    assert _opens(chain.path, new)
    by_new.close()
    keys.close()


def test_a_withdrawn_key_cannot_be_confirmed_and_the_old_one_stays(tmp_path: Path) -> None:
    chain, keys, old = _chain(tmp_path)
    new, slot_id = chain.stage_recovery_key(keys)
    assert chain.discard_recovery_key("some-other-slot") is False  # not that one: kept
    assert Keychain.load(chain.path).pending_recovery is not None
    assert chain.discard_recovery_key(slot_id) is True
    assert chain.discard_recovery_key() is False  # nothing left to withdraw
    with pytest.raises(NoSlotError, match="withdrawn before it was confirmed"):
        chain.confirm_recovery_key(slot_id)
    assert _opens(chain.path, old) and not _opens(chain.path, new)
    keys.close()


def test_a_second_staging_or_a_key_made_at_once_withdraws_the_first(tmp_path: Path) -> None:
    chain, keys, old = _chain(tmp_path)
    _first, first_id = chain.stage_recovery_key(keys)
    second, second_id = chain.stage_recovery_key(keys)
    with pytest.raises(NoSlotError):
        chain.confirm_recovery_key(first_id)  # only the key shown last can be confirmed
    # The command line replaces the key at once (it prints it): the one staged here, if
    # confirmed later, would silently replace the printed one, so it is withdrawn.
    printed = chain.new_recovery_key(keys)
    with pytest.raises(NoSlotError):
        chain.confirm_recovery_key(second_id)
    assert _opens(chain.path, printed)
    assert not _opens(chain.path, old) and not _opens(chain.path, second)
    keys.close()


def test_a_key_file_with_a_staged_key_is_read_back_and_checked(tmp_path: Path) -> None:
    chain, keys, _ = _chain(tmp_path)
    chain.stage_recovery_key(keys)
    keys.close()
    data = json.loads(chain.path.read_bytes())
    assert data["pending_recovery_slot"]["kind"] == "recovery"
    data["pending_recovery_slot"]["kind"] = "keyring"
    chain.path.write_text(json.dumps(data))
    with pytest.raises(SlotFileError, match="a staged slot must be recovery"):
        Keychain.load(chain.path)
    # Without one staged, the file carries no such entry (as older releases wrote it).
    data.pop("pending_recovery_slot")
    chain.path.write_text(json.dumps(data))
    assert Keychain.load(chain.path).pending_recovery is None


def test_the_workstation_withdraws_an_unconfirmed_key_at_its_next_open(tmp_path: Path) -> None:
    """The app stopped while it showed a new key (a crash, the power): the next open of the
    clinic withdraws the key nobody confirmed; the previous one still opens it."""
    ws = Workstation(tmp_path / "clinic", kdf_params=FAST_PARAMS)
    old = ws.init("Riverside", "admin", "Ada Admin", PW)
    new, _slot_id = ws.stage_recovery_key()
    ws.lock()
    assert Keychain.load(ws.keyfile_path).pending_recovery is not None
    other = Workstation(ws.data_dir, kdf_params=FAST_PARAMS)
    other.sign_in("admin", PW)
    other.lock()
    assert Keychain.load(ws.keyfile_path).pending_recovery is None
    assert _opens(ws.keyfile_path, old) and not _opens(ws.keyfile_path, new)


@pytest.mark.strict_authz  # core's refusal comes from the permission matrix
def test_confirming_is_audited_once_and_needs_an_administrator(tmp_path: Path) -> None:
    ws = Workstation(tmp_path / "clinic", kdf_params=FAST_PARAMS)
    ws.init("Riverside", "admin", "Ada Admin", PW)
    new, slot_id = ws.stage_recovery_key()

    def replacements() -> int:
        rows = ws.database.query(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'keys.recovery_replace'"
        )
        return int(rows[0][0])

    assert replacements() == 0  # staged: nothing replaced yet
    ws.confirm_recovery_key(slot_id)
    ws.confirm_recovery_key(slot_id)  # again: in force already, not logged twice
    assert replacements() == 1
    assert _opens(ws.keyfile_path, new)
    ws.records.add_user("doc.lee", "Lee Doc", "clinician", "lee's own long password")
    ws.sign_in("doc.lee", "lee's own long password")
    with pytest.raises(NotAllowedError, match="Only an admin"):
        ws.stage_recovery_key()
    with pytest.raises(NotAllowedError, match="Only an admin"):
        ws.confirm_recovery_key(slot_id)
    # Withdrawing needs nobody: it only takes away a key that opens nothing yet.
    assert ws.discard_recovery_key() is False
    ws.lock()


def test_a_join_kept_by_an_earlier_release_loses_the_key_it_never_showed(
    tmp_path: Path,
) -> None:
    """``drop_recovery_key`` (a resumed join, core/sync/join.py): the slot in force and a
    staged one go, nothing the recovery key held opens the file afterwards, and the
    password still does."""
    chain, keys, old = _chain(tmp_path)
    staged, _slot_id = chain.stage_recovery_key(keys)
    assert chain.drop_recovery_key()
    fresh = Keychain.load(chain.path)
    assert fresh.recovery_slot() is None and fresh.pending_recovery is None
    for key in (old, staged):
        with pytest.raises(NoSlotError, match="no recovery slot"):
            fresh.unlock_with_recovery_key(key)
    fresh.unlock_with_password("admin", PW).close()
    assert not fresh.drop_recovery_key()  # nothing left to drop
    keys.close()


def test_a_replica_joined_by_a_non_administrator_is_created_without_a_recovery_slot(
    tmp_path: Path,
) -> None:
    chain, keys = Keychain.create_without_recovery(tmp_path / "k.json", "rita", PW, FAST_PARAMS)
    assert chain.recovery_slot() is None
    assert [s.kind for s in Keychain.load(chain.path).slots] == ["password"]
    with pytest.raises(NoSlotError, match="no recovery slot"):
        chain.unlock_with_recovery_key("ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567")
    # An administrator makes one later; it then opens the file.
    made = chain.new_recovery_key(keys)
    assert _opens(chain.path, made)
    keys.close()
