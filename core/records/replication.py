"""What a replica offers the sync engine: its version vector, the ops another lacks,
idempotent application of remote ops, and snapshots for bootstrapping.

Applying a batch is one transaction: every op is checked (duplicate -> skipped, gap or
missing dependency -> the whole batch is refused) before anything commits, so a refused
or interrupted batch changes nothing. Ops and snapshot records of record types this
version does not know, and fields it does not know, are stored and relayed unchanged
(``core.records.unknown`` counts them and derives them once the replica is upgraded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import sqlcipher3

from core.platform import collector
from core.records import changes, crdt, op_trust, remote_authz, visit_chart
from core.records.changes import (
    Loaded,
    RecordTypeMismatchError,
    load_record,
    loaded_from,
    store_records,
    stored_records,
)
from core.records.materialize import MalformedRecordError, content_problem
from core.records.types import AUTHZ_HISTORY, RECORD_TYPES
from core.store import oplog
from core.store.database import Database, Row, Transaction
from core.store.state_codec import FORMS, StoredStateError, state_in_forms, unpack_state


class ApplyError(ValueError):
    """A batch was refused; nothing from it was applied. The message says why, naming ops,
    records and the kind of problem, never what the refused content holds
    (``materialize.content_problem``): the refusing replica logs it and replies with it."""


class SnapshotRequiredError(Exception):
    """The other side needs ops older than this replica's log holds: use a snapshot."""


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of applying one batch."""

    applied: int
    duplicates: int
    records: tuple[str, ...]
    # Ops refused by verification (core.records.op_trust), kept aside: (origin, seq, why).
    # Their origins' later ops in the batch wait (not applied, not counted).
    quarantined: tuple[tuple[str, int, str], ...] = ()


@dataclass(frozen=True)
class RecordState:
    """One record in a snapshot."""

    record_id: str
    record_type: str
    state: bytes


@dataclass(frozen=True)
class SnapshotPage:
    """A page of record states, with the version vector they are at least as new as."""

    vector: dict[str, int]
    records: tuple[RecordState, ...]
    next_after: str | None
    # The stored forms (``state_codec.FORMS`` names) its states may be in besides plain
    # Yjs; empty: every state is a plain Yjs update.
    forms: frozenset[str] = frozenset()


def replica_id(db: Database) -> str:
    """This replica's id."""
    return oplog.identity(db).replica_id


def ops_for(db: Database, remote_vv: dict[str, int], limit: int) -> list[oplog.Op]:
    """Ops the holder of ``remote_vv`` lacks; SnapshotRequiredError if they predate our log."""
    local_floors = oplog.floors(db)
    for origin, floor in local_floors.items():
        if floor and remote_vv.get(origin, 0) < floor:
            raise SnapshotRequiredError(
                f"ops of {origin} up to {floor} are only held as a snapshot here"
            )
    return oplog.ops_after(db, remote_vv, limit)


def apply_ops(
    db: Database,
    ops: list[oplog.Op],
    session_actor: str,
    certificates: Sequence[str] = (),
    source: str = "",
    unsigned_ok: bool = False,
) -> ApplyResult:
    """Apply remote ops idempotently, all or nothing, each verified first
    (core.records.op_trust): an op that fails is quarantined with its reason, and its
    origin's later ops in the batch wait. ``certificates`` are device certificates sent
    with the ops; ``source`` names where they came from, for the quarantine; ``unsigned_ok``
    accepts unsigned ops (only from a clinic server running Careline 0.1.0, see
    op_trust.Trust.unsigned_ok)."""
    held = oplog.version_vector(db)
    fresh = [op for op in ops if op.seq > held.get(op.origin, 0)]
    if not fresh:
        for op in ops:
            _check_same_as_held(db, op)
        return ApplyResult(0, len(ops), ())
    origins = sorted({op.origin for op in fresh})
    details = {"ops": len(fresh), "origins": origins}
    try:
        with db.write(session_actor, "sync.apply", "oplog", ",".join(origins), details) as tx:
            result, history = _apply(tx, ops, certificates, source or session_actor, unsigned_ok)
        if history is not None:  # committed: the next batch starts from it
            remote_authz.keep_history(*history)
        return result
    except (oplog.GapError, RecordTypeMismatchError, MalformedRecordError) as exc:
        raise ApplyError(str(exc)) from exc
    except sqlcipher3.IntegrityError as exc:
        raise ApplyError(_unstorable(exc)) from exc


def _apply(
    tx: Transaction,
    ops: list[oplog.Op],
    certificates: Sequence[str],
    source: str,
    unsigned_ok: bool = False,
) -> tuple[ApplyResult, tuple[str, remote_authz.History] | None]:
    """Apply and store a batch in ``tx``; its result, and the permission history it
    leaves with the token to keep it under once committed (None: permissions are off)."""
    me = oplog.identity(tx)
    token = changes.authz_token(tx)  # before anything of the batch is stored
    trust = op_trust.replica_trust(tx)
    if trust is None:
        raise ApplyError(
            "this workstation has joined no clinic (it holds no clinic certificate to "
            "check the ops' signatures against): enroll with the clinic server or pair "
            "with a clinic workstation first"
        )
    op_trust.keep_certificates(tx, trust.learn_certificates(certificates))
    trust.unsigned_ok = unsigned_ok
    held = oplog.version_vector(tx)
    # Every record the new ops touch, read up front in a few queries (nothing in this
    # transaction writes record_states before the ops are checked).
    stored = stored_records(tx, (op.record_id for op in ops if op.seq > held.get(op.origin, 0)))
    checked = check_batch(
        ops,
        held,
        me.replica_id,
        lambda record_id, type_name: loaded_from(
            record_id, type_name, stored.get(record_id), me.client_id
        ),
        lambda op: _check_same_as_held(tx, op),
        trust,
        lambda record_id, type_name: load_record(tx, record_id, type_name, me.client_id),
    )
    if trust.permissions is not None:
        remote_authz.save_history(tx, trust.permissions.history)
    if checked.fresh:
        oplog.insert_remote(tx, checked.fresh)
        oplog.observe(tx, [op.hlc for op in checked.fresh], me.replica_id)
        op_trust.release(tx, checked.fresh)
    op_trust.quarantine(tx, checked.quarantined, source)
    store_records(tx, ((rid, t, loaded) for rid, (t, loaded) in checked.docs.items()))
    history = None
    if trust.permissions is not None:
        kept = remote_authz.token_to_keep(tx, token)
        history = None if kept is None else (kept, trust.permissions.history)
    result = ApplyResult(
        len(checked.fresh), checked.duplicates, tuple(sorted(checked.docs)),
        checked.refusals(),
    )  # fmt: skip
    return result, history


@dataclass
class CheckedBatch:
    """A batch that passed every check, with the record documents it updated."""

    fresh: list[oplog.Op]
    duplicates: int
    docs: dict[str, tuple[str, Loaded]]
    # Ops refused by verification, with why: kept aside by the caller, never applied.
    quarantined: list[tuple[oplog.Op, str]] = field(default_factory=list)

    def refusals(self) -> tuple[tuple[str, int, str], ...]:
        """(origin, seq, why) of each quarantined op."""
        return tuple((op.origin, op.seq, why) for op, why in self.quarantined)


def check_batch(
    ops: list[oplog.Op],
    held: dict[str, int],
    own_origin: str | None,
    load: Callable[[str, str], Loaded],
    same_as_held: Callable[[oplog.Op], None],
    trust: op_trust.Trust,
    load_held: Callable[[str, str], Loaded] | None = None,
) -> CheckedBatch:
    """Check a batch against what a replica holds and apply it to the loaded documents.

    Storage-independent (SQLCipher replicas and the server's PostgreSQL store share it):
    ``held`` is the replica's version vector, ``load(record_id, type)`` its document of a
    record (raising RecordTypeMismatchError for another type), ``same_as_held(op)`` refuses
    a duplicate that differs from the op held, ``trust`` verifies each op's signature and
    author (core.records.op_trust); ``load_held`` (default ``load``) loads a record the
    batch does not touch, for the visit a record is placed under. Raises ApplyError or
    GapError for a batch that breaks the protocol; the caller then rolls back, so a refused
    batch changes nothing. An op that fails verification is returned in ``quarantined``
    and its origin stops there for this batch (its later ops build on it, so they wait for it).
    """
    held = dict(held)
    docs: dict[str, tuple[str, Loaded]] = {}
    fresh: list[oplog.Op] = []
    duplicates = 0
    verdicts = op_trust.verify([op for op in ops if op.seq > held.get(op.origin, 0)], trust)
    stopped: set[str] = set()
    quarantined: list[tuple[oplog.Op, str]] = []
    # record id -> (its document, the permission summary of that document as it is now).
    summaries: dict[str, tuple[crdt.RecordDoc, remote_authz.Summary]] = {}
    visit_patient = _visit_lookup(docs, load if load_held is None else load_held)
    for op in ops:
        # An op of a record type this version does not know (a newer replica's) is kept
        # and relayed like any other: refusing it would stop sync with every newer replica.
        have = held.get(op.origin, 0)
        if op.seq <= have:
            same_as_held(op)
            duplicates += 1
            continue
        if op.origin == own_origin:
            raise ApplyError(f"op {op.origin}:{op.seq} claims to come from this replica")
        if op.origin in stopped:
            continue
        if op.seq != have + 1:
            raise oplog.GapError(
                f"op {op.origin}:{op.seq} arrived before {op.origin}:{have + 1}; refusing the gap"
            )
        refused = verdicts.get((op.origin, op.seq)) or op_trust.author_problem(op, trust)
        if refused is not None:
            quarantined.append((op, refused))
            stopped.add(op.origin)
            continue
        if op.record_id not in docs:
            docs[op.record_id] = (op.record_type, load(op.record_id, op.record_type))
        type_name, loaded = docs[op.record_id]
        doc = loaded.doc
        if type_name != op.record_type:
            raise RecordTypeMismatchError(
                f"op {op.origin}:{op.seq} treats {op.record_id!r} as a {op.record_type}"
            )
        # The vector read with the load is current until the document changes, just below.
        vector, loaded.vector = loaded.vector, None
        try:
            missing = crdt.missing_dependencies(doc, op.deps, vector)
        except ValueError as exc:
            # decode_state_vector's own words name the problem, never the bytes.
            raise ApplyError(
                f"op {op.origin}:{op.seq} has malformed dependencies (they are not a valid "
                f"Yjs state vector: {exc})"
            ) from exc
        if missing:
            raise oplog.GapError(
                f"op {op.origin}:{op.seq} builds on changes to record {op.record_id} "
                "this replica does not hold yet"
            )
        what = f"op {op.origin}:{op.seq} (record {op.record_id})"
        # A type's own rule on remote changes (a signed note stays signed): what must
        # survive, read before the op.
        known = RECORD_TYPES.get(type_name)
        rule = known.remote_check if known is not None else None
        protected = None
        if rule is not None:
            with _refusing_malformed(what):
                protected = rule.protect(doc)
        before = doc.get_state() if protected is not None else b""
        permissions = trust.permissions
        judged = (
            permissions is not None
            and remote_authz.governed(type_name)
            and not op_trust.permission_exempt(op, trust)
        )
        if judged:
            # What the document held after the batch's previous op on it, when that op was
            # judged too (the document has not changed since): read once, not twice.
            kept = summaries.get(op.record_id)
            with _refusing_malformed(what):
                was = kept[1] if kept is not None and kept[0] is doc else remote_authz.summary(doc)
                undo = doc.get_update()
        summaries.pop(op.record_id, None)
        try:
            crdt.apply_update(doc, op.update)
        except ValueError as exc:
            raise ApplyError(
                f"op {op.origin}:{op.seq} carries a malformed update to record "
                f"{op.record_id} ({content_problem(exc)})"
            ) from exc
        if judged:
            with _refusing_malformed(what):
                now = remote_authz.summary(doc)
                refused = permissions.problem(
                    op, type_name, was, doc, now, visit_patient=visit_patient
                )
            if refused is None:
                summaries[op.record_id] = (doc, now)
            else:
                # Never applied: the document goes back to what it was before the op.
                loaded.doc = crdt.load(undo, doc.client_id)
                if not undo_is_record(undo):
                    del docs[op.record_id]
                quarantined.append((op, refused))
                stopped.add(op.origin)
                continue
        if permissions is not None and (
            type_name in AUTHZ_HISTORY or type_name == remote_authz.BREAK_GLASS
        ):
            # Permissions and break-glass grants count for the batch's later ops.
            with _refusing_malformed(what):
                permissions.learn(op.record_id, type_name, doc)
        if rule is not None and protected is not None:
            # The dependencies were decoded once above, so they are well formed.
            with _refusing_malformed(what):
                broken = rule.violation(protected, doc, crdt.covers(op.deps, before))
            if broken is not None:
                raise ApplyError(f"op {op.origin}:{op.seq} {broken} ({op.record_id}); refusing it")
        if type_name == "user":
            # An account made earlier in the batch may author the batch's later ops.
            with _refusing_malformed(what):
                name = crdt.winner(doc, "username")
            if name is not None and isinstance(name.value, str):
                op_trust.note_batch_users(trust, [name.value])
        held[op.origin] = op.seq
        fresh.append(op)
    return CheckedBatch(fresh, duplicates, docs, quarantined)


def _visit_lookup(
    docs: dict[str, tuple[str, Loaded]], load_held: Callable[[str, str], Loaded]
) -> visit_chart.VisitPatient:
    """A visit's patient as the batch so far leaves it (its earlier ops applied to
    ``docs``), else as stored; None if there is no visit of that id."""
    stored: dict[str, str | None] = {}

    def patient_of(visit_id: str) -> str | None:
        if visit_id in docs:
            type_name, loaded = docs[visit_id]
            return _patient(loaded.doc) if type_name == "encounter" else None
        if visit_id not in stored:
            try:
                stored[visit_id] = _patient(load_held(visit_id, "encounter").doc)
            except RecordTypeMismatchError:
                stored[visit_id] = None  # another type's record: no visit
        return stored[visit_id]

    return patient_of


def _patient(doc: crdt.RecordDoc) -> str | None:
    """A visit document's patient; None for an empty document (no such visit)."""
    found = crdt.winner(doc, "patient_id")
    return str(found.value) if found is not None and found.value else None


def undo_is_record(state: bytes) -> bool:
    """Whether a document state holds anything (an op refused on a record the batch was
    creating leaves nothing to store)."""
    return bool(crdt.decode_state_vector(pycrdt_state(state)))


def pycrdt_state(update: bytes) -> bytes:
    """The state vector of an encoded document update."""
    import pycrdt

    return bytes(pycrdt.get_state(update))


def _refusing_malformed(what: str) -> _RefusingMalformed:
    """A record type's rule reads the document's entries, which an earlier op of the batch
    (or a snapshot state) may have left malformed: refuse that like a malformed update,
    rather than raising whatever parsing the entry raised."""
    return _RefusingMalformed(what)


class _RefusingMalformed:
    """``_refusing_malformed``'s context manager: a plain class, as entering a generator
    based one costs more than the reads it guards (it runs three times per op)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, ValueError | KeyError | TypeError | AttributeError | RecursionError):
            raise ApplyError(
                f"{self.what} leaves a malformed entry in its record ({content_problem(exc)})"
            ) from exc
        if crdt.is_panic(exc):
            # pycrdt panicked reading or encoding the document an earlier op of the batch
            # (or the snapshot state) made: a BaseException, and its text is yrs's.
            problem = crdt.invalid_update(crdt.STATE, exc)  # pycrdt's text: debug log only
            raise ApplyError(f"{self.what}: {problem} once applied") from None


def _check_same_as_held(tx: Transaction | Database, op: oplog.Op) -> None:
    """A duplicate must be the op we hold: a different op under the same (origin, seq) is a
    forgery or a corrupted replica, and is refused loudly instead of silently dropped."""
    rows = tx.query(
        "SELECT doc_update, record_id FROM oplog WHERE origin = ? AND seq = ?", (op.origin, op.seq)
    )
    if rows and (bytes(rows[0][0]) != op.update or rows[0][1] != op.record_id):
        raise ApplyError(
            f"op {op.origin}:{op.seq} differs from the op this replica already holds under "
            "that origin and sequence number; refusing it"
        )


def snapshot_page(
    db: Database, after: str | None, limit: int, forms: frozenset[str] = frozenset()
) -> SnapshotPage:
    """Record states in id order after ``after``; the vector is read first, so the states
    are at least as new as it says (CRDT merges make newer states harmless). ``forms``:
    the stored forms the receiver reads (``state_codec.FORMS``): states held in one of
    them are sent as held, not inflated first."""
    vector = oplog.version_vector(db)
    rows = db.query(
        "SELECT id, type, state FROM record_states WHERE id > ? ORDER BY id LIMIT ?",
        (after or "", limit),
    )
    forms = forms & FORMS.keys()
    if forms:
        records = tuple(
            RecordState(str(r[0]), str(r[1]), state_in_forms(r[2], forms)) for r in rows
        )
    else:
        records = tuple(RecordState(str(r[0]), str(r[1]), unpack_state(r[2])) for r in rows)
    next_after = records[-1].record_id if len(records) == limit else None
    return SnapshotPage(vector, records, next_after, forms)


def snapshot_size(db: Database) -> int:
    """How many record states a full snapshot of this replica holds right now (a progress
    hint for the receiver: records written during the download may change it)."""
    rows = db.query("SELECT count(*) FROM record_states")
    return int(rows[0][0])


def records_held(db: Database) -> int:
    """How many records this replica holds (its record states: each record once, however
    many ops changed it); what a join reports as the clinic's records on the workstation."""
    return int(db.query("SELECT count(*) FROM record_states")[0][0])


def holds_types_beyond(db: Database, types: frozenset[str]) -> bool:
    """Whether any record held is of a type not in ``types``."""
    marks = ", ".join("?" for _ in types)
    rows = db.query(
        f"SELECT 1 FROM record_states WHERE type NOT IN ({marks}) LIMIT 1", tuple(sorted(types))
    )
    return bool(rows)


def apply_snapshot_page(db: Database, page: SnapshotPage, session_actor: str) -> int:
    """Merge a snapshot page's record states (idempotent); returns the records touched.

    Stored like a batch of ops (``apply_ops``): the page's records already held are read
    in a few queries, and the page is written with one ``executemany`` per statement
    (``store_records``), which leaves every table as storing the records one by one would.
    """
    details = {"records": len(page.records)}
    try:
        # A page's thousands of short-lived objects would trigger collections that walk
        # them all, again and again (core.platform.collector).
        with (
            collector.paused(),
            db.write(session_actor, "sync.snapshot", "record_states", "page", details) as tx,
        ):
            me = oplog.identity(tx)
            stored = stored_records(tx, (rec.record_id for rec in page.records))
            docs: dict[str, tuple[str, Loaded]] = {}
            inflated = _Inflated(page)
            for received in page.records:
                rec = inflated.plain(received)
                held = docs.get(rec.record_id)
                if held is None:
                    row = stored.get(rec.record_id)
                    if row is None and _unprotected(rec.record_type):
                        # Never seen (a first download's every record): the state is the
                        # whole document, and an empty document has nothing to protect.
                        loaded = _fresh_loaded(rec, me.client_id)
                        if received.state is not rec.state:
                            # Arrived deflated: kept as it came if the document encodes
                            # back to exactly what it inflated to (changes.store_records).
                            loaded.received = (rec.state, received.state)
                        docs[rec.record_id] = (rec.record_type, loaded)
                        continue
                    loaded = _snapshot_loaded(rec, row, me.client_id)
                    docs[rec.record_id] = (rec.record_type, loaded)
                elif held[0] != rec.record_type:  # the same id twice in a page, as two types
                    raise RecordTypeMismatchError(
                        f"record {rec.record_id!r} is a {held[0]}, not a {rec.record_type}"
                    )
                else:
                    loaded = held[1]
                _merge_snapshot_state(loaded, rec)
            store_records(tx, ((rid, t, loaded) for rid, (t, loaded) in docs.items()))
    except (RecordTypeMismatchError, MalformedRecordError) as exc:
        raise ApplyError(str(exc)) from exc
    except sqlcipher3.IntegrityError as exc:
        raise ApplyError(_unstorable(exc)) from exc
    return len(page.records)


# At most this many bytes of plain state per snapshot page received deflated. A plain
# page's states are bounded by its message size; deflate can stand for a thousand times
# more, and every state of a page is held in memory as a document (about 14 times its
# bytes) until the page is stored. Senders fit a deflated page by what it inflates to,
# as they fit a plain one (``core.sync.protocol.BATCH_BYTES``, 8 MiB): twice that here.
MAX_PAGE_PLAIN_BYTES = 16 * 1024 * 1024
# And per state, as a plain one received is (``protocol.records_from_wire``).
MAX_PLAIN_STATE_BYTES = 4 * 1024 * 1024


class _Inflated:
    """A page's states as plain Yjs updates: those of a page in stored forms inflated
    (bounded), each refused with the record named if it does not inflate."""

    def __init__(self, page: SnapshotPage) -> None:
        self._packed = bool(page.forms)
        self._left = MAX_PAGE_PLAIN_BYTES

    def plain(self, rec: RecordState) -> RecordState:
        """``rec`` with its state plain (``rec`` itself when it already was)."""
        if not self._packed:
            return rec
        try:
            state = unpack_state(rec.state, min(MAX_PLAIN_STATE_BYTES, self._left))
        except StoredStateError as exc:
            raise ApplyError(
                f"snapshot state of {rec.record_id!r} is malformed ({content_problem(exc)}); "
                "refusing the page"
            ) from exc
        self._left -= len(state)
        if state is rec.state or state == rec.state:
            return rec
        return RecordState(rec.record_id, rec.record_type, state)


def _snapshot_loaded(rec: RecordState, row: Row | None, client_id: int) -> Loaded:
    """The document a snapshot state merges into: the one held, or for a record this
    replica has never seen, the state itself (nothing to merge it with, and no derived
    rows to replace: ``Loaded.fresh``)."""
    if row is not None:
        return loaded_from(rec.record_id, rec.record_type, row, client_id)
    return Loaded(crdt.empty(client_id), {}, fresh=True)


def _unprotected(type_name: str) -> bool:
    """Whether records of this type have no rule on remote changes (most types): merging
    their state into an empty document is then just loading it."""
    known = RECORD_TYPES.get(type_name)
    return known is None or known.remote_check is None


def _fresh_loaded(rec: RecordState, client_id: int) -> Loaded:
    """``_snapshot_loaded`` and ``_merge_snapshot_state`` for a record never seen, of an
    unprotected type: the same document, loaded in one step."""
    try:
        doc = crdt.load_update(rec.state, client_id)
    except ValueError as exc:
        raise ApplyError(
            f"snapshot state of {rec.record_id!r} is malformed ({content_problem(exc)})"
        ) from exc
    return Loaded(doc, {}, fresh=True)


def _merge_snapshot_state(loaded: Loaded, rec: RecordState) -> None:
    """Merge one snapshot state into ``loaded``'s document, refusing a malformed state or
    one its type's rule forbids (a signed note made unsigned)."""
    known = RECORD_TYPES.get(rec.record_type)  # None: a newer version's, kept
    rule = known.remote_check if known is not None else None
    with _refusing_malformed(f"snapshot state of {rec.record_id!r}"):
        protected = rule.protect(loaded.doc) if rule is not None else None
    try:
        crdt.apply_update(loaded.doc, rec.state, crdt.STATE)
    except ValueError as exc:
        raise ApplyError(
            f"snapshot state of {rec.record_id!r} is malformed ({content_problem(exc)})"
        ) from exc
    # A snapshot's state carries no dependencies: only what it removes or rewrites can be
    # told apart from a concurrent change.
    with _refusing_malformed(f"snapshot state of {rec.record_id!r}"):
        broken = (
            rule.violation(protected, loaded.doc, False)
            if rule is not None and protected is not None
            else None
        )
    if broken:
        raise ApplyError(f"snapshot state {broken} ({rec.record_id}); refusing it")


def _unstorable(exc: Exception) -> str:
    # The derived rows broke a table's constraint (e.g. a note left without its author by a
    # peer's update): the record is malformed; the transaction was rolled back. SQLite's
    # constraint messages name the constraint or table.column, never the value.
    return f"a record's content cannot be stored ({exc}); refusing it"


def finish_snapshot(db: Database, vector: dict[str, int], session_actor: str) -> None:
    """After every page merged: we now hold everything up to ``vector`` (without op bytes)."""
    with db.write(session_actor, "sync.snapshot_done", "version_vector", "all", vector) as tx:
        for origin, seq in vector.items():
            held = oplog.version_vector(tx).get(origin, 0)
            if seq > held:
                oplog.raise_floor(tx, origin, seq)
