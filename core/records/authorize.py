"""Enforcement at the single choke points: every audited unit of work (``Database.write``,
so also ``read_audited``) passes the gate installed here, and read methods of
core/records call :func:`require` for the clinical reads that leave no audit entry.

The gate looks the action up in the permission matrix (core/records/permissions.py),
finds the object it concerns (the clinic, or the patient of the record written: read in the
unit's own transaction, after the change when the record is new), and asks the engine
(core/authz) whether ``user:<actor>`` holds the permission there. A refusal rolls the unit
back and raises :class:`NotAllowedError` naming who may do it; the refusal itself is
audited (``action.refused``, with the action and the reason).

Because the app, the CLI and the server all write through ``Database.write``, they cannot
disagree. ``ENFORCING`` is the switch the test suite turns off for in-process tests written
before authorization (like ``any_author`` for op authors); tests marked ``strict_authz`` and
every real process enforce.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from core.authz.engine import Engine
from core.authz.model import AuthorizationModel, load_clinic_model
from core.authz.tuples import MemoryTuples, TupleReader
from core.records import merged
from core.records.errors import NotAllowedError
from core.records.permissions import (
    CLINIC_OBJECT,
    WHO,
    Rule,
    field_permission,
    read_permission,
    rule_for,
)
from core.records.relations import PATIENT_PREFIX, USER_PREFIX, StoreTuples
from core.records.types import RECORD_TYPES
from core.store.database import Database, Transaction
from core.store.state_codec import unpack_state

ENFORCING = True  # tests written before authorization turn this off (tests/conftest.py)

REFUSED = "action.refused"


@functools.cache
def clinic_model() -> AuthorizationModel:
    """The clinic schema, parsed once."""
    return load_clinic_model()


@functools.cache
def model_engine() -> Engine:
    """An engine over no tuples: its model analysis (which costs more than most checks),
    shared by every check through ``Engine.with_tuples``."""
    return Engine(clinic_model(), MemoryTuples(()))


def subject_of(actor: str) -> str:
    """``alice`` -> ``user:alice``."""
    return actor if actor.startswith(USER_PREFIX) else USER_PREFIX + actor


def chart_objects(db: Database | Transaction, obj: str) -> list[str]:
    """The objects a permission on ``obj`` is checked on: for a patient, every patient
    whose records its chart gathers (a merged chart: the survivor and each duplicate merged
    into it, ``merged.chart_ids``); otherwise ``obj`` itself.

    A merged chart shows every member's records, so holding a permission on it means
    holding it on every member: the merged chart is restricted if any member is, and its
    care team is the people on the care team of every restricted member (the
    intersection). A union would hand a restricted chart's notes to the other chart's care
    team (or, when the other chart is unrestricted, to every clinician and nurse) just
    because two registrations were merged; the intersection only ever narrows. Membership
    comes from the derived ``patients`` table (the replicated ``merged_into`` registers),
    so every replica holding the same records decides alike, whichever order they arrived in.
    """
    if not obj.startswith(PATIENT_PREFIX):
        return [obj]
    members = merged.chart_ids(db, obj[len(PATIENT_PREFIX) :])
    return [PATIENT_PREFIX + m for m in members]


class ChartTuples:
    """A tuple reader for one merged chart: a break-glass grant on any of its members counts
    on each (the person broke the glass on the chart they saw, which holds them all);
    every other tuple is the member's own."""

    def __init__(self, inner: TupleReader, members: list[str]) -> None:
        self.inner = inner
        self.members = members

    def read(self, object: str, relation: str) -> list[str]:
        """Subjects of ``object#relation`` (break-glass: of every member's)."""
        if relation == "break_glass" and object in self.members:
            found = [s for m in self.members for s in self.inner.read(m, relation)]
            return list(dict.fromkeys(found))
        return list(self.inner.read(object, relation))

    def token(self) -> Mapping[str, int]:
        """The inner reader's version vector."""
        return self.inner.token()


def _engine(db: Database | Transaction, members: list[str]) -> Engine:
    tuples: TupleReader = StoreTuples(db)
    if len(members) > 1:
        tuples = ChartTuples(tuples, members)
    return model_engine().with_tuples(tuples)


class _OnTheCareTeam:
    """A tuple reader in which ``subject`` is also on every chart's care team: whether a
    refusal is only the restriction's (see :func:`refusal_for`)."""

    def __init__(self, inner: TupleReader, subject: str) -> None:
        self.inner = inner
        self.subject = subject

    def read(self, object: str, relation: str) -> list[str]:
        """The inner reader's subjects, with ``subject`` added to a care team."""
        found = list(self.inner.read(object, relation))
        if relation == "care_team" and self.subject not in found:
            found.append(self.subject)
        return found

    def token(self) -> Mapping[str, int]:
        """The inner reader's version vector."""
        return self.inner.token()


def refusal_for(db: Database | Transaction, actor: str, rule: Rule, obj: str) -> str:
    """What a person refused ``rule`` on ``obj`` reads: who may do it (``Only a clinician
    can start a medication``) or, when the person would be allowed on the care team (a
    clinician off a restricted chart's care team), that: "Only a clinician can" would tell
    a clinician something untrue."""
    if obj.startswith(PATIENT_PREFIX):
        members = chart_objects(db, obj)
        engine = _engine(db, members)
        subject = subject_of(actor)
        hypothetical = engine.with_tuples(_OnTheCareTeam(engine.tuples, subject))
        if all(hypothetical.check(m, rule.permission, subject) for m in members):
            return (
                f"Only the people on this restricted chart's care team can {rule.what}"
                " (or anyone who breaks the glass in an emergency)"
            )
    return rule.refusal()


def allowed(db: Database | Transaction, actor: str, permission: str, obj: str) -> bool:
    """Whether ``actor`` holds ``permission`` on ``obj`` on this replica now (on a merged
    chart: on every chart it holds, :func:`chart_objects`)."""
    members = chart_objects(db, obj)
    engine = _engine(db, members)
    subject = subject_of(actor)
    return all(engine.check(m, permission, subject) for m in members)


def permitted(db: Database | Transaction, actor: str, obj: str) -> frozenset[str]:
    """Every permission ``actor`` holds on ``obj`` (what the screens enable; on a merged
    chart, those held on every chart it holds)."""
    members = chart_objects(db, obj)
    engine = _engine(db, members)
    subject = subject_of(actor)
    held = engine.permitted(members[0], subject)
    for m in members[1:]:
        held &= engine.permitted(m, subject)
    return held


def patient_of(
    db: Database | Transaction, entity: str, entity_id: str, details: Mapping[str, Any] | None
) -> str | None:
    """The patient a unit of work concerns: the patient itself, the patient of a record on
    their chart, or the one named in its details; None if not (yet) known."""
    if entity == "patient":
        return entity_id
    if (
        entity == "relation"
        and details
        and str(details.get("object", "")).startswith(PATIENT_PREFIX)
    ):
        return str(details["object"])[len(PATIENT_PREFIX) :]
    rtype = RECORD_TYPES.get(entity)
    if rtype is not None and "patient_id" in rtype.column_names:
        rows = db.query(f"SELECT patient_id FROM {rtype.table} WHERE id = ?", (entity_id,))
        if rows and rows[0][0]:
            return str(rows[0][0])
        state = db.query("SELECT state FROM record_states WHERE id = ?", (entity_id,))
        if state:  # deleted (no row): the document still names its patient
            from core.records import crdt

            doc = crdt.load(unpack_state(state[0][0]), 0)
            found = crdt.winner(doc, "patient_id")
            if found is not None and found.value:
                return str(found.value)
    if details and details.get("patient_id"):
        return str(details["patient_id"])
    return None


def _conflict_rule(entity: str, details: Mapping[str, Any] | None) -> Rule | None:
    """Resolving a conflict needs what writing its field needs (a break-glass record's,
    what reviewing one needs; a type this release does not govern, ``manage_staff``)."""
    field = str((details or {}).get("field", ""))
    found = field_permission(entity, field) or (
        ("review_audit", "clinic") if entity == "break_glass" else ("manage_staff", "clinic")
    )
    permission, on = found
    what = f"settle a conflict in {field.replace('_', ' ') or 'this record'}"
    return Rule(permission, on, what)


def _rule(action: str, entity: str, details: Mapping[str, Any] | None) -> Rule | None:
    if action == "conflict.resolve":
        return _conflict_rule(entity, details)
    return rule_for(action)


def _object(
    tx: Transaction, rule: Rule, entity: str, entity_id: str, details: Mapping[str, Any] | None
) -> str | None:
    if rule.on == "clinic":
        return CLINIC_OBJECT
    patient = patient_of(tx, entity, entity_id, details)
    return None if patient is None else PATIENT_PREFIX + patient


def _tuple_rule(
    tx: Database | Transaction, rule: Rule, record_id: str, details: Mapping[str, Any] | None
) -> tuple[Rule, str | None]:
    """A tuple's grant, revoke or conflict: on a chart, ``manage_access`` there; a role on
    the clinic, ``manage_staff``."""
    obj = str((details or {}).get("object") or "")
    if not obj:
        rows = tx.query("SELECT object FROM relations WHERE id = ?", (record_id,))
        obj = str(rows[0][0]) if rows else ""
    if obj == CLINIC_OBJECT:
        return Rule("manage_staff", "clinic", "change a staff member's roles"), obj
    if obj.startswith(PATIENT_PREFIX):
        return Rule("manage_access", "patient", "change who may see a chart"), obj
    return rule, None


class Gate:
    """The write gate installed on a Database (see the module docstring)."""

    def __call__(
        self,
        tx: Transaction,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: Mapping[str, Any] | None,
        after: bool,
    ) -> bool:
        """Check one unit of work; True once decided (allowed), False to be asked again
        after the change (the record it concerns does not exist yet). Raises
        NotAllowedError."""
        if not ENFORCING:
            return True
        rule = _rule(action, entity, details)  # UnknownActionError: not in the matrix
        if rule is None:
            return True
        if entity == "relation":
            rule, obj = _tuple_rule(tx, rule, entity_id, details)
        else:
            obj = _object(tx, rule, entity, entity_id, details)
        if obj is None:
            if not after:
                return False
            raise NotAllowedError(f"{rule.refusal()}: the {entity} {entity_id!r} has no patient")
        if not allowed(tx, actor, rule.permission, obj):
            raise NotAllowedError(refusal_for(tx, actor, rule, obj))
        return True

    @staticmethod
    def refusal(exc: BaseException, action: str) -> dict[str, Any] | None:
        """The audit details of a refusal (None: ``exc`` is not one)."""
        if isinstance(exc, NotAllowedError):
            return {"action": action, "reason": str(exc)}
        return None


GATE = Gate()


def install(db: Database) -> None:
    """Make every unit of work on ``db`` pass the gate (idempotent; not on the server's
    own stores, ``Database.operator``)."""
    if not db.operator:
        db.gate = GATE


def require(db: Database, actor: str, read: str, patient_id: str | None = None) -> None:
    """Refuse (audited) a read ``actor`` may not make: ``read`` names it in the matrix
    (``notes.list``); ``patient_id`` is the chart it reads, for a read on a patient."""
    if not ENFORCING:
        return
    rule = rule_for(read)
    if rule is None:
        return
    obj = CLINIC_OBJECT if rule.on == "clinic" else PATIENT_PREFIX + str(patient_id)
    if allowed(db, actor, rule.permission, obj):
        return
    message = refusal_for(db, actor, rule, obj)
    entity, entity_id = (
        ("patient", str(patient_id)) if rule.on == "patient" else ("clinic", "clinic")
    )
    db.audit_refusal(actor, entity, entity_id, {"action": read, "reason": message})
    raise NotAllowedError(message)


def may_read_field(
    db: Database | Transaction,
    actor: str,
    type_name: str,
    record_id: str,
    field: str,
    seen: dict[tuple[str, str], bool] | None = None,
) -> tuple[bool, str]:
    """Whether ``actor`` may read ``field`` of a record (the conflict inbox shows its
    values: ``permissions.read_permission``), and who may, in words. A record whose patient
    is not known here is readable by nobody. ``seen`` caches (permission, object) checks
    across calls. Always allowed while not enforcing."""
    if type_name == "relation":  # a tuple: who may see a chart (all staff) or a role
        rule, obj = _tuple_rule(db, Rule("manage_staff", "clinic", ""), record_id, None)
        permission = "view_demographics" if rule.permission == "manage_access" else "manage_staff"
    else:
        permission, on = read_permission(type_name, field)
        if on == "clinic":
            obj = CLINIC_OBJECT
        else:
            patient = patient_of(db, type_name, record_id, None)
            obj = None if patient is None else PATIENT_PREFIX + patient
    who = WHO[permission]
    if not ENFORCING:
        return True, who
    if obj is None:
        return False, who
    cache = {} if seen is None else seen
    if (permission, obj) not in cache:
        cache[(permission, obj)] = allowed(db, actor, permission, obj)
    return cache[(permission, obj)], who


def may(
    db: Database | Transaction, actor: str, permission: str, patient_id: str | None = None
) -> bool:
    """Whether ``actor`` holds ``permission`` (on the patient, or on the clinic): for screens
    that hide or disable what a person may not do. Always True while not enforcing."""
    if not ENFORCING:
        return True
    obj = CLINIC_OBJECT if patient_id is None else PATIENT_PREFIX + patient_id
    return allowed(db, actor, permission, obj)


def who_may(permission: str) -> str:
    """Who holds ``permission``, in words (tooltips)."""
    return WHO.get(permission, permission)
