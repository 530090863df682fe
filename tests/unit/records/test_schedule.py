"""The schedule in core: booking, overlaps, moves, cancelling, status, waiting room, and
concurrent edits from two workstations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from core.records.clinic import ClinicRecords
from core.records.errors import NotFoundError, ValidationError
from core.records.schedule import (
    TRANSITIONS,
    OverlapError,
    Schedule,
    TransitionError,
    week_start,
)
from core.records.types import APPOINTMENT_STATUSES
from tests.unit.sync.replicas import materialized, new_replica, sync_pair

PASSWORD = "long enough password"


def at(text: str) -> Callable[[], dt.datetime]:
    """A clinic clock stopped at ``text`` (``2026-12-07 12:00``)."""
    moment = dt.datetime.fromisoformat(text)
    return lambda: moment


def clinic(actor: str = "ann") -> tuple[ClinicRecords, str]:
    """A replica with two clinicians and a patient."""
    r = new_replica(actor)
    r.add_user("lee", "Dr Lee", "clinician", PASSWORD)
    r.add_user("kim", "Dr Kim", "clinician", PASSWORD)
    r.add_user("desk", "Dee Desk", "front_desk", PASSWORD)
    p = r.add_patient("Garcia", "Maria", "1984-03-02")
    return r, p.id


def test_book_reads_back_with_the_patient_and_a_length() -> None:
    r, pid = clinic()
    s = Schedule(r)
    a = s.book(pid, "2026-12-07 09:30", "lee", minutes=15, reason="Cough")
    assert (a.starts_at, a.ends_at, a.status, a.clinician) == (
        "2026-12-07T09:30", "2026-12-07T09:45", "booked", "lee",
    )  # fmt: skip
    assert a.patient_name == "GARCIA, Maria" and a.minutes == 15 and a.reason == "Cough"
    b = s.book(pid, "2026-12-07T10:00", "kim", ends_at="2026-12-07T10:20")
    assert b.minutes == 20
    assert [x.id for x in s.day(dt.date(2026, 12, 7))] == [a.id, b.id]
    assert [x.id for x in s.day(dt.date(2026, 12, 7), clinician="kim")] == [b.id]
    assert s.day(dt.date(2026, 12, 8)) == []
    actions = [row[0] for row in r.db.query("SELECT action FROM audit_log")]
    assert actions.count("appointment.create") == 2


@pytest.mark.parametrize(
    ("start", "field", "words"),
    [
        ("2026-02-30 09:00", "starts_at", "February 2026 has 28 days"),
        ("2026-12-07 25:00", "starts_at", "there is no hour 25"),
        ("2026-12-07 09:61", "starts_at", "there is no minute 61"),
        ("07/12/2026 09:00", "starts_at", "year last"),
        ("2026-12-07T09:00+01:00", "starts_at", "names a time zone"),
        ("2026-12-07", "starts_at", "is not a date and time"),
        ("tomorrow 9", "starts_at", "is not a date and time"),
    ],
)
def test_impossible_times_are_refused_and_nothing_is_written(
    start: str, field: str, words: str
) -> None:
    r, pid = clinic()
    with pytest.raises(ValidationError, match=words) as info:
        Schedule(r).book(pid, start, "lee", minutes=15)
    assert info.value.field == field
    assert r.db.query("SELECT count(*) FROM appointments")[0][0] == 0


def test_bad_lengths_clinicians_and_patients_are_named() -> None:
    r, pid = clinic()
    s = Schedule(r)
    for minutes in ("0", "-5", "abc", "1000"):
        with pytest.raises(ValidationError) as info:
            s.book(pid, "2026-12-07 09:00", "lee", minutes=minutes)
        assert info.value.field == "minutes"
    with pytest.raises(ValidationError, match="must be after the start"):
        s.book(pid, "2026-12-07 09:00", "lee", ends_at="2026-12-07 08:45")
    with pytest.raises(ValidationError, match="'desk' is not an active clinician"):
        s.book(pid, "2026-12-07 09:00", "desk", minutes=15)
    with pytest.raises(NotFoundError):
        s.book("nobody", "2026-12-07 09:00", "lee", minutes=15)


def test_an_overlap_is_named_then_booked_when_the_person_confirms() -> None:
    r, pid = clinic()
    other = r.add_patient("Okafor", "Chinedu", "1990-06-15").id
    s = Schedule(r)
    first = s.book(pid, "2026-12-07 09:30", "lee", minutes=30)
    with pytest.raises(OverlapError) as info:
        s.book(other, "2026-12-07 09:45", "lee", minutes=15)
    assert [c.id for c in info.value.clashes] == [first.id]
    assert "09:30-10:00 GARCIA, Maria" in str(info.value)
    assert len(s.day(dt.date(2026, 12, 7))) == 1  # nothing written
    # Another clinician, or back to back, is no clash.
    s.book(other, "2026-12-07 09:45", "kim", minutes=15)
    s.book(other, "2026-12-07 10:00", "lee", minutes=15)
    second = s.book(other, "2026-12-07 09:45", "lee", minutes=15, allow_overlap=True)
    assert second.status == "booked"
    # A cancelled appointment holds no time.
    s.cancel(first.id, "Patient called")
    assert [c.id for c in s.overlaps("lee", "2026-12-07T09:30", "2026-12-07T09:45")] == []


def test_the_patient_s_own_overlapping_appointment_is_named_too() -> None:
    """The tester's observation: booking the same patient again at an overlapping time
    (with another clinician) warned of nothing; it is named as the patient's, and booked
    once the person has seen it. A cancelled one holds no time."""
    r, pid = clinic()
    s = Schedule(r)
    kim = s.book(pid, "2026-12-07 09:30", "kim", minutes=30)
    with pytest.raises(OverlapError) as info:
        s.book(pid, "2026-12-07 09:45", "lee", minutes=15)
    assert (info.value.clashes, [a.id for a in info.value.patient_clashes]) == ([], [kim.id])
    assert str(info.value).startswith("the patient already has an appointment then: ")
    lee = s.book(pid, "2026-12-07 10:00", "lee", minutes=15)  # back to back: no clash
    with pytest.raises(OverlapError) as info:
        s.move(lee.id, "2026-12-07 09:50")
    assert [a.id for a in info.value.everything()] == [kim.id]
    # The same clinician and patient: one clash, named in both lists, listed once.
    with pytest.raises(OverlapError) as info:
        s.book(pid, "2026-12-07 09:40", "kim", minutes=10)
    assert [a.id for a in info.value.everything()] == [kim.id]
    assert "clinician is already booked" in str(info.value)
    assert "patient already has" in str(info.value)
    assert s.book(pid, "2026-12-07 09:45", "lee", minutes=15, allow_overlap=True).status == "booked"
    s.cancel(kim.id)
    assert s.move(lee.id, "2026-12-07 09:30").starts_at == "2026-12-07T09:30"


def test_move_keeps_the_length_and_warns_of_overlaps() -> None:
    r, pid = clinic()
    s = Schedule(r, at("2026-12-07 08:00"))
    a = s.book(pid, "2026-12-07 09:30", "lee", minutes=20)
    other = r.add_patient("Okafor", "Chinedu", "1990-06-15").id  # the clash is Dr Lee's only
    b = s.book(other, "2026-12-07 11:00", "lee", minutes=15)
    moved = s.move(a.id, "2026-12-08 14:00")
    assert (moved.starts_at, moved.ends_at) == ("2026-12-08T14:00", "2026-12-08T14:20")
    with pytest.raises(OverlapError):
        s.move(moved.id, "2026-12-07 11:10")
    assert s.get(moved.id).starts_at == "2026-12-08T14:00"
    s.move(moved.id, "2026-12-07 11:10", allow_overlap=True)
    to_kim = s.move(b.id, "2026-12-07 11:00", clinician="kim")
    assert to_kim.clinician == "kim"
    s.set_status(to_kim.id, "arrived")
    with pytest.raises(TransitionError, match="only a booked appointment can be moved"):
        s.move(to_kim.id, "2026-12-07 12:00")


def test_status_transitions_follow_the_table() -> None:
    r, pid = clinic()
    s = Schedule(r, at("2026-12-09 10:00"))  # the day of these, after they started
    a = s.book(pid, "2026-12-09 09:30", "lee", minutes=15)
    arrived = s.set_status(a.id, "arrived")
    assert arrived.arrived_at is not None
    assert s.start_visit(a.id).status == "in_visit"
    assert s.set_status(a.id, "done").status == "done"
    with pytest.raises(
        TransitionError, match=r"done cannot become booked \(it may become nothing\)"
    ):
        s.set_status(a.id, "booked")
    with pytest.raises(ValidationError, match="'later' is not one of"):
        s.set_status(a.id, "later")
    # Every allowed move works, every other one is refused with what is allowed.
    for source, targets in TRANSITIONS.items():
        for target in APPOINTMENT_STATUSES:
            if target == source:
                continue
            b = _at_status(s, pid, source)
            if target in targets:
                assert s.set_status(b, target).status == target
            else:
                with pytest.raises(TransitionError):
                    s.set_status(b, target)
                assert s.get(b).status == source


def _at_status(s: Schedule, pid: str, status: str) -> str:
    """A new appointment brought to ``status`` by allowed moves."""
    path = {
        "booked": [],
        "arrived": ["arrived"],
        "in_visit": ["arrived", "in_visit"],
        "done": ["arrived", "in_visit", "done"],
        "cancelled": ["cancelled"],
        "no_show": ["no_show"],
    }[status]
    a = s.book(pid, "2026-12-09 09:00", "lee", minutes=5, allow_overlap=True)
    for step in path:
        s.set_status(a.id, step)
    return a.id


@pytest.mark.parametrize("now", ["2026-12-06 09:35", "2026-12-08 09:35", "2027-06-01 09:35"])
def test_arrived_and_in_visit_only_on_the_appointment_s_day(now: str) -> None:
    r, pid = clinic()
    a = Schedule(r, at("2026-12-07 09:35")).book(pid, "2026-12-07 09:30", "lee", minutes=15)
    other_day = Schedule(r, at(now))
    with pytest.raises(
        TransitionError,
        match=rf"status: the appointment is on 2026-12-07: it can only be marked arrived on "
        rf"that day \(today is {now[:10]}\)",
    ):
        other_day.set_status(a.id, "arrived")
    assert other_day.get(a.id).status == "booked" and other_day.get(a.id).arrived_at is None
    on_the_day = Schedule(r, at("2026-12-07 23:59"))
    on_the_day.set_status(a.id, "arrived")
    with pytest.raises(TransitionError, match="can only be marked in visit on that day"):
        other_day.start_visit(a.id)
    assert other_day.get(a.id).status == "arrived"
    # Booked and cancelled are not tied to the day: the desk corrects and cancels any time.
    assert other_day.set_status(a.id, "booked").status == "booked"
    assert other_day.cancel(a.id, "Moved away").status == "cancelled"
    assert other_day.set_status(a.id, "booked").status == "booked"


def test_a_no_show_only_after_the_start_time() -> None:
    r, pid = clinic()
    a = Schedule(r).book(pid, "2027-06-01 09:30", "lee", minutes=15)
    for now in ("2026-12-04 10:00", "2027-06-01 09:00", "2027-06-01 09:30"):
        with pytest.raises(
            TransitionError,
            match="the appointment starts at 2027-06-01 09:30: it can only be marked a "
            "no-show after that",
        ):
            Schedule(r, at(now)).set_status(a.id, "no_show")
    assert Schedule(r).get(a.id).status == "booked"
    # The reviewer's case: marked a no-show early, then arrived on another day. Neither.
    with pytest.raises(TransitionError, match="only be marked arrived on that day"):
        Schedule(r, at("2026-12-04 10:00")).set_status(a.id, "arrived")
    late = Schedule(r, at("2027-06-01 09:31"))
    assert late.set_status(a.id, "no_show").status == "no_show"
    assert late.set_status(a.id, "arrived").status == "arrived"  # turned up late, same day
    assert Schedule(r, at("2027-06-02 09:00")).set_status(a.id, "no_show").status == "no_show"


def test_cancel_keeps_the_reason_and_rebooking_clears_it() -> None:
    r, pid = clinic()
    s = Schedule(r)
    a = s.book(pid, "2026-12-07 09:30", "lee", minutes=15)
    cancelled = s.cancel(a.id, "Feeling better")
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "Feeling better")
    rebooked = s.set_status(a.id, "booked")
    assert (rebooked.status, rebooked.cancel_reason) == ("booked", None)
    actions = [row[0] for row in r.db.query("SELECT action FROM audit_log")]
    assert "appointment.cancel" in actions and "appointment.status" in actions


def test_putting_back_a_cancelled_or_no_show_appointment_warns_of_what_took_its_time() -> None:
    """Reinstating a cancelled appointment (or a no-show turning up) whose time the
    clinician has since given to someone else is refused naming the clash when the caller
    asks (the schedule page), allowed once the person has seen it; nothing is written."""
    r, pid = clinic()
    other = r.add_patient("Okafor", "Chinedu", "1990-06-15").id
    s = Schedule(r, at("2026-12-07 09:40"))
    first = s.book(pid, "2026-12-07 09:30", "lee", minutes=30)
    s.cancel(first.id, "Feeling better")
    taken = s.book(other, "2026-12-07 09:45", "lee", minutes=15)
    with pytest.raises(OverlapError) as info:
        s.set_status(first.id, "booked", allow_overlap=False)
    assert [c.id for c in info.value.clashes] == [taken.id]
    assert s.get(first.id).status == "cancelled"  # nothing written
    assert s.set_status(first.id, "booked", allow_overlap=True).status == "booked"
    s.set_status(first.id, "no_show")
    with pytest.raises(OverlapError):
        s.set_status(first.id, "arrived", allow_overlap=False)
    # Back to booked from arrived held the time all along: nothing to warn of.
    assert s.set_status(first.id, "arrived", allow_overlap=True).status == "arrived"
    assert s.set_status(first.id, "booked", allow_overlap=False).status == "booked"


def test_the_waiting_room_lists_today_s_arrivals_longest_waiting_first() -> None:
    r, pid = clinic()
    other = r.add_patient("Okafor", "Chinedu", "1990-06-15").id
    clock = [dt.datetime(2026, 12, 7, 8, 40)]
    s = Schedule(r, clock=lambda: clock[0])
    a = s.book(pid, "2026-12-07 09:00", "lee", minutes=15)
    b = s.book(other, "2026-12-07 08:00", "kim", minutes=15)
    s.book(other, "2026-12-07 10:00", "kim", minutes=15)  # not arrived
    s.book(pid, "2026-12-08 09:00", "kim", minutes=15)  # tomorrow
    s.set_status(a.id, "arrived")
    clock[0] = dt.datetime(2026, 12, 7, 8, 52, 30)
    s.set_status(b.id, "arrived")
    waiting = s.waiting()
    # a arrived first, whatever the booked times.
    assert [w.id for w in waiting] == [a.id, b.id]
    assert waiting[0].arrived_at == "2026-12-07T08:40:00"
    now = dt.datetime(2026, 12, 7, 9, 5, 30)
    assert [w.waiting_minutes(now) for w in waiting] == [25, 13]
    assert s.waiting(dt.date(2026, 12, 8)) == []
    s.start_visit(a.id)
    assert [w.id for w in s.waiting()] == [b.id]
    assert s.get(a.id).waiting_minutes(now) is None


def test_week_runs_monday_to_sunday() -> None:
    r, pid = clinic()
    s = Schedule(r)
    assert week_start(dt.date(2026, 12, 10)) == dt.date(2026, 12, 7)
    sunday_before = s.book(pid, "2026-12-06 09:00", "lee", minutes=15)
    monday = s.book(pid, "2026-12-07 09:00", "lee", minutes=15)
    sunday = s.book(pid, "2026-12-13 23:30", "lee", minutes=15)
    s.book(pid, "2026-12-14 00:00", "lee", minutes=15)
    week = [a.id for a in s.week(dt.date(2026, 12, 10))]
    assert week == [monday.id, sunday.id]
    assert sunday_before.id not in week


def test_two_workstations_moving_one_appointment_make_a_conflict() -> None:
    a, pid = clinic("ann")
    b = new_replica("bob")
    appt = Schedule(a).book(pid, "2026-12-07 09:30", "lee", minutes=15)
    sync_pair(b, a)
    Schedule(a).move(appt.id, "2026-12-07 10:00")
    Schedule(b).move(appt.id, "2026-12-07 11:00")
    sync_pair(b, a)
    sync_pair(b, a)
    for r in (a, b):
        fields = sorted(c.field for c in r.conflicts())
        assert fields == ["ends_at", "starts_at"]
    conflict = next(c for c in a.conflicts() if c.field == "starts_at")
    assert sorted(str(c.value) for c in conflict.candidates) == [
        "2026-12-07T10:00",
        "2026-12-07T11:00",
    ]
    assert materialized(a) == materialized(b)


def test_a_person_resolving_a_conflict_may_reopen_a_finished_appointment() -> None:
    a, pid = clinic("ann")
    b = new_replica("bob")
    on_the_day = at("2026-12-07 09:40")
    appt = Schedule(a, on_the_day).book(pid, "2026-12-07 09:30", "lee", minutes=15)
    Schedule(a, on_the_day).set_status(appt.id, "arrived")
    Schedule(a, on_the_day).set_status(appt.id, "in_visit")
    sync_pair(b, a)
    Schedule(a, on_the_day).set_status(appt.id, "done")
    Schedule(b, on_the_day).set_status(appt.id, "arrived")  # visit started by mistake, on b
    sync_pair(b, a)
    [conflict] = a.conflicts()
    assert conflict.field == "status"
    a.resolve_conflict(conflict.id, value="booked")
    assert Schedule(a).get(appt.id).status == "booked"
