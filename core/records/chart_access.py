"""Who may read a chart: its restricted flag and its care team, read and changed the same
way by the app's "Chart access…" dialog and ``careline access``.

Both are relation tuples (core/records/relations.py): a restricted chart holds
``patient:P#restricted@user:*``, each care-team member ``patient:P#care_team@user:NAME``.
On a restricted chart only clinicians and nurses on its care team (or holding an unexpired
break-glass grant) see clinical data; demographics stay visible to all clinic staff. The
care team matters only while the chart is restricted (the clinic schema,
core/authz/clinic.fga). Changing either needs ``manage_access`` on the chart (a clinician
with access to it, or an admin): the write gate checks ``access.grant`` /
``access.revoke`` (core/records/permissions.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.authz.tuples import RelationTuple
from core.records import authorize
from core.records import validation as v
from core.records.clinic import ClinicRecords
from core.records.errors import NotFoundError, ValidationError
from core.records.models import Patient, User
from core.records.relations import PATIENT_PREFIX, USER_PREFIX, WILDCARD, Access
from core.records.staff import all_roles, extra_roles
from core.store.database import Database, Transaction

RESTRICTED_MEANS = (
    "Only the people on this chart's care team (and anyone who breaks the glass in an "
    "emergency) can read or change its clinical records. Every other staff member still "
    "sees the name and demographics."
)


@dataclass(frozen=True)
class TeamMember:
    """A person on a chart's care team."""

    username: str
    full_name: str
    roles: tuple[str, ...]  # the primary role first (none: no such account)
    active: bool

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "username": self.username,
            "full_name": self.full_name,
            "roles": list(self.roles),
            "active": self.active,
        }


@dataclass(frozen=True)
class ChartAccess:
    """A chart's restricted flag and care team."""

    patient: Patient
    restricted: bool
    care_team: tuple[TeamMember, ...]

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "patient_id": self.patient.id,
            "patient": self.patient.display_name,
            "restricted": self.restricted,
            "care_team": [m.to_dict() for m in self.care_team],
        }

    def usernames(self) -> list[str]:
        """The care team's user names."""
        return [m.username for m in self.care_team]


def _object(patient_id: str) -> str:
    return PATIENT_PREFIX + patient_id


def is_restricted(db: Database | Transaction, patient_id: str) -> bool:
    """Whether the chart is restricted (for the chart header's marker; no check: whoever
    opened the chart may know it)."""
    return bool(
        db.query(
            "SELECT 1 FROM relations WHERE object = ? AND relation = 'restricted' "
            "AND subject = ? AND granted = 1",
            (_object(patient_id), WILDCARD),
        )
    )


def chart_access(records: ClinicRecords, patient_id: str) -> ChartAccess:
    """The chart's flag and care team (NotFoundError for an unknown patient). Any staff
    member may read it (``access.show``): who may read a chart is no clinical data."""
    patient = records.get_patient(patient_id)
    records.require("access.show", patient_id)
    tuples = Access(records).explicit(_object(patient_id))
    restricted = any(t.relation == "restricted" and t.subject == WILDCARD for t in tuples)
    team: list[TeamMember] = []
    extra = extra_roles(records)
    for t in tuples:
        if t.relation != "care_team" or not t.subject.startswith(USER_PREFIX):
            continue
        name = t.subject[len(USER_PREFIX) :]
        user = records.user(name)
        if user is None:
            team.append(TeamMember(name, "", (), False))
        else:
            roles = all_roles(user.role, extra.get(name, []))
            team.append(TeamMember(name, user.full_name, roles, user.active))
    team.sort(key=lambda m: (m.full_name or m.username).lower())
    return ChartAccess(patient, restricted, tuple(team))


def set_restricted(records: ClinicRecords, patient_id: str, restricted: bool) -> ChartAccess:
    """Restrict the chart (or lift the restriction); its access afterwards.

    A clinician or nurse who restricts a chart they can read is first put on its care
    team: otherwise restricting would shut out the very person doing it (a clinician's
    manage_access needs access to the chart)."""
    current = chart_access(records, patient_id)
    if current.restricted != restricted:
        me = records.actor
        if (
            restricted
            and me not in current.usernames()
            and authorize.allowed(records.db, me, "view_clinical", _object(patient_id))
        ):
            Access(records).grant(RelationTuple(_object(patient_id), "care_team", USER_PREFIX + me))
        t = RelationTuple(_object(patient_id), "restricted", WILDCARD)
        if restricted:
            Access(records).grant(t)
        else:
            Access(records).revoke(t)
    return chart_access(records, patient_id)


def _staff_member(records: ClinicRecords, username: str) -> User:
    name = v.username(username)
    user = records.user(name)
    if user is None:
        raise NotFoundError(f"no staff member {name!r} in this clinic")
    return user


def add_to_care_team(records: ClinicRecords, patient_id: str, username: str) -> ChartAccess:
    """Put an active staff member on the chart's care team; its access afterwards."""
    current = chart_access(records, patient_id)
    user = _staff_member(records, username)
    if not user.active:
        raise ValidationError(
            "username",
            f"{user.username!r} is deactivated: reactivate them before adding them to a care team",
        )
    if user.username not in current.usernames():
        Access(records).grant(
            RelationTuple(_object(patient_id), "care_team", USER_PREFIX + user.username)
        )
    return chart_access(records, patient_id)


def remove_from_care_team(records: ClinicRecords, patient_id: str, username: str) -> ChartAccess:
    """Take a person off the chart's care team (deactivated ones too); its access after."""
    current = chart_access(records, patient_id)
    name = v.username(username)
    if name not in current.usernames():
        raise NotFoundError(
            f"{name!r} is not on the care team of patient {patient_id} "
            f"({current.patient.display_name})"
        )
    Access(records).revoke(RelationTuple(_object(patient_id), "care_team", USER_PREFIX + name))
    return chart_access(records, patient_id)


def active_staff(records: ClinicRecords) -> list[User]:
    """Active accounts, by full name: whom the app offers for a care team."""
    users = [u for u in records.users() if u.active]
    return sorted(users, key=lambda u: (u.full_name or u.username).lower())
