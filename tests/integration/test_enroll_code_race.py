"""A multi-use enrollment code's last use, redeemed at once by workstations talking to two
``careline-server`` processes on one PostgreSQL database: exactly as many enroll as the
code has uses, and the others are told it is used up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sync.enroll import EnrollmentError, enroll
from tests.integration.server_process import ServerProcess, clinic_server, server_admin
from tests.services import free_port


@pytest.fixture
def two_servers(
    tmp_path: Path, postgres_url: str
) -> Iterator[tuple[str, tuple[ServerProcess, ServerProcess]]]:
    """The clinic's id, and two server processes sharing one PostgreSQL database."""
    env = {"DATABASE_URL": postgres_url}
    with clinic_server(tmp_path / "server", "Race Clinic", env) as (first, clinic):
        second = ServerProcess(first.data, free_port(), env=env)
        second.start()
        try:
            yield clinic, (first, second)
        finally:
            second.stop()


def race(servers: tuple[ServerProcess, ...], code: str, devices: int) -> list[str]:
    """``devices`` enrollments with ``code`` released together, alternating between the
    servers; each result is "enrolled" or the refusal's message."""
    results: list[str] = [""] * devices
    start = threading.Barrier(devices)

    def one(i: int) -> None:
        server = servers[i % len(servers)]
        start.wait()
        try:
            enroll(server.url, code, server.ca_pem, f"desk-{i}")
            results[i] = "enrolled"
        except EnrollmentError as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(devices)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_last_use_goes_to_exactly_one_workstation(
    two_servers: tuple[str, tuple[ServerProcess, ServerProcess]],
) -> None:
    clinic, servers = two_servers
    first, env = servers[0], servers[0].env
    for uses, devices in ((1, 2), (1, 2), (2, 4)):
        code = server_admin(first.data, env, "enroll-code", clinic, "--uses", str(uses))["code"]
        results = race(servers, code, devices)
        assert results.count("enrolled") == uses, results
        refusals = [r for r in results if r != "enrolled"]
        times = "already been used" if uses == 1 else f"been used all {uses} times"
        assert all(f"has {times}; ask IT for a new one" in r for r in refusals), results
    assert len(server_admin(first.data, env, "device", "list")) == 4
