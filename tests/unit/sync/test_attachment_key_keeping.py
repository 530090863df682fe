"""What a workstation does with an attachment key another device gave it: a secret its
committed id refuses is never kept; a key whose id cannot vouch for it (an older, random
id) is kept but never wraps new files here, nor is it passed on."""

from __future__ import annotations

import secrets

import pytest

from core.crypto.attachment_keys import ClinicAttachmentKey, looks_committed
from core.records.workstation import Workstation
from core.sync.attachments import (
    ALREADY_HELD,
    KEPT,
    REFUSED,
    AttachmentProblem,
    current_key,
    export_key,
    grantable_keys,
    held_keys,
    import_key,
    keep_key,
    needs_key,
)


def _older_key() -> ClinicAttachmentKey:
    """A key as releases before committed ids made them (16 random hex digits)."""
    while True:
        key_id = secrets.token_hex(8)
        if not looks_committed(key_id):
            return ClinicAttachmentKey(key_id, secrets.token_bytes(32))


def _audit_actions(ws: Workstation) -> list[str]:
    rows = ws.database.query("SELECT action FROM audit_log WHERE entity = 'attachment_key'")
    return [str(r[0]) for r in rows]


def test_a_wrong_secret_under_a_committed_id_is_refused(workstation: Workstation) -> None:
    records = workstation.records
    real = ClinicAttachmentKey.generate()
    forged = ClinicAttachmentKey(real.key_id, secrets.token_bytes(32))
    assert keep_key(records, forged) == REFUSED
    assert held_keys(records) == {}
    assert needs_key(records, real.key_id)
    assert keep_key(records, real) == KEPT
    assert held_keys(records) == {real.key_id: real.secret}
    assert current_key(records).key_id == real.key_id  # a vouched-for key may wrap files
    assert not needs_key(records, real.key_id)
    assert keep_key(records, real) == ALREADY_HELD
    assert keep_key(records, forged) == REFUSED  # never replaces the real one
    assert held_keys(records)[real.key_id] == real.secret


def test_a_key_its_id_cannot_vouch_for_never_wraps_new_files(workstation: Workstation) -> None:
    records = workstation.records
    given = _older_key()
    assert keep_key(records, given) == KEPT
    assert held_keys(records) == {given.key_id: given.secret}  # older files stay readable
    # New files here go under a key of this workstation's own, which others can check.
    mine = current_key(records)
    assert mine.key_id != given.key_id
    assert mine.verified
    # ... and the given key is not passed on to other devices: it might be a wrong secret.
    assert set(grantable_keys(records)) == {mine.key_id}
    assert needs_key(records, given.key_id)


def test_a_secret_the_id_vouches_for_replaces_one_it_does_not(workstation: Workstation) -> None:
    records = workstation.records
    real = ClinicAttachmentKey.generate()
    # A committed id's wrong secret kept under a person's word that it is an older key ...
    wrong = f"careline-attachment-key:v1:{real.key_id}:{secrets.token_bytes(32).hex()}"
    assert import_key(records, wrong, older_key=True) == real.key_id
    assert needs_key(records, real.key_id)
    # ... is replaced by the real one when a device gives it.
    assert keep_key(records, real) == KEPT
    assert held_keys(records)[real.key_id] == real.secret
    assert "attachment_key.replace" in _audit_actions(workstation)


def test_a_person_importing_an_older_key_vouches_for_it(workstation: Workstation) -> None:
    records = workstation.records
    older = _older_key()
    line = f"careline-attachment-key:v1:{older.key_id}:{older.secret.hex()}"
    assert import_key(records, line) == older.key_id
    assert current_key(records).key_id == older.key_id
    assert set(grantable_keys(records)) == {older.key_id}
    # Once held and vouched for by its id, a key cannot be changed by an import.
    real = current_key(records)
    again = ClinicAttachmentKey.generate()
    assert import_key(records, f"careline-attachment-key:v1:{again.key_id}:{again.secret.hex()}")
    damaged = f"careline-attachment-key:v1:{again.key_id}:{'00' * 32}"
    with pytest.raises(AttachmentProblem, match="does not match its id"):
        import_key(records, damaged)
    with pytest.raises(AttachmentProblem, match="vouches for the one held"):
        import_key(records, damaged, older_key=True)
    assert held_keys(records)[again.key_id] == again.secret
    assert real.key_id == older.key_id
    assert export_key(records).endswith(older.secret.hex())


def test_a_damaged_export_line_is_refused_and_nothing_is_kept(workstation: Workstation) -> None:
    records = workstation.records
    real = ClinicAttachmentKey.generate()
    secret = real.secret.hex()
    typo = secret[:10] + ("0" if secret[10] != "0" else "1") + secret[11:]
    with pytest.raises(AttachmentProblem, match=r"does not match its id.*copy"):
        import_key(records, f"careline-attachment-key:v1:{real.key_id}:{typo}")
    assert held_keys(records) == {}
    assert "attachment_key.import" not in _audit_actions(workstation)
    # The intact line is kept and becomes the key new files are wrapped for.
    assert import_key(records, f"careline-attachment-key:v1:{real.key_id}:{secret}") == real.key_id
    assert current_key(records) == real
