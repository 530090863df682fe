"""The clinic CA holder certifies a LAN device for its replica once, and revoking a device
revokes every certificate it was issued. Real listeners and mutual TLS on 127.0.0.1, in
this process; the requests are the ones a paired workstation can send (``POST
/v1/certify`` with its own key)."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.store.database import Database
from core.sync.lan import identity as lan_id
from core.sync.lan.identity import LanIdentity
from core.sync.lan.pairing import join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.transport import TransportError
from tests.conftest import PASSWORD


@dataclass
class CaHolder:
    db: Database
    identity: LanIdentity
    server: PeerServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
def holder(workstation: Workstation) -> Iterator[CaHolder]:
    """The workstation that holds the clinic's LAN CA, serving."""
    identity = lan_id.ensure_identity(workstation.database, "admin")
    with PeerServer(workstation.database, identity) as server:
        yield CaHolder(workstation.database, identity, server)


def _binding() -> certs.ReplicaBinding:
    """A replica of a workstation that has not asked for a certificate yet."""
    return certs.ReplicaBinding(f"replica-{secrets.token_hex(6)}", secrets.randbelow(2**31))


def _paired(holder: CaHolder, folder: Path) -> tuple[LanIdentity, Workstation]:
    """A workstation paired with the CA holder today: its certificate is bound."""
    ws = Workstation(folder, kdf_params=FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    assert holder.server.pairing_port is not None
    code = lan_id.new_pair_code(holder.db, "admin")
    binding = op_trust.binding_for(ws.database)
    return join("127.0.0.1", holder.server.pairing_port, code, binding), ws


def _paired_by_0_1_0(holder: CaHolder) -> LanIdentity:
    """A device paired by Careline 0.1.0: its certificate names no replica."""
    key = certs.new_private_key()
    device, cert, ca = lan_id.issue_device(holder.db, certs.make_csr(key, "pending"), "admin")
    return LanIdentity(device, cert, certs.private_key_pem(key).decode("ascii"), ca)


def _certify(holder: CaHolder, identity: LanIdentity, binding: certs.ReplicaBinding) -> str:
    """What ``certify_if_unbound`` sends, with the device's own key, over mutual TLS."""
    key = certs.load_private_key(identity.private_key_pem.encode("ascii"))
    with LanTransport(holder.address, identity) as transport:
        return transport.certify(certs.make_csr(key, identity.device_id, binding))


def test_a_bound_device_gets_no_spare_certificate(holder: CaHolder, tmp_path: Path) -> None:
    paired, ws = _paired(holder, tmp_path / "m")
    try:
        own = op_trust.binding_for(ws.database)
        colleague = _paired_by_0_1_0(holder)  # its replica is not bound to anyone yet
        for asked in (own, _binding()):
            with pytest.raises(TransportError, match=f"device {paired.device_id} is already bound"):
                _certify(holder, paired, asked)
        assert lan_id.issued_serials(holder.db, paired.device_id) == {
            certs.serial_of(paired.certificate)
        }
        # The colleague, certifying later, gets its replica: nobody took it meanwhile.
        replica = _binding()
        cert = _certify(holder, colleague, replica)
        assert certs.binding_of(certs.load_certificate(cert)) == replica
    finally:
        ws.lock()


def test_an_upgraded_device_is_certified_once_for_its_own_replica(holder: CaHolder) -> None:
    old = _paired_by_0_1_0(holder)
    replica = _binding()
    bound = _certify(holder, old, replica)
    assert certs.binding_of(certs.load_certificate(bound)) == replica

    # Its reply lost, it asks again with its old certificate: the same one comes back.
    again = _certify(holder, old, replica)
    assert certs.serial_of(again) == certs.serial_of(bound)
    assert lan_id.issued_serials(holder.db, old.device_id) == {
        certs.serial_of(old.certificate),
        certs.serial_of(bound),
    }
    # Another replica (a colleague's, not bound yet), with either certificate: refused.
    with pytest.raises(TransportError, match="already bound to replica " + replica.replica_id):
        _certify(holder, old, _binding())
    with pytest.raises(TransportError, match="already bound"):
        _certify(holder, dataclasses.replace(old, certificate=bound), _binding())
    # A replica another device is bound to: refused by name.
    other = _paired_by_0_1_0(holder)
    with pytest.raises(TransportError, match=f"replica {replica.replica_id} is already bound"):
        _certify(holder, other, replica)


def test_revoking_a_device_revokes_every_certificate_it_was_issued(holder: CaHolder) -> None:
    old = _paired_by_0_1_0(holder)
    bound = dataclasses.replace(old, certificate=_certify(holder, old, _binding()))
    serials = {certs.serial_of(old.certificate), certs.serial_of(bound.certificate)}

    # The administrator revokes the certificate the device uses now.
    assert lan_id.revoke(holder.db, certs.serial_of(bound.certificate), "admin") == serials
    for identity in (old, bound):  # neither connects any more
        with pytest.raises(TransportError), LanTransport(holder.address, identity) as t:
            t.hello()
    # The signed revocation list every peer receives names both.
    crl = op_trust.crl_of(holder.db)
    assert crl is not None
    assert serials <= set(certs.read_crl(crl, holder.identity.ca_certificate).revoked)
    rows = holder.db.query(
        "SELECT details FROM audit_log WHERE action = 'lan.device.revoke' ORDER BY seq DESC"
    )
    assert json.loads(rows[0][0])["device"] == old.device_id


def test_a_device_is_revoked_by_its_id(holder: CaHolder) -> None:
    old = _paired_by_0_1_0(holder)
    bound = dataclasses.replace(old, certificate=_certify(holder, old, _binding()))
    assert lan_id.revoke_device(holder.db, old.device_id, "admin") == {
        certs.serial_of(old.certificate),
        certs.serial_of(bound.certificate),
    }
    assert {certs.serial_of(bound.certificate)} <= lan_id.revoked_serials(holder.db)
    with pytest.raises(lan_id.LanIdentityError, match="issued no certificate to device x"):
        lan_id.revoke_device(holder.db, "x", "admin")
    # The list an administrator chooses from: the device with both its certificates,
    # revoked, and the CA holder itself, which cannot revoke itself.
    listed = {d.device_id: d for d in lan_id.issued_devices(holder.db)}
    device = listed[old.device_id]
    assert device.serials == (certs.serial_of(old.certificate), certs.serial_of(bound.certificate))
    assert device.revoked and not device.this_device
    assert device.replica is not None
    (mine,) = (d for d in listed.values() if d.this_device)
    assert mine.device_id == holder.identity.device_id and not mine.revoked
    with pytest.raises(lan_id.LanIdentityError, match="cannot revoke itself"):
        lan_id.revoke_device(holder.db, mine.device_id, "admin")
