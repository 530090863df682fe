"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records.workstation import Workstation
from tests.integration.server_fixtures import Desks, Live, add_clinic, join_clinic, live_server
from tests.services import create_postgres_database, drop_postgres_database


@pytest.fixture(params=["embedded", "postgres"])
def live(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    no_keyring: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Live]:
    """A live server on the embedded SQLCipher store, and again on PostgreSQL.

    Tests marked ``database_url_in_env`` also find the PostgreSQL server's ``DATABASE_URL``
    in this process's environment, where the admin commands they run in-process read it."""
    if request.param == "embedded":
        with live_server(tmp_path / "server") as running:
            yield running
        return
    url = create_postgres_database()
    if request.node.get_closest_marker("database_url_in_env") is not None:
        monkeypatch.setenv("DATABASE_URL", url)
    try:
        with live_server(tmp_path / "server", {"DATABASE_URL": url}) as running:
            yield running
    finally:
        drop_postgres_database(url)


@pytest.fixture
def two_desks(live: Live, tmp_path: Path) -> Iterator[tuple[str, Workstation, Workstation]]:
    """A clinic on ``live`` ("Harbour Clinic") and two workstations enrolled in it, "desk-a"
    in ``tmp_path / "a"`` and "desk-b" in ``tmp_path / "b"``, both signed in as admin;
    locked afterwards."""
    clinic = add_clinic(live.server, "Harbour Clinic")
    a, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "desk-a")
    b, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "desk-b")
    try:
        yield clinic, a, b
    finally:
        a.lock()
        b.lock()


@pytest.fixture
def desks(tmp_path: Path) -> Iterator[Desks]:
    """Two workstations, "a" and "b", enrolled in "Hillside" on a live embedded server,
    for files one adds and the other fetches."""
    with live_server(tmp_path / "server") as live:
        clinic = add_clinic(live.server, "Hillside")
        a, a_cred = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "a")
        b, b_cred = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "b")
        yield Desks(live, a, a_cred, b, b_cred, tmp_path)
