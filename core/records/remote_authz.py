"""Authorization at remote apply: is the op's verified author allowed to make the change it
makes, with the permissions as they stood at the op's own time (its HLC)?

Ops carry no action name, so the permission is derived from what the op changes: the
fields, lists and texts of its record that differ before and after it is applied to this
replica's document, each mapped by the matrix (``permissions.field_permission``): a note
op that sets ``signed_at`` needs ``sign_note``; a patient op touching ``medications``
needs ``prescribe``; a ``relation`` op needs ``manage_access`` on its patient (or
``manage_staff`` for a role on the clinic); a ``user`` op ``manage_staff``, except a
person changing their own password verifier (clearing their must-change-password flag),
and the recovery key's reset of one (an op authored ``recovery-key`` may change nothing
else). A ``break_glass`` op is judged on what it writes (core/records/remote_break_glass.py);
work on a chart by a grant's person while it was open (grants held here or applied earlier
in the batch: core/records/remote_grants.py) is judged with ``patient:C#break_glass@user:P``.
A record on a chart (note, observation, visit, attachment) never changes patient: an op
that rewrites its ``patient_id`` is refused; one that changes its ``encounter_id`` needs the
permission on the patient it was on before the op as well as after. A record placed under
a visit (a note, a reading, a problem or medication item) must be on that visit's chart
(core/records/visit_chart.py).

The permissions at an op's time (the rule every replica applies, so all decide alike):
every value that a user's ``username``/``role``/``active`` or a tuple's
``object``/``relation``/``subject``/``granted`` register ever held on this replica is kept
with its HLC (table ``authz_writes``, plus the live values of the documents). As of HLC
``h``, each register has the value of its write with the greatest (HLC, write id) not
after ``h``; concurrent writes are thus decided by their HLCs, a grant and a revoke alike.
An op is allowed if its author held the permission as of its HLC, or as of any permission
write up to 24 hours after it (``GRANT_LEEWAY_MS``: clocks are hints, and a grant made where
the clock is ahead must not lose the work of a person whose clock is behind; a revoke
therefore stops ops stamped after it, and is undone for earlier ones only by a grant within
that window). A user exists from their account's first write and has tuples only while
``active`` is not false; a tuple record's ``since`` (written by the upgrade from releases without
authorization) makes its first grant count from that time.

Exempt: ops signed by the clinic CA (the server's own and those it vouched for: they
predate signing, hence authorization), and a clinic's set-up ops on a replica without
accounts (op_trust.permission_exempt decides those).

Not handled (README "Authorization at remote apply"): a tuple change that arrives AFTER an
op it should have refused (an earlier-HLC revoke delivered late) does not un-apply that
op; an op quarantined for want of a grant that arrives late is released when it is sent
again (every sync re-sends quarantined ops) and now passes.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from core.authz.tuples import MemoryTuples, RelationTuple, TupleReader
from core.records import authorize, changes, crdt, remote_break_glass, visit_chart
from core.records.crdt import RecordDoc
from core.records.op_trust import RECOVERY_AUTHOR
from core.records.permissions import CLINIC_OBJECT, OP_FIELDS, WHO, field_permission
from core.records.relations import PATIENT_PREFIX, USER_PREFIX, WILDCARD, roles_of
from core.records.remote_grants import Grants, replica_grants
from core.records.types import AUTHZ_HISTORY
from core.records.visit_chart import VisitPatient
from core.store.database import Database, Transaction
from core.store.oplog import Op, parse_hlc
from core.store.state_codec import unpack_state

HISTORY_FIELDS = AUTHZ_HISTORY
BREAK_GLASS = "break_glass"
# Records on a patient's chart through their ``patient_id`` (every type the matrix maps
# field by field, but the patient itself).
CHART_RECORDS = frozenset(OP_FIELDS) - {"patient"}
# What registering a patient writes besides ``created_at``: its demographics.
PATIENT_REGISTRATION = frozenset({"family", "given", "birth_date", "sex", "mrn", "phone"})
_LATEST = "~"  # sorts after every HLC
# An op is also allowed if its author held the permission at some permission write up to
# this long after the op's HLC: clocks are hints (an HLC does not follow a clock more than
# oplog.MAX_CLOCK_LEAD_MS ahead), so a person granted a role by an admin whose clock is
# ahead of theirs makes ops stamped "before" the grant, which must not be lost.
GRANT_LEEWAY_MS = 24 * 60 * 60 * 1000


def _wall(hlc: str) -> int:
    try:
        return parse_hlc(hlc)[0]
    except ValueError:
        return 0


@dataclass(frozen=True)
class Write:
    """One value a register held."""

    hlc: str
    write_id: str
    value: Any


@dataclass
class History:
    """The values of user and tuple registers over time (see the module docstring)."""

    writes: dict[str, dict[str, dict[str, Write]]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    new: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    # What was worked out for one epoch (``epoch``: its tuples, its answers); emptied by
    # every change, as epochs are counted afresh when a write comes.
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # Records whose writes a fork shares with the History it was forked from (copied before
    # the fork changes them); empty for a History of its own.
    _shared: set[str] = field(default_factory=set, repr=False, compare=False)
    # What is worked out from every write (``_Index``), kept up to date write by write: a
    # batch of thousands of tuple ops would otherwise work it all out again after each.
    # Built when first needed; shared with forks, and dropped by whichever then changes.
    _index: _Index | None = field(default=None, repr=False, compare=False)
    _index_owned: bool = field(default=False, repr=False, compare=False)

    def fork(self) -> History:
        """A History holding the same writes, and what was worked out from them, that can
        be added to without changing this one (whose writes must not change while forks
        live: a kept History, see ``cached_history``). Costs a copy of two flat dicts, not
        of the writes: a record's are copied when the fork first adds to it."""
        forked = History(dict(self.writes), dict(self.types), [], dict(self._memo))
        forked._shared = set(self.writes)
        forked._index = self._index
        self._index_owned = False  # neither may change the shared one
        return forked

    def add(self, record_id: str, type_name: str, fld: str, w: Write, fresh: bool) -> None:
        """Remember one write (``fresh``: not yet in ``authz_writes``)."""
        if record_id in self._shared:
            self._shared.discard(record_id)
            self.writes[record_id] = {f: dict(ws) for f, ws in self.writes[record_id].items()}
        by_field = self.writes.setdefault(record_id, {}).setdefault(fld, {})
        kind = self.types.get(record_id)
        if kind == type_name and w.write_id in by_field:
            return
        if not self._index_owned:
            self._index = None  # shared with a fork: built afresh when next needed
        if kind != type_name:
            self.types[record_id] = type_name
            self._memo.clear()
            if kind is not None:
                self._index = None  # a record of another type now: rare, worked out afresh
            elif self._index is not None:
                self._index.pos[record_id] = len(self._index.pos)
        if w.write_id in by_field:
            return
        by_field[w.write_id] = w
        self._memo.clear()
        if self._index is not None:
            self._index.note(self, record_id, type_name, fld, w)
            self._index.place(self, record_id, type_name, fld)
        if fresh:
            self.new.append((w.write_id, record_id, fld, crdt_json(w.value), w.hlc))

    def add_doc(self, record_id: str, type_name: str, doc: RecordDoc, fresh: bool) -> None:
        """Remember the document's live values of the fields that matter."""
        fields = HISTORY_FIELDS.get(type_name)
        if fields is None:
            return
        for fld, entries in crdt.all_live(doc).items():
            if fld in fields:
                for e in entries:
                    self.add(record_id, type_name, fld, Write(e.hlc, e.write_id, e.value), fresh)

    def value_at(self, record_id: str, fld: str, hlc: str) -> tuple[bool, Any]:
        """(whether the register had been written by ``hlc``, its value then)."""
        writes = self.writes.get(record_id, {}).get(fld, {})
        since_field = _SINCE_FIELDS.get(fld)
        if since_field is not None:
            since = self.value_at(record_id, since_field, _LATEST)[1]
            if isinstance(since, str) and since and writes:
                first = min(writes.values(), key=lambda w: (w.hlc, w.write_id))
                if first.value not in (None, False, "") and since < first.hlc:
                    writes = {**writes, first.write_id: Write(since, first.write_id, first.value)}
        best: Write | None = None
        for w in writes.values():
            if w.hlc <= hlc and (best is None or (w.hlc, w.write_id) > (best.hlc, best.write_id)):
                best = w
        return (best is not None, None if best is None else best.value)

    def moments(self, hlc: str) -> list[str]:
        """The times an op stamped ``hlc`` is judged at: its own, and every permission
        write up to ``GRANT_LEEWAY_MS`` after it (a grant made on a workstation whose clock
        was ahead of the op's: see the module docstring)."""
        wall = parse_hlc(hlc)[0]
        marks = self._boundaries()
        if marks is not None:
            # The same set as below, from the writes' HLCs sorted once: only those after
            # ``hlc`` are looked at (usually none: permissions change rarely).
            stamps, walls = marks[1], marks[2]
            start = bisect.bisect_right(stamps, hlc)
            later_sorted = [
                stamps[i] for i in range(start, len(stamps)) if walls[i] <= wall + GRANT_LEEWAY_MS
            ]
            return [hlc, *later_sorted]
        later = {
            w.hlc
            for fields in self.writes.values()
            for writes in fields.values()
            for w in writes.values()
            if w.hlc > hlc and _wall(w.hlc) <= wall + GRANT_LEEWAY_MS
        }
        return [hlc, *sorted(later)]

    def active_at(self, hlc: str) -> dict[str, str | None]:
        """username -> primary role of accounts that existed and were active at ``hlc``."""
        out: dict[str, str | None] = {}
        for rid, kind in self.types.items():
            if kind != "user":
                continue
            made, name = self.value_at(rid, "username", hlc)
            if not made or not isinstance(name, str):
                continue
            if self.value_at(rid, "active", hlc)[1] is False:
                continue
            # A nurse's ``role`` says front_desk for releases that refuse nurse; the real
            # role is ``staff_role`` where set (core/records/types.py, USER).
            role = self.value_at(rid, "staff_role", hlc)[1] or self.value_at(rid, "role", hlc)[1]
            out[name] = role if isinstance(role, str) else None
        return out

    def index(self) -> _Index:
        """What is worked out from every write (built now if it was not kept)."""
        if self._index is None:
            self._index = _Index.build(self)
            self._index_owned = True
        return self._index

    def _boundaries(self) -> tuple[list[str], list[str], list[int]] | None:
        """Every HLC the permissions can change at, sorted: the writes' own and the
        ``since`` values that move a first grant earlier (``value_at``); then the writes'
        distinct HLCs, sorted, and their wall times (for ``moments``). None when a stamp is
        not text (a malformed entry): callers then take the long way, which fails as before.

        The permissions as of ``hlc`` depend only on which of these stamps are not after
        ``hlc`` (every comparison ``value_at`` makes is one of them against ``hlc``), so
        ``epoch(hlc)``, the count of such stamps, names them: equal epochs, equal tuples."""
        found = self.index()
        return None if found.malformed else (found.every, found.ordered, found.walls)

    def epoch(self, hlc: str) -> int | None:
        """How many permission stamps are not after ``hlc`` (see ``_boundaries``): ops
        whose moments share an epoch are judged against the same tuples. None: unknown."""
        marks = self._boundaries()
        return None if marks is None else bisect.bisect_right(marks[0], hlc)

    def tuples_at(self, hlc: str) -> list[RelationTuple]:
        """Role and explicit tuples as of ``hlc`` (deactivated users have none)."""
        at = self.epoch(hlc)
        if at is None:
            return self._tuples_at(hlc)
        key = f"tuples:{at}"
        if key not in self._memo:
            self._memo[key] = self._tuples_at(hlc)
        found: list[RelationTuple] = self._memo[key]
        return found

    def _tuples_at(self, hlc: str) -> list[RelationTuple]:
        active = self.active_at(hlc)
        found = [
            RelationTuple(CLINIC_OBJECT, role, USER_PREFIX + name)
            for name, role in active.items()
            if role
        ]
        for rid, kind in self.types.items():  # roles beside the primary one
            if kind != "user":
                continue
            name = self.value_at(rid, "username", hlc)[1]
            if isinstance(name, str) and name in active:
                found += [
                    RelationTuple(CLINIC_OBJECT, role, USER_PREFIX + name)
                    for role in roles_of(self.value_at(rid, "other_roles", hlc)[1])
                ]
        for rid, kind in self.types.items():
            if kind != "relation" or self.value_at(rid, "granted", hlc)[1] is not True:
                continue
            parts = self._parts(rid)
            if parts is None:
                continue
            obj, rel, sub = parts
            if (
                sub != WILDCARD
                and sub.startswith(USER_PREFIX)
                and sub[len(USER_PREFIX) :] not in active
            ):
                continue
            found.append(RelationTuple(obj, rel, sub))
        return found

    def _parts(self, record_id: str) -> tuple[str, str, str] | None:
        """A tuple record's object, relation and subject (their latest values), if each is
        text that is not empty."""
        parts = [self.value_at(record_id, f, _LATEST)[1] for f in ("object", "relation", "subject")]
        if not all(isinstance(p, str) and p for p in parts):
            return None
        obj, rel, sub = (str(p) for p in parts)
        return obj, rel, sub

    def reader_at(self, hlc: str) -> TuplesAt:
        """The tuples as of ``hlc`` (the same as ``tuples_at``), each read worked out when
        the engine asks for it instead of all of them at once."""
        return TuplesAt(self, self.index(), hlc)


@dataclass
class _Index:
    """What a History works out from all its writes, updated one write at a time (adding a
    write changes it for that one record): the permission stamps (``History._boundaries``),
    where each tuple record and account is found, and every object a tuple has named."""

    every: list[str] = field(default_factory=list)
    ordered: list[str] = field(default_factory=list)
    walls: list[int] = field(default_factory=list)
    malformed: bool = False  # a stamp that is not text
    # Each user and tuple record's place in ``History.types``.
    pos: dict[str, int] = field(default_factory=dict)
    # Tuple records by their latest (object, relation), when object, relation and subject
    # are all text that is not empty (``History._parts``); their subject.
    by_key: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Accounts by every username they ever had, and by every role (primary, staff or
    # other) they ever held: where to look for the holders of a name or a role.
    by_name: dict[str, set[str]] = field(default_factory=dict)
    by_role: dict[str, set[str]] = field(default_factory=dict)
    # Every object, and every subject's object, a tuple has named at any time (more than
    # any one time's tuples name; see ``RemotePermissions._held``).
    named: set[str] = field(default_factory=lambda: {CLINIC_OBJECT})
    _stamps: set[str] = field(default_factory=set)
    _every: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, history: History) -> _Index:
        """Worked out from every write of ``history``."""
        index = cls(pos={rid: i for i, rid in enumerate(history.types)})
        for rid, fields in history.writes.items():
            kind = history.types.get(rid, "")
            for fld, ws in fields.items():
                for w in ws.values():
                    index.note(history, rid, kind, fld, w)
            if kind == "relation":
                index.place(history, rid, kind, "object")
        return index

    def note(self, history: History, rid: str, kind: str, fld: str, w: Write) -> None:
        """One more write."""
        hlc: Any = w.hlc
        if not isinstance(hlc, str):
            self.malformed = True
        elif hlc not in self._stamps:
            self._stamps.add(hlc)
            at = bisect.bisect_right(self.ordered, hlc)
            self.ordered.insert(at, hlc)
            self.walls.insert(at, _wall(hlc))
            self._mark(hlc)
        value = w.value
        if fld in _SINCE_VALUES and isinstance(value, str):
            self._mark(value)
        if kind == "relation" and fld in ("object", "subject") and isinstance(value, str):
            self.named.add(value.partition("#")[0] if fld == "subject" else value)
        elif kind == "user":
            if fld == "username" and isinstance(value, str):
                self.by_name.setdefault(value, set()).add(rid)
                self.named.add(USER_PREFIX + value)
            elif fld in ("role", "staff_role") and isinstance(value, str):
                self.by_role.setdefault(value, set()).add(rid)
            elif fld == "other_roles":
                for role in roles_of(value):
                    self.by_role.setdefault(role, set()).add(rid)

    def _mark(self, stamp: str) -> None:
        if stamp not in self._every:
            self._every.add(stamp)
            bisect.insort(self.every, stamp)

    def place(self, history: History, rid: str, kind: str, fld: str) -> None:
        """File a tuple record under its latest object and relation, after a write to one
        of the registers that name it."""
        if kind != "relation" or fld not in ("object", "relation", "subject"):
            return
        was = self.keys.pop(rid, None)
        if was is not None:
            del self.by_key[was][rid]
        parts = history._parts(rid)
        if parts is not None:
            self.keys[rid] = (parts[0], parts[1])
            self.by_key.setdefault((parts[0], parts[1]), {})[rid] = parts[2]


class TuplesAt:
    """The tuples as of one HLC as a TupleReader: each ``read`` works out only the
    subjects it is asked for (from ``_Index``), the same ones ``History.tuples_at`` lists."""

    def __init__(self, history: History, index: _Index, hlc: str) -> None:
        self.history, self.index, self.hlc = history, index, hlc
        self._reads: dict[tuple[str, str], tuple[str, ...]] = {}
        self._accounts: dict[str, tuple[bool, str | None]] = {}

    def token(self) -> dict[str, int]:
        """No version vector: these tuples are history, not a replica's current view."""
        return {}

    def read(self, object: str, relation: str) -> tuple[str, ...]:
        """The subjects of every tuple ``object#relation@subject`` as of the HLC."""
        key = (object, relation)
        found = self._reads.get(key)
        if found is None:
            found = self._reads[key] = tuple(dict.fromkeys(self._subjects(object, relation)))
        return found

    def _subjects(self, obj: str, relation: str) -> Iterable[str]:
        history, index, hlc = self.history, self.index, self.hlc
        if obj == CLINIC_OBJECT and relation:
            # Roles: a name's primary role (``active_at``) and each account's other roles.
            for rid in sorted(index.by_role.get(relation, ()), key=index.pos.__getitem__):
                name = history.value_at(rid, "username", hlc)[1]
                if not isinstance(name, str):
                    continue
                active, role = self.account(name)
                if not active:
                    continue
                if role == relation:
                    yield USER_PREFIX + name
                if relation in roles_of(history.value_at(rid, "other_roles", hlc)[1]):
                    yield USER_PREFIX + name
        for rid, sub in index.by_key.get((obj, relation), {}).items():
            if history.value_at(rid, "granted", hlc)[1] is not True:
                continue
            if (
                sub != WILDCARD
                and sub.startswith(USER_PREFIX)
                and not self.account(sub[len(USER_PREFIX) :])[0]
            ):
                continue
            yield sub

    def account(self, name: str) -> tuple[bool, str | None]:
        """(whether ``name`` is an active account's, its primary role): ``active_at``'s
        entry for it, worked out from the accounts that ever had the name only."""
        found = self._accounts.get(name)
        if found is None:
            history, index, hlc = self.history, self.index, self.hlc
            found = (False, None)
            # The last such account in ``types`` decides the role, as in ``active_at``.
            for rid in sorted(index.by_name.get(name, ()), key=index.pos.__getitem__):
                if history.value_at(rid, "username", hlc) != (True, name):
                    continue
                if history.value_at(rid, "active", hlc)[1] is False:
                    continue
                role = (
                    history.value_at(rid, "staff_role", hlc)[1]
                    or history.value_at(rid, "role", hlc)[1]
                )
                found = (True, role if isinstance(role, str) else None)
            self._accounts[name] = found
        return found


class _ChartTuples:
    """A reader's tuples plus the one every chart has: it belongs to the clinic; and the
    break-glass grant of ``granted`` (a username) on it, when one was open."""

    def __init__(self, tuples: TuplesAt, chart: str, granted: str | None = None) -> None:
        self.tuples, self.chart, self.granted = tuples, chart, granted

    def token(self) -> dict[str, int]:
        """As the reader's."""
        return self.tuples.token()

    def read(self, object: str, relation: str) -> tuple[str, ...]:
        """As the reader's, with ``chart#clinic@clinic:clinic``."""
        found = self.tuples.read(object, relation)
        if object == self.chart and relation == "clinic" and CLINIC_OBJECT not in found:
            found = (*found, CLINIC_OBJECT)
        if object == self.chart and relation == BREAK_GLASS and self.granted is not None:
            # As the local reader: a deactivated person's grant gives nothing.
            subject = USER_PREFIX + self.granted
            if subject not in found and self.tuples.account(self.granted)[0]:
                found = (*found, subject)
        return found


# A register whose first value counts from an earlier HLC written in another register
# (the upgrade from releases without authorization: "from the clinic's start").
_SINCE_FIELDS = {"granted": "since", "other_roles": "other_roles_since"}
_SINCE_VALUES = frozenset(_SINCE_FIELDS.values())
# One epoch's tuples, and the answers worked out from them.
_Epoch = tuple["TuplesAt", dict[tuple[str, str | None, str, bool], bool]]
# A record id that cannot be mistaken for a wildcard, a userset or another object.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.-]+")


def crdt_json(value: Any) -> str:
    """A register value as stored in ``authz_writes``."""
    import json

    return json.dumps(value)


def load_history(db: Database | Transaction) -> History:
    """This replica's history: ``authz_writes`` and the live values of every user and
    tuple document (which covers records held from before V10, or from a snapshot)."""
    import json

    history = History()
    types = {str(r): str(t) for r, t in db.query(
        "SELECT id, type FROM record_states WHERE type IN ('user', 'relation')"
    )}  # fmt: skip
    for wid, rid, fld, value, hlc in db.query(
        "SELECT write_id, record_id, field, value, hlc FROM authz_writes"
    ):
        kind = types.get(str(rid))
        if kind is not None:
            history.add(
                str(rid), kind, str(fld), Write(str(hlc), str(wid), json.loads(value)), False
            )
    for rid, state in db.query(
        "SELECT id, state FROM record_states WHERE type IN ('user', 'relation')"
    ):
        doc = crdt.load(unpack_state(state), 0)
        history.add_doc(str(rid), types[str(rid)], doc, True)
    return history


# Histories kept between batches, by the permission-history token of the database they
# were built for (``changes.authz_token``): the newest few, one per replica in use (a
# workstation has one; the embedded server one per clinic).
KEPT_HISTORIES = 16
_kept: OrderedDict[str, History] = OrderedDict()
_kept_lock = threading.Lock()


def cached_history(db: Database | Transaction) -> History:
    """``load_history``, unless a History was kept for the database's current
    permission-history token (no user or tuple record stored since): then a fork of it.
    Rebuilding it reads and decodes every user and tuple record, for every batch, which
    grows with the care-team tuples (README, "Performance: the one-edit sync")."""
    token = changes.authz_token(db)
    kept = None if token is None else kept_history(token)
    return load_history(db) if kept is None else kept


def kept_history(token: str) -> History | None:
    """A fork of the History kept under ``token`` (:func:`keep_history`), if there is one."""
    with _kept_lock:
        kept = _kept.get(token)
        if kept is None:
            return None
        _kept.move_to_end(token)
    return kept.fork()


def token_to_keep(tx: Transaction, before: str | None) -> str | None:
    """The token to keep a batch's History under once ``tx`` commits, given the token
    ``before`` the batch: the same one if the batch stored no user or tuple record (the
    History is then the one loaded, worked out further); None if it stored one (the next
    batch builds the History afresh from what is stored, as every batch did before they
    were kept); a first one, written now, for a database that has none yet."""
    now = changes.authz_token(tx)
    if now is None:
        return changes.new_authz_token(tx)
    return now if now == before else None


def keep_history(token: str, history: History) -> None:
    """Keep ``history`` (saved: nothing in ``history.new``) for batches to come, under the
    token its database held when the batch that used it committed. Only after the commit:
    a History kept for a batch rolled back would hold writes the database does not."""
    if history.new:
        return
    with _kept_lock:
        _kept[token] = history
        _kept.move_to_end(token)
        while len(_kept) > KEPT_HISTORIES:
            _kept.popitem(last=False)


def save_history(tx: Transaction, history: History) -> None:
    """Keep the writes seen since the history was loaded."""
    if history.new:
        tx.executemany(
            "INSERT INTO authz_writes (write_id, record_id, field, value, hlc) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (write_id) DO NOTHING",
            history.new,
        )
        history.new = []


# ----- what an op changes ----------------------------------------------------------------

Summary = dict[str, Any]
# A field's entries in a summary: id -> content as stored (an op may rewrite an entry in
# place, under the same id: that changes its field).
SummaryEntries = dict[str, str]


def summary(doc: RecordDoc) -> Summary:
    """What of a document an op can change, per field (compared before and after): each
    field's entries with their content, so that an entry rewritten in place (its key kept,
    which no Careline write does) counts as a change of its field like any other."""
    out: Summary = {}
    # One pycrdt transaction for every read (each read would otherwise open its own: this
    # runs twice per op at remote apply).
    with doc.transaction():
        # Only roots that exist are read: reading one creates it, changing the document.
        roots = crdt.root_names(doc)
        if "r" in roots:
            for fld, entries in _entries(crdt.raw_entries(doc, "r")).items():
                out[f"r:{fld}"] = entries
        if "s" in roots:
            # Parsed too, as before: a malformed element is refused here, naming the op.
            crdt.all_elements(doc, True, roots)
            for fld, entries in _entries(crdt.raw_entries(doc, "s")).items():
                out[f"s:{fld}"] = entries
        if "h" in roots:
            crdt.all_history(doc, True, roots)
            for fld, entries in _entries(crdt.raw_entries(doc, "h")).items():
                out[f"h:{fld}"] = entries
        for root in roots:
            if root.startswith("t:"):
                out[root] = crdt.text_value(doc, root[2:])
    return out


def _entries(raw: dict[str, Any]) -> dict[str, SummaryEntries]:
    """A root map's entries (``<field>/<id>`` -> content) by field. Content that is not
    text (only a malformed update leaves it; deriving the record refuses it) is compared
    by its repr."""
    by_field: dict[str, SummaryEntries] = {}
    for key, content in raw.items():
        fld, _, unique = key.partition("/")
        if not unique:
            raise ValueError(f"malformed key {key!r}")
        entries = by_field.get(fld)
        if entries is None:
            entries = by_field[fld] = {}
        entries[unique] = content if type(content) is str else repr(content)
    return by_field


def changed_fields(before: Summary, after: Summary) -> list[str]:
    """Field and list names whose content the op changed."""
    names = {
        k.split(":", 1)[1] for k in before.keys() | after.keys() if before.get(k) != after.get(k)
    }
    return sorted(names)


@dataclass
class RemotePermissions:
    """What a replica checks remote ops' permissions against (one per batch)."""

    history: History
    # Break-glass grants held here and applied earlier in the batch (remote_grants).
    grants: Grants = field(default_factory=Grants)

    def problem(
        self,
        op: Op,
        type_name: str,
        before: Summary,
        doc: RecordDoc,
        after: Summary | None = None,
        *,
        visit_patient: VisitPatient,
    ) -> str | None:
        """Why ``op`` (already applied to ``doc``) may not be made by its author, or None
        (``after``: ``summary(doc)``, when the caller has read it already;
        ``visit_patient``: the patient of a visit this replica holds, batch included)."""
        if after is None:
            after = summary(doc)
        fields = changed_fields(before, after)
        if not fields:
            return None
        if type_name == "user":
            name = crdt.winner(doc, "username")
            own = name is not None and name.value == op.author
            # The recovery key resets the password of an account that exists.
            recovery = name is not None and op.author == RECOVERY_AUTHOR
            if (own or recovery) and _password_only(fields, doc):
                return None  # one's own password, or the recovery key's reset of one
            if op.author == RECOVERY_AUTHOR:
                return (
                    f"it is authored by the recovery key and changes {', '.join(fields)}: the "
                    "recovery key only sets a person's password (its verifier, clearing the "
                    "must-change-password flag)"
                )
        if type_name == BREAK_GLASS:
            return remote_break_glass.problem(op, before, doc, fields, partial(self.allowed, op))
        if "patient_id" in fields and type_name in CHART_RECORDS and before.get("r:patient_id"):
            # No Careline write moves a record to another chart (a merge links the charts
            # and rewrites nothing): an op that does is refused, whoever made it.
            return (
                f"it moves a {type_name} to another patient's chart: a record's patient never "
                "changes after it is made (a merge links the charts instead)"
            )
        # A record under a visit is on that visit's chart, whoever made it (no Careline
        # write places one under another chart's visit): core/records/visit_chart.py.
        misplaced = visit_chart.problem(op.record_id, type_name, before, after, visit_patient)
        if misplaced is not None:
            return misplaced
        if type_name == "patient" and "created_at" in fields:
            # Registering a patient (the op that creates the record) needs register_patient
            # only, as locally: its demographics are part of the registration.
            fields = [f for f in fields if f not in PATIENT_REGISTRATION]
        needed: set[tuple[str, str]] = set()
        objects: dict[str, str] = {}  # the same for every field (a tuple op writes five)
        for fld in fields:
            found = field_permission(type_name, fld)
            if found is None:
                return None  # a type the matrix does not govern (a newer version's)
            permission, on = found
            obj = objects.get(on)
            if obj is None:
                obj = objects[on] = self._object(type_name, on, op, doc)
            if type_name == "relation" and obj == CLINIC_OBJECT:
                permission = "manage_staff"  # a role, not access to a chart
            needed.add((permission, obj))
        if type_name in CHART_RECORDS and {"patient_id", "encounter_id"} & set(fields):
            # Where the record was before the op counts too: a record is never moved off a
            # chart (or placed under another visit) by someone who may not write on it there.
            was = _before_winner(before, "patient_id")
            if was:
                needed |= {(p, PATIENT_PREFIX + was) for p, o in needed if o != CLINIC_OBJECT}
        if type_name == "patient" and "merged_into" in fields:
            # A merge moves the duplicate's records onto the survivor's chart: as locally
            # (Merges.merge), the author needs merge_patients on both charts.
            needed |= {("merge_patients", PATIENT_PREFIX + s) for s in _merged_into(before, doc)}
        for permission, obj in sorted(needed):
            if not self.allowed(op, permission, obj):
                return (
                    f"its author {op.author[:64]!r} was not allowed to make it at the op's "
                    f"time: {permission.replace('_', ' ')} needs {WHO.get(permission, permission)}"
                )
        return None

    def allowed(self, op: Op, permission: str, obj: str) -> bool:
        """Whether ``op``'s author held ``permission`` (or a role) on ``obj`` at the op's
        time: as of its HLC or of a permission write within ``GRANT_LEEWAY_MS`` after it;
        on a chart, with the break-glass grant that was open for them at the op's HLC."""
        moments = self.history.moments(op.hlc)
        if any(self._held(at, permission, obj, op.author) for at in moments):
            return True
        # A grant only ever adds to what its person holds (the model names break_glass in
        # no exclusion): asked only when the tuples alone refuse.
        if not obj.startswith(PATIENT_PREFIX) or not self.grants.open_at(
            obj[len(PATIENT_PREFIX) :], op.author, op.hlc
        ):
            return False
        return any(self._held(at, permission, obj, op.author, True) for at in moments)

    def _held(
        self, hlc: str, permission: str, obj: str, author: str, granted: bool = False
    ) -> bool:
        """Whether ``author`` held ``permission`` on ``obj`` as of ``hlc`` (``granted``: with
        ``obj#break_glass@user:author`` added, a grant open at the op's time)."""
        history = self.history
        at = history.epoch(hlc)
        engine = authorize.model_engine()
        if at is None or not engine.acyclic:
            # A malformed stamp (judged the long way, which then fails), or a model where
            # the order tuples are read in could change an answer: all the tuples, in order.
            listed = history.tuples_at(hlc)
            if granted and author in history.active_at(hlc):
                listed = [*listed, RelationTuple(obj, BREAK_GLASS, USER_PREFIX + author)]
            return self._check(listed, permission, obj, author)
        memo = history._memo
        key = f"held:{at}"
        seen: _Epoch | None = memo.get(key)
        if seen is None:
            seen = memo[key] = (history.reader_at(hlc), {})
        tuples, answers = seen
        # Every chart belongs to the clinic, and a chart no tuple names is like any other:
        # the answer for one holds for all of them (the engine reads tuples by name only),
        # so it is worked out once per permission, author and epoch, not once per op. A
        # chart some tuple named at any time is judged on its own (a few more than needed).
        ident = obj[len(PATIENT_PREFIX) :] if obj.startswith(PATIENT_PREFIX) else ""
        # A grant is on one chart: answers with one are never shared with other charts,
        # nor with answers without one (whether a grant was open is the op's, not cached).
        unnamed = (
            not granted
            and obj not in history.index().named
            and _PLAIN_ID.fullmatch(ident) is not None
        )
        question = (permission, None if unnamed else obj, author, granted)  # None: any chart
        answer = answers.get(question)
        if answer is None:
            reader: TupleReader = (
                _ChartTuples(tuples, obj, author if granted else None)
                if obj.startswith(PATIENT_PREFIX)
                else tuples
            )
            answer = engine.with_tuples(reader).check(obj, permission, USER_PREFIX + author)
            answers[question] = answer
        return answer

    @staticmethod
    def _check(tuples: list[RelationTuple], permission: str, obj: str, author: str) -> bool:
        if obj.startswith(PATIENT_PREFIX):
            tuples = [*tuples, RelationTuple(obj, "clinic", CLINIC_OBJECT)]
        engine = authorize.model_engine().with_tuples(MemoryTuples(tuples))
        return engine.check(obj, permission, USER_PREFIX + author)

    @staticmethod
    def _object(type_name: str, on: str, op: Op, doc: RecordDoc) -> str:
        if on == "clinic":
            return CLINIC_OBJECT
        if type_name == "patient":
            return PATIENT_PREFIX + op.record_id
        if type_name == "relation":
            obj = crdt.winner(doc, "object")
            value = str(obj.value) if obj is not None else ""
            return value if value.startswith(PATIENT_PREFIX) else CLINIC_OBJECT
        pid = crdt.winner(doc, "patient_id")
        return PATIENT_PREFIX + (str(pid.value) if pid is not None else "")

    def learn(self, record_id: str, type_name: str, doc: RecordDoc) -> None:
        """An applied op of a user, tuple or break-glass record: its values (a grant) count
        for later ops."""
        if type_name == BREAK_GLASS:
            self.grants.learn(record_id, doc)
        else:
            self.history.add_doc(record_id, type_name, doc, True)


def _password_only(fields: list[str], doc: RecordDoc) -> bool:
    """Whether a user op changes only a password: its verifier, and the must-change-password
    flag only to clear it with a new verifier (a forced change, a first password someone
    else chose; only an administrator may set the flag)."""
    flag = crdt.winner(doc, "must_change_password")
    cleared = "must_change_password" not in fields or (
        "verifier" in fields and flag is not None and not flag.value
    )
    return set(fields) <= {"verifier", "must_change_password"} and cleared


def _before_winner(before: Summary, fld: str) -> str:
    """The displayed value of register ``fld`` before the op ("" if it had none)."""
    entries = crdt.parse_entries(before.get(f"r:{fld}") or {})
    return str(entries[0].value) if entries and entries[0].value else ""


def _merged_into(before: Summary, doc: RecordDoc) -> set[str]:
    """The survivors an op just applied to ``doc`` named in ``merged_into`` (its own
    writes: the live values that were not there before it; an undo writes ``""``)."""
    had = before.get("r:merged_into", {})
    live = crdt.all_live(doc).get("merged_into", [])
    return {str(e.value) for e in live if e.write_id not in had and e.value}


def governed(type_name: str) -> bool:
    """Whether ops of this type are checked (types of this version, minus the clinic's
    set-up types handled by op_trust)."""
    return type_name in ("patient", "note", "observation", "encounter", "attachment",
                         "appointment", "relation", "user", "clinic", BREAK_GLASS)  # fmt: skip


def for_replica(db: Database | Transaction) -> RemotePermissions | None:
    """A SQLCipher replica's remote permissions (None while enforcement is off)."""
    if not authorize.ENFORCING:
        return None
    return RemotePermissions(cached_history(db), Grants(replica_grants(db)))


def tuples_of(history: History, hlc: str) -> Iterable[RelationTuple]:
    """The tuples as of ``hlc`` (tests and the README's rule)."""
    return history.tuples_at(hlc)
