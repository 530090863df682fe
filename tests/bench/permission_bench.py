"""The permission history at remote apply (``python -m tests.bench --only permissions``).

Remote apply judges each op by its author's permissions as of the op's HLC
(core/records/remote_authz.py), from a history of every user and care-team tuple record
(README, "Authorization at remote apply"). Both the cost of a batch that carries no
permission change and of one that carries many grow with the clinic's care-team tuples
unless that history is kept and worked out incrementally. Measured here, on SQLCipher
replicas of the (test) clinic, every op signed and verified, permissions enforced:

* ``one_edit_sync``: a sync session carrying one edited patient between two replicas at 0,
  a fifth of, and all of ``--permission-tuples`` care-team tuples (5,000 by default): the
  median of ``REPEATS`` sessions per size (the history kept between batches);
* ``push_session``: a workstation pushing that many new tuple ops (a clinic's first upload
  of care teams) in one sync session to an embedded-server replica: the session's wall and
  CPU time, ops per second, and its slowest request (the HTTP transport's timeout is 30 s
  per request: ``http_transport``);
* ``one_batch``: as many tuple ops (revoking those grants) applied in one batch.

Target: the one batch within the 30 s request timeout. Wall time follows the machine's load
(the report gives the load average at both ends); CPU time is steadier.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.authz.tuples import RelationTuple
from core.crypto.kdf import FAST_PARAMS
from core.records import authorize, op_trust
from core.records.clinic import ClinicRecords
from core.records.relations import write_tuple
from core.records.replication import apply_ops, ops_for
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport

from .sync_bench import _bulk_history, _copy_ops, _db, _founder, one_edit_median_ms

DEFAULT_TUPLES = 5_000
REPEATS = 21
REQUEST_TIMEOUT_S = 30.0  # core/sync/http_transport.py's default
STAFF = ("nina", "cleo")  # the care teams' members, a nurse and a clinician


def _log(message: str) -> None:
    print(f"[permission-bench] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _gate_off() -> Iterator[None]:
    """Set-up only: thousands of grants by the founder (an admin, allowed each) written a
    thousand per transaction, which the local gate, judging one entity per transaction,
    cannot name. Remote apply judges every one of them, with permissions on."""
    saved = authorize.ENFORCING
    authorize.ENFORCING = False
    try:
        yield
    finally:
        authorize.ENFORCING = saved


def _set_tuples(db: Database, pids: list[str], member: str, granted: bool) -> None:
    """``member`` granted (or revoked) on each chart's care team, one op per chart."""
    with _gate_off():
        for i in range(0, len(pids), 1000):
            with db.write("bench", "access.grant", "relation", "many") as tx:
                for pid in pids[i : i + 1000]:
                    t = RelationTuple(f"patient:{pid}", "care_team", f"user:{member}")
                    write_tuple(tx, "bench", t, granted)


class _TimedTransport(LocalTransport):
    """A LocalTransport that notes how long each request took (the server's share)."""

    def __init__(self, responder: Responder) -> None:
        super().__init__(responder)
        self.seconds: list[float] = []

    def request(self, message: bytes) -> bytes:
        """As LocalTransport's, timed."""
        start = time.perf_counter()
        try:
            return super().request(message)
        finally:
            self.seconds.append(time.perf_counter() - start)


def run(tuples: int = DEFAULT_TUPLES, repeats: int = REPEATS) -> dict[str, Any]:
    """Every figure of the part, as one JSON-able dict."""
    if tuples < 5:
        raise ValueError("--permission-tuples must be at least 5")
    sizes = [0, tuples // 5, tuples]
    loadavg_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="careline-permission-bench-") as tmp:
        folder = Path(tmp)
        source, target = _db(folder, "source.db"), _db(folder, "target.db")
        editor = _founder(source)
        for name, role in zip(STAFF, ("nurse", "clinician"), strict=True):
            editor.add_user(name, name.title(), role, "correct horse battery")
        _bulk_history(source, tuples, 0)
        pids = [str(p) for (p,) in source.query("SELECT id FROM patients ORDER BY id")]
        _copy_ops(source, target)
        ClinicRecords(target, "bench", FAST_PARAMS).add_patient("Target", "Own", "1980-01-01")

        one_edit: dict[str, float] = {}
        granted = 0
        for size in sizes:
            _log(f"one-edit sync at {size:,} care-team tuples")
            _set_tuples(source, pids[granted:size], STAFF[0], True)
            granted = size
            _copy_ops(source, target)
            one_edit[str(size)] = one_edit_median_ms(
                target, LocalTransport(Responder(source)), editor, repeats
            )

        _log(f"a session pushing {tuples:,} tuple ops")
        _set_tuples(source, pids[:tuples], STAFF[1], True)
        transport = _TimedTransport(Responder(target))
        start, cpu = time.perf_counter(), time.process_time()
        report = sync(source, transport, "bench")
        push_s, push_cpu = time.perf_counter() - start, time.process_time() - cpu
        assert report.pushed == tuples and not report.refused, report

        _log(f"{tuples:,} tuple ops in one batch")
        _set_tuples(source, pids[:tuples], STAFF[1], False)
        ops = ops_for(source, version_vector(target), 10**9)
        assert len(ops) == tuples
        certificates = op_trust.certificates_for(source, [op.origin for op in ops])
        start, cpu = time.perf_counter(), time.process_time()
        result = apply_ops(target, ops, "bench", certificates)
        batch_s, batch_cpu = time.perf_counter() - start, time.process_time() - cpu
        assert result.applied == tuples and not result.quarantined, result.quarantined[:3]
        source.close()
        target.close()
    return {
        "tuples": tuples,
        "permissions_enforced": authorize.ENFORCING,
        "one_edit_sync_median_ms_by_tuples": one_edit,
        "one_edit_sync_sessions": repeats,
        "push_session": {
            "tuple_ops": tuples,
            "seconds": round(push_s, 2),
            "cpu_s": round(push_cpu, 2),
            "ops_per_s": round(tuples / push_s),
            "requests": len(transport.seconds),
            "slowest_request_s": round(max(transport.seconds), 2),
        },
        "one_batch": {
            "tuple_ops": tuples,
            "seconds": round(batch_s, 2),
            "cpu_s": round(batch_cpu, 2),
            "ops_per_s": round(tuples / batch_s),
        },
        "loadavg_at_start": loadavg_at_start,
        "loadavg_at_end": list(os.getloadavg()),
        "targets": {
            "tuple_batch_s": {
                "target": f"{tuples:,} care-team tuple ops applied in one batch within the "
                f"{REQUEST_TIMEOUT_S:g} s request timeout",
                "value": round(batch_s, 2),
                "limit": REQUEST_TIMEOUT_S,
                "met": batch_s <= REQUEST_TIMEOUT_S,
            },
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(*(int(a) for a in sys.argv[1:2])), indent=2))
