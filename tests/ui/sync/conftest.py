"""Fixtures shared by the desktop sync tests: a clinic server in this process, or in its own
process with this process's admin view of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.server.service import ClinicServer
from tests.integration.server_fixtures import Live, live_server, server_process_with_admin
from tests.integration.server_process import ServerProcess


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A live server (in this process, on a thread) for the whole module: each test makes
    its own clinic on it."""
    with live_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, ClinicServer, str]]:
    """A running server process; this process's admin view of its data; the clinic id."""
    with server_process_with_admin(tmp_path / "server", "Two Desks Clinic") as running:
        yield running
