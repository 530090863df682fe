"""A clinic attachment key's id commits to its secret, so a workstation given a key can
tell a wrong secret under a real key's id."""

from __future__ import annotations

import secrets

from core.crypto.attachment_keys import ClinicAttachmentKey, committed_id, looks_committed


def test_a_new_key_s_id_commits_to_its_secret() -> None:
    key = ClinicAttachmentKey.generate()
    assert key.key_id == committed_id(key.secret)
    assert looks_committed(key.key_id)
    assert key.verified
    assert len(key.key_id) == 16 and int(key.key_id, 16) >= 0  # the form servers accept


def test_another_secret_under_that_id_is_not_vouched_for() -> None:
    key = ClinicAttachmentKey.generate()
    wrong = ClinicAttachmentKey(key.key_id, secrets.token_bytes(32))
    flipped = ClinicAttachmentKey(key.key_id, bytes([key.secret[0] ^ 1]) + key.secret[1:])
    assert not wrong.verified
    assert not flipped.verified


def test_older_random_ids_are_told_from_committed_ones() -> None:
    # Ids made before they committed are 16 random hex digits: the 4-digit check over the
    # first 12 passes for about one in 65,536 of them.
    older = [secrets.token_hex(8) for _ in range(2000)]
    assert sum(looks_committed(key_id) for key_id in older) <= 2
    assert not ClinicAttachmentKey(older[0], secrets.token_bytes(32)).verified
    assert not looks_committed("0123456789abcdeg")
    assert not looks_committed(committed_id(secrets.token_bytes(32))[:15])
