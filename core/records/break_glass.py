"""Break-glass: emergency access to a chart, for a stated reason and a limited time.

Opening writes a ``break_glass`` record (synced and audited like any other) naming the
patient, the person, the reason, when it was opened and when it expires. While it counts,
the tuple reader of the authorization engine yields ``patient:P#break_glass@user:U`` for it
(:func:`active_grants`), and every view and change of that chart by that person is audited
with the grant's id (:mod:`core.records.break_glass_audit`). An administrator reviews each
opening (:meth:`BreakGlass.mark_reviewed`); until then it waits in :meth:`BreakGlass.pending`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from core.config.desktop import load_desktop_settings
from core.records import authorize, break_glass_audit, crdt
from core.records.break_glass_audit import MAX_MINUTES, MIN_MINUTES, Clock, Grant, grants, stamp
from core.records.break_glass_audit import active_grants as active_grants
from core.records.break_glass_audit import grant_for as grant_for
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.crdt import RecordDoc
from core.records.errors import NotAllowedError, NotFoundError, ValidationError
from core.records.permissions import CLINIC_OBJECT
from core.records.relations import PATIENT_PREFIX
from core.records.types import BREAK_GLASS

DEFAULT_MINUTES = 60


def configured_minutes(data_dir: Path) -> int:
    """How long an opening lasts on the workstation whose data folder is ``data_dir``: the
    ``break_glass_minutes`` setting (environment, the folder's careline.toml, then the
    machine-wide configuration, which may lock it)."""
    settings = load_desktop_settings(data_dir)
    return int(settings["break_glass_minutes"])


def clinical_staff(records: ClinicRecords) -> bool:
    """Whether the signed-in person is a clinician or a nurse: only they gain anything from
    break-glass (the schema grants it clinical access with one of those roles only)."""
    return any(
        authorize.allowed(records.db, records.actor, role, CLINIC_OBJECT)
        for role in ("clinician", "nurse")
    )


def needs_break_glass(records: ClinicRecords, patient_id: str) -> bool:
    """Whether the chart is one the signed-in person could open only by breaking the glass:
    they are clinical staff without clinical access to it (a restricted chart whose care
    team they are not on). What the chart screen offers the button for."""
    if not clinical_staff(records):
        return False
    return not authorize.allowed(
        records.db, records.actor, "view_clinical", PATIENT_PREFIX + patient_id
    )


class BreakGlass:
    """Break-glass openings and their review, as the signed-in person."""

    def __init__(self, records: ClinicRecords, clock: Clock | None = None) -> None:
        self.records = records
        # The database's one break-glass clock (what its audit entries are marked by),
        # unless a clock is given.
        self.clock = clock or break_glass_audit.install(records.db).clock

    def open(self, patient_id: str, reason: str, minutes: int = DEFAULT_MINUTES) -> Grant:
        """Open ``patient_id``'s chart in an emergency for ``minutes`` (audited as
        ``break_glass.open``). The reason is required: an empty one raises ValidationError."""
        text = BREAK_GLASS.field_spec("reason").clean(reason)
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            raise ValidationError(
                "minutes", f"must be between {MIN_MINUTES} and {MAX_MINUTES}, not {minutes}"
            )
        self.records.get_patient(patient_id)  # NotFoundError names a wrong id
        if authorize.ENFORCING and not clinical_staff(self.records):
            raise NotAllowedError("Only a clinician or a nurse can break the glass")
        now = self.clock()
        grant_id, actor = new_id(), self.records.actor
        values: dict[str, crdt.Value] = {
            "patient_id": patient_id,
            "username": actor,
            "reason": text,
            "opened_at": stamp(now),
            "expires_at": stamp(now + timedelta(minutes=minutes)),
            "created_at": stamp(now),
        }
        details = {"break_glass": grant_id, "patient": patient_id, "minutes": minutes}
        with self.records.db.write(
            actor, "break_glass.open", BREAK_GLASS.name, grant_id, details
        ) as tx:
            change(tx, actor, grant_id, BREAK_GLASS.name, self.records.setter(values))
        return self._get(grant_id)

    def get(self, grant_id: str) -> Grant:
        """One opening; NotFoundError names an unknown id. Someone else's opening (who
        opened which chart, and why) is for its reviewers only (``break_glass.review``:
        administrators); one's own is one's own."""
        grant = self._get(grant_id)
        if grant.username != self.records.actor:
            self.records.require("break_glass.review")
        return grant

    def _get(self, grant_id: str) -> Grant:
        """One opening, unchecked: for this class's own flows, after a check or a write."""
        found = grants(self.records.db, "id = ?", (grant_id,))
        if not found:
            raise NotFoundError(f"no break-glass opening with id {grant_id!r}")
        return found[0]

    def active(self, patient_id: str, now: datetime | None = None) -> Grant | None:
        """The signed-in person's grant on ``patient_id`` that counts now, or None."""
        return grant_for(self.records.db, patient_id, self.records.actor, now or self.clock())

    def openings(self, pending_only: bool = False) -> list[Grant]:
        """Every opening (or those waiting for review), newest first: for their reviewers
        only (``break_glass.review``: administrators), refused (audited) for anyone else."""
        self.records.require("break_glass.review")
        if pending_only:
            return grants(self.records.db, "reviewed_at IS NULL")
        return grants(self.records.db)

    def pending(self) -> list[Grant]:
        """Openings waiting for an administrator's review, newest first (refused as
        :meth:`openings` is)."""
        return self.openings(pending_only=True)

    def mark_reviewed(self, grant_id: str) -> Grant:
        """Record that the signed-in administrator reviewed an opening (audited as
        ``break_glass.review``). Only an administrator may; a reviewed one stays reviewed."""
        self._require_admin()
        grant = self._get(grant_id)
        if grant.reviewed_at:
            return grant
        actor = self.records.actor
        values: dict[str, crdt.Value] = {"reviewed_by": actor, "reviewed_at": stamp(self.clock())}

        def review(doc: RecordDoc, hlc: str) -> None:
            for field, value in values.items():
                crdt.write(doc, field, value, hlc, actor)

        # The entry names the grant as its record; not as ``break_glass`` in its details,
        # which marks work done under a grant (the reviewer holds none).
        details = {"patient": grant.patient_id}
        with self.records.db.write(
            actor, "break_glass.review", BREAK_GLASS.name, grant_id, details
        ) as tx:
            change(tx, actor, grant_id, BREAK_GLASS.name, review)
        return self._get(grant_id)

    def _require_admin(self) -> None:
        """An administrator, by the authorization model (a primary role or one held beside
        it under Other roles; an active account only), whether or not the permission
        checks are switched on: reviewing is never anyone's but an admin's."""
        if not authorize.allowed(self.records.db, self.records.actor, "review_audit",
                                 CLINIC_OBJECT):  # fmt: skip
            raise NotAllowedError("Only an administrator can review break-glass openings")


# The calls as the issue names them, for callers that hold a ClinicRecords.
def open_break_glass(
    records: ClinicRecords, patient_id: str, reason: str, minutes: int | None = None
) -> Grant:
    """Open ``patient_id``'s chart in an emergency as the signed-in person (see
    :meth:`BreakGlass.open`; ``minutes`` defaults to the workstation's setting)."""
    if minutes is None:
        minutes = configured_minutes(records.db.path.parent)
    return BreakGlass(records).open(patient_id, reason, minutes)


def pending_reviews(records: ClinicRecords) -> list[Grant]:
    """Openings waiting for an administrator's review, newest first."""
    return BreakGlass(records).pending()


def mark_reviewed(records: ClinicRecords, grant_id: str) -> Grant:
    """Mark an opening reviewed as the signed-in administrator."""
    return BreakGlass(records).mark_reviewed(grant_id)
