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

A merged chart (core/records/merged.py) is restricted when any chart it holds is, and its
care team is the people on the care team of every restricted one (the intersection:
``authorize.chart_objects`` says why). Changes act on the whole merged chart: restricting
writes the survivor's flag, lifting the restriction lifts every member's, and adding or
removing a person does so on every member, so the care team shown is the one that counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.authz.tuples import RelationTuple
from core.records import authorize, merged
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
    # A merged chart: the ids of the charts it holds that are restricted (the survivor's
    # own included), when that is not just the survivor itself.
    restricted_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "patient_id": self.patient.id,
            "patient": self.patient.display_name,
            "restricted": self.restricted,
            "restricted_by": list(self.restricted_by),
            "care_team": [m.to_dict() for m in self.care_team],
        }

    def usernames(self) -> list[str]:
        """The care team's user names."""
        return [m.username for m in self.care_team]


def _object(patient_id: str) -> str:
    return PATIENT_PREFIX + patient_id


def restricted_members(db: Database | Transaction, patient_id: str) -> list[str]:
    """The charts held by ``patient_id``'s chart (itself, or every chart merged with it)
    that are restricted."""
    members = merged.chart_ids(db, patient_id)
    marks = ", ".join("?" for _ in members)
    rows = db.query(
        f"SELECT object FROM relations WHERE object IN ({marks}) AND relation = 'restricted' "
        "AND subject = ? AND granted = 1 ORDER BY object",
        (*(_object(m) for m in members), WILDCARD),
    )
    return [str(r[0])[len(PATIENT_PREFIX) :] for r in rows]


def is_restricted(db: Database | Transaction, patient_id: str) -> bool:
    """Whether the chart is restricted: it, or any chart merged with it (for the chart
    header's marker; no check: whoever opened the chart may know it)."""
    return bool(restricted_members(db, patient_id))


def _team_names(records: ClinicRecords, members: list[str], restricted: list[str]) -> list[str]:
    """The care team that counts: on a restricted chart, those on the care team of every
    restricted member; otherwise (where it counts for nothing yet) anyone on any member's."""
    teams = {
        m: {
            t.subject[len(USER_PREFIX) :]
            for t in Access(records).explicit(_object(m))
            if t.relation == "care_team" and t.subject.startswith(USER_PREFIX)
        }
        for m in members
    }
    if restricted:
        names = set.intersection(*(teams[m] for m in restricted))
    else:
        names = set().union(*teams.values())
    return sorted(names)


def chart_access(records: ClinicRecords, patient_id: str) -> ChartAccess:
    """The chart's flag and care team (NotFoundError for an unknown patient); for a merged
    chart, of the whole chart (the module docstring). Any staff member may read it
    (``access.show``): who may read a chart is no clinical data."""
    records.get_patient(patient_id)
    records.require("access.show", patient_id)
    db = records.db
    patient = records.get_patient(merged.survivor(db, patient_id))
    members = merged.chart_ids(db, patient_id)
    restricted = restricted_members(db, patient_id)
    team: list[TeamMember] = []
    extra = extra_roles(records)
    for name in _team_names(records, members, restricted):
        user = records.user(name)
        if user is None:
            team.append(TeamMember(name, "", (), False))
        else:
            roles = all_roles(user.role, extra.get(name, []))
            team.append(TeamMember(name, user.full_name, roles, user.active))
    team.sort(key=lambda m: (m.full_name or m.username).lower())
    shown = tuple(restricted) if restricted not in ([], [patient.id]) else ()
    return ChartAccess(patient, bool(restricted), tuple(team), shown)


def _grant_everywhere(records: ClinicRecords, patient_id: str, relation: str, name: str) -> None:
    """``relation`` for user ``name`` on every chart ``patient_id``'s chart holds."""
    for m in merged.chart_ids(records.db, patient_id):
        t = RelationTuple(_object(m), relation, USER_PREFIX + name)
        if t not in Access(records).explicit(_object(m)):
            Access(records).grant(t)


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
            _grant_everywhere(records, patient_id, "care_team", me)
        if restricted:
            survivor = merged.survivor(records.db, patient_id)
            Access(records).grant(RelationTuple(_object(survivor), "restricted", WILDCARD))
        else:  # every restricted chart of a merged one: else it stays restricted
            for m in restricted_members(records.db, patient_id):
                Access(records).revoke(RelationTuple(_object(m), "restricted", WILDCARD))
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
        _grant_everywhere(records, patient_id, "care_team", user.username)
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
    for m in merged.chart_ids(records.db, patient_id):  # off every chart a merged one holds
        t = RelationTuple(_object(m), "care_team", USER_PREFIX + name)
        if t in Access(records).explicit(_object(m)):
            Access(records).revoke(t)
    return chart_access(records, patient_id)


def active_staff(records: ClinicRecords) -> list[User]:
    """Active accounts, by full name: whom the app offers for a care team."""
    users = [u for u in records.users() if u.active]
    return sorted(users, key=lambda u: (u.full_name or u.username).lower())


def merge_warning(records: ClinicRecords, first: str, second: str) -> str:
    """What merging ``first`` and ``second`` (either way) does to who may read them, in
    plain words; "" when neither chart (nor any chart merged into one) is restricted.

    No check: whoever may review duplicates sees both names and who may read a chart is
    no clinical data (``access.show``)."""
    db = records.db
    members = sorted({*merged.chart_ids(db, first), *merged.chart_ids(db, second)})
    restricted = sorted({*restricted_members(db, first), *restricted_members(db, second)})
    if not restricted:
        return ""
    names = [records.get_patient(m).display_name + f" ({m})" for m in restricted]
    team = _team_names(records, members, restricted)
    who = ", ".join(team) if team else "nobody (add people to the care team after merging)"
    charts = (
        "chart " + names[0] + " is" if len(names) == 1 else "charts " + ", ".join(names) + " are"
    )
    return (
        f"Restricted: {charts} restricted. The merged chart will be restricted too: only "
        f"those on the care team of every restricted chart in it ({who}), or who break the "
        "glass, will read its clinical records."
    )
