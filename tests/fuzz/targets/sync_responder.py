"""The serving side of sync: ``Responder.handle`` on a real replica, any request bytes.

Contract (core.sync.responder): ``handle`` never raises; it answers every request with a
well-formed reply in the protocol; a refused request (an ``error`` reply) changed nothing.
Content that only the responder's last-resort handler caught (a TypeError, KeyError or
ValueError from inside the store, not a ProtocolError or ApplyError) means a field got
past validation at the edge: reported as a crash too. Requests that were accepted may
change the replica (a push applies ops, a pull records an audit head); the next input
then gets a fresh replica, so every input meets the same one.
"""

from __future__ import annotations

import json

from core.sync import protocol
from core.sync.responder import Responder
from core.sync.stores import DatabaseStore
from tests.fuzz.clinic import assert_unchanged, seeded_replica
from tests.unit.sync.replicas import full_dump

# What the responder's catch-all says (see Responder.handle): validation missed something.
_LAST_RESORT = "the message's content could not be processed"


class Target:
    """A responder serving a seeded replica, as the server and LAN listener do."""

    def __init__(self) -> None:
        self._fresh()

    def _fresh(self) -> None:
        self.replica = seeded_replica("server")
        store = DatabaseStore(self.replica.db)
        self.responder = Responder(
            store,
            "device:fuzz",
            revoked_serials=lambda: [7, 11],
            audit_anchor=lambda head, proof: store.anchor_audit("fuzz-device", head, proof),
        )
        self.before = full_dump(self.replica)

    def __call__(self, data: bytes) -> None:
        reply = self.responder.handle(data)
        # Written in the request's version, which may be one this side does not speak.
        message = json.loads(reply)
        if message.get("protocol") != protocol.PROTOCOL or message.get("type") not in (
            protocol.REPLY_TYPES
        ):
            raise AssertionError(f"the responder wrote a malformed reply: {reply[:200]!r}")
        if message["type"] == "error":
            text = str(message.get("message"))
            if text.startswith(_LAST_RESORT) and "RecursionError" not in text:
                raise AssertionError(f"a request got past validation: {text}")
            assert_unchanged(self.before, self.replica, "a sync request")
        elif full_dump(self.replica) != self.before:
            self._fresh()
