"""The client side of sync: any bytes as the other side's reply.

Two ways in, both on a fresh replica:

1. Field by field, as :class:`core.sync.session.SyncSession` reads a reply:
   ``protocol.decode``, then per reply type its fields (``vv_from_wire``,
   ``ops_from_wire``, ``records_from_wire``, ``serials_from_wire``, ``head_from_wire``,
   ``total_from_wire``) and the replica applying what arrived (``apply_ops``,
   ``apply_snapshot_page``). Only ProtocolError and ApplyError may be raised, and a
   refused reply changed nothing.
2. A whole session whose every reply is these bytes (a misbehaving peer repeating
   itself): it ends with SyncError or TransportError only.
"""

from __future__ import annotations

import contextlib
from typing import Any

from core.records import replication
from core.sync import protocol as p
from core.sync.session import SyncError, SyncSession
from core.sync.transport import TransportError
from tests.fuzz.clinic import assert_unchanged
from tests.unit.sync.replicas import full_dump, new_replica

REPLIES_PER_SESSION = 4


class _Echo:
    """A transport answering every request with the same reply, a few times, then lost."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.calls = 0

    def request(self, message: bytes) -> bytes:
        self.calls += 1
        if self.calls > REPLIES_PER_SESSION:
            raise TransportError("the fuzzed peer stopped answering")
        return self.reply


class Target:
    """A fresh replica per input (made anew only after an input changed it)."""

    def __init__(self) -> None:
        self._fresh()

    def _fresh(self) -> None:
        self.replica = new_replica("client")
        self.before = full_dump(self.replica)

    def __call__(self, data: bytes) -> None:
        try:
            self._fields(data)
        except (p.ProtocolError, replication.ApplyError):
            assert_unchanged(self.before, self.replica, "a sync reply")
        if full_dump(self.replica) != self.before:
            self._fresh()
        with contextlib.suppress(SyncError, TransportError):
            SyncSession(self.replica.db, _Echo(data), "client").run()
        if full_dump(self.replica) != self.before:
            self._fresh()

    def _fields(self, data: bytes) -> None:
        message = p.decode(data, p.REPLY_TYPES)
        kind = message["type"]
        if kind == "ops":
            ops = p.ops_from_wire(message.get("ops"))
            p.vv_from_wire(message.get("vv"))
            if "revoked_serials" in message:
                p.serials_from_wire(message["revoked_serials"])
            p.head_from_wire(message.get("audit_anchor"), "audit_anchor")
            replication.apply_ops(self.replica.db, ops, "client")
        elif kind == "snapshot_page":
            vector = p.vv_from_wire(message.get("vv"))
            records = p.records_from_wire(message.get("records"))
            p.total_from_wire(message.get("total_records"))
            page = replication.SnapshotPage(vector, tuple(records), None)
            replication.apply_snapshot_page(self.replica.db, page, "client")
        elif kind == "ack":
            p.vv_from_wire(message.get("vv"))
        elif kind == "error":
            _error_fields(message)


def _error_fields(message: dict[str, Any]) -> None:
    # What a version refusal is read for (the session's fallback); never raises.
    p.common_version(message)
