"""Record states at rest (schema V17): deflated in the file, plain Yjs everywhere else."""

from __future__ import annotations

import pytest

from core.records import crdt
from core.records.replication import snapshot_page
from core.store.state_codec import DEFLATED, StoredStateError, pack_state, unpack_state
from tests.unit.sync.replicas import new_replica


def test_a_patient_is_stored_in_less_than_half_the_bytes_and_reads_back_exactly() -> None:
    r = new_replica("admin")
    pid = r.add_patient("Okafor", "Chinedu", "1984-02-02", mrn="MRN-1").id
    [(stored,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (pid,))
    stored = bytes(stored)
    assert stored.startswith(DEFLATED)
    plain = unpack_state(stored)
    assert len(stored) * 2 < len(plain)
    assert crdt.winner(crdt.load(plain, 1), "family").value == "Okafor"  # type: ignore[union-attr]
    assert pack_state(plain) == stored


def test_snapshot_pages_carry_the_plain_yjs_state_older_replicas_read() -> None:
    r = new_replica("admin")
    pid = r.add_patient("Okafor", "Chinedu", "1984-02-02").id
    [record] = [s for s in snapshot_page(r.db, None, 100).records if s.record_id == pid]
    [(stored,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (pid,))
    assert record.state == unpack_state(stored) != bytes(stored)
    # What a replica of the previous release does with it: load it as a Yjs update.
    assert crdt.winner(crdt.load(record.state, 1), "given").value == "Chinedu"  # type: ignore[union-attr]


def test_plain_states_read_as_they_are_and_packing_twice_changes_nothing() -> None:
    r = new_replica("admin")
    pid = r.add_patient("Smith", "Anna", "1970-01-01").id
    [(stored,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (pid,))
    plain = unpack_state(stored)
    assert unpack_state(plain) == plain  # as every state was stored before V17
    assert pack_state(bytes(stored)) == bytes(stored)
    # An empty document's update does not shrink: it is kept plain.
    empty = crdt.load(None, 1).get_update()
    assert pack_state(empty) == empty


def test_a_damaged_or_newer_stored_state_is_refused_with_a_clear_error() -> None:
    packed = pack_state(b"\x01\x01" + b'{"a":"admin","h":"1","s":[],"v":null}' * 4)
    with pytest.raises(StoredStateError, match="cut short"):
        unpack_state(packed[:-3])
    with pytest.raises(StoredStateError, match=r"format 8200.*newer version"):
        unpack_state(b"\x82\x00" + packed[2:])
    with pytest.raises(StoredStateError, match="does not inflate"):
        unpack_state(DEFLATED + b"\xff\xff\xff\xff")
