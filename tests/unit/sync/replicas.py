"""Replicas for sync tests: real in-memory SQLCipher databases, and a lossy transport."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.store.database import Database, Row
from core.sync.responder import Responder
from core.sync.session import SyncError, SyncReport, sync
from core.sync.transport import LocalTransport, TransportError

MATERIALIZED = ("patients", "allergies", "conditions", "medications", "conflicts", "users", "notes")


def new_replica(actor: str) -> ClinicRecords:
    """A fresh replica acting as ``actor``."""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    return ClinicRecords(Database.in_memory(key), actor, FAST_PARAMS)


def materialized(records: ClinicRecords) -> dict[str, list[Row]]:
    """Every derived table, in a stable order."""
    return {t: records.db.query(f"SELECT * FROM {t} ORDER BY 1") for t in MATERIALIZED}


def sync_pair(client: ClinicRecords, server: ClinicRecords) -> SyncReport:
    """One clean session: client pulls from and pushes to server."""
    return sync(client.db, LocalTransport(Responder(server.db, "peer")), client.actor)


@dataclass
class FaultyTransport:
    """Delivers requests, but may drop, duplicate or replay stale ones (as networks do)."""

    target: Responder
    fault: str
    history: list[bytes] = field(default_factory=list)
    calls: int = 0

    def request(self, message: bytes) -> bytes:
        self.calls += 1
        if self.fault == "drop_request" and self.calls == 2:
            raise TransportError("request lost")
        if self.fault == "replay" and self.history:
            self.target.handle(self.history[0])  # a stale message arrives late
        reply = self.target.handle(message)
        if self.fault == "duplicate":
            reply = self.target.handle(message)
        self.history.append(message)
        if self.fault == "drop_reply" and self.calls == 2:
            raise TransportError("reply lost")
        return reply


def faulty_sync(
    client: ClinicRecords, server: ClinicRecords, fault: str, stale: list[bytes]
) -> None:
    """A session over a faulty link; an aborted session is fine, nothing may be corrupted."""
    transport = FaultyTransport(Responder(server.db, "peer"), fault, history=list(stale[-3:]))
    with contextlib.suppress(SyncError, TransportError):
        sync(client.db, transport, client.actor)
    stale.extend(transport.history[-3:])
