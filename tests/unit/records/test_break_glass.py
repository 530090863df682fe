"""Break-glass grants: opening, expiry, what is audited under one, review, and sync."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.authz.tuples import RelationTuple
from core.config.settings import ConfigError
from core.records import authorize, break_glass_audit
from core.records.break_glass import (
    BreakGlass,
    active_grants,
    configured_minutes,
    mark_reviewed,
    needs_break_glass,
    open_break_glass,
    pending_reviews,
)
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotFoundError, ValidationError
from core.records.relations import Access
from core.records.staff import Staff
from core.records.workstation import NotAllowedError
from tests.unit.sync.replicas import new_replica, sync_pair

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _audit(records: ClinicRecords, action: str) -> list[dict[str, object]]:
    rows = records.db.query(
        "SELECT details FROM audit_log WHERE action = ? ORDER BY seq", (action,)
    )
    return [json.loads(r[0]) for r in rows]


def _clinic() -> tuple[ClinicRecords, ClinicRecords, Clock]:
    """(admin ``ann``, clinician ``bob``) on one replica, with a clock at T0."""
    ann = new_replica("ann")
    ann.add_user("ann", "Ann Admin", "admin", "correct horse battery staple")
    ann.add_user("bob", "Bob Clinician", "clinician", "correct horse battery staple")
    clock = Clock(T0)
    break_glass_audit.install(ann.db, clock)
    return ann, ClinicRecords(ann.db, "bob"), clock


def test_a_grant_counts_until_it_expires() -> None:
    ann, bob, clock = _clinic()
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    grant = BreakGlass(bob, clock).open(p.id, "unconscious in the waiting room", minutes=60)
    assert grant.username == "bob" and grant.patient_id == p.id
    assert grant.expires - datetime.fromisoformat(grant.opened_at) == timedelta(minutes=60)
    assert active_grants(ann.db, T0) == [(p.id, "bob")]
    assert active_grants(ann.db, T0 + timedelta(minutes=59)) == [(p.id, "bob")]
    assert active_grants(ann.db, T0 + timedelta(minutes=60)) == []  # expired exactly then
    assert active_grants(ann.db, T0 - timedelta(seconds=1)) == []  # not yet opened
    clock.now = T0 + timedelta(minutes=61)
    assert BreakGlass(bob, clock).active(p.id) is None


def test_the_reason_is_required_and_the_patient_must_exist() -> None:
    ann, bob, clock = _clinic()
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    with pytest.raises(ValidationError, match="reason"):
        BreakGlass(bob, clock).open(p.id, "   ")
    with pytest.raises(NotFoundError):
        BreakGlass(bob, clock).open("no-such-patient", "emergency")
    with pytest.raises(ValidationError, match="minutes"):
        BreakGlass(bob, clock).open(p.id, "emergency", minutes=100_000)
    assert active_grants(ann.db, T0) == []


def test_views_and_changes_under_a_grant_are_audited_with_it_and_stop_at_expiry() -> None:
    ann, bob, clock = _clinic()
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    bob.open_chart(p.id)  # before the grant: an ordinary view
    grant = BreakGlass(bob, clock).open(p.id, "chest pain, GP unreachable")
    bob.open_chart(p.id)
    bob.add_allergy(p.id, "penicillin", "rash", "moderate")
    visit = ClinicalEntries(bob).add("encounter", p.id, {"started_at": "2026-12-05T09:05"})
    ClinicalEntries(bob).update("encounter", visit, {"reason": "chest pain"})
    ann.open_chart(p.id)  # someone else's view: not under bob's grant
    clock.now = T0 + timedelta(minutes=60)
    bob.open_chart(p.id)  # expired

    opens = _audit(ann, "chart.open")
    assert [d.get("break_glass") for d in opens] == [None, grant.id, None, None]
    assert _audit(ann, "allergy.add")[0]["break_glass"] == grant.id
    assert _audit(ann, "encounter.create")[0]["break_glass"] == grant.id
    assert _audit(ann, "encounter.update")[0] == {"fields": ["reason"], "break_glass": grant.id}
    assert _audit(ann, "break_glass.open")[0] == {
        "break_glass": grant.id, "patient": p.id, "minutes": 60,
    }  # fmt: skip


def test_only_an_admin_reviews_and_reviewed_openings_leave_the_pending_list() -> None:
    ann, bob, clock = _clinic()
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    q = ann.add_patient("Ng", "Tom", "1980-01-01")
    first = BreakGlass(bob, clock).open(p.id, "emergency one")
    clock.now = T0 + timedelta(minutes=5)
    second = BreakGlass(bob, clock).open(q.id, "emergency two")
    assert [g.id for g in BreakGlass(ann, clock).pending()] == [second.id, first.id]
    with pytest.raises(NotAllowedError, match="Only an administrator"):
        BreakGlass(bob, clock).mark_reviewed(first.id)
    done = BreakGlass(ann, clock).mark_reviewed(first.id)
    assert done.reviewed_by == "ann" and done.reviewed_at
    assert [g.id for g in BreakGlass(ann, clock).pending()] == [second.id]
    assert len(BreakGlass(ann, clock).openings()) == 2
    # About the grant (its record), not done under it: no ``break_glass`` in the details.
    assert _audit(ann, "break_glass.review") == [{"patient": p.id}]
    with pytest.raises(NotFoundError):
        BreakGlass(ann, clock).mark_reviewed("nope")


def test_a_clinician_who_is_also_an_admin_reviews_openings() -> None:
    """Admin held beside a primary role (Other roles…) reviews as a primary admin does:
    the review check read the primary role only, so they were refused."""
    ann, bob, clock = _clinic()
    ann.add_user("cy", "Cy Clinician", "clinician", "correct horse battery staple")
    Staff(ann).add_role("cy", "admin")
    cy = ClinicRecords(ann.db, "cy")
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    grant = BreakGlass(bob, clock).open(p.id, "emergency")
    done = BreakGlass(cy, clock).mark_reviewed(grant.id)
    assert done.reviewed_by == "cy"
    Staff(ann).remove_role("cy", "admin")
    other = BreakGlass(bob, clock).open(p.id, "again")
    with pytest.raises(NotAllowedError, match="Only an administrator"):
        BreakGlass(cy, clock).mark_reviewed(other.id)


def test_a_grant_and_its_review_sync_to_other_replicas() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    a.add_user("ann", "Ann Admin", "admin", "correct horse battery staple")
    p = a.add_patient("Reyes", "Maria", "1970-02-03")
    sync_pair(b, a)
    clock = Clock(T0)
    grant = BreakGlass(b, clock).open(p.id, "emergency")
    sync_pair(b, a)
    assert active_grants(a.db, T0 + timedelta(minutes=1)) == [(p.id, "bob")]
    BreakGlass(a, clock).mark_reviewed(grant.id)
    sync_pair(b, a)
    assert BreakGlass(b, clock).pending() == []
    assert BreakGlass(b, clock).get(grant.id).reviewed_by == "ann"


def test_the_setting_decides_how_long_an_opening_lasts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ann, bob, _clock = _clinic()
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    monkeypatch.setenv("CARELINE_BREAK_GLASS_MINUTES", "15")
    grant = open_break_glass(bob, p.id, "emergency")
    assert grant.expires - datetime.fromisoformat(grant.opened_at) == timedelta(minutes=15)
    assert [g.id for g in pending_reviews(ann)] == [grant.id]
    assert mark_reviewed(ann, grant.id).reviewed_by == "ann"
    monkeypatch.setenv("CARELINE_BREAK_GLASS_MINUTES", "1")
    with pytest.raises(ConfigError, match="break_glass_minutes"):
        configured_minutes(tmp_path)
    monkeypatch.delenv("CARELINE_BREAK_GLASS_MINUTES")
    (tmp_path / "careline.toml").write_text("break_glass_minutes = 30\n", encoding="utf-8")
    assert configured_minutes(tmp_path) == 30


@pytest.mark.strict_authz
def test_only_clinical_staff_break_the_glass_and_it_opens_a_restricted_chart() -> None:
    """Break-glass gives clinical access to a restricted chart to a clinician or nurse for
    as long as it counts; the front desk gains nothing from it and may not open one."""
    ann = new_replica("ann")
    ann.set_up_clinic("Riverside", "ann", "Ann Founder", "correct horse battery staple")
    ann.add_user("nia", "Nia Nurse", "nurse", "correct horse battery staple")
    ann.add_user("fred", "Fred Desk", "front_desk", "correct horse battery staple")
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    Access(ann).grant(RelationTuple(f"patient:{p.id}", "restricted", "user:*"))
    nurse = ClinicRecords(ann.db, "nia")
    desk = ClinicRecords(ann.db, "fred")
    assert needs_break_glass(nurse, p.id) and not needs_break_glass(desk, p.id)
    with pytest.raises(NotAllowedError, match="Only a clinician or a nurse"):
        BreakGlass(desk).open(p.id, "curious")
    assert not authorize.may(ann.db, "nia", "view_clinical", p.id)
    BreakGlass(nurse).open(p.id, "collapsed in the waiting room")
    assert authorize.may(ann.db, "nia", "view_clinical", p.id)
    assert not needs_break_glass(nurse, p.id)


def test_a_review_stored_by_an_earlier_release_is_not_read_as_work_under_the_grant() -> None:
    """Earlier releases stored a review with the grant as ``break_glass`` in its details;
    the log, its CSV and the command line (``[break-glass …]``) read that as work done
    under the grant. The reviewer held none: only the opener's work is marked."""
    from core.cli.audit import _line
    from core.records.audit_review import list_entries

    ann, bob, clock = _clinic()
    p = ann.add_patient("Reyes", "Maria", "1970-02-03")
    grant = BreakGlass(bob, clock).open(p.id, "emergency")
    details = {"break_glass": grant.id, "patient": p.id}
    with ann.db.write("ann", "break_glass.review", "break_glass", grant.id, details):
        pass
    rows = {r.action: r for r in list_entries(ann.db)}
    review, opening = rows["break_glass.review"], rows["break_glass.open"]
    assert review.break_glass is None and review.to_dict()["break_glass"] is None
    assert "[break-glass" not in _line(review)
    assert opening.break_glass == grant.id
    assert f"[break-glass {grant.id}]" in _line(opening)
