"""Hostile LAN workstations: a paired device that forges, replays or signs with a revoked
certificate. Real listeners and mutual TLS on 127.0.0.1 (in this process); the receiving
peer refuses each forged op, applies nothing of it, and ``careline quarantine list`` (a
real process) names the reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.store import op_signer, oplog
from core.store.database import Database
from core.store.oplog import OP_COLUMNS, Op, op_from_row
from core.sync.lan import identity as lan_id
from core.sync.lan.identity import LanIdentity
from core.sync.lan.pairing import join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.responder import Responder
from core.sync.session import SyncReport, sync
from core.sync.transport import LocalTransport, TransportError
from tests.conftest import PASSWORD
from tests.integration.test_cli import as_admin

pytestmark = pytest.mark.strict_authors  # authors are checked as in a clinic


@dataclass
class Peer:
    """A paired workstation and its running sync listener."""

    ws: Workstation
    identity: LanIdentity
    server: PeerServer

    @property
    def db(self) -> Database:
        return self.ws.database

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@dataclass
class Clinic:
    a: Peer  # the clinic CA holder
    b: Peer  # an honest workstation
    m: Peer  # the hostile one


def _sync(src: Peer, dst: Peer) -> SyncReport:
    with LanTransport(dst.address, src.identity) as transport:
        return sync(src.db, transport, "admin")


def _pair(a: Peer, folder: Path) -> Peer:
    ws = Workstation(folder, kdf_params=FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    assert a.server.pairing_port is not None
    code = lan_id.new_pair_code(a.db, "admin")
    identity = join("127.0.0.1", a.server.pairing_port, code, op_trust.binding_for(ws.database))
    lan_id.save_identity(ws.database, identity, "admin")
    with LanTransport(a.address, identity) as transport:
        sync(ws.database, transport, "admin")
    ws.lock()
    ws.sign_in("admin", PASSWORD)
    return Peer(ws, identity, PeerServer(ws.database, identity).start())


@pytest.fixture
def clinic(workstation: Workstation, tmp_path: Path) -> Iterator[Clinic]:
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    a = Peer(workstation, identity, PeerServer(workstation.database, identity).start())
    peers = [a]
    try:
        peers.append(_pair(a, tmp_path / "b"))
        peers.append(_pair(a, tmp_path / "m"))
        yield Clinic(*peers)
    finally:
        for peer in peers:
            peer.server.stop()
        for peer in peers[1:]:
            peer.ws.lock()


def _ops(db: Database, origin: str) -> list[Op]:
    rows = db.query(f"SELECT {OP_COLUMNS} FROM oplog WHERE origin = ? ORDER BY seq", (origin,))
    return [op_from_row(row) for row in rows]


def _rewrite(db: Database, op: Op, **changes: object) -> None:
    """What a hostile workstation does to an op it holds, in its own database."""
    forged = dataclasses.replace(op, **changes)  # type: ignore[arg-type]
    with db.write("admin", "test.forge", "oplog", op.origin) as tx:
        tx.execute(
            "UPDATE oplog SET record_id = ?, author = ?, doc_update = ? "
            "WHERE origin = ? AND seq = ?",
            (forged.record_id, forged.author, forged.update, op.origin, op.seq),
        )


def _forge_own(db: Database, template: Op, author: str) -> Op:
    """A new op under the hostile replica's own origin, properly signed with its own key."""
    me = oplog.identity(db)
    with db.write("admin", "test.forge", "oplog", me.replica_id) as tx:
        seq = oplog.version_vector(tx).get(me.replica_id, 0) + 1
        hlc = oplog.tick(tx, me.replica_id)
        op = Op(me.replica_id, seq, template.record_id, template.record_type,
                template.update, template.deps, hlc, author)  # fmt: skip
        signed = op_signer.sign_new(tx, op)
        oplog.insert_remote(tx, [signed])
    return signed


def _quarantined_here(data_dir: Path, origin: str, seq: int) -> str:
    """The reason ``careline quarantine list`` (a real process) gives for this op."""
    listed = as_admin(data_dir, "quarantine", "list")
    found = [q for q in listed["quarantined"] if (q["origin"], q["seq"]) == (origin, seq)]
    assert len(found) == 1, listed
    return str(found[0]["reason"])


def _patients(ws: Workstation) -> list[str]:
    return sorted(p.family for p in ws.records.list_patients())


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"author": "admin2"}, "its signature does not verify"),  # changes the author
        ({"record_id": "p-elsewhere"}, "its signature does not verify"),  # rewrites it
    ],
)
def test_a_rewritten_op_of_another_workstation_is_refused(
    clinic: Clinic, change: dict[str, str], why: str
) -> None:
    b, m, a = clinic.b, clinic.m, clinic.a
    b.ws.records.add_patient("Hopper", "Grace", "1906-12-09")
    _sync(b, m)  # B's op reaches M only
    b_origin = oplog.identity(b.db).replica_id
    target = _ops(m.db, b_origin)[-1]
    _rewrite(m.db, target, **change)

    report = _sync(m, a)  # M relays B's (rewritten) op to A
    assert report.refused == []  # not M's own op: M is not told about it
    assert _patients(a.ws) == ["Lovelace"]  # nothing of it applied
    assert oplog.version_vector(a.db).get(b_origin, 0) < target.seq
    a.ws.lock()
    assert why in _quarantined_here(a.ws.data_dir, b_origin, target.seq)


def test_an_op_replayed_under_the_hostile_origin_is_refused(clinic: Clinic) -> None:
    b, m, a = clinic.b, clinic.m, clinic.a
    b.ws.records.add_patient("Hopper", "Grace", "1906-12-09")
    _sync(b, m)
    copied = _ops(m.db, oplog.identity(b.db).replica_id)[-1]
    # M re-signs B's change with its own, valid key, as its own op.
    forged = _forge_own(m.db, copied, "admin")

    report = _sync(m, a)  # B's genuine op is relayed too; the copy is not
    assert [(o, s) for o, s, _ in report.refused] == [(forged.origin, forged.seq)]
    assert oplog.version_vector(a.db).get(forged.origin, 0) == forged.seq - 1
    a.ws.lock()
    reason = _quarantined_here(a.ws.data_dir, forged.origin, forged.seq)
    assert "changes made by another replica" in reason
    # The hostile workstation is told, and lists it as refused elsewhere.
    m.ws.lock()
    refused = as_admin(m.ws.data_dir, "quarantine", "list")["refused_elsewhere"]
    assert [(r["origin"], r["seq"]) for r in refused] == [(forged.origin, forged.seq)]


def test_an_op_by_someone_who_is_not_staff_is_refused(clinic: Clinic) -> None:
    m, a = clinic.m, clinic.a
    m.ws.records.add_patient("Hopper", "Grace", "1906-12-09")
    template = _ops(m.db, oplog.identity(m.db).replica_id)[-1]
    _sync(m, a)  # the honest op arrives
    forged = _forge_own(m.db, template, "mallory")  # valid signature, made-up author
    report = _sync(m, a)
    assert [(o, s) for o, s, _ in report.refused] == [(forged.origin, forged.seq)]
    assert oplog.version_vector(a.db).get(forged.origin, 0) == forged.seq - 1
    a.ws.lock()
    assert "not an active staff account" in _quarantined_here(
        a.ws.data_dir, forged.origin, forged.seq
    )


def test_ops_signed_with_a_revoked_certificate_are_refused(clinic: Clinic) -> None:
    a, b, m = clinic.a, clinic.b, clinic.m
    lan_id.revoke(a.db, certs.serial_of(m.identity.certificate), "admin")
    _sync(b, a)  # the CA's signed revocation list reaches B with the sync
    assert op_trust.crl_of(b.db) is not None
    m.ws.records.add_patient("Hopper", "Grace", "1906-12-09")  # signed after the revocation
    # B refuses M's certificate itself now (revoked_serials reads the signed list)...
    assert certs.serial_of(m.identity.certificate) in lan_id.revoked_serials(b.db)
    with pytest.raises(TransportError):
        _sync(m, b)
    # ... and M's ops carried to B another way (a relay that never heard of the revocation)
    # are refused one by one all the same: only the signed list tells.
    report = sync(m.db, LocalTransport(Responder(b.db, "peer")), "admin")
    assert report.refused and all("revoked" in why for _, _, why in report.refused)
    assert _patients(b.ws) == ["Lovelace"]
    b.server.stop()
    b.ws.lock()
    listed = as_admin(b.ws.data_dir, "quarantine", "list")["quarantined"]
    assert listed and all("revoked" in q["reason"] for q in listed)
