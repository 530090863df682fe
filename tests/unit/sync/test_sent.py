"""What waits to be sent is counted from the store: this replica's own ops above the
highest one another replica reported holding at the end of a sync session."""

from __future__ import annotations

import pytest

from core.sync import sent
from core.sync.audit_anchor import local_head
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.stores import DatabaseStore
from core.sync.transport import LocalTransport, TransportError
from tests.unit.sync.replicas import new_replica, sync_pair


def test_changes_made_since_the_last_sync_are_counted_from_the_store() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    a.add_patient("Ferreira", "Ana", "1964-08-21")
    assert sent.unsent(a.db) is None  # never synced: not known
    sync_pair(a, b)
    assert sent.unsent(a.db) == 0
    kept = sent.acknowledged(a.db)
    assert kept == sent.own_seq(a.db) > 0
    a.add_patient("Okafor", "Chidi", "1971-02-11")
    a.add_patient("Lindqvist", "Maja", "1988-09-30")
    assert sent.unsent(a.db) == 2

    # A session that cannot reach the other side leaves the count as it was.
    class Unreachable:
        def request(self, message: bytes) -> bytes:
            raise TransportError("cannot reach the peer")

    with pytest.raises(TransportError):
        sync(a.db, Unreachable(), a.actor)
    assert sent.unsent(a.db) == 2
    sync_pair(a, b)
    assert sent.unsent(a.db) == 0


def test_a_session_that_only_pulls_records_what_the_other_side_holds_of_ours() -> None:
    # B pulls A's ops; A learns how far B holds them when A next syncs, even if A has
    # nothing to push then.
    a, b = new_replica("ann"), new_replica("bob")
    a.add_patient("Ferreira", "Ana", "1964-08-21")
    sync_pair(b, a)  # B pulled from A (A served): A recorded nothing itself
    assert sent.unsent(a.db) is None
    sync(a.db, LocalTransport(Responder(b.db, "peer")), a.actor)
    assert sent.unsent(a.db) == 0
    # The acknowledgment is audited, and written only when it grows.
    before = a.db.query("SELECT count(*) FROM audit_log WHERE action = ?", (sent.ACTION,))
    sync_pair(a, b)
    after = a.db.query("SELECT count(*) FROM audit_log WHERE action = ?", (sent.ACTION,))
    assert before == after == [(1,)]


def test_a_session_with_a_side_that_anchors_the_audit_log_writes_no_acknowledgment() -> None:
    # The clinic server records this replica's audit head; an entry written after it at
    # the end of each session would cost every following session a round trip.
    server, desk = new_replica("ann"), new_replica("bob")
    store = DatabaseStore(server.db)
    responder = Responder(
        server.db,
        "device:desk",
        audit_anchor=lambda head, proof: store.anchor_audit("desk", head, proof),
        peer="device:desk",
    )
    desk.add_patient("Ferreira", "Ana", "1964-08-21")
    for _ in range(2):
        sync(desk.db, LocalTransport(responder), desk.actor)
    assert sent.acknowledged(desk.db) is None
    assert store.anchor_audit("desk", None).recorded == local_head(desk.db)
