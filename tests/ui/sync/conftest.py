"""Fixtures shared by the desktop sync tests: a clinic server in this process, or in its own
process with this process's admin view of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.server.service import ClinicServer
from tests.integration.server_fixtures import Live, add_clinic, live_server, make_server
from tests.integration.server_process import ServerProcess
from tests.services import free_port


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A live server (in this process, on a thread) for the whole module: each test makes
    its own clinic on it."""
    with live_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, ClinicServer, str]]:
    """A running server process; this process's admin view of its data; the clinic id."""
    data = tmp_path / "server"
    admin = make_server(data)
    clinic = add_clinic(admin, "Two Desks Clinic")
    running = ServerProcess(data, free_port())
    running.start()
    try:
        yield running, admin, clinic
    finally:
        running.stop()
        admin.close()
