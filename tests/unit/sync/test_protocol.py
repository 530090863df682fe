"""Hostile or broken sync messages are refused with a clear error and change nothing.

"Nothing" is checked on every table of the receiving replica (``full_dump``): not only its
records but its op log, version vector, audit log, clock and full-text index.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from core.crypto.op_signature import GENESIS
from core.records import op_trust
from core.store.audit_chain import Head
from core.store.database import Database
from core.store.oplog import identity
from core.sync import protocol as p
from core.sync.audit_anchor import Anchoring
from core.sync.responder import Responder
from core.sync.stores import DatabaseStore
from tests.clinic_identity import signed_as
from tests.unit.sync.replicas import Dump, full_dump, materialized, new_replica


@pytest.fixture
def target() -> Responder:
    r = new_replica("ann")
    p_ = r.add_patient("Target", "Record", "1980-01-01")
    r.add_allergy(p_.id, "Latex")
    return Responder(r.db)


@dataclass
class Source:
    """Another device of the clinic, and what it sent: its ops as on the wire and the
    certificates that came with them (a push hand-built from a pull reply carries them)."""

    db: Database
    ops: list[dict[str, Any]]
    certificates: list[str]

    def push(self, ops: list[dict[str, Any]]) -> bytes:
        """A push of ``ops`` with this device's certificates."""
        return p.encode({"type": "push", "ops": ops, "certificates": self.certificates})

    def signed(self, ops: list[dict[str, Any]], prev: bytes = GENESIS) -> list[dict[str, Any]]:
        """``ops`` as this device signs them (chained from ``prev``): whatever is wrong with
        them, it is not the signature."""
        parsed = [p.op_from_wire(op, i) for i, op in enumerate(ops)]
        return [p.op_to_wire(op) for op in signed_as(self.db, parsed, prev)]


def _source(*edits: str) -> Source:
    """A device that added a patient (and gave it ``edits`` as new given names)."""
    source = new_replica("eve")
    pid = source.add_patient("Pushed", "Op", "1990-01-01").id
    for given in edits:
        source.update_patient(pid, {"given": given})
    reply = json.loads(
        Responder(source.db).handle(p.encode({"type": "pull", "vv": {}, "max_ops": 10}))
    )
    return Source(source.db, reply["ops"], reply["certificates"])


def _valid_op(responder: Responder) -> dict[str, object]:
    op: dict[str, object] = _source().ops[0]
    return op


def _ask(responder: Responder, raw: bytes) -> dict[str, object]:
    reply: dict[str, object] = json.loads(responder.handle(raw))
    return reply


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"\xff\xfe not json", "malformed", "not valid JSON"),
        (b"[]", "malformed", "not a Careline sync message"),
        (json.dumps({"protocol": "careline-sync", "v": 99, "type": "pull"}).encode(), "version",
         "version 99 is not supported"),
        (p.encode({"type": "drop_tables"}), "malformed", "'drop_tables' is not one of"),
        (p.encode({"type": "pull", "vv": {"a": -1}, "max_ops": 1}), "malformed", "vv[a]"),
        (p.encode({"type": "pull", "vv": {"x; DROP": 1}, "max_ops": 1}), "malformed", "vv key"),
        (p.encode({"type": "pull", "vv": {}, "max_ops": "all"}), "malformed", "max_ops"),
        (p.encode({"type": "push", "ops": "nope"}), "malformed", "ops must be a list"),
        (p.encode({"type": "push", "ops": [{}] * (p.MAX_OPS_PER_MESSAGE + 1)}), "too_large",
         "at most 1000 ops"),
        (b" " * (p.MAX_MESSAGE_BYTES + 1), "too_large", "exceeds the"),
    ],
)  # fmt: skip
def test_bad_envelopes(target: Responder, raw: bytes, code: str, message: str) -> None:
    before = everything_in(target)
    reply = _ask(target, raw)
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert message in str(reply["message"])
    assert everything_in(target) == before


def everything_in(responder: Responder) -> Dump:
    """Every row of every table of the responder's replica."""
    return full_dump(_db(responder))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("update", "!!!", "not valid base64"),
        ("update", base64.b64encode(b"\x01\x02\x03").decode(), "malformed update"),
        ("deps", base64.b64encode(b"\xff").decode(), "malformed dependencies"),
        ("hlc", "yesterday", "not a hybrid logical clock"),
        # A newer version's record type is kept, but not under an id this record holds.
        ("type", "spaceship", "as a spaceship"),
        ("seq", 0, "seq must be at least 1"),
        ("seq", 5, "the gap"),
        ("author", "", "author must be a user name"),
        ("update", base64.b64encode(b"x" * (p.MAX_UPDATE_BYTES + 10)).decode(), "at most"),
    ],
)
def test_bad_ops_are_refused_whole(
    target: Responder, field: str, value: object, message: str
) -> None:
    source = _source()
    good = source.ops[0]
    bad = {**good, "seq": 2, field: value}  # the next op of the same origin
    if message in ("malformed update", "malformed dependencies", "as a spaceship", "the gap"):
        # Well-formed on the wire, so signed by its origin as it is: broken by the device
        # that made it, not in transit (an op altered after signing is quarantined instead:
        # test_an_op_altered_in_transit_is_quarantined_not_applied).
        good, bad = source.signed([good, bad])
    before = everything_in(target)
    reply = _ask(target, source.push([good, bad]))
    assert reply["type"] == "error", reply
    assert message in str(reply["message"])
    # The good op in the same batch was not applied either: all or nothing.
    assert everything_in(target) == before


ALTERATIONS = [
    ("update", lambda op: {**op, "update": base64.b64encode(b"\x01\x02\x03").decode()}),
    ("deps", lambda op: {**op, "deps": base64.b64encode(b"\x01\x07\x01").decode()}),
    ("author", lambda op: {**op, "author": "mallory"}),
    ("record id", lambda op: {**op, "record": "someone-else"}),
    ("clock", lambda op: {**op, "hlc": str(op["hlc"]).replace(".000000.", ".000001.", 1)}),
    ("signature dropped", lambda op: {**op, "sig": "", "signer": ""}),
]


@pytest.mark.parametrize("alter", [a[1] for a in ALTERATIONS], ids=[a[0] for a in ALTERATIONS])
def test_an_op_altered_in_transit_is_quarantined_not_applied(
    target: Responder, alter: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    source = _source()
    altered = alter(source.ops[0])
    before = materialized(_db(target))
    reply = _ask(target, source.push([altered]))
    # Not a broken exchange: the op is kept aside, with why, and the sender is told.
    assert reply["type"] == "ack" and reply["applied"] == 0
    refusals = reply["quarantined"]
    assert isinstance(refusals, list)
    [refusal] = refusals
    assert (refusal["origin"], refusal["seq"]) == (altered["origin"], 1)
    assert "signature" in refusal["reason"]
    assert materialized(_db(target)) == before
    assert _db(target).query(
        "SELECT count(*) FROM oplog WHERE origin = ?", (altered["origin"],)
    ) == [(0,)]
    [held] = op_trust.quarantined(_db(target))
    assert (held.origin, held.seq, held.reason) == (altered["origin"], 1, refusal["reason"])
    # The genuine op, when it comes, is applied and leaves the quarantine.
    assert _ask(target, source.push(source.ops))["applied"] == 1
    assert op_trust.quarantined(_db(target)) == []


def test_missing_dependency_is_refused(target: Responder) -> None:
    source = _source("Changed")
    second = source.ops[1]
    # Claim it is seq 1 of its origin (signed so by the device itself) so only the
    # dependency check can catch it.
    [forged] = source.signed([{**second, "seq": 1}])
    before = everything_in(target)
    answer = _ask(target, source.push([forged]))
    assert answer["type"] == "error"
    assert "does not hold yet" in str(answer["message"])
    assert everything_in(target) == before


def test_duplicates_are_no_ops(target: Responder) -> None:
    source = _source()
    op = source.ops[0]
    first = _ask(target, source.push([op]))
    after_first = everything_in(target)
    again = _ask(target, source.push([op, op]))
    assert (first["applied"], again["applied"], again["duplicates"]) == (1, 0, 2)
    assert _db(target).query("SELECT count(*) FROM patients")[0][0] == 2
    # A replayed batch writes nothing at all: no row, no audit entry, no clock change.
    assert everything_in(target) == after_first


def test_op_claiming_to_be_from_the_receiver_is_refused(target: Responder) -> None:
    op = _valid_op(target)
    me = _db(target).query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0]
    before = everything_in(target)
    reply = _ask(target, p.encode({"type": "push", "ops": [{**op, "origin": me, "seq": 99}]}))
    assert reply["type"] == "error"
    assert "claims to come from this replica" in str(reply["message"])
    assert everything_in(target) == before


def test_forged_op_under_a_held_sequence_is_refused_not_dropped(target: Responder) -> None:
    source = _source()
    genuine = source.ops[0]
    assert _ask(target, source.push([genuine]))["applied"] == 1
    other = _valid_op(target)  # a different replica's op, relabelled as the genuine one
    forged = {**other, "origin": genuine["origin"], "seq": genuine["seq"]}
    before = everything_in(target)
    reply = _ask(target, source.push([forged]))
    assert reply["type"] == "error"
    assert "differs from the op this replica already holds" in str(reply["message"])
    assert everything_in(target) == before


def test_absurdly_nested_content_is_an_error_reply_not_a_crash() -> None:
    from core.records.changes import change
    from core.records.crdt import RecordDoc, write

    def family(doc: RecordDoc, hlc: str) -> None:
        write(doc, "family", "x", hlc, "eve")

    source = new_replica("eve")
    with source.db.write("eve", "x", "patient", "p") as tx:
        change(tx, "eve", "deep", "patient", family)
    raw = json.loads(
        Responder(source.db).handle(p.encode({"type": "pull", "vv": {}, "max_ops": 5}))
    )
    victim = new_replica("ann")
    # Re-encode the op with a register value nested far beyond Python's recursion limit
    # (made and signed by the device itself: only the content is hostile).
    from pycrdt import Doc, Map

    doc: Doc[Map[str]] = Doc(client_id=identity(source.db).client_id)
    doc.get("r", type=Map)["family/x"] = (
        '{"v":' + "[" * 100_000 + "]" * 100_000 + ',"h":"0","a":"e"}'
    )
    op = {**raw["ops"][0], "update": base64.b64encode(doc.get_update()).decode(), "deps": "AA=="}
    sender = Source(source.db, [], raw["certificates"])
    [op] = sender.signed([op])
    before = full_dump(victim)
    reply = json.loads(Responder(victim.db).handle(sender.push([op])))
    assert reply["type"] == "error"
    assert full_dump(victim) == before


def _db(responder: Responder) -> Database:
    assert isinstance(responder.store, DatabaseStore)
    return responder.store.db


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ({"seq": 0, "hash": "a" * 64}, "audit_head.seq must be at least 1"),
        ({"seq": 3, "hash": "A" * 64}, "audit_head.hash must be 64 lowercase hex digits"),
        ({"seq": 3, "hash": "a" * 63}, "audit_head.hash must be 64 lowercase hex digits"),
        ({"seq": "3", "hash": "a" * 64}, "audit_head.seq"),
        ({"seq": 3}, "audit_head must be an object with seq and hash"),
        ("3:abc", "audit_head must be an object with seq and hash"),
    ],
)
def test_a_malformed_audit_head_is_refused_before_anything_is_recorded(
    head: object, message: str
) -> None:
    recorded: list[object] = []

    def anchor(head: Head | None, _proof: list[bytes] | None) -> Anchoring:
        recorded.append(head)
        return Anchoring(None, True)

    r = new_replica("server")
    responder = Responder(r.db, audit_anchor=anchor)
    reply = _ask(responder, p.encode({"type": "pull", "vv": {}, "max_ops": 1, "audit_head": head}))
    assert reply["type"] == "error" and reply["code"] == "malformed"
    assert message in str(reply["message"])
    assert recorded == []


def test_a_responder_answers_with_the_head_it_recorded_before() -> None:
    r = new_replica("server")
    heads = iter([None, p.head_from_wire({"seq": 4, "hash": "b" * 64}, "x")])
    responder = Responder(r.db, audit_anchor=lambda _h, _p: Anchoring(next(heads), False))
    ask = {"type": "pull", "vv": {}, "max_ops": 1, "audit_head": {"seq": 5, "hash": "c" * 64}}
    assert "audit_anchor" not in _ask(responder, p.encode(ask))  # nothing recorded yet
    second = _ask(responder, p.encode(ask))
    assert second["audit_anchor"] == {"seq": 4, "hash": "b" * 64}
    assert second["audit_anchor_moved"] is False
    plain = Responder(r.db)  # a LAN peer anchors nothing and says nothing about it
    assert "audit_anchor" not in _ask(plain, p.encode(ask))


# A birth date and a name, where a broken or hostile peer put them: deriving the record
# fails on them (int() quoting the text it could not read).
PHI = "Jane Roe 1970-03-12"


def _op_with_entry(
    entry: dict[str, object], field: str = "family"
) -> tuple[Source, dict[str, Any]]:
    """A device's op whose update (signed by that device: only the content is wrong) leaves
    ``entry`` as a register entry of ``field`` of a patient record."""
    from pycrdt import Doc, Map

    source = new_replica("eve")
    source.add_patient("Pushed", "Op", "1990-01-01")
    raw = json.loads(
        Responder(source.db).handle(p.encode({"type": "pull", "vv": {}, "max_ops": 5}))
    )
    doc: Doc[Map[str]] = Doc(client_id=identity(source.db).client_id)
    doc.get("r", type=Map)[f"{field}/x"] = json.dumps(entry)
    op = {**raw["ops"][0], "update": base64.b64encode(doc.get_update()).decode(), "deps": "AA=="}
    sender = Source(source.db, [], raw["certificates"])
    [op] = sender.signed([op])
    return sender, op


def test_a_refused_batch_is_logged_and_answered_without_the_content_it_quotes(
    target: Responder, caplog: pytest.LogCaptureFixture
) -> None:
    sender, op = _op_with_entry({"v": "Roe", "h": PHI, "a": "eve"})
    before = everything_in(target)
    with caplog.at_level(logging.DEBUG):
        reply = _ask(target, sender.push([op]))
    assert reply["type"] == "error" and reply["code"] == "refused"
    # What an operator needs: the record refused, the field and the kind of problem.
    record = f"record {op['record']}: the register 'family' holds a malformed entry (ValueError)"
    assert record in str(reply["message"])
    assert f"refused sync batch: {record}" in caplog.text
    # Never the value: not in this side's log, nor in the reply the peer logs and shows.
    assert PHI not in caplog.text
    assert PHI not in str(reply["message"])
    assert everything_in(target) == before

    # A peer chooses the keys: a "field" the record type does not declare may be anything,
    # a name included, and is never quoted.
    sender, op = _op_with_entry({"h": "12;0.0000.zz", "a": "eve"}, field=PHI)  # no value
    with caplog.at_level(logging.DEBUG):
        reply = _ask(target, sender.push([op]))
    assert reply["type"] == "error" and reply["code"] == "refused"
    assert f"record {op['record']}: a register holds a malformed entry" in str(reply["message"])
    assert PHI not in caplog.text
    assert PHI not in str(reply["message"])
