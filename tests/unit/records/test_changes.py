"""A local write is one store transaction: record state, materialized row and FTS index,
op-log entry and audit entry commit together, and a write that fails midway leaves every
table of the replica exactly as it was (a real SQLCipher replica, the real write path)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from core.records import crdt, op_trust
from core.records.changes import change, digests_value, parse_digests
from core.records.clinic import ClinicRecords
from core.records.crdt import RecordDoc
from core.records.entries import ClinicalEntries
from core.records.errors import NotFoundError, ValidationError
from core.store import oplog
from core.store.oplog import parse_hlc
from core.store.state_codec import unpack_state
from tests.unit.sync.replicas import dump_diff, full_dump, new_replica


@contextmanager
def statements(r: ClinicRecords) -> Iterator[list[str]]:
    """Every SQL statement the replica's connection runs meanwhile. SQLite's own trace
    hook is the one place transaction boundaries are visible without replacing anything."""
    seen: list[str] = []
    conn = r.db._conn  # the Database's single connection: every write goes through it
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def _trust(r: ClinicRecords) -> op_trust.Trust:
    trust = op_trust.replica_trust(r.db)
    assert trust is not None
    return trust


def _record_doc(r: ClinicRecords, record_id: str) -> RecordDoc:
    """The record's stored document, read without writing anything."""
    [(state,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (record_id,))
    return crdt.load(unpack_state(state), 1)


def test_one_edit_is_one_transaction_writing_state_row_index_op_and_audit() -> None:
    r = new_replica("dr.ade")
    pid = r.add_patient("Okafor", "Chidi", "2001-05-05").id
    me = oplog.identity(r.db).replica_id
    [(seq_before,)] = r.db.query("SELECT seq FROM version_vector WHERE origin = ?", (me,))
    [(head_before,)] = r.db.query("SELECT value FROM meta WHERE key = 'audit_head'")
    [(state_before,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (pid,))
    prior = _record_doc(r, pid)
    before = full_dump(r)

    with statements(r) as sql:
        r.update_patient(pid, {"given": "Chinedu"})

    # One transaction, and every write inside it.
    verbs = ("INSERT", "UPDATE", "DELETE")
    writes = [i for i, s in enumerate(sql) if s.split(None, 1)[0].upper() in verbs]
    assert [s for s in sql if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]
    begin, commit = sql.index("BEGIN IMMEDIATE"), sql.index("COMMIT")
    assert writes and all(begin < i < commit for i in writes)

    changed = dump_diff(before, full_dump(r))
    fts_storage = {t for t in changed if t.startswith("patients_fts_")}
    assert fts_storage  # the name is searchable under its new spelling
    assert set(changed) - fts_storage == {
        "oplog", "version_vector", "record_states", "patients", "audit_log", "meta",
    }  # fmt: skip

    # Exactly one op-log row, every part of it right.
    added, removed = changed["oplog"]
    assert removed == []
    [(_rowid, origin, seq, record_id, record_type, update, deps, hlc, author, *signature)] = added
    assert (origin, seq, record_id, record_type, author) == (
        me, seq_before + 1, pid, "patient", "dr.ade",
    )  # fmt: skip
    assert deps == prior.get_state()  # what the change builds on: the record as it was
    wall, _, replica = parse_hlc(hlc)
    assert replica == me and hlc > max(str(row[7]) for row in before["oplog"])
    # The update bytes are the change: applied to the old state they give the new one.
    replayed = crdt.load(unpack_state(state_before), 7)
    replayed.apply_update(bytes(update))
    assert crdt.all_live(replayed) == crdt.all_live(_record_doc(r, pid))
    assert [e.value for e in crdt.live(replayed, "given")] == ["Chinedu"]
    assert changed["version_vector"][0] == [(1, me, seq_before + 1, 0)]
    # Signed by this replica's device key, chained onto its previous op, in the same write.
    op = oplog.op_from_row(added[0][1:])
    assert signature[2] == "device" and not op_trust.verify([op], _trust(r))
    chain_before = {str(row[1]): str(row[2]) for row in before["meta"]}["op_chain"]
    assert op.prev.hex() == chain_before

    # One record state, one materialized row: the patient's.
    assert [row[1] for row in changed["record_states"][0]] == [pid]
    [new_row] = changed["patients"][0]
    assert new_row[1] == pid and new_row[4] == "Chinedu"
    assert [p.id for p in r.search_patients("chinedu")] == [pid]
    assert r.search_patients("chidi") == []

    # One audit entry, chained onto the previous head, naming the field but not the value.
    [entry] = changed["audit_log"][0]
    assert changed["audit_log"][1] == []
    _rowid, seq_no, _ts, *what, prev_hash, _hash = entry
    assert what == ["dr.ade", "patient.update", "patient", pid, '{"fields":["given"]}']
    assert f"{seq_no - 1}:{prev_hash}" == head_before
    # The replica's clock, audit head and signature chain moved on; nothing else of its own
    # settings did.
    assert {row[1] for row in changed["meta"][0]} == {"hlc", "audit_head", "op_chain"}
    clock_before = {str(row[1]): str(row[2]) for row in before["meta"]}["hlc"]
    assert wall >= parse_hlc(clock_before)[0]


def _bad_mutation(r: ClinicRecords, pid: str) -> None:
    """A mutation that writes a field, then fails (a bug or a validation inside it)."""

    def half_done(doc: RecordDoc, hlc: str) -> None:
        crdt.write(doc, "family", "Half", hlc, r.actor)
        raise ValueError("failed midway")

    with r.db.write(r.actor, "patient.update", "patient", pid) as tx:
        change(tx, r.actor, pid, "patient", half_done)


def _fails_after_the_change(r: ClinicRecords, pid: str) -> None:
    """The record state, rows and op are written, then the unit of work fails before it
    commits (the audit entry and COMMIT never happen)."""
    with r.db.write(r.actor, "patient.update", "patient", pid) as tx:
        change(tx, r.actor, pid, "patient", r.setter({"family": "Written"}))
        raise RuntimeError("disk full")


def _remove_unknown_list_entry(r: ClinicRecords, pid: str) -> None:
    ClinicalEntries(r).remove_from_list(pid, "medications", "no-such-entry")


def _clashing_mrn(r: ClinicRecords, pid: str) -> None:
    r.update_patient(pid, {"mrn": "MRN-1", "family": "Clash"})


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        (_bad_mutation, ValueError),
        (_fails_after_the_change, RuntimeError),
        (_remove_unknown_list_entry, NotFoundError),
        (_clashing_mrn, ValidationError),
    ],
    ids=["mutation-raises", "fails-after-change", "list-remove-raises", "mrn-clash"],
)
def test_a_write_that_fails_midway_changes_nothing(
    fail: Callable[[ClinicRecords, str], None], error: type[Exception]
) -> None:
    r = new_replica("dr.ade")
    r.add_patient("Other", "Person", "1990-01-01", mrn="MRN-1")
    pid = r.add_patient("Okafor", "Chidi", "2001-05-05").id
    ClinicalEntries(r).add_to_list(pid, "medications", {"name": "Metformin"})
    before = full_dump(r)
    with pytest.raises(error):
        fail(r, pid)
    # Not one row of any table: state, rows, FTS index, op log, vector, audit, clock.
    assert dump_diff(before, full_dump(r)) == {}
    # The failed op used no sequence number: the next write is the next one in the log.
    me = oplog.identity(r.db).replica_id
    r.update_patient(pid, {"phone": "555-0100"})
    seqs = [int(s) for (s,) in r.db.query("SELECT seq FROM oplog WHERE origin = ?", (me,))]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    assert json.loads(r.db.query("SELECT details FROM audit_log ORDER BY seq DESC")[0][0]) == {
        "fields": ["phone"]
    }


def test_digests_are_stored_in_24_bytes_and_older_json_text_still_reads() -> None:
    """Schema V14 stores a record's three part digests as their bytes; rows written before
    (JSON text) and unusual shapes (a newer version's parts) read back as they were."""

    usual = {"main": "0123456789abcdef", "children": "fedcba9876543210", "conflicts": "00ff" * 4}
    packed = digests_value(usual)
    assert isinstance(packed, bytes) and len(packed) == 24
    assert parse_digests(packed) == parse_digests(memoryview(packed)) == usual
    assert parse_digests(json.dumps(usual, sort_keys=True)) == usual  # a pre-V14 row
    for unusual in ({**usual, "unknown": "field:x"}, {**usual, "main": "0123456789ABCDEF"}):
        stored = digests_value(unusual)
        assert isinstance(stored, str) and parse_digests(stored) == unusual
    with pytest.raises(ValueError, match="not 24"):
        parse_digests(b"\x00" * 5)


def test_an_edit_rewrites_only_the_columns_it_changed_and_leaves_the_same_rows() -> None:
    """A local edit updates the changed columns of the record's row only (SQLite rewrites the
    index entries of every column an UPDATE sets, even to its own value: a page of each
    index written for nothing). The rows are those a full rewrite gives, on this replica
    and on one receiving the same ops."""
    from core.records.materialize import _same
    from tests.unit.sync.replicas import materialized, sync_pair

    r = new_replica("dr.ade")
    pid = r.add_patient("Okafor", "Chidi", "2001-05-05", mrn="M-1", phone="555-0100").id
    with statements(r) as sql:
        r.update_patient(pid, {"phone": "555-0199"})
    # (SQLite's trace may report one statement of an ``executemany`` more than once.)
    [update] = {s for s in sql if s.startswith("UPDATE patients")}
    assert update.startswith("UPDATE patients SET phone = '555-0199', updated_at = ")
    assert all(col not in update for col in ("sort_key", "mrn", "birth_date", "family"))
    assert not any(s.startswith("INSERT INTO patients ") for s in sql)
    with statements(r) as sql:
        r.update_patient(pid, {"given": "Chinedu", "mrn": "M-2"})
    [update] = {s for s in sql if s.startswith("UPDATE patients")}
    assert "given = 'Chinedu'" in update and "mrn = 'M-2'" in update
    assert "sort_key = " in update and "birth_date" not in update
    assert [p.id for p in r.search_patients("chinedu")] == [pid]
    assert r.search_patients("chidi") == []
    assert r.get_patient(pid).phone == "555-0199" and r.get_patient(pid).mrn == "M-2"
    # Another replica stores the same ops the batched way (every column set): same rows.
    other = new_replica("dr.ade")
    sync_pair(r, other)
    assert materialized(other) == materialized(r)
    # Values SQLite stores differently are never taken as unchanged.
    assert _same("a", "a") and _same(True, 1) and _same(None, None) and _same(b"x", b"x")
    assert not _same(1, 1.0) and not _same("1", 1) and not _same(None, "") and not _same(0, None)
