"""Migration V9 (staff management) on data the previous release wrote: the users table is
rebuilt with ``nurse`` allowed, every old account keeps its role and password, none is
asked to change its password, and the upgraded clinic takes a nurse."""

from __future__ import annotations

from core.records.workstation import Workstation
from core.store.migrations import LATEST_VERSION
from tests.integration.test_release_upgrade import OldData, old  # noqa: F401 (fixture)


def test_v9_keeps_every_old_account_and_takes_a_nurse(old: OldData, no_keyring: None) -> None:  # noqa: F811
    desk = old.folder / "workstation"
    ws = Workstation(desk)
    ws.unlock_with_password("admin", old.password)
    before = ws.database.query("SELECT username, role, verifier, active FROM users")
    ws.lock()
    assert before, "the old release's data has accounts"

    user = ws.sign_in("admin", old.password)
    assert int(ws.database.query("SELECT max(version) FROM schema_version")[0][0]) >= 9
    assert LATEST_VERSION >= 9
    assert (user.role, user.must_change_password, user.two_factor) == ("admin", False, False)
    after = ws.database.query("SELECT username, role, verifier, active FROM users")
    assert sorted(after) == sorted(before)
    assert ws.database.query("SELECT count(*) FROM users WHERE must_change_password = 1") == [(0,)]

    ws.staff().add("nina", "Nina Nurse", "nurse", "upgrade day lantern")
    assert ws.records.user("nina") is not None
    ws.sign_out()
    ws.sign_in("nina", "upgrade day lantern")
    assert ws.password_change_required
    problems = ws.database.query("PRAGMA integrity_check")
    assert problems == [("ok",)]
    ws.lock()
