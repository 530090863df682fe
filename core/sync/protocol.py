"""The sync wire format, versions 1 and 2: JSON documents, binary fields in base64.

Every message is checked before anything acts on it: size, version, type, and the shape
and bounds of each field. A malformed, oversized or wrong-version message raises
ProtocolError with a message naming the problem; nothing has been changed at that point.

Requests (client -> responder) and replies:
    pull {vv, max_ops}                  -> ops {vv, ops, more} | snapshot_required {reason}
    push {ops}                          -> ack {vv, applied, duplicates}
    snapshot {after, max_records,       -> snapshot_page {vv, records, next_after,
              state_forms?}                               total_records?, state_forms?}
Any request may get ``error {code, message}``.

``total_records`` (optional, sent on the first page, ``after`` null) is how many records the
whole snapshot holds: a hint for a progress bar, never used to decide what is applied.
Older responders leave it out; a receiver treats a missing or null value as "not said".

Stored forms of record states (optional, since Careline 0.2.0's schema V17): a snapshot
request may carry ``state_forms``, the names of the stored forms it reads besides plain Yjs
(core.store.state_codec.FORMS, e.g. ``"deflate1"``). A responder that knows some of them
may then send each state as it holds it, in one of those forms or plain, and says so with
``state_forms`` on the page (the forms its states may be in). Older responders ignore the
request's field and send plain states without it; older requesters never ask. A receiver
inflates each state (bounded) before loading it and refuses the page, naming the record, if
one does not inflate; states of a page without ``state_forms`` are plain Yjs.

Versions (negotiated, so clinics upgrade one machine at a time). Every message states the
version it is written in (``v``), and since version 2 the versions its sender speaks
(``speaks``) and its release (``release``). A responder answers in the version of the
request; a request in a version it does not speak gets ``error {code: "version"}`` written
in the request's own version, with ``speaks`` and ``needs_release``, and the requester falls
back to the newest version both speak (a version-1 responder sends no ``speaks``: it
speaks 1 only) or, with none in common, stops with a message naming the release it needs.
Nothing is applied before the version is agreed: it is checked before anything else.

- Version 1 (Careline 0.1.0): a receiver refuses ops and snapshot records of record types
  it does not know, so a version-1 peer is sent only record types 0.1.0 knew: ops of an
  origin stop before its first op of a newer type (its later ops would leave a gap), and
  a snapshot holding newer types is refused with a message naming the release needed.
- Version 2 (Careline 0.2.0): the same messages; a receiver keeps and relays record types
  and fields it does not know (``core.records.unknown``).
A wire change keeps the previous version readable for at least one release.

Audit anchoring (optional, on a pull; see core.sync.audit_anchor): ``audit_query: true``
asks for the head the responder keeps for this device, ``audit_head {seq, hash}`` offers
this replica's last audit entry for it to keep. A responder that anchors (the clinic
server) replies ``audit_anchoring: true`` and, if it holds one, ``audit_anchor {seq, hash}``
(the head it held before this request).

Clock (optional, on every reply; releases before it leave it out): ``now_ms``, the responder's
clock when it wrote the reply (milliseconds since the epoch; a workstation sends its clinic
time, core.store.clinic_time). The requester measures how far its own clock is off
(core.sync.clock); an older requester ignores it. Any integer is accepted: a clock, however
wrong, is never a reason to refuse a message.

Since version 2 a pull offering ``audit_head`` over a recorded anchor also carries
``audit_proof``: the canonical bytes (base64) of each audit entry after the anchor up to the
offered head, from which the responder recomputes the chain. The responder moves its anchor
only on that proof (or for a device's first head) and replies ``audit_anchor_moved``
(true or false). A request without a proof (Careline 0.1.0) never moves a recorded anchor.

Head on a push (optional; releases before it leave it out and ignore it): a responder that
anchors and also takes the head on a push says ``audit_on_push: true`` in its reply to an
audit query. A requester that pushes ops may then offer ``audit_head`` and ``audit_proof`` on
its (first) push instead of in a pull of its own, after checking the anchor the query
returned, as before; the ``ack`` answers as a pull would (``audit_anchoring``,
``audit_anchor``, ``audit_anchor_moved``), the ops being applied first. A requester with no
ops to push, or told nothing, offers it in a pull. A requester whose head is the very one
the responder recorded offers nothing. So a session carrying one edit takes two round trips
(pull, push), an idle one one.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from core import __version__
from core.errors import CarelineError
from core.records.replication import RecordState
from core.store import clinic_time
from core.store.audit_chain import Head
from core.store.oplog import HLC_FORMAT, Op, parse_hlc
from core.store.state_codec import FORMS

log = logging.getLogger(__name__)

PROTOCOL = "careline-sync"
VERSION = 2  # the newest version this side speaks, used first
SPEAKS = (1, 2)
RELEASE = __version__
# The first release that spoke each version (the release a too-old replica needs).
FIRST_RELEASE = {1: "0.1.0", 2: "0.2.0"}
# The record types a version-1 receiver accepts (Careline 0.1.0's), frozen here for ever.
# Careline 0.1.0 refused an op stamped more than 5 minutes ahead of its own clock; a
# version-1 receiver is sent none stamped more than this ahead of this side's clock (a
# minute's margin for the difference between the two clocks).
V1_MAX_LEAD_MS = 4 * 60_000
V1_RECORD_TYPES = frozenset(
    {"patient", "user", "note", "appointment", "encounter", "observation", "attachment", "clinic"}
)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_OPS_PER_MESSAGE = 1000
MAX_RECORDS_PER_PAGE = 2000
MAX_UPDATE_BYTES = 1024 * 1024
MAX_ORIGINS = 10_000
# A batch or snapshot page is cut once the bytes it carries reach this: after base64 (4/3)
# and the JSON around each item, a message stays well under MAX_MESSAGE_BYTES even when
# every op is a large note edit. Counts alone (MAX_OPS_PER_MESSAGE) would not bound it.
BATCH_BYTES = 8 * 1024 * 1024
# Ids (origins, records, record types) are ASCII only; fullmatch, because "$" would let a
# trailing newline through.
_ID = re.compile(r"[A-Za-z0-9:_.\-]{1,128}", re.ASCII)
MAX_AUTHOR_CHARS = 64
REQUEST_TYPES = ("pull", "push", "snapshot")
REPLY_TYPES = ("ops", "ack", "snapshot_page", "snapshot_required", "error")


_Item = TypeVar("_Item", Op, RecordState)


def fit(
    items: Sequence[_Item],
    budget: int = BATCH_BYTES,
    inflate: Callable[[bytes], bytes] | None = None,
) -> list[_Item]:
    """The longest leading run of ``items`` whose payload bytes stay within ``budget``
    (always at least one item, which the per-item limits keep sendable). With
    ``inflate``, a record state counts as the bytes it inflates to (a state in a stored
    form, whose plain bytes the receiver holds)."""
    total = 0
    for i, item in enumerate(items):
        if isinstance(item, Op):
            total += len(item.update) + len(item.deps)
        elif inflate is not None:
            total += len(inflate(item.state))
        else:
            total += len(item.state)
        if total > budget and i > 0:
            return list(items[:i])
    return list(items)


class ProtocolError(CarelineError, ValueError):
    """A message that must be refused; ``code`` is machine-readable, the text is for people."""

    def __init__(
        self, code: str, message: str, requested: object = None, needs: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        # For a ``version`` error: the version the refused message was written in, and the
        # release its sender needs (None: the sender is the newer side).
        self.requested = requested
        self.needs = needs


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
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise ProtocolError(
            "malformed",
            f"{where} must be an id of 1-128 ASCII letters, digits or the characters : _ . -",
        )
    return value


def _author(value: Any, where: str) -> str:
    # A user name as shown in histories and audit views: printable, so it can neither hide
    # nor fake a line there (control, format and unassigned characters are category C*).
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_AUTHOR_CHARS
        or value != value.strip()
        or any(unicodedata.category(ch).startswith("C") for ch in value)
    ):
        raise ProtocolError(
            "malformed",
            f"{where} must be a user name of 1-{MAX_AUTHOR_CHARS} printable characters "
            "without surrounding spaces",
        )
    return value


def _printable(text: str) -> str:
    """``text`` with control and format characters replaced: a reason from the other side
    is shown to people and must not be able to fake a line."""
    return "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in text)


def _count(value: Any, where: str, maximum: int = 2**62) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ProtocolError("malformed", f"{where} must be an integer from 0 to {maximum}")
    return value


def encode(message: dict[str, Any], version: int = VERSION) -> bytes:
    """Serialise a message in ``version``, stamping protocol, version, the versions this
    side speaks and its release (a version-1 reader ignores the last two)."""
    envelope = {"protocol": PROTOCOL, "v": version, "speaks": list(SPEAKS), "release": RELEASE}
    return json.dumps({**envelope, **message}, separators=(",", ":")).encode("utf-8")


def version_refused(version: object) -> ProtocolError:
    """The error for a message in a version this side does not speak, naming what to do."""
    newest, oldest = max(SPEAKS), min(SPEAKS)
    needs = None
    if isinstance(version, int) and not isinstance(version, bool) and version < oldest:
        needs = FIRST_RELEASE[oldest]
        advice = f"update Careline there to {needs} or newer"
    else:
        advice = "update Careline here to talk to it"
    return ProtocolError(
        "version",
        f"sync protocol version {version!r} is not supported: this side (Careline {RELEASE}) "
        f"speaks versions {oldest} to {newest}; {advice}",
        version,
        needs,
    )


def version_error_reply(exc: ProtocolError) -> tuple[dict[str, Any], int]:
    """An ``error`` reply to a request in a version this side does not speak, and the
    version to write it in: the request's own, so that its sender can read why."""
    requested = exc.requested
    version = (
        requested
        if isinstance(requested, int) and not isinstance(requested, bool) and 0 < requested < 1000
        else min(SPEAKS)
    )
    reply = {"type": "error", "code": exc.code, "message": str(exc)}
    if exc.needs is not None:
        reply["needs_release"] = exc.needs
    return reply, version


def common_version(reply: dict[str, Any]) -> int | None:
    """The newest version both sides speak, from a ``version`` error's ``speaks`` (absent:
    a version-1 responder, which speaks 1 only); None when there is none."""
    theirs = reply.get("speaks", [1])
    if not isinstance(theirs, list):
        return None
    both = set(SPEAKS) & {v for v in theirs if isinstance(v, int) and not isinstance(v, bool)}
    return max(both) if both else None


def carries(record_type: str, version: int) -> bool:
    """Whether a receiver speaking ``version`` accepts ops of ``record_type``."""
    return version >= 2 or record_type in V1_RECORD_TYPES


def _v1_refuses_clock(op: Op, now_ms: int) -> bool:
    """Whether Careline 0.1.0 would refuse ``op`` for its clock (and, with it, the whole
    batch): it refused an op stamped more than 5 minutes ahead of its own clock."""
    return parse_hlc(op.hlc)[0] > now_ms + V1_MAX_LEAD_MS


def sendable(
    fetch: Callable[[dict[str, int]], list[Op]],
    vector: dict[str, int],
    version: int,
    now_ms: int | None = None,
) -> tuple[list[Op], dict[str, int]]:
    """Ops after ``vector`` (``fetch(vector)``, in log order) that a receiver speaking
    ``version`` accepts, and per origin the first seq held back from it.

    An origin's ops stop before its first op of a record type the receiver refuses: its
    later ops would leave a gap. Origins held back are skipped and the log read again, so
    ops of other origins queued behind them still go. A version-1 receiver (Careline 0.1.0)
    also refuses ops stamped more than 5 minutes ahead of its clock: such an op waits, here
    judged by this side's clock ``now_ms`` (default: this computer's), until the clock has
    come round to it or the receiver is updated. No newer receiver refuses an op for its
    clock.
    """
    now = clinic_time.wall_ms() if now_ms is None else now_ms
    skip = dict(vector)
    held: dict[str, int] = {}
    while True:
        kept: list[Op] = []
        newly_held = False
        for op in fetch(skip):
            if op.origin in held:
                continue
            if carries(op.record_type, version) and not (
                version < 2 and _v1_refuses_clock(op, now)
            ):
                kept.append(op)
            else:
                held[op.origin] = op.seq
                newly_held = True
        # Each round holds back at least one more origin, so this ends.
        if kept or not newly_held:
            return kept, held
        skip.update({origin: _PAST for origin in held})


_PAST = 2**62  # a sequence number beyond any real one: "send nothing more of this origin"


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
    if message.get("v") not in SPEAKS or isinstance(message.get("v"), bool):
        raise version_refused(message.get("v"))
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
        "prev": _b64(op.prev),
        "sig": _b64(op.sig),
        "signer": op.signer,
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
        raise ProtocolError(
            "malformed", f"{where}.hlc is not a hybrid logical clock ({HLC_FORMAT})"
        ) from None
    author = _author(value.get("author"), f"{where}.author")
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
        # Absent in version 1 (Careline 0.1.0 signs nothing): the op is then unsigned.
        prev=_unb64(value.get("prev", ""), f"{where}.prev", 32),
        sig=_unb64(value.get("sig", ""), f"{where}.sig", 64),
        signer=_signer(value.get("signer", ""), f"{where}.signer"),
    )


def _signer(value: Any, where: str) -> str:
    if value not in ("", "device", "clinic-ca"):
        raise ProtocolError("malformed", f'{where} must be "", "device" or "clinic-ca"')
    return str(value)


MAX_CERTIFICATES = 1000
MAX_PEM_CHARS = 16 * 1024
MAX_CRL_CHARS = 4 * 1024 * 1024


def certificates_from_wire(value: Any, where: str = "certificates") -> list[str]:
    """Device certificates (PEM) sent with ops; each is checked against the clinic CA
    before use, so here only the shape is checked."""
    if value is None:
        return []
    if (
        not isinstance(value, list)
        or len(value) > MAX_CERTIFICATES
        or not all(isinstance(v, str) and v.isascii() and len(v) <= MAX_PEM_CHARS for v in value)
    ):
        raise ProtocolError(
            "malformed", f"{where} must be a list of at most {MAX_CERTIFICATES} PEM certificates"
        )
    return list(value)


def crl_from_wire(value: Any, where: str = "crl") -> str | None:
    """The clinic CA's revocation list (PEM), checked against the CA before use."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or len(value) > MAX_CRL_CHARS:
        raise ProtocolError("malformed", f"{where} must be a PEM revocation list")
    return value


def refusals_to_wire(refusals: Sequence[tuple[str, int, str]]) -> list[dict[str, Any]]:
    """Ops the sender refused and keeps aside: (origin, seq, why)."""
    return [{"origin": o, "seq": s, "reason": r} for o, s, r in refusals]


def refusals_from_wire(value: Any, where: str = "quarantined") -> list[tuple[str, int, str]]:
    """The other side's refusals of ops (bounded, each reason cut to 500 characters)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_OPS_PER_MESSAGE:
        raise ProtocolError("malformed", f"{where} must be a list of refused ops")
    out: list[tuple[str, int, str]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("reason"), str):
            raise ProtocolError("malformed", f"{where}[{i}] must name an op and a reason")
        origin = _ident(item.get("origin"), f"{where}[{i}].origin")
        seq = _count(item.get("seq"), f"{where}[{i}].seq")
        out.append((origin, seq, _printable(item["reason"])[:500]))
    return out


def origins_from_wire(value: Any, where: str) -> list[str]:
    """A list of replica ids."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ORIGINS:
        raise ProtocolError("malformed", f"{where} must be a list of replica ids")
    return [_ident(v, f"{where}[{i}]") for i, v in enumerate(value)]


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


# The stored forms of record states this side reads in snapshot pages (``state_forms``).
STATE_FORMS: tuple[str, ...] = tuple(FORMS)
MAX_FORMS = 16


def forms_from_wire(value: Any, where: str = "state_forms") -> frozenset[str]:
    """The stored forms named in a message (absent or null: none); names this side does not
    know are left out (a newer requester's), anything but a short list of names refused."""
    if value is None:
        return frozenset()
    if (
        not isinstance(value, list)
        or len(value) > MAX_FORMS
        or not all(isinstance(v, str) and len(v) <= 64 for v in value)
    ):
        raise ProtocolError("malformed", f"{where} must be a list of at most {MAX_FORMS} names")
    return frozenset(value) & frozenset(STATE_FORMS)


def page_forms_from_wire(value: Any, asked: frozenset[str]) -> frozenset[str]:
    """The stored forms a snapshot page says its states are in: only forms that were asked
    for (a page claiming another is refused: its states could not be read as plain)."""
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError("malformed", "state_forms must be a list of names")
    claimed = frozenset(value)
    if not claimed <= asked:
        raise ProtocolError(
            "malformed",
            f"the snapshot page's states are in forms that were not asked for: "
            f"{', '.join(sorted(claimed - asked))[:200]}",
        )
    return claimed


def after_from_wire(value: Any, where: str) -> str | None:
    """A snapshot position (the last record id of the previous page) or None to start."""
    return None if value is None else _ident(value, where)


def total_from_wire(value: Any, where: str = "total_records") -> int | None:
    """An optional count announced for progress (e.g. ``total_records``): None if absent or
    null, else a non-negative integer; anything else is refused."""
    if value is None:
        return None
    return _count(value, where)


def now_from_wire(value: Any, where: str = "now_ms") -> int | None:
    """A reply's clock (``now_ms``): None if absent or null, else an integer (any: a wrong
    clock is reported, never refused); anything else is malformed."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 2**62:
        raise ProtocolError("malformed", f"{where} must be an integer (milliseconds)")
    return value


def limit_from_wire(value: Any, where: str, maximum: int) -> int:
    """A requested batch size, clamped to what this side allows."""
    return max(1, min(_count(value, where), maximum))


def serials_from_wire(value: Any) -> list[int]:
    """Revoked certificate serials as received (at most 100,000 positive integers)."""
    if not isinstance(value, list) or len(value) > 100_000:
        raise ProtocolError("malformed", "revoked_serials must be a list of serial numbers")
    return [_count(v, "revoked_serials[]", 2**160) for v in value]


MAX_DEVICE_NAMES = 10_000
MAX_DEVICE_NAME = 64  # as the server's enrollment allows


def device_names_from_wire(value: Any) -> dict[str, tuple[str, str]]:
    """The clinic's workstations by replica id, as the server sends them: (the name each
    enrolled with, its device id), for display only (core/records/workstation_names.py).
    Not an object: ProtocolError. An entry that cannot be shown (a name too long or with
    a control character, an id that is not one) is left out and logged rather than
    refused: whether a character is printable depends on the Unicode version of the
    Python reading it, and a name must never stop a sync. Past :data:`MAX_DEVICE_NAMES`
    entries, the rest are left out too."""
    if not isinstance(value, dict):
        raise ProtocolError("malformed", "device_names must be an object of names by replica")
    names: dict[str, tuple[str, str]] = {}
    dropped = max(0, len(value) - MAX_DEVICE_NAMES)
    for replica, entry in list(value.items())[:MAX_DEVICE_NAMES]:
        name = entry.get("name") if isinstance(entry, dict) else None
        device = entry.get("device") if isinstance(entry, dict) else None
        usable = (
            isinstance(name, str)
            and 1 <= len(name) <= MAX_DEVICE_NAME
            and name.isprintable()
            and isinstance(device, str)
            and _ID.fullmatch(device) is not None
            and isinstance(replica, str)
            and _ID.fullmatch(replica) is not None
        )
        if usable:
            assert isinstance(name, str) and isinstance(device, str)
            names[replica] = (name, device)
        else:
            dropped += 1
    if dropped:
        log.warning("left out %d workstation names the server sent that cannot be shown", dropped)
    return names


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


def proof_to_wire(entries: Sequence[bytes]) -> list[str]:
    """An audit proof (canonical entries) as sent."""
    return [_b64(entry) for entry in entries]


def proof_from_wire(value: Any, max_entries: int, max_entry_bytes: int) -> list[bytes] | None:
    """An optional audit proof as received: None if absent or null, else checked."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_entries:
        raise ProtocolError(
            "malformed", f"audit_proof must be a list of at most {max_entries} entries"
        )
    return [_unb64(item, f"audit_proof[{i}]", max_entry_bytes) for i, item in enumerate(value)]
