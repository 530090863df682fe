"""CRDT updates inside ops and snapshot records: any bytes as a Yjs update (and state
vector), applied to a record of a real replica as a remote op or a snapshot state.

Input layout: byte 0 picks the record and the way in (``_RECORDS``; bit 7: as a snapshot
state instead of an op), byte 1 is the length of the op's dependencies (a Yjs state
vector), which follow; the rest is the update. The op's other fields are well formed, so
every input reaches the CRDT layer (``core.records.replication``: dependency check, the
record type's remote-change rule, Yjs decoding, deriving the record's rows).

Contract: only ApplyError is raised, and a refused update changed nothing.
"""

from __future__ import annotations

import time

from core.records import replication
from core.records.notes import Notes
from core.store.oplog import Op, format_hlc
from tests.fuzz.clinic import assert_unchanged, seeded_replica
from tests.unit.sync.replicas import full_dump

ORIGIN = "fuzzorigin"
# (record id, type): a new record; existing ones (filled in from the replica: the patient,
# the signed note, the unsigned note); a type this release does not know.
_RECORDS: tuple[tuple[str, str], ...] = (
    ("fuzz-patient", "patient"),
    ("@patient", "patient"),
    ("@signed", "note"),
    ("@draft", "note"),
    ("fuzz-note", "note"),
    ("fuzz-future", "prescription"),
)
SNAPSHOT = 0x80


def split(data: bytes) -> tuple[int, bytes, bytes]:
    """(selector byte, dependencies, update) of one input."""
    if len(data) < 2:
        return (data[0] if data else 0), b"", b""
    return data[0], data[2 : 2 + data[1]], data[2 + data[1] :]


def join(selector: int, deps: bytes, update: bytes) -> bytes:
    """An input from its parts (the corpus generator's side of :func:`split`)."""
    return bytes([selector, len(deps)]) + deps + update


class Target:
    """A seeded replica, fresh for every input (rebuilt after one that changed it)."""

    def __init__(self) -> None:
        self._fresh()

    def _fresh(self) -> None:
        self.replica = seeded_replica("client")
        notes = self.replica.db.query("SELECT id, signed_at FROM notes ORDER BY signed_at")
        self.ids = {
            "@patient": str(self.replica.db.query("SELECT id FROM patients LIMIT 1")[0][0]),
            "@signed": next(str(i) for i, s in notes if s is not None),
            "@draft": next(str(i) for i, s in notes if s is None),
        }
        assert Notes(self.replica).get(self.ids["@signed"]).signed_at is not None
        self.before = full_dump(self.replica)

    def __call__(self, data: bytes) -> None:
        selector, deps, update = split(data)
        record_id, record_type = _RECORDS[(selector & ~SNAPSHOT) % len(_RECORDS)]
        record_id = self.ids.get(record_id, record_id)
        try:
            if selector & SNAPSHOT:
                state = replication.RecordState(record_id, record_type, update)
                page = replication.SnapshotPage({}, (state,), None)
                replication.apply_snapshot_page(self.replica.db, page, "client")
            else:
                hlc = format_hlc(int(time.time() * 1000), 0, ORIGIN)
                op = Op(ORIGIN, 1, record_id, record_type, update, deps, hlc, "fuzz")
                replication.apply_ops(self.replica.db, [op], "client")
        except replication.ApplyError:
            assert_unchanged(self.before, self.replica, "a CRDT update")
        if full_dump(self.replica) != self.before:
            self._fresh()
