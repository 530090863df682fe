"""A LAN peer refusing this workstation's certificate is told apart from a busy one.

A refusal comes as a TLS alert from the peer's handshake ("certificate revoked": the
clinic's signed revocation list is in its listener's TLS context), however large the
request written meanwhile; a peer that closes without one (busy with this workstation's
other sessions) is a passing failure, tried again. Real listeners, real mutual TLS on
127.0.0.1, real workstations paired over the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from core.sync.lan import server as lan_server
from core.sync.lan.admission import SESSIONS_PER_DEVICE
from core.sync.lan.identity import LanIdentity
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport, PeerClosedError, RefusedByPeerError
from core.sync.session import sync
from core.sync.transport import TransportError
from tests.integration.test_lan_peers import _joined, clinic

__all__ = ["clinic"]  # the fixture, shared with test_lan_peers

MiB = 1024 * 1024


@pytest.fixture
def paired(
    clinic: tuple[Workstation, PeerServer], tmp_path: Path
) -> Iterator[tuple[Workstation, PeerServer, Workstation, LanIdentity]]:
    """The CA holder serving, and a workstation paired with it (synced once)."""
    ws_a, server = clinic
    ws_b = _joined(tmp_path, server, ws_a)
    identity = lan_id.load_identity(ws_b.database)
    assert identity is not None
    try:
        yield ws_a, server, ws_b, identity
    finally:
        ws_b.lock()


def _revoke(ws_a: Workstation, identity: LanIdentity) -> None:
    lan_id.revoke_device(ws_a.database, identity.device_id, "admin")


def test_a_revoked_workstation_is_told_with_the_tls_alert_even_while_pushing_megabytes(
    paired: tuple[Workstation, PeerServer, Workstation, LanIdentity],
) -> None:
    ws_a, server, _ws_b, identity = paired
    _revoke(ws_a, identity)
    # A listener started after the revocation refuses in the handshake itself.
    with PeerServer(ws_a.database, server.identity) as fresh:
        address = f"127.0.0.1:{fresh.port}"
        calls: list[Callable[[LanTransport], object]] = [
            lambda t: t.hello(),
            lambda t: t.request(b"x" * (8 * MiB)),  # a push: written before the alert is read
        ]
        for call in calls:
            with (
                LanTransport(address, identity) as transport,
                pytest.raises(RefusedByPeerError) as refused,
            ):
                call(transport)
            assert refused.value.revoked
            assert str(refused.value) == (
                f"the peer {address} refuses this workstation's certificate (it has been "
                "revoked): ask the clinic's administrator"
            )


def test_a_revocation_made_while_serving_is_refused_with_the_alert(
    paired: tuple[Workstation, PeerServer, Workstation, LanIdentity],
) -> None:
    # The running listener lets the handshake through (its list predates the revocation),
    # closes on the certificate after it, and takes up the new list: the transport's one
    # reconnect is then refused with the alert.
    ws_a, server, ws_b, identity = paired
    _revoke(ws_a, identity)
    with (
        LanTransport(f"127.0.0.1:{server.port}", identity) as transport,
        pytest.raises(RefusedByPeerError) as refused,
    ):
        sync(ws_b.database, transport, "admin")
    assert refused.value.revoked


def test_a_peer_busy_with_this_workstations_other_sessions_is_not_a_refusal(
    paired: tuple[Workstation, PeerServer, Workstation, LanIdentity],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ws_a, server, ws_b, identity = paired
    monkeypatch.setattr(lan_server, "IDLE_TIMEOUT", 120.0)  # the held sessions stay open
    address = f"127.0.0.1:{server.port}"
    held = [LanTransport(address, identity) for _ in range(SESSIONS_PER_DEVICE)]
    try:
        for transport in held:
            transport.hello()  # an open session of this device, kept alive
        with LanTransport(address, identity) as transport, pytest.raises(TransportError) as busy:
            sync(ws_b.database, transport, "admin")
        assert isinstance(busy.value, PeerClosedError)
        assert not isinstance(busy.value, RefusedByPeerError)
        assert "closed the connection without answering: it may be busy" in str(busy.value)
        assert "refuses this workstation's certificate" not in str(busy.value)
    finally:
        for transport in held:
            transport.close()
    # Once the other sessions end, the same workstation syncs: it was never shut out.
    deadline = time.monotonic() + 30
    while True:
        try:
            with LanTransport(address, identity) as transport:
                sync(ws_b.database, transport, "admin")
            break
        except PeerClosedError:
            assert time.monotonic() < deadline, "the listener never let go of the sessions"
            time.sleep(0.1)
