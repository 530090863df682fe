"""Which connection gives way when strangers crowd a LAN listener, and what is logged."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from core.sync.lan.admission import ConnectionGate
from core.sync.lan.refusal_log import RefusalLog
from tests.integration.test_pairing_limit import Clock


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Connected sockets to admit (their peers are closed with them)."""
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def _connection(made: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    made += [ours, theirs]
    theirs.settimeout(5)
    return ours, theirs


def _was_shut(theirs: socket.socket) -> bool:
    """The other end sees end-of-file once the gate shut the connection down."""
    theirs.settimeout(0.0)
    try:
        return theirs.recv(1) == b""
    except BlockingIOError:
        return False


def test_the_oldest_pending_connection_of_an_address_gives_way(
    sockets: list[socket.socket],
) -> None:
    gate = ConnectionGate(pending_per_address=3, pending_total=100)
    stalled = [_connection(sockets) for _ in range(3)]
    for ours, _ in stalled:
        assert gate.admit("192.0.2.7", ours)[1] == []
    other_address, other_peer = _connection(sockets)
    gate.admit("192.0.2.8", other_address)
    newcomer, _ = _connection(sockets)
    _, cut = gate.admit("192.0.2.7", newcomer)
    assert [t.sock for t in cut] == [stalled[0][0]]
    assert _was_shut(stalled[0][1])
    assert not _was_shut(stalled[1][1]) and not _was_shut(other_peer)
    assert gate.counts() == (4, 0)


def test_the_oldest_pending_connection_overall_gives_way_when_the_listener_is_full(
    sockets: list[socket.socket],
) -> None:
    gate = ConnectionGate(pending_per_address=10, pending_total=4)
    crowd = [_connection(sockets) for _ in range(4)]
    for i, (ours, _) in enumerate(crowd):
        gate.admit(f"192.0.2.{i}", ours)
    newcomer, _ = _connection(sockets)
    _, cut = gate.admit("198.51.100.1", newcomer)
    assert [t.address for t in cut] == ["192.0.2.0"]
    assert _was_shut(crowd[0][1])
    assert gate.counts() == (4, 0)


def test_authenticated_sessions_are_never_cut_for_strangers(
    sockets: list[socket.socket],
) -> None:
    gate = ConnectionGate(pending_per_address=2, pending_total=2, sessions_per_device=2)
    session_sock, session_peer = _connection(sockets)
    ticket, _ = gate.admit("192.0.2.7", session_sock)
    assert gate.promote(ticket, "device-a")
    for _ in range(20):  # strangers from the same address and from others
        gate.admit("192.0.2.7", _connection(sockets)[0])
        gate.admit("198.51.100.1", _connection(sockets)[0])
    assert not _was_shut(session_peer)
    assert gate.counts() == (2, 1)
    gate.release(ticket)
    assert gate.counts() == (2, 0)


def test_a_device_gets_a_bounded_number_of_sessions(sockets: list[socket.socket]) -> None:
    gate = ConnectionGate(sessions_per_device=2, sessions_total=3)
    tickets = [gate.admit("192.0.2.7", _connection(sockets)[0])[0] for _ in range(5)]
    assert [gate.promote(t, "device-a") for t in tickets[:3]] == [True, True, False]
    assert gate.promote(tickets[3], "device-b")
    assert not gate.promote(tickets[4], "device-c")  # the listener holds 3 sessions in all
    gate.release(tickets[0])
    assert gate.counts() == (0, 2)


def test_a_cut_connection_cannot_become_a_session(sockets: list[socket.socket]) -> None:
    gate = ConnectionGate(pending_per_address=1)
    first, _ = gate.admit("192.0.2.7", _connection(sockets)[0])
    gate.admit("192.0.2.7", _connection(sockets)[0])
    assert first.cut and not gate.promote(first, "device-a")


def test_refusals_are_logged_once_per_address_and_kind_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    logger = logging.getLogger("test.refusals")
    refusals = RefusalLog(logger, interval=10.0, clock=clock)
    caplog.set_level(logging.WARNING, logger="test.refusals")
    for _ in range(1000):
        refusals.warning("192.0.2.7", "handshake", "refused %s: handshake failed", "192.0.2.7")
    refusals.warning("192.0.2.7", "certificate", "refused %s: revoked", "192.0.2.7")
    refusals.warning("192.0.2.8", "handshake", "refused %s: handshake failed", "192.0.2.8")
    assert caplog.messages == [
        "refused 192.0.2.7: handshake failed",
        "refused 192.0.2.7: revoked",
        "refused 192.0.2.8: handshake failed",
    ]
    clock.now += 10
    refusals.warning("192.0.2.7", "handshake", "refused %s: handshake failed", "192.0.2.7")
    assert caplog.messages[-1] == (
        "refused 192.0.2.7: handshake failed "
        "(999 more like it from this address since the last such line)"
    )


def test_many_addresses_cannot_flood_the_log_and_nothing_goes_uncounted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    refusals = RefusalLog(logging.getLogger("test.refusals"), lines_per_interval=5, clock=clock)
    caplog.set_level(logging.WARNING, logger="test.refusals")
    for host in range(200):
        for _ in range(3):
            refusals.warning(f"10.0.{host // 250}.{host % 250}", "handshake", "refused")
    assert caplog.messages == ["refused"] * 5
    clock.now += 10
    refusals.warning("192.0.2.7", "handshake", "refused")
    assert caplog.messages[-1] == "refused (585 refusals from other addresses were not logged)"
    refusals.flush()  # the listener stops: what was left out is reported
    assert caplog.messages[-5:] == [
        f"2 more refusals (handshake) from 10.0.0.{host} were not logged" for host in range(5)
    ]
