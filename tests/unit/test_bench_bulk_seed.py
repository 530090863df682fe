"""The scale benchmark's bulk seeder (tests/bench/bulk_seed.py) writes what the local write
path writes, so the clinic the benchmark measures is one a real server would hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.records import crdt, op_trust
from core.store import oplog
from core.store.database import Database
from core.store.state_codec import unpack_state
from tests.bench.bulk_seed import bulk_patients
from tests.bench.desktop_sync_bench import _bulk_patients
from tests.bench.download_client import _server, seed_clinic


def _rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in db.query(sql)]


def _live(db: Database) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for rid, state in db.query("SELECT id, state FROM record_states WHERE type = 'patient'"):
        doc = crdt.load(unpack_state(state), 1)
        found[str(rid)] = {f: e[0].value for f, e in crdt.all_live(doc).items()}
    return found


def test_bulk_seeded_patients_match_the_write_path_and_their_ops_verify(tmp_path: Path) -> None:
    held: dict[str, Database] = {}
    servers = []
    for name, seed in (("one by one", _bulk_patients), ("bulk", bulk_patients)):
        data_dir = tmp_path / name.replace(" ", "-")
        clinic = seed_clinic(data_dir)
        server = _server(data_dir)
        servers.append(server)
        db = server.replica(clinic)
        seed(db, 7, 0)
        if seed is bulk_patients:
            seed(db, 8, 7)  # a second call carries on the chain, the seqs and the clock
            bulk_patients(db, 5, 15, chunk=2)  # several transactions in one call
        else:
            seed(db, 13, 7)
        held[name] = db
    try:
        slow, fast = held["one by one"], held["bulk"]
        # Every column but the times of the writes (from each op's HLC).
        columns = [str(r[1]) for r in fast.query("PRAGMA table_info(patients)")]
        kept = ", ".join(c for c in columns if c not in ("created_at", "updated_at"))
        assert len(kept.split(", ")) == len(columns) - 2
        for sql in (
            f"SELECT {kept} FROM patients ORDER BY id",
            "SELECT rowid, * FROM patients_fts ORDER BY rowid",
            "SELECT record_type, author, seq FROM oplog ORDER BY origin, seq",
        ):
            assert _rows(fast, sql) == _rows(slow, sql), sql
        assert _live(fast) == _live(slow)
        assert len(_live(fast)) == 20
        # The replica's own next write (the write path) carries on the chain and the clock.
        _bulk_patients(fast, 1, 20)
        me = oplog.identity(fast).replica_id
        ops = [oplog.op_from_row(r) for r in fast.query(
            f"SELECT {oplog.OP_COLUMNS} FROM oplog WHERE origin = ? ORDER BY seq", (me,)
        )]  # fmt: skip
        assert [o.record_id for o in ops[-21:]] == [f"p{i:07d}" for i in range(21)]
        assert all(o.signer == "clinic-ca" for o in ops[-21:])
        hlcs = [o.hlc for o in ops]
        assert hlcs == sorted(hlcs) and len(set(hlcs)) == len(hlcs)
        trust = op_trust.replica_trust(fast)
        assert trust is not None
        assert op_trust.verify(ops, trust) == {}
        # A bulk op altered after signing is caught: the check above can fail.
        bad = [*ops[:-5], dataclasses.replace(ops[-5], author="someone else"), *ops[-4:]]
        assert list(op_trust.verify(bad, trust)) == [(me, ops[-5].seq)]
    finally:
        for server in servers:
            server.close()
