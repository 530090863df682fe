"""The sync wire format, version 1: JSON documents, binary fields in base64.

Every message is checked before anything acts on it: size, version, type, and the shape
and bounds of each field. A malformed, oversized or wrong-version message raises
ProtocolError with a message naming the problem; nothing has been changed at that point.

Requests (client -> responder) and replies:
    pull {vv, max_ops}                  -> ops {vv, ops, more} | snapshot_required {reason}
    push {ops}                          -> ack {vv, applied, duplicates}
    snapshot {after, max_records}       -> snapshot_page {vv, records, next_after,
                                                          total_records?}
Any request may get ``error {code, message}``.

``total_records`` (optional, sent on the first page, ``after`` null) is how many records the
whole snapshot holds: a hint for a progress bar, never used to decide what is applied.
Older responders leave it out; a receiver treats a missing or null value as "not said".

Audit anchoring (optional, on a pull; see core.sync.audit_anchor): ``audit_query: true``
asks for the head the responder keeps for this device, ``audit_head {seq, hash}`` offers
this replica's last audit entry for it to keep. A responder that anchors (the clinic
server) replies ``audit_anchoring: true`` and, if it holds one, ``audit_anchor {seq, hash}``
(the head it held before this request).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from core.errors import CarelineError
from core.records.replication import RecordState
from core.store.audit_chain import Head
from core.store.oplog import Op, parse_hlc

PROTOCOL = "careline-sync"
VERSION = 1
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_OPS_PER_MESSAGE = 1000
MAX_RECORDS_PER_PAGE = 2000
MAX_UPDATE_BYTES = 1024 * 1024
MAX_ORIGINS = 10_000
# A batch or snapshot page is cut once the bytes it carries reach this: after base64 (4/3)
# and the JSON around each item, a message stays well under MAX_MESSAGE_BYTES even when
# every op is a large note edit. Counts alone (MAX_OPS_PER_MESSAGE) would not bound it.
BATCH_BYTES = 8 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9:_.\-]{1,128}$")
REQUEST_TYPES = ("pull", "push", "snapshot")
REPLY_TYPES = ("ops", "ack", "snapshot_page", "snapshot_required", "error")


_Item = TypeVar("_Item", Op, RecordState)


def fit(items: Sequence[_Item], budget: int = BATCH_BYTES) -> list[_Item]:
    """The longest leading run of ``items`` whose payload bytes stay within ``budget``
    (always at least one item, which the per-item limits keep sendable)."""
    total = 0
    for i, item in enumerate(items):
        total += len(item.update) + len(item.deps) if isinstance(item, Op) else len(item.state)
        if total > budget and i > 0:
            return list(items[:i])
    return list(items)


class ProtocolError(CarelineError, ValueError):
    """A message that must be refused; ``code`` is machine-readable, the text is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, where: str, limit: int) -> bytes:
    if not isinstance(value, str) or len(value) > limit * 4 // 3 + 4:
        raise ProtocolError("malformed", f"{where} must be base64 text of at most {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("malformed", f"{where} is not valid base64") from None


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ProtocolError("malformed", f"{where} must be an id of 1-128 safe characters")
    return value


def _count(value: Any, where: str, maximum: int = 2**62) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ProtocolError("malformed", f"{where} must be an integer from 0 to {maximum}")
    return value


def encode(message: dict[str, Any]) -> bytes:
    """Serialise a message, stamping protocol and version."""
    return json.dumps(
        {"protocol": PROTOCOL, "v": VERSION, **message}, separators=(",", ":")
    ).encode("utf-8")


def decode(data: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Parse and check the envelope of a message whose type must be in ``allowed``."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            "too_large", f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit"
        )
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("malformed", f"message is not valid JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("protocol") != PROTOCOL:
        raise ProtocolError("malformed", "message is not a Careline sync message")
    if message.get("v") != VERSION:
        raise ProtocolError(
            "version",
            f"sync protocol version {message.get('v')!r} is not supported (this side speaks "
            f"{VERSION})",
        )
    if message.get("type") not in allowed:
        raise ProtocolError(
            "malformed", f"message type {message.get('type')!r} is not one of {', '.join(allowed)}"
        )
    return message


# ----- fields -----------------------------------------------------------------------------


def vv_to_wire(vector: dict[str, int]) -> dict[str, int]:
    """A version vector as sent."""
    return dict(sorted(vector.items()))


def vv_from_wire(value: Any, where: str = "vv") -> dict[str, int]:
    """A version vector as received, checked."""
    if not isinstance(value, dict) or len(value) > MAX_ORIGINS:
        raise ProtocolError("malformed", f"{where} must be an object of at most {MAX_ORIGINS} ids")
    return {_ident(k, f"{where} key"): _count(v, f"{where}[{k}]") for k, v in value.items()}


def op_to_wire(op: Op) -> dict[str, Any]:
    """One op as sent."""
    return {
        "origin": op.origin,
        "seq": op.seq,
        "record": op.record_id,
        "type": op.record_type,
        "update": _b64(op.update),
        "deps": _b64(op.deps),
        "hlc": op.hlc,
        "author": op.author,
    }


def op_from_wire(value: Any, index: int) -> Op:
    """One op as received, checked."""
    where = f"ops[{index}]"
    if not isinstance(value, dict):
        raise ProtocolError("malformed", f"{where} must be an object")
    hlc = value.get("hlc")
    try:
        parse_hlc(hlc if isinstance(hlc, str) else "")
    except ValueError:
        raise ProtocolError("malformed", f"{where}.hlc is not a hybrid logical clock") from None
    author = value.get("author")
    if not isinstance(author, str) or not 0 < len(author) <= 64:
        raise ProtocolError("malformed", f"{where}.author must be a user name")
    seq = _count(value.get("seq"), f"{where}.seq")
    if seq == 0:
        raise ProtocolError("malformed", f"{where}.seq must be at least 1")
    return Op(
        origin=_ident(value.get("origin"), f"{where}.origin"),
        seq=seq,
        record_id=_ident(value.get("record"), f"{where}.record"),
        record_type=_ident(value.get("type"), f"{where}.type"),
        update=_unb64(value.get("update"), f"{where}.update", MAX_UPDATE_BYTES),
        deps=_unb64(value.get("deps"), f"{where}.deps", 64 * 1024),
        hlc=str(hlc),
        author=author,
    )


def ops_from_wire(value: Any) -> list[Op]:
    """A list of ops, bounded."""
    if not isinstance(value, list) or len(value) > MAX_OPS_PER_MESSAGE:
        raise ProtocolError(
            "too_large" if isinstance(value, list) else "malformed",
            f"ops must be a list of at most {MAX_OPS_PER_MESSAGE} ops",
        )
    return [op_from_wire(item, i) for i, item in enumerate(value)]


def record_to_wire(rec: RecordState) -> dict[str, Any]:
    """A snapshot record as sent."""
    return {"id": rec.record_id, "type": rec.record_type, "state": _b64(rec.state)}


def records_from_wire(value: Any) -> list[RecordState]:
    """Snapshot records as received, checked."""
    if not isinstance(value, list) or len(value) > MAX_RECORDS_PER_PAGE:
        raise ProtocolError(
            "malformed", f"records must be a list of at most {MAX_RECORDS_PER_PAGE} records"
        )
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ProtocolError("malformed", f"records[{i}] must be an object")
        out.append(
            RecordState(
                _ident(item.get("id"), f"records[{i}].id"),
                _ident(item.get("type"), f"records[{i}].type"),
                _unb64(item.get("state"), f"records[{i}].state", MAX_UPDATE_BYTES * 4),
            )
        )
    return out


def total_from_wire(value: Any, where: str = "total_records") -> int | None:
    """An optional count announced for progress (e.g. ``total_records``): None if absent or
    null, else a non-negative integer; anything else is refused."""
    if value is None:
        return None
    return _count(value, where)


def limit_from_wire(value: Any, where: str, maximum: int) -> int:
    """A requested batch size, clamped to what this side allows."""
    return max(1, min(_count(value, where), maximum))


def serials_from_wire(value: Any) -> list[int]:
    """Revoked certificate serials as received (at most 100,000 positive integers)."""
    if not isinstance(value, list) or len(value) > 100_000:
        raise ProtocolError("malformed", "revoked_serials must be a list of serial numbers")
    return [_count(v, "revoked_serials[]", 2**160) for v in value]


_HASH = re.compile(r"^[0-9a-f]{64}$")


def head_to_wire(head: Head) -> dict[str, Any]:
    """An audit head as sent."""
    return {"seq": head.seq, "hash": head.hash}


def head_from_wire(value: Any, where: str) -> Head | None:
    """An optional audit head as received: None if absent or null, else checked."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"seq", "hash"}:
        raise ProtocolError("malformed", f"{where} must be an object with seq and hash")
    digest = value["hash"]
    if not isinstance(digest, str) or not _HASH.match(digest):
        raise ProtocolError("malformed", f"{where}.hash must be 64 lowercase hex digits")
    seq = _count(value["seq"], f"{where}.seq")
    if seq < 1:
        raise ProtocolError("malformed", f"{where}.seq must be at least 1")
    return Head(seq, digest)
