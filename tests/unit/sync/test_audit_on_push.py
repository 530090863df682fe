"""The audit head offered on the push (core.sync.protocol, "Head on a push"): a session
carrying an edit to the clinic server takes two round trips and an idle one one, the anchor
still moving only on proof; a server of an earlier release, which never says it takes the
head on a push, gets it in a pull as before, and is never sent it on a push."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.records import op_trust
from core.records.replication import ops_for
from core.store.audit_chain import Head
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync import protocol as p
from core.sync.audit_anchor import Anchoring, local_head
from core.sync.responder import Responder
from core.sync.session import SyncError, SyncReport, SyncSession
from core.sync.stores import DatabaseStore
from tests.unit.sync.replicas import new_replica

DEVICE = "desk-1"


class Wire:
    """The clinic server's responder (anchoring ``DEVICE``'s audit head in its replica) as
    seen on the wire; ``earlier=True``: as a server of the release before, which never says
    ``audit_on_push`` (and would ignore a head on a push)."""

    refuse_pushes = False  # answer every push with the error a refused batch gets

    def __init__(self, server: Database, earlier: bool = False) -> None:
        self.store = DatabaseStore(server)
        self.responder = Responder(
            server, f"device:{DEVICE}", audit_anchor=self._anchor, peer=f"device:{DEVICE}"
        )
        self.earlier = earlier
        self.sent: list[dict[str, Any]] = []

    def _anchor(self, head: Head | None, proof: list[bytes] | None) -> Anchoring:
        return self.store.anchor_audit(DEVICE, head, proof)

    def request(self, message: bytes) -> bytes:
        request = json.loads(message)
        self.sent.append(request)
        if self.earlier and request["type"] == "push":
            assert not {"audit_head", "audit_proof"} & set(request), "a head on a push"
        if self.refuse_pushes and request["type"] == "push":
            refusal = {"type": "error", "code": "refused", "message": "the batch was refused"}
            return p.encode(refusal)
        reply = json.loads(self.responder.handle(message))
        if self.earlier:
            reply.pop("audit_on_push", None)
        return json.dumps(reply).encode()

    def recorded(self) -> Head | None:
        """The head the server holds for the device."""
        return self.store.anchor_audit(DEVICE, None).recorded

    def session(self, db: Database, push: bool = True) -> SyncReport:
        """One session of ``db`` with this server; what it sent is in ``sent``."""
        self.sent.clear()
        return SyncSession(db, self, "bob").run(push=push)

    def audit_fields(self) -> list[tuple[str, list[str]]]:
        """Each request's type and the audit fields it carried."""
        return [(m["type"], sorted(k for k in m if k.startswith("audit"))) for m in self.sent]


def _desk(earlier: bool = False) -> tuple[Any, Any, Wire]:
    """A clinic server's replica holding a patient and a workstation that has synced with
    it (twice: downloaded, then anchored), and the wire between them."""
    server, desk = new_replica("ann"), new_replica("bob")
    server.add_patient("First", "Shared", "1980-01-01")
    wire = Wire(server.db, earlier)
    wire.session(desk.db)
    wire.session(desk.db)
    assert wire.recorded() == local_head(desk.db) is not None
    return server, desk, wire


def test_an_edit_goes_in_a_pull_and_a_push_carrying_the_head() -> None:
    _, desk, wire = _desk()
    desk.add_patient("Own", "Edit", "1991-01-01")
    report = wire.session(desk.db)
    assert (report.pushed, report.rounds, report.audit_problem) == (1, 2, None)
    assert wire.audit_fields() == [
        ("pull", ["audit_query"]),
        ("push", ["audit_head", "audit_proof"]),
    ]
    # Moved on the proof, to this log's head as it stands.
    assert wire.recorded() == local_head(desk.db)


def test_an_idle_session_is_one_round_trip() -> None:
    _, desk, wire = _desk()
    report = wire.session(desk.db)
    assert (report.pulled, report.pushed, report.rounds) == (0, 0, 1)
    assert wire.audit_fields() == [("pull", ["audit_query"])]


def test_with_nothing_to_push_the_head_goes_in_a_pull() -> None:
    server, desk, wire = _desk()
    server.add_patient("Second", "Pulled", "1982-01-01")  # applied here: audited here
    before = local_head(desk.db)
    report = wire.session(desk.db)
    assert (report.pulled, report.pushed, report.rounds) == (1, 0, 2)
    assert wire.audit_fields() == [
        ("pull", ["audit_query"]),
        ("pull", ["audit_head", "audit_proof"]),
    ]
    head = local_head(desk.db)
    assert before is not None and head is not None and head.seq > before.seq
    assert wire.recorded() == head


def test_a_session_that_only_pulls_offers_the_head_in_a_pull() -> None:
    _, desk, wire = _desk()
    desk.add_patient("Own", "Kept", "1991-01-01")  # stays here: this session only pulls
    report = wire.session(desk.db, push=False)
    assert (report.pushed, report.rounds) == (0, 2)
    assert [m["type"] for m in wire.sent] == ["pull", "pull"]
    assert wire.recorded() == local_head(desk.db)


def test_a_server_of_the_earlier_release_gets_the_head_in_a_pull() -> None:
    """It never says ``audit_on_push``: the session asks, checks, offers in a pull of its
    own, then pushes (Wire refuses a head on a push to it); the anchor moves as before."""
    _, desk, wire = _desk(earlier=True)
    desk.add_patient("Own", "Edit", "1991-01-01")
    report = wire.session(desk.db)
    assert (report.pushed, report.rounds, report.audit_problem) == (1, 3, None)
    assert wire.audit_fields() == [
        ("pull", ["audit_query"]),
        ("pull", ["audit_head", "audit_proof"]),
        ("push", []),
    ]
    head = wire.recorded()
    assert head is not None and head == local_head(desk.db)
    # Its head unchanged since (a push writes nothing to this log): idle is one round trip.
    assert wire.session(desk.db).rounds == 1


def test_an_altered_log_is_reported_and_its_head_not_offered_on_the_push() -> None:
    _, desk, wire = _desk()
    anchored = wire.recorded()
    assert anchored is not None
    desk.add_patient("Own", "Edit", "1991-01-01")
    desk.db._conn.execute("UPDATE audit_log SET hash = ? WHERE seq = ?", ("0" * 64, anchored.seq))
    report = wire.session(desk.db)
    assert report.audit_problem is not None and "differs" in report.audit_problem
    assert report.pushed == 1  # sync itself goes on
    assert wire.audit_fields() == [("pull", ["audit_query"]), ("push", [])]
    assert wire.recorded() == anchored


def test_a_head_on_a_push_not_extending_the_anchor_is_refused_and_reported() -> None:
    """An entry after the anchor edited without its hash recomputed: the anchor checks out,
    the proof on the push does not; the ops are stored, the anchor stays."""
    _, desk, wire = _desk()
    anchored = wire.recorded()
    assert anchored is not None
    desk.add_patient("Own", "Edit", "1991-01-01")
    desk.db._conn.execute(
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = ?", (anchored.seq + 1,)
    )
    report = wire.session(desk.db)
    assert report.audit_problem is not None and "did not accept" in report.audit_problem
    assert (report.pushed, report.rounds) == (1, 2)
    assert wire.recorded() == anchored


def test_a_malformed_head_on_a_push_is_refused_before_any_op_is_stored() -> None:
    server, desk, wire = _desk()
    desk.add_patient("Own", "Edit", "1991-01-01")
    held = version_vector(server.db)
    wire_ops = [p.op_to_wire(o) for o in ops_for(desk.db, held, 10)]
    assert wire_ops
    for head in ({"seq": 0, "hash": "a" * 64}, {"seq": 3}, "3:abc"):
        push = p.encode({"type": "push", "ops": wire_ops, "audit_head": head})
        reply = json.loads(wire.responder.handle(push))
        assert reply["type"] == "error" and reply["code"] == "malformed"
        assert "audit_head" in reply["message"]
    assert version_vector(server.db) == held


def test_a_responder_that_anchors_nothing_ignores_a_head_on_a_push() -> None:
    server, desk = new_replica("ann"), new_replica("bob")
    plain = Responder(server.db)  # a LAN peer
    SyncSession(desk.db, Wire(server.db), "bob").run()
    desk.add_patient("Own", "Edit", "1991-01-01")
    ops = [p.op_to_wire(o) for o in ops_for(desk.db, version_vector(server.db), 10)]
    head = local_head(desk.db)
    assert head is not None
    pems = op_trust.certificates_for(desk.db, [o["origin"] for o in ops])
    push = {"type": "push", "ops": ops, "certificates": pems, "audit_head": p.head_to_wire(head)}
    reply = json.loads(plain.handle(p.encode(push)))
    assert reply["type"] == "ack" and reply["applied"] == len(ops)
    assert not [k for k in reply if k.startswith("audit")]
    # And it never says it takes one: a pull to it gets no audit_on_push.
    pulled = json.loads(plain.handle(p.encode({"type": "pull", "vv": {}, "max_ops": 1,
                                               "audit_query": True})))  # fmt: skip
    assert "audit_on_push" not in pulled and "audit_anchoring" not in pulled


def test_a_refused_push_still_leaves_the_head_with_the_server() -> None:
    """The push carrying the head is refused (nothing of it was done): the session offers
    the head in a pull of its own before it reports the refusal, so a batch the server keeps
    refusing never holds the anchor back."""
    _, desk, wire = _desk()
    desk.add_patient("Own", "Refused", "1991-01-01")
    wire.refuse_pushes = True
    with pytest.raises(SyncError, match="the batch was refused"):
        wire.session(desk.db)
    assert wire.audit_fields() == [
        ("pull", ["audit_query"]),
        ("push", ["audit_head", "audit_proof"]),
        ("pull", ["audit_head", "audit_proof"]),
    ]
    assert wire.recorded() == local_head(desk.db)
