"""LAN peers fetch attachments from each other over the clinic's mutual TLS (issue #16):
a workstation with no server gets the file a peer added (ciphertext from the peer's cache)
and the clinic attachment key sealed for its own certificate, and opens it; a peer that
does not have the file says so."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.attachments import REMOTE, AttachmentProblem, Attachments, held_keys
from core.sync.enroll import ServerCredential
from core.sync.key_grants import keys_from_peer
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.prefetch import Prefetcher
from core.sync.session import sync
from core.sync.transport import TransportError
from tests.conftest import PASSWORD
from tests.services import free_port


@pytest.fixture
def peers(
    workstation: Workstation, tmp_path: Path
) -> Iterator[tuple[Workstation, Workstation, PeerServer]]:
    """Two workstations of a clinic with no server: A serves, B paired with it."""
    identity = lan_id.ensure_identity(workstation.database, "admin")
    server = PeerServer(workstation.database, identity).start()
    try:
        code = lan_id.new_pair_code(workstation.database, "admin")
        ws_b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
        ws_b.prepare_join("admin", PASSWORD)
        assert server.pairing_port is not None
        joined = join("127.0.0.1", server.pairing_port, code, op_trust.binding_for(ws_b.database))
        lan_id.save_identity(ws_b.database, joined, "admin")
        with LanTransport(f"127.0.0.1:{server.port}", joined) as transport:
            sync(ws_b.database, transport, "admin")
        ws_b.sign_in("admin", PASSWORD)
        yield workstation, ws_b, server
        ws_b.lock()
    finally:
        server.stop()


def test_a_peer_fetches_and_opens_a_file_another_peer_added(
    peers: tuple[Workstation, Workstation, PeerServer], tmp_path: Path
) -> None:
    ws_a, ws_b, server = peers
    patient = ws_a.records.add_patient("Peer", "Pat", "1960-06-06").id
    source = tmp_path / "ecg.pdf"
    source.write_bytes(b"%PDF-1.4 ECG " * 200_000)  # 2.6 MB: several chunks
    item = Attachments(ws_a.records, ws_a.data_dir).add(patient, source, title="ECG")
    identity = lan_id.load_identity(ws_b.database)
    assert identity is not None
    with LanTransport(f"127.0.0.1:{server.port}", identity) as peer:
        sync(ws_b.database, peer, "admin")
        on_b = Attachments(ws_b.records, ws_b.data_dir, peers=[peer])
        [listed] = on_b.for_patient(patient)
        assert listed.availability == REMOTE and held_keys(ws_b.records) == {}
        out = tmp_path / "ecg-copy.pdf"
        on_b.open_to(item.id, out)
        assert out.read_bytes() == source.read_bytes()
        assert held_keys(ws_b.records) == held_keys(ws_a.records)

        # A file the peer does not hold (removed from its cache): refused, nothing written.
        other = Attachments(ws_a.records, ws_a.data_dir).add(
            patient,
            tmp_path.joinpath("x.txt")
            if (tmp_path / "x.txt").write_text("x")
            else tmp_path / "x.txt",
            title="X",
        )
        assert other.blob_id is not None
        Attachments(ws_a.records, ws_a.data_dir).cache.delete(other.blob_id)
        sync(ws_b.database, peer, "admin")
        with pytest.raises(AttachmentProblem, match="does not have attachment"):
            on_b.open_to(other.id, tmp_path / "x-copy.txt")
        assert not (tmp_path / "x-copy.txt").exists()


def test_with_the_server_unreachable_the_file_comes_from_a_peer(
    peers: tuple[Workstation, Workstation, PeerServer], tmp_path: Path
) -> None:
    """B is enrolled with a clinic server that does not answer (a closed port): alone, the
    file stays "available when connected"; with a LAN peer, it comes from the peer."""
    ws_a, ws_b, server = peers
    patient = ws_a.records.add_patient("Peer", "Pat", "1960-06-06").id
    source = tmp_path / "letter.txt"
    source.write_bytes(b"referral letter " * 5000)
    item = Attachments(ws_a.records, ws_a.data_dir).add(patient, source, title="Letter")
    identity = lan_id.load_identity(ws_b.database)
    assert identity is not None
    gone = ServerCredential(
        server_url=f"https://127.0.0.1:{free_port()}", device_id="dev-b", clinic_id="c",
        clinic_name="Clinic", token="t", certificate="", private_key_pem="",
        ca_certificate="", server_ca_pem=None,
    )  # fmt: skip
    with LanTransport(f"127.0.0.1:{server.port}", identity) as peer:
        sync(ws_b.database, peer, "admin")
        with pytest.raises(AttachmentProblem, match="available when connected"):
            Attachments(ws_b.records, ws_b.data_dir, credential=gone).fetch(item.id)
        out = tmp_path / "copy.txt"
        Attachments(ws_b.records, ws_b.data_dir, credential=gone, peers=[peer]).open_to(
            item.id, out
        )
        assert out.read_bytes() == source.read_bytes()


def test_a_revoked_peer_fetches_nothing_from_the_others(
    peers: tuple[Workstation, Workstation, PeerServer], tmp_path: Path
) -> None:
    """A revokes B's certificate: B's mutual-TLS connections are refused, so it gets
    neither the ciphertext nor the clinic attachment key from A."""
    ws_a, ws_b, server = peers
    patient = ws_a.records.add_patient("Peer", "Pat", "1960-06-06").id
    source = tmp_path / "scan.txt"
    source.write_bytes(b"scan " * 10_000)
    item = Attachments(ws_a.records, ws_a.data_dir).add(patient, source, title="Scan")
    identity = lan_id.load_identity(ws_b.database)
    assert identity is not None
    with LanTransport(f"127.0.0.1:{server.port}", identity) as peer:
        sync(ws_b.database, peer, "admin")  # B lists the file; it has not fetched it
    lan_id.revoke(
        ws_a.database, certs.load_certificate(identity.certificate).serial_number, "admin"
    )
    with LanTransport(f"127.0.0.1:{server.port}", identity, timeout=5.0) as peer:
        on_b = Attachments(ws_b.records, ws_b.data_dir, peers=[peer])
        with pytest.raises(AttachmentProblem, match="available when connected"):
            on_b.open_to(item.id, tmp_path / "copy.txt")
        with pytest.raises(TransportError):
            keys_from_peer(ws_b.records, peer)
    assert not (tmp_path / "copy.txt").exists() and held_keys(ws_b.records) == {}
    assert item.blob_id is not None and not on_b.cache.exists(item.blob_id)


def test_a_peer_that_synced_the_revocation_list_refuses_the_revoked_device_too(
    peers: tuple[Workstation, Workstation, PeerServer], tmp_path: Path
) -> None:
    """A (the CA holder) revokes B; C hears of it only through A's signed revocation list,
    which comes with its next sync; from then on C refuses B as well, file and keys."""
    ws_a, ws_b, server_a = peers
    ws_c = Workstation(tmp_path / "c", kdf_params=FAST_PARAMS)
    ws_c.prepare_join("admin", PASSWORD)
    assert server_a.pairing_port is not None
    code = lan_id.new_pair_code(ws_a.database, "admin")
    id_c = join("127.0.0.1", server_a.pairing_port, code, op_trust.binding_for(ws_c.database))
    lan_id.save_identity(ws_c.database, id_c, "admin")
    with LanTransport(f"127.0.0.1:{server_a.port}", id_c) as first:
        sync(ws_c.database, first, "admin")  # the clinic's staff, to sign in with
    ws_c.sign_in("admin", PASSWORD)
    patient = ws_a.records.add_patient("Peer", "Pat", "1960-06-06").id
    source = tmp_path / "scan.txt"
    source.write_bytes(b"scan " * 10_000)
    item = Attachments(ws_a.records, ws_a.data_dir).add(patient, source, title="Scan")
    id_b = lan_id.load_identity(ws_b.database)
    assert id_b is not None
    with (
        PeerServer(ws_c.database, id_c).start() as server_c,
        LanTransport(f"127.0.0.1:{server_a.port}", id_c) as c_to_a,
    ):
        sync(ws_c.database, c_to_a, "admin")
        Attachments(ws_c.records, ws_c.data_dir, peers=[c_to_a]).fetch(item.id)  # C holds it
        with LanTransport(f"127.0.0.1:{server_a.port}", id_b) as b_to_a:
            sync(ws_b.database, b_to_a, "admin")
        with LanTransport(f"127.0.0.1:{server_c.port}", id_b) as b_to_c:
            b_to_c.hello()  # before the revocation, C admits B

        lan_id.revoke(ws_a.database, certs.load_certificate(id_b.certificate).serial_number,
                      "admin")  # fmt: skip
        assert lan_id.revoked_serials(ws_c.database) == set()
        sync(ws_c.database, c_to_a, "admin")  # the revocation list comes with the sync
        assert len(lan_id.revoked_serials(ws_c.database)) == 1
        with LanTransport(f"127.0.0.1:{server_c.port}", id_b, timeout=5.0) as b_to_c:
            on_b = Attachments(ws_b.records, ws_b.data_dir, peers=[b_to_c])
            with pytest.raises(AttachmentProblem, match="available when connected"):
                on_b.fetch(item.id)
            with pytest.raises(TransportError):
                keys_from_peer(ws_b.records, b_to_c)
    assert held_keys(ws_b.records) == {}
    ws_c.lock()


def test_with_no_server_the_prefetch_fetches_from_a_peer(
    peers: tuple[Workstation, Workstation, PeerServer], tmp_path: Path
) -> None:
    """In a clinic with no server, the prefetch (core/sync/prefetch.py) takes the file and
    its clinic attachment key from the peer, so the file opens with nobody to ask."""
    ws_a, ws_b, server = peers
    patient = ws_a.records.add_patient("Peer", "Pat", "1960-06-06").id
    source = tmp_path / "xray.pdf"
    source.write_bytes(b"%PDF-1.4 XRAY " * 100_000)
    item = Attachments(ws_a.records, ws_a.data_dir).add(patient, source, title="X-ray")
    identity = lan_id.load_identity(ws_b.database)
    assert identity is not None
    with LanTransport(f"127.0.0.1:{server.port}", identity) as peer:
        sync(ws_b.database, peer, "admin")
        on_b = Attachments(ws_b.records, ws_b.data_dir, peers=[peer])
        report = Prefetcher().run(on_b, dt.date.today())
        assert report.fetched == [item.blob_id] and report.error is None
    assert held_keys(ws_b.records) == held_keys(ws_a.records)
    alone = Attachments(ws_b.records, ws_b.data_dir)  # no server, no peer
    assert alone.read(item.id) == source.read_bytes()
