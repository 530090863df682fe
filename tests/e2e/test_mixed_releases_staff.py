"""A nurse's account (a role the previous release's users table refuses) reaching a
workstation still on the previous release, through a current server (real processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_mixed_releases import (  # noqa: F401 (fixtures)
    enroll_beside_old,
    found,
    new_server,
    new_sync,
    old,
    old_sync,
    previous,
    register,
)
from tests.integration.server_process import ServerProcess, current, server_admin
from tests.releases.make_data import Old

pytestmark = pytest.mark.slow


def test_an_old_workstation_keeps_syncing_when_a_nurse_is_added(
    old: Old,  # noqa: F811
    new_server: tuple[ServerProcess, str],  # noqa: F811
    tmp_path: Path,
    no_keyring: None,
) -> None:
    server, clinic = new_server
    new_desk, old_desk = tmp_path / "new-desk", tmp_path / "old-desk"
    enroll_beside_old(new_server, current, new_desk, old, old_desk)
    server_admin(server.data, {}, "user", "add", clinic, "nina", "--role", "nurse",
                 stdin="tulip window seventeen\n")  # fmt: skip
    patient = register(current, new_desk, ("Okafor", "Amara", "1968-04-12"))
    new_sync(new_desk)
    old_sync(old, old_desk)  # exits 0, or the test fails
    assert found(old.careline, old_desk, ("Okafor", "Amara", "1968-04-12")) == [patient]
    # Once upgraded, the old workstation has the nurse's account.
    current(old_desk, "db", "check")
    listed = current(old_desk, "user", "list")
    assert {m["username"]: m["role"] for m in listed}["nina"] == "nurse"
