"""Break-glass grants at remote apply: who may open one, for how long, and who may review it.

A ``break_glass`` record gives its person clinical access to a chart while it counts
(core/records/break_glass_audit.py), so an op writing one is judged on what it writes,
not only on which fields it touches (README "Break-glass", "Authorization at remote apply"):

- **Opening** (the op that makes the record): its author is the person it names
  (``username``), who held ``clinician`` or ``nurse`` on the clinic at the op's time (the
  roles ``BreakGlass.open`` lets break the glass); it names a patient and gives a reason;
  it lasts more than nothing and at most ``MAX_MINUTES`` (what the local API allows); it
  opens within ``OPENED_AT_LEEWAY_MS`` of the op's HLC; it writes nothing but what an
  opening writes (no review: an opening never arrives already reviewed).
- **Review** (every later op): only ``reviewed_by`` and ``reviewed_at`` change, written by
  someone holding ``review_audit`` at the op's time; ``reviewed_by`` is the op's author (or
  a value the record already held: settling a conflict between two reviews picks one of
  them), ``reviewed_at`` a time near the op's (or one the record already held).

Nothing else of a grant ever changes after it is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from core.records import crdt
from core.records.break_glass_audit import MAX_MINUTES
from core.records.crdt import RecordDoc
from core.records.permissions import CLINIC_OBJECT
from core.store.oplog import Op, parse_hlc

# What the op that opens a grant writes (``BreakGlass.open``).
OPENING = frozenset({"patient_id", "username", "reason", "opened_at", "expires_at", "created_at"})
REVIEW = frozenset({"reviewed_by", "reviewed_at"})
# The roles that may break the glass (``break_glass.clinical_staff``).
CLINICAL_ROLES = ("clinician", "nurse")
# How far a grant's own times may be from its op's HLC. They come from the workstation's
# clock, the HLC from its clinic time, which a server-measured offset corrects when the
# clock is wrong by minutes or hours (core/store/clinic_time.py), and which follows other
# replicas' stamps up to 5 minutes ahead: the times an honest workstation writes can be that
# far apart. The same day as remote apply's leeway for clocks (remote_authz.GRANT_LEEWAY_MS);
# the duration is checked exactly, so a grant still counts for at most MAX_MINUTES.
OPENED_AT_LEEWAY_MS = 24 * 60 * 60 * 1000

# ``allowed(permission_or_role, object)``: whether the op's author held it at the op's time.
Allowed = Callable[[str, str], bool]
Summary = Mapping[str, object]


def problem(
    op: Op, before: Summary, doc: RecordDoc, fields: list[str], allowed: Allowed
) -> str | None:
    """Why ``op`` (already applied to ``doc``; ``before``: the record's summary before it,
    ``fields``: what it changed) may not be made, or None if it may."""
    opening = not any(key.startswith("r:") for key in before)
    if opening:
        return _opening_problem(op, doc, fields, allowed)
    return _review_problem(op, before, doc, fields, allowed)


def _opening_problem(op: Op, doc: RecordDoc, fields: list[str], allowed: Allowed) -> str | None:
    extra = sorted(set(fields) - OPENING)
    if extra:
        return f"it opens a break-glass grant that also writes {', '.join(extra)}"
    values: dict[str, object] = {}
    for name in ("patient_id", "username", "reason", "opened_at", "expires_at"):
        live = crdt.live(doc, name)
        if len(live) != 1 or not isinstance(live[0].value, str) or not live[0].value.strip():
            return f"it opens a break-glass grant without one {name.replace('_', ' ')}"
        values[name] = live[0].value
    if values["username"] != op.author:
        return (
            f"its author {op.author[:64]!r} opens a break-glass grant for "
            f"{str(values['username'])[:64]!r}: only the person it is for may open one"
        )
    if not any(allowed(role, CLINIC_OBJECT) for role in CLINICAL_ROLES):
        return (
            f"its author {op.author[:64]!r} was not a clinician or a nurse at the op's time: "
            "only they may break the glass"
        )
    opened, expires = grant_time(values["opened_at"]), grant_time(values["expires_at"])
    if opened is None or expires is None:
        return "it opens a break-glass grant whose times are not times"
    if not timedelta(0) < expires - opened <= timedelta(minutes=MAX_MINUTES):
        return (
            f"it opens a break-glass grant lasting {_minutes(expires - opened)} "
            f"(at most {MAX_MINUTES} minutes)"
        )
    if not _near(opened, op.hlc):
        return "it opens a break-glass grant at a time more than a day from the op's own"
    return None


def _review_problem(
    op: Op, before: Summary, doc: RecordDoc, fields: list[str], allowed: Allowed
) -> str | None:
    extra = sorted(set(fields) - REVIEW)
    if extra:
        return (
            f"it changes {', '.join(extra)} of a break-glass grant after it was opened "
            "(only its review may be written)"
        )
    if not allowed("review_audit", CLINIC_OBJECT):
        return (
            f"its author {op.author[:64]!r} was not allowed to make it at the op's time: "
            "reviewing break-glass openings needs an admin"
        )
    for name in sorted(REVIEW & set(fields)):
        held = _values(before, name)
        for value in _new_values(before, doc, name):
            if value in held:
                continue  # a conflict between two reviews, settled by choosing one
            if name == "reviewed_by" and value != op.author:
                return (
                    f"its author {op.author[:64]!r} records a break-glass review by "
                    f"{str(value)[:64]!r}: a review is recorded by the person who made it"
                )
            moment = grant_time(value)
            if name == "reviewed_at" and (moment is None or not _near(moment, op.hlc)):
                return "it records a break-glass review at a time more than a day from the op's"
    return None


def _new_values(before: Summary, doc: RecordDoc, name: str) -> list[object]:
    """The live values of ``name`` that the op wrote (not there before it)."""
    had = before.get(f"r:{name}") or {}
    assert isinstance(had, dict)
    return [e.value for e in crdt.live(doc, name) if e.write_id not in had]


def _values(before: Summary, name: str) -> list[object]:
    """The live values of ``name`` before the op."""
    had = before.get(f"r:{name}") or {}
    assert isinstance(had, dict)
    return [e.value for e in crdt.parse_entries(had)]


def grant_time(value: object) -> datetime | None:
    """A stored time (``break_glass_audit.stamp``), or None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _near(moment: datetime, hlc: str) -> bool:
    wall_ms = parse_hlc(hlc)[0]
    return abs(moment.timestamp() * 1000 - wall_ms) <= OPENED_AT_LEEWAY_MS


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} minutes"
