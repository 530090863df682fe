"""LAN peers over real sockets on 127.0.0.1: pairing, mutual TLS, refusals, mDNS."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.lan import discovery, tls
from core.sync.lan import identity as lan_id
from core.sync.lan import server as lan_server
from core.sync.lan.identity import LanIdentity
from core.sync.lan.pairing import PairingError, join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.session import sync
from core.sync.transport import TransportError
from tests.conftest import PASSWORD
from tests.services import free_port_pair

pytestmark = pytest.mark.mdns


@pytest.fixture
def clinic(workstation: Workstation) -> Iterator[tuple[Workstation, PeerServer]]:
    """The first workstation of a clinic with no server, serving LAN peers."""
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10", mrn="MRN-1")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    server = PeerServer(workstation.database, identity).start()
    try:
        yield workstation, server
    finally:
        server.stop()


def _joined(tmp_path: Path, server: PeerServer, ws_a: Workstation) -> Workstation:
    code = lan_id.new_pair_code(ws_a.database, "admin")
    ws_b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    ws_b.prepare_join("admin", PASSWORD)
    assert server.pairing_port is not None
    identity = join("127.0.0.1", server.pairing_port, code, op_trust.binding_for(ws_b.database))
    lan_id.save_identity(ws_b.database, identity, "admin")
    with LanTransport(f"127.0.0.1:{server.port}", identity) as transport:
        sync(ws_b.database, transport, "admin")
    return ws_b


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    """The server logs from its own thread: give it a moment."""
    deadline = time.monotonic() + 3
    while text not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    return text in caplog.text


def _other_clinic(tmp_path: Path) -> Workstation:
    ws = Workstation(tmp_path / "other", kdf_params=FAST_PARAMS)
    ws.init("Elsewhere Clinic", "boss", "Bo Boss", PASSWORD)
    ws.sign_in("boss", PASSWORD)
    return ws


def test_two_workstations_pair_and_converge(
    clinic: tuple[Workstation, PeerServer], tmp_path: Path
) -> None:
    ws_a, server = clinic
    ws_b = _joined(tmp_path, server, ws_a)
    try:
        ws_b.sign_in("admin", PASSWORD)  # the account arrived with the first sync
        assert [p.family for p in ws_b.records.search_patients("Lovelace")] == ["Lovelace"]
        ws_b.records.add_patient("Hopper", "Grace", "1906-12-09")
        ws_a.records.add_patient("Turing", "Alan", "1912-06-23")
        identity = lan_id.load_identity(ws_b.database)
        assert identity is not None
        with LanTransport(f"127.0.0.1:{server.port}", identity) as transport:
            sync(ws_b.database, transport, "admin")
        names_a = sorted(p.family for p in ws_a.records.list_patients())
        names_b = sorted(p.family for p in ws_b.records.list_patients())
        assert names_a == names_b == ["Hopper", "Lovelace", "Turing"]
        # Nothing secret was written next to the database.
        assert sorted(f.name for f in ws_b.data_dir.iterdir() if f.suffix == ".pem") == []
    finally:
        ws_b.lock()


def test_pairing_code_is_one_time_and_wrong_or_expired_codes_fail(
    clinic: tuple[Workstation, PeerServer],
) -> None:
    ws_a, server = clinic
    assert server.pairing_port is not None
    with pytest.raises(PairingError, match="wrong, expired or already used"):
        join("127.0.0.1", server.pairing_port, "AAAAA-BBBBB")
    expired = lan_id.new_pair_code(ws_a.database, "admin", ttl_minutes=-1)
    with pytest.raises(PairingError, match="wrong, expired or already used"):
        join("127.0.0.1", server.pairing_port, expired)
    good = lan_id.new_pair_code(ws_a.database, "admin")
    join("127.0.0.1", server.pairing_port, good.lower())  # typed in lower case: still fine
    with pytest.raises(PairingError, match="wrong, expired or already used"):
        join("127.0.0.1", server.pairing_port, good)
    stored = ws_a.database.query("SELECT value FROM meta WHERE key = ?", (lan_id.CODES_KEY,))
    assert good.replace("-", "") not in stored[0][0]  # only hashes are stored


def test_code_proof_is_bound_to_the_servers_certificate(workstation: Workstation) -> None:
    db = workstation.database
    lan_id.ensure_identity(db, "admin")
    code = lan_id.new_pair_code(db, "admin")
    secret = lan_id.code_secret(code)
    csr = certs.make_csr(certs.new_private_key(), "x")
    # A man in the middle relays a proof made for *its* certificate: refused.
    proof = lan_id.client_proof(secret, "AA:BB", csr)
    assert lan_id.redeem(db, proof, "CC:DD", csr, "test") is None
    assert lan_id.redeem(db, proof, "AA:BB", csr, "test") == secret


def test_guessing_burns_the_codes(workstation: Workstation) -> None:
    db = workstation.database
    lan_id.ensure_identity(db, "admin")
    code = lan_id.new_pair_code(db, "admin")
    csr = "csr"
    for _ in range(lan_id.MAX_FAILED_ATTEMPTS):
        assert lan_id.redeem(db, "0" * 64, "FP", csr, "test") is None
    proof = lan_id.client_proof(lan_id.code_secret(code), "FP", csr)
    assert lan_id.redeem(db, proof, "FP", csr, "test") is None


def test_another_clinic_is_refused_and_learns_nothing(
    clinic: tuple[Workstation, PeerServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws_a, server = clinic
    ws_c = _other_clinic(tmp_path)
    try:
        foreign = lan_id.ensure_identity(ws_c.database, "boss")
        caplog.set_level(logging.WARNING, logger="core.sync.lan.server")
        with (
            LanTransport(f"127.0.0.1:{server.port}", foreign) as transport,
            pytest.raises(TransportError),
        ):
            sync(ws_c.database, transport, "boss")
        assert ws_c.records.search_patients("Lovelace") == []
        assert _logged(caplog, "refused LAN peer 127.0.0.1")
        assert "Lovelace" not in caplog.text and "Riverside" not in caplog.text
        # And our clinic does not trust the other clinic's server either.
        own = lan_id.load_identity(ws_a.database)
        assert own is not None
        with (
            PeerServer(ws_c.database, foreign) as other_server,
            LanTransport(f"127.0.0.1:{other_server.port}", own) as transport,
            pytest.raises(TransportError),
        ):
            transport.hello()
    finally:
        ws_c.lock()


def test_self_signed_certificate_is_refused(
    clinic: tuple[Workstation, PeerServer], tmp_path: Path
) -> None:
    ws_a, server = clinic
    own = lan_id.load_identity(ws_a.database)
    assert own is not None
    key_pem, cert_pem = certs.self_signed_server(["127.0.0.1"])
    rogue = LanIdentity("rogue", cert_pem, key_pem.decode("ascii"), own.ca_certificate)
    with (
        LanTransport(f"127.0.0.1:{server.port}", rogue) as transport,
        pytest.raises(TransportError),
    ):
        transport.hello()


def test_a_listener_stopping_while_it_waits_on_a_refused_peer_ends_that_connection(
    clinic: tuple[Workstation, PeerServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refused peer is given time to read the TLS alert (the listener drains what it
    # writes); a peer that neither writes nor hangs up must not keep the listener, nor
    # its connection thread, alive past stop (signing out must not wait on it).
    monkeypatch.setattr(lan_server, "HANDSHAKE_TIMEOUT", 600.0)
    ws_a, _ = clinic
    own = lan_id.load_identity(ws_a.database)
    assert own is not None
    key_pem, cert_pem = certs.self_signed_server(["127.0.0.1"])
    rogue = LanIdentity("rogue", cert_pem, key_pem.decode("ascii"), own.ca_certificate)
    before = set(threading.enumerate())
    server = PeerServer(ws_a.database, own).start()
    try:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        # TLS 1.3: the client's side of the handshake ends before the server checks the
        # client's certificate; the refusal then comes as an alert, which this peer leaves
        # unread, keeping the connection open.
        with tls.client_context(rogue).wrap_socket(raw) as held:

            def workers() -> list[threading.Thread]:
                new = set(threading.enumerate()) - before
                return [t for t in new if t.name == "lan-peer-conn"]

            while not workers():  # its connection thread: handshaking, then draining
                time.sleep(0.01)
            server.stop()
            assert not any(t.is_alive() for t in workers())
            # And the peer is hung up on.
            held.settimeout(30)
            with contextlib.suppress(ssl.SSLError, OSError):
                while socket.socket.recv(held, 65536):
                    pass
    finally:
        server.stop()


def test_a_listener_that_cannot_take_its_pairing_port_frees_its_sync_port(
    workstation: Workstation,
) -> None:
    # The app retries serving at its next session: the sync port must not be left held
    # by a listener that never served (it was, until garbage collection).
    identity = lan_id.ensure_identity(workstation.database, "admin")
    port = free_port_pair()
    with socket.create_server(("127.0.0.1", port + 1)):  # someone else's
        with pytest.raises(OSError, match="Address already in use"):
            PeerServer(workstation.database, identity, "127.0.0.1", port).start()
        with socket.create_server(("127.0.0.1", port)):  # free again, at once
            pass
    with PeerServer(workstation.database, identity, "127.0.0.1", port) as server:
        assert (server.port, server.pairing_port) == (port, port + 1)


def test_revoked_certificate_is_refused_and_logged(
    clinic: tuple[Workstation, PeerServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws_a, server = clinic
    ws_b = _joined(tmp_path, server, ws_a)
    try:
        identity = lan_id.load_identity(ws_b.database)
        assert identity is not None
        serial = certs.serial_of(identity.certificate)
        lan_id.revoke(ws_a.database, serial, "admin")
        ws_a.records.add_patient("Secret", "Sam", "1970-01-01")
        caplog.set_level(logging.WARNING, logger="core.sync.lan.server")
        with (
            LanTransport(f"127.0.0.1:{server.port}", identity) as transport,
            pytest.raises(TransportError),
        ):
            sync(ws_b.database, transport, "admin")
        assert _logged(caplog, f"serial {serial}): the certificate has been revoked")
        ws_b.sign_in("admin", PASSWORD)
        assert ws_b.records.search_patients("Secret") == []
    finally:
        ws_b.lock()


def test_mdns_finds_the_peer_and_txt_holds_no_names(
    clinic: tuple[Workstation, PeerServer],
) -> None:
    ws_a, server = clinic
    advertiser = discovery.Advertiser(server.port, "127.0.0.1", ["127.0.0.1"])
    try:
        assert set(advertiser.info.properties) == {b"v", b"id"}
        mine: list[discovery.SeenPeer] = []
        # Browse again while not seen: a loaded machine (the suite runs on every core, other
        # tests multicasting too) can miss one 2-second window; mDNS is only ever a hint.
        for _ in range(5):
            seen = discovery.browse(2.0, ["127.0.0.1"])
            mine = [p for p in seen if p.instance == advertiser.instance]
            if mine:
                break
    finally:
        advertiser.close()
    assert mine and mine[0].address == f"127.0.0.1:{server.port}"
    assert mine[0].version == discovery.PROTOCOL_VERSION
    announced = repr(advertiser.info.properties) + advertiser.info.name
    for name in ("Riverside", "admin", "Ada", "Lovelace"):
        assert name not in announced
    own = lan_id.load_identity(ws_a.database)
    assert own is not None
    with LanTransport(mine[0].address, own) as transport:
        assert transport.hello()["protocol"] == 1


def _read_http(sock: socket.socket) -> bytes:
    """One HTTP message (headers + Content-Length body) from a socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    while len(body) < (lengths[0] if lengths else 0):
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_man_in_the_middle_without_the_code_cannot_pair(
    clinic: tuple[Workstation, PeerServer],
) -> None:
    """A relay that terminates TLS with its own certificate and forwards to the real peer:
    the joiner's proof is bound to the relay's certificate, so the real peer refuses it,
    and the code stays unused."""
    ws_a, server = clinic
    assert server.pairing_port is not None
    real_port = server.pairing_port
    key_pem, cert_pem = certs.self_signed_server(["127.0.0.1"])
    mitm = LanIdentity("mitm", cert_pem, key_pem.decode("ascii"), cert_pem)
    relay_ctx = tls.pairing_server_context(mitm)
    listener = socket.create_server(("127.0.0.1", 0))
    relay_port = listener.getsockname()[1]

    def relay() -> None:
        raw, _ = listener.accept()
        # Each plain socket is closed by its own "with" too: a failed TLS handshake would
        # otherwise leave it to the garbage collector (a ResourceWarning in a later test).
        with raw, relay_ctx.wrap_socket(raw, server_side=True) as victim:
            request = _read_http(victim)
            upstream = socket.create_connection(("127.0.0.1", real_port))
            with upstream, tls.tofu_client_context().wrap_socket(upstream) as real:
                real.sendall(request)
                victim.sendall(_read_http(real))

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    code = lan_id.new_pair_code(ws_a.database, "admin")
    try:
        with pytest.raises(PairingError, match="wrong, expired or already used"):
            join("127.0.0.1", relay_port, code)
    finally:
        thread.join(timeout=5)
        listener.close()
    join("127.0.0.1", real_port, code)  # the code was not consumed by the relayed attempt
