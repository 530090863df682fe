"""Staff management: add a staff member, change a role, deactivate and reactivate, reset a
password, two-factor enrolment. The app's Settings > Staff, ``careline user ...`` and
``careline-server admin user ...`` all come here.

Every change goes through the one write path (``ClinicRecords.setter`` / ``change``), so it
is one op: synced, audited, conflict-checked like any record. A deactivated account keeps
its record (``active = false``): past notes, audit entries and ops stay attributed to it.

Who may do this: :func:`require_staff_manager`, the one place the check lives (the
authorization engine of issue #14 replaces its body with ``manage_staff`` on
``clinic:clinic``). The server's operator (``operator=True``) is not a clinic user: shell
access to the server already is the highest trust there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.authz.tuples import RelationTuple
from core.records import authorize, two_factor
from core.records import validation as v
from core.records.clinic import ClinicRecords
from core.records.errors import NotAllowedError, NotFoundError, RecordError, ValidationError
from core.records.models import User
from core.records.permissions import CLINIC_OBJECT
from core.records.relations import USER_PREFIX, Access, explicit_tuples


class LastAdminError(RecordError):
    """The change would leave the clinic without an active administrator."""


def require_staff_manager(records: ClinicRecords, what: str) -> User:
    """The acting person, if they may manage staff (add, change roles, deactivate, reset
    passwords, keys); otherwise NotAllowedError saying who may. ``what`` names the
    operation ("add a staff member")."""
    user = records.user(records.actor)
    # The engine decides (the clinic schema's manage_staff), whether or not the test
    # switch authorize.ENFORCING is on: the refusal names the person's role.
    if (
        user is None
        or not user.active
        or not authorize.allowed(records.db, records.actor, "manage_staff", CLINIC_OBJECT)
    ):
        role = user.role.replace("_", " ") if user else "unknown"
        raise NotAllowedError(
            f"only an administrator can {what}; {records.actor!r} is signed in as {role}"
        )
    return user


@dataclass(frozen=True)
class StaffMember:
    """One account as the staff list shows it (never its verifier or TOTP secret)."""

    username: str
    full_name: str
    role: str
    active: bool
    must_change_password: bool
    two_factor: bool
    # Every role held: the primary one first, then extra role tuples (empty: not read).
    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, user: User) -> StaffMember:
        """From the records' User."""
        return cls(
            user.username,
            user.full_name,
            user.role,
            user.active,
            user.must_change_password,
            user.two_factor,
        )

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "username": self.username,
            "full_name": self.full_name,
            "role": self.role,
            "active": self.active,
            "must_change_password": self.must_change_password,
            "two_factor": self.two_factor,
            "roles": list(self.roles or (self.role,)),
        }


def extra_roles(records: ClinicRecords) -> dict[str, list[str]]:
    """username -> roles held through explicit ``clinic:clinic#<role>@user:<name>`` tuples
    (beyond the account's primary role, which may also appear), in ROLES order."""
    found: dict[str, list[str]] = {}
    for t in explicit_tuples(records.db, CLINIC_OBJECT):
        if t.subject.startswith(USER_PREFIX) and t.relation in v.ROLES:
            found.setdefault(t.subject[len(USER_PREFIX) :], []).append(t.relation)
    return {name: sorted(roles, key=v.ROLES.index) for name, roles in found.items()}


def all_roles(primary: str, extra: list[str]) -> tuple[str, ...]:
    """The primary role first, then the others in ROLES order, each once."""
    return (primary, *[r for r in v.ROLES if r in extra and r != primary])


class Staff:
    """Staff operations as ``records.actor``."""

    def __init__(self, records: ClinicRecords, operator: bool = False) -> None:
        self.records = records
        self.operator = operator

    def _authorize(self, what: str) -> None:
        if not self.operator:
            require_staff_manager(self.records, what)

    def _existing(self, username: str) -> User:
        name = v.username(username)
        user = self.records.user(name)
        if user is None:
            raise NotFoundError(f"no staff member {name!r} in this clinic")
        return user

    def members(self) -> list[StaffMember]:
        """Every account, active or not (admins only: it shows who can sign in)."""
        self._authorize("list the staff")
        extra = extra_roles(self.records)
        return [
            self._with_roles(StaffMember.of(u), extra.get(u.username, []))
            for u in self.records.users()
        ]

    @staticmethod
    def _with_roles(member: StaffMember, extra: list[str]) -> StaffMember:
        return dataclasses.replace(member, roles=all_roles(member.role, extra))

    # ----- extra roles ------------------------------------------------------------------

    def roles(self, username: str) -> StaffMember:
        """A staff member with every role they hold."""
        self._authorize("see a staff member's roles")
        user = self._existing(username)
        return self._with_roles(
            StaffMember.of(user), extra_roles(self.records).get(user.username, [])
        )

    def add_role(self, username: str, role: str) -> StaffMember:
        """Give an active staff member a role beyond their primary one (an admin who is also
        a clinician). Audited as ``role.grant``; needs manage_staff."""
        self._authorize("change a staff member's roles")
        user = self._existing(username)
        new = v.role(role)
        if not user.active:
            raise ValidationError(
                "username", f"{user.username!r} is deactivated: reactivate them first"
            )
        member = self.roles(user.username)
        if new not in member.roles:
            Access(self.records).grant(RelationTuple(CLINIC_OBJECT, new, user.id))
        return self.roles(user.username)

    def remove_role(self, username: str, role: str) -> StaffMember:
        """Take back an extra role. The primary role stays (change it with
        :meth:`set_role`). Audited as ``role.revoke``."""
        self._authorize("change a staff member's roles")
        user = self._existing(username)
        old = v.role(role)
        if old == user.role:
            raise ValidationError(
                "role",
                f"{old.replace('_', ' ')} is {user.username}'s primary role: change the "
                "primary role instead (user role / Change role…)",
            )
        if old not in extra_roles(self.records).get(user.username, []):
            raise NotFoundError(f"{user.username!r} does not hold the extra role {old!r}")
        Access(self.records).revoke(RelationTuple(CLINIC_OBJECT, old, user.id))
        return self.roles(user.username)

    def add(self, username: str, full_name: str, role: str, first_password: str) -> StaffMember:
        """A new staff member with a first password they must change at first sign-in."""
        self._authorize("add a staff member")
        user = self.records.add_user(
            username, full_name, role, first_password, must_change_password=True
        )
        return StaffMember.of(user)

    def _active_admins(self) -> list[str]:
        return [u.username for u in self.records.users() if u.active and u.role == "admin"]

    def _keep_an_admin(self, user: User, doing: str) -> None:
        """Refuse to demote or deactivate the last active administrator."""
        if user.active and user.role == "admin" and self._active_admins() == [user.username]:
            raise LastAdminError(
                f"cannot {doing} {user.username!r}: they are the clinic's last active "
                "administrator, and without one nobody could add staff, reset passwords or "
                "manage the keys. Make someone else an administrator first"
            )

    def set_role(self, username: str, role: str) -> StaffMember:
        """Change a staff member's role (audited with the old and new role)."""
        self._authorize("change a staff member's role")
        user = self._existing(username)
        new_role = v.role(role)
        if new_role == user.role:
            return StaffMember.of(user)
        if new_role != "admin":
            self._keep_an_admin(user, f"make {new_role.replace('_', ' ')} of")
        details = {"from": user.role, "to": new_role}
        with self.records.db.write(
            self.records.actor, "user.role_change", "user", user.id, details
        ) as tx:
            # Both registers in one op: earlier releases read ``role``, this one
            # ``staff_role`` first (types.USER), and concurrent changes settle alike on both.
            fields = {"role": v.legacy_role(new_role), "staff_role": new_role}
            self.records.apply(tx, user.id, "user", fields)
        return StaffMember.of(self._existing(username))

    def deactivate(self, username: str) -> StaffMember:
        """Stop an account signing in anywhere (once synced); its records stay its own."""
        self._authorize("deactivate a staff member")
        user = self._existing(username)
        if not user.active:
            return StaffMember.of(user)
        self._keep_an_admin(user, "deactivate")
        self._set_active(user, False)
        return StaffMember.of(self._existing(username))

    def reactivate(self, username: str) -> StaffMember:
        """Let a deactivated account sign in again (with the password it had)."""
        self._authorize("reactivate a staff member")
        user = self._existing(username)
        if not user.active:
            self._set_active(user, True)
        return StaffMember.of(self._existing(username))

    def _set_active(self, user: User, active: bool) -> None:
        action = "user.reactivate" if active else "user.deactivate"
        with self.records.db.write(self.records.actor, action, "user", user.id) as tx:
            self.records.apply(tx, user.id, "user", {"active": active})

    def reset_password(self, username: str, new_password: str) -> str:
        """Set a staff member's password without their old one; they must change it at
        their next sign-in. Audited as ``user.password_reset``. Returns the new verifier's
        digest (the workstation re-wraps the person's key slot with it)."""
        self._authorize("reset a staff member's password")
        user = self._existing(username)
        return self.records.change_password(user.username, new_password, must_change_password=True)

    # ----- two-factor sign-in ------------------------------------------------------------

    def enrol_totp(self, secret: str, code: str) -> StaffMember:
        """The acting admin's own TOTP: ``secret`` (from :func:`two_factor.new_secret`, shown
        to them) is stored once ``code`` from their authenticator app matches it."""
        me = require_staff_manager(self.records, "enrol two-factor sign-in")
        if not two_factor.verify(secret, code):
            raise ValidationError(
                "code",
                "does not match the secret: check the authenticator app's clock and that "
                "the secret was typed exactly, then enter the code it shows now",
            )
        with self.records.db.write(self.records.actor, "user.totp_enrol", "user", me.id) as tx:
            self.records.apply(tx, me.id, "user", {"totp_secret": secret})
        return StaffMember.of(self._existing(me.username))

    def disable_totp(self, username: str | None = None) -> StaffMember:
        """Remove an account's TOTP (the acting admin's own by default; an admin may also
        remove another's, e.g. after a lost phone). Audited."""
        self._authorize("turn off two-factor sign-in")
        user = self._existing(username or self.records.actor)
        with self.records.db.write(self.records.actor, "user.totp_disable", "user", user.id) as tx:
            self.records.apply(tx, user.id, "user", {"totp_secret": ""})
        return StaffMember.of(self._existing(user.username))
