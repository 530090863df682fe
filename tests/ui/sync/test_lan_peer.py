"""A round of LAN peer sessions stays short, and reaches the real peer, however many fake
peers anyone on the LAN announces. Real zeroconf on 127.0.0.1, a real peer server, a real
``LanNode``; the fakes point at "tarpits", ports that accept TCP and never speak TLS, or are
bare names (a PTR record with nothing behind it, so they never resolve)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from zeroconf import ServiceInfo, Zeroconf
from zeroconf._dns import DNSPointer  # raw records: what a misbehaving announcer sends
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.const import _CLASS_IN, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_PTR

from app.sync.lan_peer import LanNode, LanOptions, LanRound
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.lan import discovery
from core.sync.lan import identity as lan_id
from core.sync.lan.identity import LanIdentity
from core.sync.lan.pairing import join
from core.sync.lan.server import PeerServer
from tests.conftest import PASSWORD

pytestmark = pytest.mark.mdns_flood

HANDSHAKE = 0.4  # seconds a tarpit holds each attempt (the app's default is 3)


@dataclass
class Victim:
    """A workstation paired with the clinic's CA holder, which serves and announces."""

    ws: Workstation
    identity: LanIdentity
    honest: str  # the CA holder's address


@pytest.fixture
def victim(workstation: Workstation, tmp_path: Path) -> Iterator[Victim]:
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    with PeerServer(workstation.database, identity) as server:
        assert server.pairing_port is not None
        ws = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
        ws.prepare_join("admin", PASSWORD)
        code = lan_id.new_pair_code(workstation.database, "admin")
        binding = op_trust.binding_for(ws.database)
        paired = join("127.0.0.1", server.pairing_port, code, binding)
        lan_id.save_identity(ws.database, paired, "admin")
        advertiser = discovery.Advertiser(server.port, "127.0.0.1", ["127.0.0.1"])
        try:
            yield Victim(ws, paired, f"127.0.0.1:{server.port}")
        finally:
            advertiser.close()
            ws.lock()


class Flood:
    """Fake ``_careline._tcp`` announcements, each at its own tarpit, named to sort first."""

    def __init__(self) -> None:
        self.zc = Zeroconf(interfaces=["127.0.0.1"])
        self.tarpits: list[socket.socket] = []
        self.infos: list[ServiceInfo] = []

    def announce(self, count: int) -> set[str]:
        """``count`` more fakes; their addresses."""
        start = len(self.infos)
        infos = []
        for i in range(start, start + count):
            tarpit = socket.create_server(("127.0.0.1", 0), backlog=64)  # never accepts
            self.tarpits.append(tarpit)
            name = f"0000fake{i:04d}"
            infos.append(
                ServiceInfo(
                    discovery.SERVICE_TYPE,
                    f"{name}.{discovery.SERVICE_TYPE}",
                    addresses=[socket.inet_aton("127.0.0.1")],
                    port=tarpit.getsockname()[1],
                    properties={"v": "1", "id": name},
                    server=f"{name}.local.",
                )
            )
        with ThreadPoolExecutor(len(infos)) as pool:  # each registration takes most of 1 s
            list(pool.map(self.zc.register_service, infos))
        self.infos += infos
        return {f"127.0.0.1:{info.port}" for info in infos}

    def close(self) -> None:
        self.zc.close()
        for tarpit in self.tarpits:
            tarpit.close()


@pytest.fixture
def flood() -> Iterator[Flood]:
    made = Flood()
    yield made
    made.close()


class BareNames:
    """Bare ``_careline._tcp`` announcements: a PTR record naming an instance whose SRV, TXT
    and address records are never sent, nor answered when asked for (one packet does it)."""

    def __init__(self) -> None:
        self.zc = Zeroconf(interfaces=["127.0.0.1"])
        self.sent = 0

    def announce(self, count: int) -> set[str]:
        """``count`` more names (lasting 4500 s, as a real announcement's); the names."""
        names = {
            f"bare{i:05d}.{discovery.SERVICE_TYPE}" for i in range(self.sent, self.sent + count)
        }
        self.sent += count
        batch = sorted(names)
        for start in range(0, len(batch), 50):  # a packet holds about 9 kB
            out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
            for name in batch[start : start + 50]:
                ptr = DNSPointer(discovery.SERVICE_TYPE, _TYPE_PTR, _CLASS_IN, 4500, name)
                out.add_answer_at_time(ptr, 0)
            self.zc.send(out)
        return names

    def close(self) -> None:
        self.zc.close()


@pytest.fixture
def bare() -> Iterator[BareNames]:
    made = BareNames()
    yield made
    made.close()


def held(node: LanNode) -> set[str]:
    """The announced names the node's browser holds now."""
    assert node._browser is not None
    return set(node._browser._collector.names)  # a copy, made at once


def wait_held(node: LanNode, names: set[str], at_least: int) -> None:
    """Until at least ``at_least`` of ``names`` are held by the node's browser."""
    deadline = time.monotonic() + 20
    while len(held(node) & names) < at_least:
        assert time.monotonic() < deadline, "mDNS did not show the bare announcements"
        time.sleep(0.1)


@pytest.fixture
def node_of(victim: Victim) -> Iterator[Callable[..., LanNode]]:
    """The victim app's LAN node on 127.0.0.1, serving and browsing as the app's does, once
    it sees the ``expected`` announcements; tenths of a second where the app has seconds."""
    made: list[LanNode] = []

    def make(expected: int, new_peers_per_round: int = 2, round_seconds: float = 30.0) -> LanNode:
        node = LanNode(
            LanOptions(
                host="127.0.0.1",
                port=0,
                interfaces=["127.0.0.1"],
                handshake_timeout=HANDSHAKE,
                new_peers_per_round=new_peers_per_round,
                round_seconds=round_seconds,
            )
        )
        made.append(node)
        node.ensure_serving(victim.ws.database, victim.identity)
        deadline = time.monotonic() + 20
        while len(node.announced()) < expected + 1:  # and itself
            assert time.monotonic() < deadline, "mDNS did not show the announcements"
            time.sleep(0.1)
        return node

    yield make
    for node in made:
        node.stop()
        node.wait_stopped()


def _round(node: LanNode, victim: Victim) -> tuple[LanRound, float]:
    """One round of the victim's LAN sync, as the app's sync session runs it; its length."""
    started = time.monotonic()
    result = node.sync_peers(victim.ws.database, victim.identity, "admin")
    return result, time.monotonic() - started


# Two tarpits held for the handshake each (the TCP connect is at once: they accept into
# their backlog), and a sync with the real peer, on a busy machine.
SHORT_ROUND = 2 * HANDSHAKE + 3.0


def test_a_flood_of_fake_peers_neither_stalls_rounds_nor_starves_the_real_peer(
    victim: Victim, flood: Flood, node_of: Callable[..., LanNode]
) -> None:
    flood.announce(6)
    node = node_of(7)
    # Each round tries two addresses never verified, in random order, for a few tenths of
    # a second each; an address that failed is not tried again for minutes. So the real
    # peer is reached within ceil(7 / 2) rounds whatever the order, each round short.
    for _ in range(4):
        result, took = _round(node, victim)
        assert took < SHORT_ROUND, f"a round took {took:.1f} s"
        if result.peers:
            break
    assert result.addresses == (victim.honest,)
    assert result.reports[0].snapshot_records + result.reports[0].pulled > 0  # it synced

    # Once verified, the real peer is tried first in every round, fresh fakes or not.
    flood.announce(4)
    deadline = time.monotonic() + 20
    while len(node.announced()) < 12:
        assert time.monotonic() < deadline, "mDNS did not show the new announcements"
        time.sleep(0.1)
    for _ in range(2):
        result, took = _round(node, victim)
        assert result.addresses == (victim.honest,)
        assert took < SHORT_ROUND, f"a round took {took:.1f} s"


def test_no_peer_is_started_after_the_rounds_deadline(
    victim: Victim,
    flood: Flood,
    node_of: Callable[..., LanNode],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fakes = flood.announce(8)
    # No cap on new peers here: trying every fake would take 8 x 0.4 s and more.
    node = node_of(9, new_peers_per_round=100, round_seconds=1.0)
    with caplog.at_level(logging.INFO, logger="app.sync.lan_peer"):
        _, took = _round(node, victim)
    assert took < 1.0 + 2 * HANDSHAKE + 1.0, f"the round took {took:.1f} s"
    tried = {a for a in fakes if any(f"LAN peer {a} skipped" in m for m in caplog.messages)}
    assert 0 < len(tried) < len(fakes)
    assert any("LAN round deadline passed" in m for m in caplog.messages)


# Less than the 40 names below would take one second each, as they did.
FLOOD_ROUND = 10.0


def test_bare_names_that_never_resolve_do_not_keep_the_paired_peer_from_syncing(
    victim: Victim, bare: BareNames, node_of: Callable[..., LanNode]
) -> None:
    node = node_of(1, round_seconds=FLOOD_ROUND)
    result, _ = _round(node, victim)
    assert result.addresses == (victim.honest,)  # paired and verified

    # One packet of bare names: each is asked for and never answers.
    names = bare.announce(40)
    wait_held(node, names, 40)
    # Asked for one by one against the round's deadline, 40 names took 40 s of a 10 s
    # round and no peer was synced; now they get a few seconds together.
    result, _ = _round(node, victim)
    assert result.addresses == (victim.honest,)
    assert result.reports[0].pulled == 0  # synced (nothing new)
    # They wait before they are asked for again (no timing asserted: the machine may be busy).
    browser = node._browser
    assert browser is not None and all(browser._waiting(name) for name in names)
    result, _ = _round(node, victim)
    assert result.addresses == (victim.honest,)


def test_names_beyond_the_cap_are_not_held(
    victim: Victim,
    bare: BareNames,
    node_of: Callable[..., LanNode],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discovery, "MAX_NAMES", 40)  # the rule, not 256 names' packets
    node = node_of(1)
    with caplog.at_level(logging.WARNING, logger="core.sync.lan.discovery"):
        names = bare.announce(discovery.MAX_NAMES + 100)
        wait_held(node, names, discovery.MAX_NAMES - 2)  # the honest peer and itself
        time.sleep(1.0)  # the rest of the packets
    assert len(held(node)) <= discovery.MAX_NAMES
    full = [m for m in caplog.messages if "LAN peers announced over mDNS" in m]
    assert len(full) == 1  # said once, naming nobody
    assert "bare" not in full[0]

    # Names that failed to resolve make room: a peer announced later is still held.
    _round(node, victim)
    later = bare.announce(5)
    wait_held(node, later, 5)
    assert len(held(node)) <= discovery.MAX_NAMES


# zeroconf (0.150 and later, the floor in pyproject.toml) holds at most this many records.
MDNS_CACHE_RECORDS = 10_000


def test_a_flood_of_mdns_records_cannot_grow_the_workstations_memory_without_bound(
    victim: Victim, bare: BareNames, node_of: Callable[..., LanNode]
) -> None:
    """Anyone on the LAN can send mDNS records of any name, each lasting as long as its
    sender says; the workstation's mDNS cache keeps at most zeroconf's cap of them, and the
    paired peer still syncs once the flood has passed."""
    node = node_of(1)
    assert node._advertiser is not None
    cache = node._advertiser.zeroconf.cache
    junk_type = "_junk._tcp.local."
    sent = MDNS_CACHE_RECORDS + 3_000
    for start in range(0, sent, 60):
        out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
        for i in range(start, min(start + 60, sent)):
            ptr = DNSPointer(f"j{i:05d}.{junk_type}", _TYPE_PTR, _CLASS_IN, 4500, junk_type)
            out.add_answer_at_time(ptr, 0)
        bare.zc.send(out)
        time.sleep(0.003)  # loopback multicast drops what a full socket buffer cannot take
    deadline = time.monotonic() + 20
    junk = 0
    while time.monotonic() < deadline:
        junk = sum(1 for name in cache.names() if name.endswith(junk_type))
        if junk >= MDNS_CACHE_RECORDS * 0.9:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # the rest of the packets
    held_names = cache.names()
    assert junk >= MDNS_CACHE_RECORDS * 0.9, f"the flood did not arrive ({junk} records)"
    assert len(held_names) <= MDNS_CACHE_RECORDS  # one record per junk name, at most the cap

    result, _ = _round(node, victim)
    assert result.addresses == (victim.honest,)
    assert result.peers == 1 and result.unreachable == 0
