"""The op log, version vectors and the hybrid logical clock, at the storage level.

An op is one change to one record document: ``(origin replica, seq, record, Yjs update,
dependencies, HLC, author)``. ``deps`` is the record document's Yjs state vector just
before the change, so a receiver can tell whether it holds everything the update builds on.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.store import clinic_time, op_signer
from core.store.database import Database, Transaction

log = logging.getLogger(__name__)

HLC_WALL_DIGITS = 13
HLC_MAX_WALL = 10**HLC_WALL_DIGITS - 1
HLC_COUNTER_DIGITS = 6
HLC_MAX_COUNTER = 10**HLC_COUNTER_DIGITS - 1
HLC_MAX_REPLICA = 64
# Exactly what format_hlc writes: ASCII digits only (int() would also take "-1", " 1", "1_0"
# and Arabic-Indic digits) and a bounded replica id of the characters replica ids use.
_HLC = re.compile(r"([0-9]{13})\.([0-9]{6})\.([A-Za-z0-9_-]{1,64})", re.ASCII)
HLC_FORMAT = (
    f"WALL.COUNTER.REPLICA: {HLC_WALL_DIGITS} digits, {HLC_COUNTER_DIGITS} digits and a "
    f"replica id of 1 to {HLC_MAX_REPLICA} ASCII letters, digits, '_' or '-'"
)
# A replica's clock follows no HLC (a peer's, or its own from before its wall clock was
# set back) further than this ahead of its own clinic time: one workstation whose clock is
# days ahead would otherwise drag every replica's timestamps (and every "newest value"
# shown) days into the future with it. Ops are never refused for their clock: the CRDT,
# not the HLC, says which change saw which (a register write lists the ids it supersedes,
# a list change its parents); the HLC only orders concurrent values for display.
MAX_CLOCK_LEAD_MS = 5 * 60 * 1000


class GapError(Exception):
    """An op arrived before an earlier op of the same origin: refused, nothing applied."""


@dataclass(frozen=True)
class Op:
    """One entry of the op log."""

    origin: str
    seq: int
    record_id: str
    record_type: str
    update: bytes
    deps: bytes
    hlc: str
    author: str
    # Signature (core.crypto.op_signature): the chain value before this op, the raw
    # signature over this op's chain value, and who signed: "device" (the origin's device
    # key), "clinic-ca" (the clinic CA: the server's own ops, and ops it vouches for), or
    # "" (made before signing; see core.store.op_signer).
    prev: bytes = b""
    sig: bytes = b""
    signer: str = ""


@dataclass(frozen=True)
class Identity:
    """Who this replica is."""

    replica_id: str
    client_id: int


def identity(tx: Transaction | Database) -> Identity:
    """This replica's id and Yjs client id."""
    rows: dict[str, str] = dict(
        tx.query("SELECT key, value FROM meta WHERE key IN ('replica_id', 'yjs_client_id')")
    )
    return Identity(str(rows["replica_id"]), int(rows["yjs_client_id"]))


def random_identity() -> Identity:
    """A new replica id and Yjs client id (52 bits, as migration V1 draws it: Yjs client
    ids are JavaScript-safe integers)."""
    return Identity(secrets.token_hex(8), secrets.randbits(52))


def take_identity(tx: Transaction, fresh: Identity) -> None:
    """Make ``fresh`` this replica's identity and restart its own op chain.

    For a copy restored from a backup: others hold ops numbered ``(old id, seq)`` beyond
    the copy's, so it must never number an op of its own under the old id again (nor
    make Yjs items under the old client id). The old origin's ops stay in the log and in
    the version vector, so those made after the backup are still received.
    """
    tx.execute("DELETE FROM meta WHERE key = ?", (op_signer.CHAIN_KEY,))
    for key, value in (("replica_id", fresh.replica_id), ("yjs_client_id", str(fresh.client_id))):
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


# ----- hybrid logical clock ---------------------------------------------------------------


def format_hlc(wall_ms: int, counter: int, replica_id: str) -> str:
    """Fixed-width text so HLCs sort as strings: ``wall.counter.replica``.

    Raises ValueError for parts parse_hlc would refuse, so no replica writes an HLC that
    another replica cannot read.
    """
    hlc = f"{wall_ms:0{HLC_WALL_DIGITS}d}.{counter:0{HLC_COUNTER_DIGITS}d}.{replica_id}"
    if not 0 <= wall_ms <= HLC_MAX_WALL or not 0 <= counter <= HLC_MAX_COUNTER:
        raise ValueError(f"HLC parts out of range: wall {wall_ms}, counter {counter}")
    if _HLC.fullmatch(hlc) is None:
        raise ValueError(f"replica id {replica_id[:80]!r} cannot be written into an HLC")
    return hlc


def parse_hlc(hlc: str) -> tuple[int, int, str]:
    """Split an HLC string exactly as format_hlc writes it; raises ValueError otherwise."""
    match = _HLC.fullmatch(hlc)
    if match is None:
        # repr() escapes control characters; the cut keeps a 1 MB value out of messages.
        shown = repr(hlc[:40]) + ("..." if len(hlc) > 40 else "")
        raise ValueError(f"malformed HLC {shown} (expected {HLC_FORMAT})")
    return int(match[1]), int(match[2]), match[3]


def _clock(tx: Transaction, now_ms: int | None) -> tuple[int, int, int]:
    """(clinic time now, last wall, last counter) in one read of ``meta``."""
    rows: dict[str, str] = {
        str(k): str(v)
        for k, v in tx.query(
            "SELECT key, value FROM meta WHERE key IN ('hlc', ?)", (clinic_time.OFFSET_META_KEY,)
        )
    }
    if now_ms is None:
        now_ms = clinic_time.corrected(clinic_time.wall_ms(), rows.get(clinic_time.OFFSET_META_KEY))
    # A clock before 1970 or after 2286 still writes: clamped to what an HLC can hold.
    now = min(max(now_ms, 0), HLC_MAX_WALL - 1)
    if "hlc" not in rows:
        return now, 0, 0
    wall, counter, _ = parse_hlc(rows["hlc"])
    return now, wall, counter


def _store_hlc(tx: Transaction, wall: int, counter: int, replica_id: str) -> str:
    hlc = format_hlc(wall, counter, replica_id)
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('hlc', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (hlc,),
    )
    return hlc


def tick(tx: Transaction, replica_id: str, now_ms: int | None = None) -> str:
    """Next HLC for a local event: after everything this replica wrote or followed before,
    and never behind its clinic time (``core.store.clinic_time``; ``now_ms`` overrides it).

    When the last HLC stands more than MAX_CLOCK_LEAD_MS ahead (this computer's clock was
    ahead and has been set right), the clock starts again from clinic time: staying ahead
    would stamp every change made here with that one future moment until it came round.
    """
    wall, last_wall, last_counter = _clock(tx, now_ms)
    if wall > last_wall:
        return _store_hlc(tx, wall, 0, replica_id)
    if last_wall > wall + MAX_CLOCK_LEAD_MS:
        log.warning(
            "this replica's last timestamp is %s ahead of its clock (the clock was set "
            "back); its changes are stamped from the clock again",
            _minutes(last_wall - wall),
        )
        return _store_hlc(tx, wall, 0, replica_id)
    if last_counter >= HLC_MAX_COUNTER:  # carry into the wall part rather than widen
        return _store_hlc(tx, last_wall + 1, 0, replica_id)
    return _store_hlc(tx, last_wall, last_counter + 1, replica_id)


def observe(
    tx: Transaction, remote: str | Iterable[str], replica_id: str, now_ms: int | None = None
) -> int:
    """Advance the clock past remote events (one HLC, or a batch's) so that later local
    writes sort after them; an HLC more than MAX_CLOCK_LEAD_MS ahead of this replica's
    clinic time (``now_ms`` overrides it) is not followed, and its op still applies.

    Returns how far the furthest HLC not followed was ahead of clinic time, else 0.
    """
    stamps = [parse_hlc(h) for h in ([remote] if isinstance(remote, str) else remote)]
    now, last_wall, last_counter = _clock(tx, now_ms)
    beyond = [s for s in stamps if s[0] > now + MAX_CLOCK_LEAD_MS]
    if beyond:
        wall, _, origin = max(beyond)
        log.warning(
            "a change from replica %s is stamped %s ahead of this replica's clock; it is "
            "applied, and this replica's clock does not follow it",
            origin,
            _minutes(wall - now),
        )
    followed = max((s[:2] for s in stamps if s[0] <= now + MAX_CLOCK_LEAD_MS), default=None)
    if followed is not None and followed > (last_wall, last_counter):
        _store_hlc(tx, followed[0], followed[1], replica_id)
    return max(beyond)[0] - now if beyond else 0


def _minutes(ms: int) -> str:
    """A lead for a log line: ``"3 days 2 hours 5 minutes"`` style, to the minute."""
    minutes = ms // 60_000
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in
             ((days, "day"), (hours, "hour"), (minutes, "minute")) if n]  # fmt: skip
    return " ".join(parts) or "less than a minute"


# ----- version vectors and the log --------------------------------------------------------


def version_vector(db: Database | Transaction) -> dict[str, int]:
    """``{origin: highest contiguous seq}``."""
    return {str(o): int(s) for o, s in db.query("SELECT origin, seq FROM version_vector")}


def floors(db: Database | Transaction) -> dict[str, int]:
    """``{origin: seq}`` at or below which this replica's log may have holes."""
    return {str(o): int(f) for o, f in db.query("SELECT origin, floor FROM version_vector")}


def _set_seq(tx: Transaction, origin: str, seq: int) -> None:
    tx.execute(
        "INSERT INTO version_vector (origin, seq) VALUES (?, ?) "
        "ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq",
        (origin, seq),
    )


_INSERT_OP = (
    "INSERT INTO oplog (origin, seq, record_id, record_type, doc_update, deps, hlc, author, "
    "prev, sig, signer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
OP_COLUMNS = "origin, seq, record_id, record_type, doc_update, deps, hlc, author, prev, sig, signer"


def op_row(o: Op) -> tuple[Any, ...]:
    """An op as the values of :data:`OP_COLUMNS`."""
    return (o.origin, o.seq, o.record_id, o.record_type, o.update, o.deps, o.hlc, o.author,
            o.prev, o.sig, o.signer)  # fmt: skip


def _insert(tx: Transaction, op: Op) -> None:
    tx.execute(_INSERT_OP, op_row(op))
    _set_seq(tx, op.origin, op.seq)


def append_local(
    tx: Transaction,
    origin: str,
    record_id: str,
    record_type: str,
    update: bytes,
    deps: bytes,
    hlc: str,
    author: str,
) -> Op:
    """Append a local change with the next seq of this replica."""
    rows = tx.query("SELECT seq FROM version_vector WHERE origin = ?", (origin,))
    seq = int(rows[0][0]) + 1 if rows else 1
    op = op_signer.sign_new(tx, Op(origin, seq, record_id, record_type, update, deps, hlc, author))
    _insert(tx, op)
    return op


def insert_remote(tx: Transaction, ops: list[Op]) -> None:
    """Record ops received from other replicas (already checked to be the next ones)."""
    tx.executemany(_INSERT_OP, [op_row(o) for o in ops])
    top: dict[str, int] = {}
    for o in ops:
        top[o.origin] = max(top.get(o.origin, 0), o.seq)
    for origin, seq in top.items():
        _set_seq(tx, origin, seq)


def ops_after(db: Database, remote_vv: dict[str, int], limit: int) -> list[Op]:
    """Up to ``limit`` ops the holder of ``remote_vv`` lacks, in causal (arrival) order.

    Cost depends on the number of missing ops, not on the size of the history: each origin
    is read through the (origin, seq) index from the remote's position onwards.
    """
    # Each origin is read only up to the vector read first: that vector is one committed
    # state, so the ops it covers hold every op they depend on. Ops another thread or server
    # process commits between the per-origin reads may depend on ops of an origin already
    # read; sending them would make the receiver refuse the batch as having a gap.
    local = version_vector(db)
    picked: list[tuple[int, Op]] = []
    for origin, seq in local.items():
        since = remote_vv.get(origin, 0)
        if seq <= since:
            continue
        for row in db.query(
            f"SELECT rowid, {OP_COLUMNS} "
            "FROM oplog WHERE origin = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (origin, since, seq, limit),
        ):
            picked.append((int(row[0]), _op(row[1:])))
    picked.sort(key=lambda item: item[0])
    return [op for _, op in picked[:limit]]


def op_from_row(row: Any) -> Op:
    """An op from the values of :data:`OP_COLUMNS`."""
    return Op(
        str(row[0]), int(row[1]), str(row[2]), str(row[3]), bytes(row[4]), bytes(row[5]),
        str(row[6]), str(row[7]), bytes(row[8]), bytes(row[9]), str(row[10]),
    )  # fmt: skip


_op = op_from_row


def raise_floor(tx: Transaction, origin: str, seq: int) -> None:
    """After a snapshot: this replica holds ``origin`` up to ``seq`` without the op bytes."""
    tx.execute(
        "INSERT INTO version_vector (origin, seq, floor) VALUES (?, ?, ?) "
        "ON CONFLICT (origin) DO UPDATE SET seq = max(seq, excluded.seq), "
        "floor = max(floor, excluded.floor)",
        (origin, seq, seq),
    )
