"""Break-glass grants as remote apply sees them: was a grant of person P on chart C open
when an op of P's was stamped (README "Break-glass", "Authorization at remote apply")?

The grants counted are the ones this replica holds (read when first asked about a person
and a chart) and the ones applied earlier in the same batch (:meth:`Grants.learn`, called
for each ``break_glass`` op the batch accepts: remote_break_glass judged it first). An
open grant adds the tuple ``patient:C#break_glass@user:P`` to the permissions as of the
op's time, which gives exactly what the local API gives under break-glass (the model's
``clinical_access`` for a clinician or a nurse; nothing for anyone else), no more.

When a grant is open. Its ``opened_at``/``expires_at`` come from the opening workstation's
clock, an op's HLC from its clinic time (the clock corrected by the server-measured offset,
core/store/clinic_time.py): the two may be hours apart on an honest workstation, which is
why the grant checks let ``opened_at`` be up to a day from the opening op's HLC
(remote_break_glass.OPENED_AT_LEEWAY_MS). So the grant's times are read on the HLC's clock:
shifted by how far ``opened_at`` was from the opening op's own HLC. An op stamped ``t``
falls under the grant when ``opened_at <= t + shift <= expires_at`` give or take
``oplog.MAX_CLOCK_LEAD_MS`` (an HLC follows other replicas' stamps up to that far ahead of
its clock). Comparing ``t`` with the grant's times directly, with the grant checks' day of
tolerance, would let a five-minute grant count for two days; this way a grant counts for
its own length (at most ``MAX_MINUTES``) and a few minutes, wherever the clocks stood.

A grant held here that no longer has the shape the grant checks demand (one patient, one
person, times a day at most from its op's, lasting at most ``MAX_MINUTES``: one stored
before remote apply judged grants) counts for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from core.records import crdt
from core.records.break_glass_audit import MAX_MINUTES
from core.records.crdt import RecordDoc
from core.records.remote_break_glass import OPENED_AT_LEEWAY_MS, grant_time
from core.store.database import Database, Transaction
from core.store.oplog import MAX_CLOCK_LEAD_MS, parse_hlc
from core.store.state_codec import unpack_state

# The grants of one person on one chart held by this replica (their documents).
Stored = Callable[[str, str], Iterable[tuple[str, RecordDoc]]]


@dataclass(frozen=True)
class Span:
    """When, on the HLC's clock (milliseconds), a grant of ``username`` on ``patient_id``
    counts."""

    patient_id: str
    username: str
    start_ms: int
    end_ms: int

    def covers(self, wall_ms: int) -> bool:
        """Whether an op stamped at ``wall_ms`` falls under the grant."""
        return self.start_ms - MAX_CLOCK_LEAD_MS <= wall_ms <= self.end_ms + MAX_CLOCK_LEAD_MS


def span_of(doc: RecordDoc) -> Span | None:
    """When a grant's document counts (see the module docstring), or None if it does not
    have a grant's shape."""
    values: dict[str, str] = {}
    opening_hlc = ""
    for name in ("patient_id", "username", "opened_at", "expires_at"):
        live = crdt.live(doc, name)
        if len(live) != 1 or not isinstance(live[0].value, str) or not live[0].value.strip():
            return None
        values[name] = live[0].value
        if name == "opened_at":
            opening_hlc = live[0].hlc
    opened, expires = grant_time(values["opened_at"]), grant_time(values["expires_at"])
    try:
        op_wall = parse_hlc(opening_hlc)[0]
    except ValueError:
        return None
    if opened is None or expires is None:
        return None
    if not timedelta(0) < expires - opened <= timedelta(minutes=MAX_MINUTES):
        return None
    opened_ms = int(opened.timestamp() * 1000)
    if abs(opened_ms - op_wall) > OPENED_AT_LEEWAY_MS:
        return None
    length_ms = int((expires - opened).total_seconds() * 1000)
    return Span(values["patient_id"], values["username"], op_wall, op_wall + length_ms)


@dataclass
class Grants:
    """The break-glass grants one batch's ops are judged with (one per RemotePermissions):
    those stored here (``stored``, read once per person and chart, when first asked) and
    those the batch applied so far (``learn``)."""

    stored: Stored | None = None
    # Grant id -> span, by (patient, person): what was read or learnt.
    _spans: dict[tuple[str, str], dict[str, Span]] = field(default_factory=dict)
    _read: set[tuple[str, str]] = field(default_factory=set)

    def open_at(self, patient_id: str, username: str, hlc: str) -> bool:
        """Whether a grant of ``username`` on ``patient_id`` counts for an op stamped
        ``hlc``."""
        try:
            wall = parse_hlc(hlc)[0]
        except ValueError:
            return False
        key = (patient_id, username)
        if key not in self._read:
            self._read.add(key)
            for grant_id, doc in self.stored(patient_id, username) if self.stored else ():
                self._keep(grant_id, doc)
        return any(s.covers(wall) for s in self._spans.get(key, {}).values())

    def learn(self, grant_id: str, doc: RecordDoc) -> None:
        """A ``break_glass`` op the batch applied (judged and accepted): its grant counts
        for the batch's later ops."""
        self._keep(grant_id, doc)

    def _keep(self, grant_id: str, doc: RecordDoc) -> None:
        span = span_of(doc)
        for spans in self._spans.values():
            spans.pop(grant_id, None)  # a grant's id names one grant, wherever it was filed
        if span is not None:
            self._spans.setdefault((span.patient_id, span.username), {})[grant_id] = span


def replica_grants(db: Database | Transaction) -> Stored:
    """The grants a SQLCipher replica holds, by person and chart: the documents of the
    rows of its ``break_glass`` table naming them (none on a replica without the table)."""

    def stored(patient_id: str, username: str) -> list[tuple[str, RecordDoc]]:
        if not db.query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'break_glass'"
        ):
            return []
        rows = db.query(
            "SELECT s.id, s.state FROM record_states s JOIN break_glass g ON g.id = s.id "
            "WHERE g.patient_id = ? AND g.username = ? AND s.type = 'break_glass'",
            (patient_id, username),
        )
        return [(str(rid), crdt.load(unpack_state(state), 0)) for rid, state in rows]

    return stored
