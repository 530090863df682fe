"""Bytes that make pycrdt's Rust core panic, sent by a peer (a server's pull reply, a
workstation's push): refused naming the op and the record, saying that the update or state
"is not a valid Yjs update", never with yrs's text ("attempt to divide by zero", a source
location), which could quote content. That text reaches a debug log only where the process
keeps exception messages (no entry point ran: a developer's script, the fuzzing campaign).

The inputs are the fuzzing campaign's finds (tests/fuzz/corpus/crdt_update): one yrs panics
on while applying it, one it applies but panics on when the document is encoded again.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

import pytest

from core.config import logs
from core.store.database import Database
from core.store.oplog import identity
from core.sync import protocol
from core.sync.responder import Responder
from core.sync.session import SyncError, sync
from core.sync.stores import DatabaseStore
from tests.clinic_identity import signed_as
from tests.fuzz.campaign import CORPUS
from tests.unit.sync.replicas import full_dump, materialized, new_replica, sync_pair
from tests.unit.sync.test_session import HostilePeer, _ops

# The inputs' first two bytes choose the fuzz target's record and dependencies' length (0).
PANICS = {
    "applying": (CORPUS / "crdt_update" / "crash-update-panics-pycrdt").read_bytes()[2:],
    "encoding": (CORPUS / "crdt_update" / "crash-state-panics-pycrdt-on-encoding").read_bytes()[2:],
}
# What yrs says, and where (its panic message and source location): in no refusal or log
# line. A debug line may name the exception's type (pyo3_runtime.PanicException); a refusal,
# read at the other side by a person, names none.
RUST_TEXT = re.compile(r"divide by zero|panicked|\.rs:\d+|yrs", re.IGNORECASE)


# The Yjs client the applying input's changes are made by (the only one it names).
FUZZ_CLIENT = 2885081006840937


def _varuint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def _made_by(data: bytes, db: Database) -> bytes:
    """``data`` with its changes made by ``db``'s own Yjs client, as a device sending what it
    broke itself would have them (a device's ops with another's changes are kept aside
    before any is applied); yrs panics on it all the same."""
    return data.replace(_varuint(FUZZ_CLIENT), _varuint(identity(db).client_id))


def _first_op_carries(data: bytes) -> Any:
    """A pull reply or push request whose first op carries ``data`` as its update."""

    def change(index: int, op: dict[str, Any]) -> dict[str, Any]:
        return {**op, "update": base64.b64encode(data).decode()} if index == 0 else op

    return lambda message: _ops(message, change)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    handler = logging.StreamHandler()
    return "\n".join(handler.format(record) for record in caplog.records)


@pytest.mark.parametrize("when", sorted(PANICS))
def test_a_pull_reply_that_makes_pycrdt_panic_is_refused_naming_the_record(
    when: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "_withholding", True)  # as every entry point has it
    caplog.set_level(logging.DEBUG)
    server, client = new_replica("ann"), new_replica("bob")
    client.add_patient("Bob", "Own", "1990-01-01")  # has history: pulls ops, no snapshot
    patient = server.add_patient("Ann", "Own", "1990-01-01").id
    before = full_dump(client)
    broken = _first_op_carries(_made_by(PANICS[when], server.db))
    peer = HostilePeer(Responder(server.db), "pull", broken, resign=True)

    with pytest.raises(SyncError) as refused:
        sync(client.db, peer, "bob")

    message = str(refused.value)
    assert f"record {patient}" in message
    assert "is not a valid Yjs update" in message
    assert not RUST_TEXT.search(message) and "Panic" not in message, message
    assert not RUST_TEXT.search(_logged(caplog))
    assert full_dump(client) == before
    sync_pair(client, server)  # the honest peer's ops then arrive
    assert materialized(client) == materialized(server)


class HostileClient:
    """A workstation whose push carries what it broke itself (signed as its own), to a real
    responder; every other request goes as it is."""

    def __init__(self, responder: Responder, client_db: Any, data: bytes) -> None:
        self.responder, self.client_db, self.data = responder, client_db, data
        self.refusals: list[str] = []

    def request(self, message: bytes) -> bytes:
        asked = json.loads(message)
        if asked["type"] == "push":
            asked = _first_op_carries(self.data)(asked)
            ops = [protocol.op_from_wire(op, i) for i, op in enumerate(asked["ops"])]
            asked["ops"] = [protocol.op_to_wire(op) for op in signed_as(self.client_db, ops)]
        reply = self.responder.handle(json.dumps(asked).encode())
        answer = json.loads(reply)
        if answer["type"] == "error":
            self.refusals.append(str(answer["message"]))
        return reply


@pytest.mark.parametrize("when", sorted(PANICS))
def test_a_push_that_makes_pycrdt_panic_is_refused_naming_the_record(
    when: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "_withholding", True)
    caplog.set_level(logging.DEBUG)
    server, client = new_replica("ann"), new_replica("bob")
    patient = client.add_patient("Bob", "Own", "1990-01-01").id
    before = full_dump(server)
    broken = _made_by(PANICS[when], client.db)
    peer = HostileClient(Responder(DatabaseStore(server.db)), client.db, broken)

    with pytest.raises(SyncError):
        sync(client.db, peer, "bob")

    # The peer's refusal, which the responder also logged: the record and the problem.
    [refusal] = peer.refusals
    assert f"record {patient}" in refusal
    assert "is not a valid Yjs update" in refusal
    assert not RUST_TEXT.search(refusal) and "Panic" not in refusal, refusal
    assert "refused sync batch" in caplog.text
    assert not RUST_TEXT.search(_logged(caplog))
    assert full_dump(server) == before


def test_where_messages_are_kept_the_panic_goes_to_the_debug_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No entry point ran (a developer's script, the fuzzing campaign): whoever reads this
    # log wants yrs's words, and the refusal still carries none of them.
    monkeypatch.setattr(logs, "_withholding", False)
    caplog.set_level(logging.DEBUG, logger="core.records.crdt")
    server, client = new_replica("ann"), new_replica("bob")
    client.add_patient("Bob", "Own", "1990-01-01")
    server.add_patient("Ann", "Own", "1990-01-01")
    broken = _first_op_carries(_made_by(PANICS["applying"], server.db))
    peer = HostilePeer(Responder(server.db), "pull", broken, resign=True)
    with pytest.raises(SyncError) as refused:
        sync(client.db, peer, "bob")
    assert not RUST_TEXT.search(str(refused.value))
    [debug] = [r for r in caplog.records if r.name == "core.records.crdt"]
    assert debug.levelno == logging.DEBUG
    assert "attempt to divide by zero" in debug.getMessage()
