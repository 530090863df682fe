"""Relation tuples as records, and the tuple reader the authorization engine checks against.

A tuple ``object#relation@subject`` is a ``relation`` record (core/records/types.py) whose
id is derived from the tuple, so granting it on two workstations is one record and a grant
concurrent with a revoke is a register conflict on ``granted`` (shown in the conflict
inbox). Grants and revokes go through the one write path (``Database.write`` + ``change``):
audited, synced, verified on every replica like any other op.

The reader (:class:`StoreTuples`) yields, over this replica's derived tables:

- explicit tuples: ``relation`` records whose ``granted`` is true;
- role tuples: ``clinic:clinic#<role>@user:<name>`` for every ACTIVE user's ``role`` field
  (the primary role older releases read), on top of explicit role tuples;
- ``patient:P#clinic@clinic:clinic`` for every patient (one clinic per store);
- break-glass grants while unexpired: ``patient:P#break_glass@user:U``, read from the
  ``break_glass`` table of the break-glass branch when this replica has one
  (:func:`break_glass_subjects` is the hook).

A deactivated user has no tuples at all: subjects ``user:<name>`` of inactive (or unknown)
accounts are dropped from every answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.authz.tuples import RelationTuple
from core.records import crdt
from core.records.changes import change
from core.records.crdt import RecordDoc
from core.records.errors import ValidationError
from core.records.permissions import CLINIC_OBJECT, ROLES
from core.store import oplog
from core.store.database import Database, Transaction, utc_now

if TYPE_CHECKING:
    from core.records.clinic import ClinicRecords

USER_PREFIX = "user:"
WILDCARD = "user:*"  # every user (``restricted`` is written with it)
PATIENT_PREFIX = "patient:"
PATIENT_RELATIONS = ("care_team", "restricted")


def relation_id(t: RelationTuple) -> str:
    """The record id of a tuple: the same on every replica."""
    text = f"{t.object}#{t.relation}@{t.subject}"
    return "rel:" + hashlib.sha256(text.encode()).hexdigest()[:24]


def parse_tuple(text: str) -> RelationTuple:
    """``patient:P#care_team@user:alice`` -> its tuple (ValidationError names the problem)."""
    obj, hash_, rest = text.partition("#")
    relation, at, subject = rest.partition("@")
    if not (hash_ and at and obj and relation and subject):
        raise ValidationError("tuple", f"{text!r} is not object#relation@subject")
    return RelationTuple(obj.strip(), relation.strip(), subject.strip())


def _check(t: RelationTuple) -> None:
    if t.object == CLINIC_OBJECT:
        if t.relation not in ROLES:
            raise ValidationError("relation", f"a clinic role is one of {', '.join(ROLES)}")
    elif t.object.startswith(PATIENT_PREFIX):
        if t.relation not in PATIENT_RELATIONS:
            raise ValidationError(
                "relation", f"a chart's relation is one of {', '.join(PATIENT_RELATIONS)}"
            )
    else:
        raise ValidationError("object", f"{t.object!r} is neither clinic:clinic nor a patient")
    if not (t.subject.startswith(USER_PREFIX) or t.subject.startswith("clinic:")):
        raise ValidationError("subject", f"{t.subject!r} is not user:<name> or a userset")


def action_for(t: RelationTuple, grant: bool) -> str:
    """The audited action of granting or revoking ``t`` (permission matrix names)."""
    kind = "role" if t.object == CLINIC_OBJECT else "access"
    return f"{kind}.{'grant' if grant else 'revoke'}"


class Access:
    """Granting and revoking tuples on behalf of the signed-in person."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records

    def grant(self, t: RelationTuple) -> str:
        """Write the tuple (granted); its record id."""
        return self._set(t, True)

    def revoke(self, t: RelationTuple) -> str:
        """Withdraw the tuple; its record id."""
        return self._set(t, False)

    def _set(self, t: RelationTuple, granted: bool) -> str:
        _check(t)
        rid = t.subject if t.object == CLINIC_OBJECT else relation_id(t)
        entity = "user" if t.object == CLINIC_OBJECT else "relation"
        actor = self.records.actor
        details = {"object": t.object, "relation": t.relation, "subject": t.subject}
        if t.object.startswith(PATIENT_PREFIX):  # the chart's history finds it by this
            details["patient"] = t.object[len(PATIENT_PREFIX) :]
        with self.records.db.write(actor, action_for(t, granted), entity, rid, details) as tx:
            write_tuple(tx, actor, t, granted)
        return rid

    def explicit(self, object_: str | None = None) -> list[RelationTuple]:
        """Granted explicit tuples (of one object, or all)."""
        return explicit_tuples(self.records.db, object_)


def roles_of(value: object) -> list[str]:
    """A user record's ``other_roles`` value as role names."""
    return [r for r in str(value or "").split() if r in ROLES]


def _write_role(
    tx: Transaction, actor: str, t: RelationTuple, granted: bool, since: str | None
) -> oplog.Op:
    """A role beside the person's primary one, on their user record (``other_roles``, see
    the ``user`` type): releases without ``relation`` records store and relay it."""
    user_id = t.subject
    if not tx.query("SELECT 1 FROM record_states WHERE id = ? AND type = 'user'", (user_id,)):
        raise ValidationError("subject", f"{t.subject!r} is not a staff account")

    def mutate(doc: RecordDoc, hlc: str) -> None:
        held = crdt.winner(doc, "other_roles")
        roles = set(roles_of(held.value if held is not None else ""))
        roles = roles | {t.relation} if granted else roles - {t.relation}
        crdt.write(doc, "other_roles", " ".join(sorted(roles)), hlc, actor)
        if since is not None:
            crdt.write(doc, "other_roles_since", since, hlc, actor)

    return change(tx, actor, user_id, "user", mutate)


def write_tuple(
    tx: Transaction, actor: str, t: RelationTuple, granted: bool, since: str | None = None
) -> oplog.Op:
    """The op granting (or revoking) ``t`` inside the caller's unit of work (``since``:
    see the ``relation`` type). A role on the clinic is written on the person's user
    record instead (:func:`_write_role`)."""
    if t.object == CLINIC_OBJECT:
        return _write_role(tx, actor, t, granted, since)
    rid = relation_id(t)
    exists = tx.query("SELECT 1 FROM record_states WHERE id = ?", (rid,))
    fields: dict[str, crdt.Value] = {"granted": granted}
    if since is not None:
        fields["since"] = since
    if not exists:
        fields = {"object": t.object, "relation": t.relation, "subject": t.subject,
                  "created_at": utc_now(), **fields}  # fmt: skip

    def mutate(doc: RecordDoc, hlc: str) -> None:
        for field, value in fields.items():
            crdt.write(doc, field, value, hlc, actor)

    return change(tx, actor, rid, "relation", mutate)


def explicit_tuples(db: Database | Transaction, object_: str | None = None) -> list[RelationTuple]:
    """Granted ``relation`` records as tuples."""
    sql = "SELECT object, relation, subject FROM relations WHERE granted = 1"
    params: tuple[str, ...] = ()
    if object_ is not None:
        sql += " AND object = ?"
        params = (object_,)
    found = [
        RelationTuple(str(o), str(r), str(s))
        for o, r, s in db.query(sql + " ORDER BY 1, 2, 3", params)
    ]
    if object_ in (None, CLINIC_OBJECT):
        found += [
            RelationTuple(CLINIC_OBJECT, role, USER_PREFIX + str(name))
            for name, value in db.query(
                "SELECT username, other_roles FROM users WHERE other_roles != '' ORDER BY 1"
            )
            for role in roles_of(value)
        ]
    return sorted(found, key=lambda t: (t.object, t.relation, t.subject))


def _has_table(db: Database | Transaction, name: str) -> bool:
    return bool(db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))


def break_glass_subjects(db: Database | Transaction, patient_id: str, now: datetime) -> list[str]:
    """Users holding an unexpired break-glass grant on the chart (``user:<name>``): the
    ``break_glass`` table of the break-glass branch (core/records/break_glass_audit.py)
    when this replica has it; none otherwise. Expiry is filtered here, not by the engine."""
    if not _has_table(db, "break_glass"):
        return []
    at = now.astimezone(UTC).isoformat(timespec="milliseconds")
    rows = db.query(
        "SELECT DISTINCT username FROM break_glass WHERE patient_id = ? AND opened_at <= ? "
        "AND expires_at > ? AND username IS NOT NULL",
        (patient_id, at, at),
    )
    return [USER_PREFIX + str(r[0]) for r in rows]


class StoreTuples:
    """The tuple reader over one replica's derived tables (see the module docstring).

    Read through ``db`` (a Database or the transaction of the unit being checked, which
    then sees its own change). Active users are read once per reader: make one per check.
    """

    def __init__(self, db: Database | Transaction, now: datetime | None = None) -> None:
        self.db = db
        self.now = now or datetime.now(UTC)
        self._active: dict[str, frozenset[str]] | None = None

    def active_users(self) -> Mapping[str, frozenset[str]]:
        """username -> every role (primary and other), of active accounts."""
        if self._active is None:
            rows = self.db.query("SELECT username, role, other_roles FROM users WHERE active = 1")
            self._active = {str(u): frozenset({str(r), *roles_of(other)}) for u, r, other in rows}
        return self._active

    def _keep(self, subjects: Iterable[str]) -> list[str]:
        active = self.active_users()
        return [
            s
            for s in subjects
            if s == WILDCARD or not s.startswith(USER_PREFIX) or s[len(USER_PREFIX) :] in active
        ]

    def read(self, object: str, relation: str) -> Iterable[str]:
        """Subjects of ``object#relation``."""
        found: list[str] = []
        if object == CLINIC_OBJECT and relation in ROLES:
            found += [
                USER_PREFIX + u for u, roles in self.active_users().items() if relation in roles
            ]
        elif object.startswith(PATIENT_PREFIX):
            patient_id = object[len(PATIENT_PREFIX) :]
            if relation == "clinic":
                return [CLINIC_OBJECT]
            if relation == "break_glass":
                found += break_glass_subjects(self.db, patient_id, self.now)
        rows = self.db.query(
            "SELECT subject FROM relations WHERE object = ? AND relation = ? AND granted = 1",
            (object, relation),
        )
        found += [str(r[0]) for r in rows]
        return list(dict.fromkeys(self._keep(found)))

    def token(self) -> Mapping[str, int]:
        """This replica's version vector (the consistency token)."""
        return oplog.version_vector(self.db)


# ----- clinics from releases without authorization -----------------------------------

CLINICAL_TYPES = ("patient", "note", "observation", "encounter", "attachment")
SINCE_START = "0"  # sorts before every HLC: "from the clinic's start"
_AUTHORED_ON_CHARTS = (
    "SELECT 1 FROM notes WHERE author = ? LIMIT 1",
    "SELECT 1 FROM allergies WHERE recorded_by = ? LIMIT 1",
    "SELECT 1 FROM encounters WHERE clinician = ? OR closed_by = ? LIMIT 1",
)


def upgrade_clinicians(db: Database) -> list[str]:
    """On a replica of a clinic made by a release without authorization (it holds no
    ``relation`` record at all, while ``careline init`` now writes one): every active admin
    who authored chart records (patients, notes, vitals, visits) is granted clinician, counting
    from the clinic's start (``since``), so their past work stays authorized on every
    replica and they keep doing it. Other admins are admins only. Each grant is authored by
    the admin it is for (an admin holds manage_staff). Run at every open: replicas that
    upgrade separately grant the same tuples (one record each, no conflict); once any
    relation record is held, never again. Returns the names granted."""
    # Written so that V16's partial index answers it (no scan of every record at each open).
    held = "SELECT 1 FROM record_states WHERE type IN ('user', 'relation') AND type = 'relation'"
    if db.query(held + " LIMIT 1") or db.query(
        "SELECT 1 FROM users WHERE other_roles != '' LIMIT 1"
    ):
        return []
    granted: list[str] = []
    admins = [str(r[0]) for r in db.query(
        "SELECT username FROM users WHERE active = 1 AND role = 'admin' ORDER BY username"
    )]  # fmt: skip
    marks = ", ".join("?" for _ in CLINICAL_TYPES)
    for name in admins:
        did = db.query(
            f"SELECT 1 FROM oplog WHERE author = ? AND record_type IN ({marks}) LIMIT 1",
            (name, *CLINICAL_TYPES),
        ) or any(  # a replica bootstrapped from a snapshot holds no old ops: the charts say
            db.query(sql, (name,) * sql.count("?")) for sql in _AUTHORED_ON_CHARTS
        )
        if not did:
            continue
        t = RelationTuple(CLINIC_OBJECT, "clinician", USER_PREFIX + name)
        details = {"object": t.object, "relation": t.relation, "subject": t.subject,
                   "upgrade": True}  # fmt: skip
        with db.write(name, "role.grant", "user", t.subject, details) as tx:
            write_tuple(tx, name, t, True, since=SINCE_START)
        granted.append(name)
    return granted
