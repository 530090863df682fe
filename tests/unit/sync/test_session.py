"""Sync sessions between real SQLCipher replicas: what travels, what conflicts, what a
client refuses from a hostile or broken peer."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from core.records import op_trust
from core.records.errors import NotFoundError, ValidationError
from core.records.replication import replica_id
from core.store.oplog import version_vector
from core.sync import protocol
from core.sync.responder import Responder
from core.sync.session import SyncError, sync
from core.sync.stores import DatabaseStore
from core.sync.transport import LocalTransport
from tests.clinic_identity import signed_as
from tests.unit.sync.replicas import (
    PER_REPLICA,
    full_dump,
    materialized,
    new_replica,
    sync_pair,
)


def test_edit_travels_and_replicas_converge() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Ferreira", "Ana", "1964-08-21", mrn="F-1")
    a.add_allergy(p.id, "Aspirin", severity="mild")
    sync_pair(b, a)
    assert b.get_patient(p.id).family == "Ferreira"
    b.update_patient(p.id, {"phone": "555-0100"})
    sync_pair(a, b)
    assert a.get_patient(p.id).phone == "555-0100"
    assert materialized(a) == materialized(b)


def test_concurrent_edit_is_a_conflict_on_both_and_resolution_clears_it() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Li", "Wei", "1990-01-01")
    sync_pair(b, a)
    a.update_patient(p.id, {"given": "Wei-Ming"})
    b.update_patient(p.id, {"given": "Weiming"})
    sync_pair(b, a)
    for r in (a, b):
        [conflict] = r.conflicts()
        assert conflict.field == "given"
        assert {c.value for c in conflict.candidates} == {"Wei-Ming", "Weiming"}
        assert {c.author for c in conflict.candidates} == {"ann", "bob"}
    # Same displayed winner everywhere while unresolved.
    assert a.get_patient(p.id).given == b.get_patient(p.id).given
    chosen = next(c for c in a.conflicts()[0].candidates if c.value == "Wei-Ming")
    a.resolve_conflict(a.conflicts()[0].id, choose=chosen.id)
    sync_pair(b, a)
    assert a.conflicts() == b.conflicts() == []
    assert b.get_patient(p.id).given == "Wei-Ming"
    audit = a.db.query("SELECT action FROM audit_log WHERE action = 'conflict.resolve'")
    assert audit == [("conflict.resolve",)]


def test_resolution_with_a_new_value_is_validated() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Kato", "Yui", "2000-02-02")
    sync_pair(b, a)
    a.update_patient(p.id, {"birth_date": "2000-02-03"})
    b.update_patient(p.id, {"birth_date": "2000-03-02"})
    sync_pair(b, a)
    cid = a.conflicts()[0].id
    with pytest.raises(ValidationError, match="birth_date"):
        a.resolve_conflict(cid, value="yesterday")
    a.resolve_conflict(cid, value="2000-02-20")
    assert a.get_patient(p.id).birth_date == "2000-02-20"
    with pytest.raises(NotFoundError):
        a.resolve_conflict(cid, value="2000-02-20")


def test_same_value_written_concurrently_is_not_a_conflict() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Dube", "Sipho", "1980-05-05")
    sync_pair(b, a)
    a.update_patient(p.id, {"phone": "555-1"})
    b.update_patient(p.id, {"phone": "555-1"})
    sync_pair(b, a)
    assert a.conflicts() == []


def test_concurrent_allergy_adds_both_survive_and_remove_is_observed_only() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Haddad", "Omar", "1975-03-03")
    old = a.add_allergy(p.id, "Codeine")
    sync_pair(b, a)
    b.remove_allergy(old.id)  # bob saw Codeine and removes it
    a.add_allergy(p.id, "Codeine", reaction="nausea")  # ann re-records it concurrently
    b.add_allergy(p.id, "Peanut")
    sync_pair(b, a)
    for r in (a, b):
        assert sorted(x.substance for x in r.allergies(p.id)) == ["Codeine", "Peanut"]
        assert [x.reaction for x in r.allergies(p.id) if x.substance == "Codeine"] == ["nausea"]


def test_edit_versus_delete_is_a_conflict_never_silent_loss() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Novak", "Eva", "1955-12-12")
    sync_pair(b, a)
    a.delete_patient(p.id)
    b.update_patient(p.id, {"phone": "555-0199"})
    sync_pair(b, a)
    for r in (a, b):
        assert r.get_patient(p.id).phone == "555-0199"  # still visible
        [conflict] = r.conflicts()
        assert conflict.field == "deleted"
        assert {c.field for c in conflict.candidates} == {"deleted", "phone"}
    delete = next(c for c in a.conflicts()[0].candidates if c.field == "deleted")
    a.resolve_conflict(a.conflicts()[0].id, choose=delete.id)
    sync_pair(b, a)
    for r in (a, b):
        with pytest.raises(NotFoundError):
            r.get_patient(p.id)
        assert r.conflicts() == []


def test_uncontested_delete_removes_everywhere() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Gone", "Soon", "1999-09-09")
    a.add_allergy(p.id, "Dust")
    sync_pair(b, a)
    b.delete_patient(p.id)
    sync_pair(a, b)
    assert a.search_patients("gone") == []
    assert a.db.query("SELECT count(*) FROM allergies")[0][0] == 0


def test_new_replica_bootstraps_from_snapshot_then_goes_incremental() -> None:
    a = new_replica("ann")
    for i in range(30):
        a.add_patient(f"Family{i}", "G", "1990-01-01")
    fresh = new_replica("new")
    report = sync_pair(fresh, a)
    assert report.snapshot_records == 30
    assert report.pulled == 0
    assert fresh.count_patients() == 30
    a.add_patient("Later", "One", "1990-01-01")
    report = sync_pair(fresh, a)
    assert (report.pulled, report.snapshot_records) == (1, 0)
    assert version_vector(fresh.db) == version_vector(a.db)
    # A third replica that only knows the snapshot-bootstrapped one is served a snapshot too.
    third = new_replica("third")
    third.add_patient("Own", "Record", "1990-01-01")
    sync_pair(third, fresh)
    sync_pair(fresh, third)
    sync_pair(a, fresh)
    assert materialized(a) == materialized(fresh) == materialized(third)


def test_batches_are_bounded() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    b.add_patient("Has", "History", "1990-01-01")  # not empty: b pulls ops, not a snapshot
    for i in range(25):
        a.add_patient(f"P{i}", "G", "1990-01-01")
    report = sync(b.db, LocalTransport(Responder(a.db)), "bob")
    assert report.pulled == 25
    small = new_replica("carl")
    small.add_patient("Own", "Row", "1990-01-01")
    from core.sync.session import SyncSession

    session = SyncSession(small.db, LocalTransport(Responder(a.db)), "carl", batch=4)
    assert session.run().pulled == 26
    assert session.report.rounds >= 26 // 4


def test_refused_batch_stops_the_session_and_changes_nothing() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    b.add_patient("Bob", "Own", "1990-01-01")

    class Tamper:
        def request(self, message: bytes) -> bytes:
            reply = Responder(a.db).handle(message)
            return reply.replace(b'"seq":1,', b'"seq":2,')  # forge a gap

    a.add_patient("Ann", "Own", "1990-01-01")
    before = full_dump(b)
    with pytest.raises(SyncError, match="refusing the gap"):
        sync(b.db, Tamper(), "bob")
    assert full_dump(b) == before


def test_enrollment_and_transport_refuse_plain_http() -> None:
    from core.sync.enroll import EnrollmentError, enroll
    from core.sync.http_transport import HttpTransport
    from core.sync.transport import TransportError

    with pytest.raises(EnrollmentError, match="must start with https://"):
        enroll("http://clinic.example:8443", "CODE-CODE", None)
    with pytest.raises(TransportError, match="must start with https://"):
        HttpTransport("http://127.0.0.1:1", "token")


def test_progress_is_reported_per_page_and_batch() -> None:
    from core.sync.session import SyncReport, SyncSession

    a = new_replica("ann")
    for i in range(12):
        a.add_patient(f"P{i}", "G", "1990-01-01")
    fresh = new_replica("new")
    seen: list[int] = []

    def progress(report: SyncReport) -> None:
        seen.append(report.snapshot_records + report.pulled)

    SyncSession(fresh.db, LocalTransport(Responder(a.db)), "new", on_progress=progress).run()
    assert seen and seen[-1] == 12
    assert seen == sorted(seen)


def test_materialized_state_covers_every_table_but_the_per_replica_ones() -> None:
    """The convergence checks compare every derived table of the schema: only tables a
    replica legitimately keeps for itself are left out, and those must exist."""
    r = new_replica("ann")
    tables = {str(t) for (t,) in r.db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert set(PER_REPLICA) <= tables
    fts_storage = {t for t in tables if t.startswith("patients_fts_")}
    assert set(materialized(r)) == tables - set(PER_REPLICA) - fts_storage


# ----- hostile or broken replies: the client refuses them and changes nothing ------------

Rewrite = Callable[[dict[str, Any]], dict[str, Any] | bytes]


@dataclass
class HostilePeer:
    """A real responder whose replies to one kind of request are rewritten on the way back,
    as a hostile or broken server or LAN peer would send them."""

    responder: Responder
    request_type: str
    rewrite: Rewrite
    # The peer signs the rewritten ops as its own (a device sending what it broke itself),
    # rather than altering them in transit.
    resign: bool = False

    def request(self, message: bytes) -> bytes:
        reply = self.responder.handle(message)
        if json.loads(message)["type"] != self.request_type:
            return reply
        out = self.rewrite(json.loads(reply))
        if self.resign and isinstance(out, dict):
            assert isinstance(self.responder.store, DatabaseStore)
            ops = [protocol.op_from_wire(op, i) for i, op in enumerate(out["ops"])]
            signed = signed_as(self.responder.store.db, ops)
            out = {**out, "ops": [protocol.op_to_wire(op) for op in signed]}
        return out if isinstance(out, bytes) else json.dumps(out).encode()


def _ops(
    reply: dict[str, Any], change: Callable[[int, dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The reply with each op rewritten by ``change(index, op)``."""
    return {**reply, "ops": [change(i, op) for i, op in enumerate(reply["ops"])]}


def _garbage_update(op: dict[str, Any]) -> dict[str, Any]:
    """The op carrying bytes that are no Yjs update."""
    return {**op, "update": base64.b64encode(b"\x01\x02\x03").decode()}


OVERSIZED = b" " * (protocol.MAX_MESSAGE_BYTES + 1)
PULL_REPLIES: list[tuple[str, Rewrite, str]] = [
    ("wrong version", lambda r: {**r, "v": 3}, "version 3 is not supported"),
    ("oversized", lambda r: OVERSIZED, "exceeds the"),
    ("not JSON", lambda r: b"\xff\xfe not json", "not valid JSON"),
    ("not a sync message", lambda r: json.dumps([r]).encode(), "not a Careline sync message"),
    ("wrong reply type", lambda r: {**r, "type": "ack"}, "'ack' is not one of"),
    ("ops not a list", lambda r: {**r, "ops": "all of them"}, "ops must be a list"),
    ("bad vector", lambda r: {**r, "vv": {"a": -1}}, "vv[a]"),
    ("bad base64", lambda r: _ops(r, lambda i, op: {**op, "update": "!!!"}), "not valid base64"),
    # Signed so by the peer (see SIGNED_BY_PEER): broken at the source, not in transit.
    ("bad update bytes", lambda r: _ops(r, lambda i, op: _garbage_update(op)), "malformed update"),
    # All or nothing: the good first op of the batch is not kept either.
    ("second op bad", lambda r: _ops(r, lambda i, op: _garbage_update(op) if i else op),
     "malformed update"),
    ("gap", lambda r: _ops(r, lambda i, op: {**op, "seq": op["seq"] + 1}), "refusing the gap"),
    ("clock not a number", lambda r: {**r, "now_ms": "noon"}, "now_ms must be an integer"),
    ("error reply", lambda r: {**r, "type": "error", "message": "go away"}, "go away"),
]  # fmt: skip


# Ops the hostile peer signs itself after breaking them (an op altered after signing is
# quarantined instead: test_a_pull_reply_op_altered_in_transit_is_quarantined).
SIGNED_BY_PEER = {"bad update bytes", "second op bad"}


@pytest.mark.parametrize(("name", "rewrite", "message"), PULL_REPLIES,
                         ids=[c[0] for c in PULL_REPLIES])  # fmt: skip
def test_a_bad_pull_reply_is_refused_and_changes_nothing(
    name: str, rewrite: Rewrite, message: str
) -> None:
    server, client = new_replica("ann"), new_replica("bob")
    client.add_patient("Bob", "Own", "1990-01-01")  # has history: pulls ops, no snapshot
    pid = server.add_patient("Ann", "Own", "1990-01-01").id
    server.add_allergy(pid, "Latex")  # two ops in the reply
    before = full_dump(client)
    peer = HostilePeer(Responder(server.db), "pull", rewrite, resign=name in SIGNED_BY_PEER)
    with pytest.raises(SyncError, match=re.escape(message)):
        sync(client.db, peer, "bob")
    assert full_dump(client) == before
    # The same session against an honest peer then completes.
    sync_pair(client, server)
    assert materialized(client) == materialized(server)


def test_a_pull_reply_op_altered_in_transit_is_quarantined() -> None:
    server, client = new_replica("ann"), new_replica("bob")
    client.add_patient("Bob", "Own", "1990-01-01")
    pid = server.add_patient("Ann", "Own", "1990-01-01").id
    server.add_allergy(pid, "Latex")
    before = materialized(client)
    altered = HostilePeer(Responder(server.db), "pull", lambda r: _ops(r, _altered_author))

    report = sync(client.db, altered, "bob")  # the session goes on: our ops still go

    # Nothing of the altered origin is applied; its first op is kept aside with why (the
    # second waits behind it), and the session pushed our own ops all the same.
    assert materialized(client) == before
    assert report.quarantined == 1 and report.pushed == 1
    [held] = op_trust.quarantined(client.db)
    assert (held.origin, held.seq) == (replica_id(server.db), 1)
    assert "signature does not verify" in held.reason
    # The honest copy, when it comes, is applied and releases it.
    sync_pair(client, server)
    assert op_trust.quarantined(client.db) == []
    assert materialized(client) == materialized(server)


class DeafPeer:
    """A peer that ignores ``skip`` (as Careline 0.1.0 does, or a hostile peer could) and
    sends the ops it relays unsigned, as a 0.1.0 peer holds them."""

    def __init__(self, responder: Responder) -> None:
        self.responder, self.pulls = responder, 0

    def request(self, message: bytes) -> bytes:
        asked = json.loads(message)
        self.pulls += asked["type"] == "pull"
        asked.pop("skip", None)
        reply = json.loads(self.responder.handle(json.dumps(asked).encode()))
        if "ops" in reply:
            reply["ops"] = [{**op, "prev": "", "sig": "", "signer": ""} for op in reply["ops"]]
        return json.dumps(reply).encode()


def test_a_peer_that_sends_a_refused_op_again_does_not_keep_the_session_asking() -> None:
    server, client = new_replica("ann"), new_replica("bob")
    client.add_patient("Bob", "Own", "1990-01-01")
    server.add_patient("Ann", "Own", "1990-01-01")
    peer = DeafPeer(Responder(server.db))

    report = sync(client.db, peer, "bob")

    # Unsigned ops are kept aside (a 0.1.0 peer's must reach us vouched by the clinic
    # server), and the session ends once asking again brings nothing new.
    assert report.quarantined >= 1 and peer.pulls <= 3
    assert [q.reason for q in op_trust.quarantined(client.db)] == ["it carries no signature"]
    assert client.search_patients("ann") == []


def _altered_author(index: int, op: dict[str, Any]) -> dict[str, Any]:
    return {**op, "author": "mallory"}


def test_a_reply_op_claiming_to_come_from_the_client_itself_is_refused() -> None:
    server, client = new_replica("ann"), new_replica("bob")
    client.add_patient("Bob", "Own", "1990-01-01")
    server.add_patient("Ann", "Own", "1990-01-01")
    me = client.db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0]
    before = full_dump(client)
    forge: Rewrite = lambda r: _ops(r, lambda i, op: {**op, "origin": me, "seq": 2})  # noqa: E731
    with pytest.raises(SyncError, match="claims to come from this replica"):
        sync(client.db, HostilePeer(Responder(server.db), "pull", forge), "bob")
    assert full_dump(client) == before


ACK_REPLIES: list[tuple[str, Rewrite, str]] = [
    ("wrong version", lambda r: {**r, "v": 99}, "version 99 is not supported"),
    ("oversized", lambda r: OVERSIZED, "exceeds the"),
    ("not JSON", lambda r: b"{", "not valid JSON"),
    ("wrong reply type", lambda r: {**r, "type": "ops"}, "'ops' is not one of"),
    ("bad vector", lambda r: {**r, "vv": "everything"}, "vv must be an object"),
    ("nothing accepted", lambda r: {**r, "vv": {}}, "accepted none of our ops"),
]  # fmt: skip


@pytest.mark.parametrize(("rewrite", "message"), [c[1:] for c in ACK_REPLIES],
                         ids=[c[0] for c in ACK_REPLIES])  # fmt: skip
def test_a_bad_push_acknowledgement_is_refused_and_changes_nothing(
    rewrite: Rewrite, message: str
) -> None:
    server, client = new_replica("ann"), new_replica("bob")
    client.add_patient("Bob", "Own", "1990-01-01")  # something to push, nothing to pull
    before = full_dump(client)
    with pytest.raises(SyncError, match=re.escape(message)):
        sync(client.db, HostilePeer(Responder(server.db), "push", rewrite), "bob")
    assert full_dump(client) == before


def _records(
    reply: dict[str, Any], change: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The reply with each snapshot record rewritten by ``change(record)``."""
    return {**reply, "records": [change(rec) for rec in reply["records"]]}


SNAPSHOT_REPLIES: list[tuple[str, Rewrite, str]] = [
    ("wrong version", lambda r: {**r, "v": 0}, "version 0 is not supported"),
    ("oversized", lambda r: OVERSIZED, "exceeds the"),
    ("not JSON", lambda r: b"snapshot!", "not valid JSON"),
    ("records not a list", lambda r: {**r, "records": {}}, "records must be a list"),
    ("bad state bytes",
     lambda r: _records(r, lambda rec: {**rec, "state": base64.b64encode(b"\x05\x06").decode()}),
     "is malformed"),
]  # fmt: skip


@pytest.mark.parametrize(("rewrite", "message"), [c[1:] for c in SNAPSHOT_REPLIES],
                         ids=[c[0] for c in SNAPSHOT_REPLIES])  # fmt: skip
def test_a_bad_snapshot_page_is_refused_and_changes_nothing(rewrite: Rewrite, message: str) -> None:
    server, fresh = new_replica("ann"), new_replica("new")
    for i in range(3):
        server.add_patient(f"P{i}", "G", "1990-01-01")
    before = full_dump(fresh)
    with pytest.raises(SyncError, match=re.escape(message)):
        sync(fresh.db, HostilePeer(Responder(server.db), "snapshot", rewrite), "new")
    assert full_dump(fresh) == before
