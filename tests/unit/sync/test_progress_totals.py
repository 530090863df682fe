"""What a session expects to receive: the snapshot's ``total_records`` and the ops the other
side's version vector says are missing, for progress bars. Optional on the wire (older
responders omit it), validated like every other field when present."""

from __future__ import annotations

import json

import pytest

from core.store.oplog import version_vector
from core.sync import protocol as p
from core.sync.responder import Responder
from core.sync.session import SyncError, SyncReport, SyncSession
from core.sync.transport import LocalTransport
from tests.unit.sync.replicas import new_replica


class Rewrite:
    """A real responder whose snapshot pages are edited on the way back (an older or a
    misbehaving peer)."""

    def __init__(self, target: Responder, total: object, drop: bool = False) -> None:
        self.target = target
        self.total = total
        self.drop = drop

    def request(self, message: bytes) -> bytes:
        reply = json.loads(self.target.handle(message))
        if reply["type"] == "snapshot_page":
            reply.pop("total_records", None)
            if not self.drop:
                reply["total_records"] = self.total
        return json.dumps(reply).encode()


def _clinic(patients: int) -> tuple[Responder, int]:
    """A responder for a replica of ``patients`` patients, and its record count (counted
    here, not by the code under test)."""
    source = new_replica("ann")
    for i in range(patients):
        source.add_patient(f"P{i:03d}", "G", "1990-01-01")
    size = int(source.db.query("SELECT count(*) FROM record_states")[0][0])
    return Responder(source.db), size


def test_first_snapshot_page_carries_the_total_later_pages_do_not() -> None:
    responder, total = _clinic(7)
    first = json.loads(
        responder.handle(p.encode({"type": "snapshot", "after": None, "max_records": 3}))
    )
    assert first["total_records"] == total >= 7
    second = json.loads(
        responder.handle(
            p.encode({"type": "snapshot", "after": first["next_after"], "max_records": 3})
        )
    )
    assert second["type"] == "snapshot_page" and "total_records" not in second


def test_bootstrap_reports_expected_records_page_by_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(p, "MAX_RECORDS_PER_PAGE", 4)  # several pages from a small clinic
    responder, total = _clinic(10)
    fresh = new_replica("new")
    seen: list[tuple[int, int | None]] = []

    def progress(report: SyncReport) -> None:
        seen.append((report.snapshot_records, report.expected_records))

    report = SyncSession(fresh.db, LocalTransport(responder), "new", on_progress=progress).run()
    pages = [(n, total) for n in range(4, total, 4)] + [(total, total)]
    assert seen[: len(pages)] == pages  # one step per page, each knowing the total
    assert report.snapshot_records == report.expected_records == total
    assert fresh.count_patients() == 10


def test_a_responder_without_the_field_still_bootstraps() -> None:
    responder, size = _clinic(3)
    fresh = new_replica("new")
    report = SyncSession(fresh.db, Rewrite(responder, None, drop=True), "new").run()
    assert report.expected_records is None
    assert report.snapshot_records == size
    # JSON null means "not said" too.
    other = new_replica("other")
    assert SyncSession(other.db, Rewrite(responder, None), "o").run().expected_records is None


@pytest.mark.parametrize("bad", [-1, "12", True, 1.5, 2**63, [5], {"n": 5}])
def test_a_bad_total_is_a_protocol_error_and_nothing_is_applied(bad: object) -> None:
    responder, _ = _clinic(3)
    fresh = new_replica("new")
    with pytest.raises(SyncError, match=r"invalid message: total_records must be an integer"):
        SyncSession(fresh.db, Rewrite(responder, bad), "new").run()
    assert fresh.db.query("SELECT count(*) FROM record_states") == [(0,)]
    assert version_vector(fresh.db) == {}


def test_total_from_wire() -> None:
    assert p.total_from_wire(None) is None
    assert p.total_from_wire(0) == 0
    assert p.total_from_wire(100_000) == 100_000
    with pytest.raises(p.ProtocolError, match="total_records must be an integer from 0") as exc:
        p.total_from_wire(-5)
    assert exc.value.code == "malformed"


def test_op_pull_expects_what_the_remote_vector_is_ahead_by() -> None:
    ann, bob = new_replica("ann"), new_replica("bob")
    ann.add_patient("First", "Shared", "1980-01-01")
    SyncSession(bob.db, LocalTransport(Responder(ann.db)), "bob").run()
    for i in range(12):
        ann.add_patient(f"Later{i:02d}", "G", "1990-01-01")
    bob.add_patient("Own", "Unpushed", "1991-01-01")  # bob's own op is no debt of ann's
    seen: list[tuple[int, int | None]] = []

    def progress(report: SyncReport) -> None:
        seen.append((report.pulled, report.expected_ops))

    session = SyncSession(
        bob.db, LocalTransport(Responder(ann.db)), "bob", batch=5, on_progress=progress
    )
    report = session.run()
    assert seen == [(5, 12), (10, 12), (12, 12)]
    assert (report.pulled, report.expected_ops, report.pushed) == (12, 12, 1)


def test_nothing_to_pull_expects_nothing() -> None:
    ann, bob = new_replica("ann"), new_replica("bob")
    ann.add_patient("First", "Shared", "1980-01-01")
    SyncSession(bob.db, LocalTransport(Responder(ann.db)), "bob").run()
    report = SyncSession(bob.db, LocalTransport(Responder(ann.db)), "bob").run()
    assert (report.pulled, report.expected_ops, report.expected_records) == (0, 0, None)
