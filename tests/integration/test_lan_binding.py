"""LAN device certificates bound to their replica: at CA creation, at pairing, and after an
upgrade from Careline 0.1.0 (certificates that name no replica). Real listeners on
127.0.0.1, in this process."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.store import op_signer
from core.store.database import Database
from core.sync.lan import identity as lan_id
from core.sync.lan.certify import certify_if_unbound
from core.sync.lan.identity import LanIdentity
from core.sync.lan.pairing import PairingError, join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.session import sync
from tests.conftest import PASSWORD


def _unsigned_ops(db: Database) -> int:
    return int(db.query("SELECT count(*) FROM oplog WHERE signer = ''")[0][0])


def _bound_to(identity: LanIdentity) -> certs.ReplicaBinding | None:
    return certs.binding_of(certs.load_certificate(identity.certificate))


def _old_ca_holder(db: Database) -> LanIdentity:
    """What Careline 0.1.0 kept on the first workstation: a CA and an unbound certificate."""
    ca_key, ca_pem = certs.create_ca("old")
    key = certs.new_private_key()
    cert = certs.sign_device(ca_key, ca_pem, certs.make_csr(key, "olddev"), "olddev")
    identity = LanIdentity("olddev", cert, certs.private_key_pem(key).decode(), ca_pem)
    with db.write("admin", "test.old", "device", "olddev") as tx:
        for key_name, value in (
            (lan_id.CA_KEY_KEY, {"private_key_pem": certs.private_key_pem(ca_key).decode()}),
            (lan_id.IDENTITY_KEY, asdict(identity)),
        ):
            tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key_name, json.dumps(value)))
    return identity


def test_the_first_workstation_signs_its_ops_with_a_bound_certificate(
    workstation: Workstation,
) -> None:
    db = workstation.database
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")  # before the CA
    identity = lan_id.ensure_identity(db, "admin")
    assert _bound_to(identity) == op_trust.binding_for(db)
    assert op_signer.current(db) is not None
    assert _unsigned_ops(db) == 0  # ops made before are signed now
    workstation.records.add_patient("Hopper", "Grace", "1906-12-09")
    assert _unsigned_ops(db) == 0


def test_pairing_binds_and_a_replica_is_bound_to_one_device_only(
    workstation: Workstation, tmp_path: Path
) -> None:
    identity = lan_id.ensure_identity(workstation.database, "admin")
    joiner = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    joiner.prepare_join("admin", PASSWORD)
    binding = op_trust.binding_for(joiner.database)
    try:
        with PeerServer(workstation.database, identity) as server:
            assert server.pairing_port is not None
            code = lan_id.new_pair_code(workstation.database, "admin")
            joined = join("127.0.0.1", server.pairing_port, code, binding)
            assert _bound_to(joined) == binding
            # Another device asking to sign as the same replica (or as the CA holder's) is
            # refused, and says why.
            for taken in (binding, op_trust.binding_for(workstation.database)):
                code = lan_id.new_pair_code(workstation.database, "admin")
                with pytest.raises(PairingError, match="already bound"):
                    join("127.0.0.1", server.pairing_port, code, taken)
    finally:
        joiner.lock()


def test_an_upgraded_clinic_binds_its_old_certificates_and_signs(
    workstation: Workstation, tmp_path: Path
) -> None:
    a_db = workstation.database
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")
    old = _old_ca_holder(a_db)
    # A workstation paired by 0.1.0: its certificate names no replica.
    joiner = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    joiner.prepare_join("admin", PASSWORD)
    b_db = joiner.database
    try:
        key = certs.new_private_key()
        _, cert, ca = lan_id.issue_device(a_db, certs.make_csr(key, "x"), "admin")
        paired = LanIdentity("bdev", cert, certs.private_key_pem(key).decode(), ca)
        with b_db.write("admin", "test.old", "device", "bdev") as tx:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                (lan_id.IDENTITY_KEY, json.dumps(asdict(paired))),
            )
        op_trust.install_device(b_db, cert, paired.private_key_pem, ca, "admin")
        assert op_signer.current(b_db) is None  # unbound: it cannot sign yet

        # The CA holder re-issues its own certificate, bound, at first use.
        ready = lan_id.ready_identity(a_db, "admin")
        assert ready is not None and ready.device_id == old.device_id
        assert _bound_to(ready) == op_trust.binding_for(a_db)
        assert _unsigned_ops(a_db) == 0

        with PeerServer(a_db, ready) as server:
            address = f"127.0.0.1:{server.port}"
            with LanTransport(address, paired) as transport:
                sync(b_db, transport, "admin")  # the clinic's records arrive
            joiner.lock()
            joiner.sign_in("admin", PASSWORD)
            b_db = joiner.database
            joiner.records.add_patient("Hopper", "Grace", "1906-12-09")  # unsigned for now
            assert _unsigned_ops(b_db) > 0
            # At its next LAN sync, it asks the CA holder for a bound certificate.
            with LanTransport(address, paired) as transport:
                bound = certify_if_unbound(b_db, transport, "admin")
                assert bound is not None and bound.device_id == "bdev"
                assert _bound_to(bound) == op_trust.binding_for(b_db)
                assert _unsigned_ops(b_db) == 0
                report = sync(b_db, transport, "admin")
        assert report.refused == []
        assert op_trust.quarantined(a_db) == []
        assert "Hopper" in [p.family for p in workstation.records.list_patients()]
    finally:
        joiner.lock()
