"""Two concurrent moves of one appointment, settled in the conflict inbox: the start and the
end are two conflicts of their own, and choosing a different side in each gives a time
nobody booked (found by the convergence property test)."""

from __future__ import annotations

import time

from core.records.schedule import Schedule
from tests.unit.sync.replicas import assert_converged, new_replica, sync_pair


def test_settling_concurrent_moves_keeps_one_whole_move() -> None:
    ann, bob = new_replica("ann"), new_replica("bob")
    ann.add_user("lee", "Dr Lee", "clinician", "long enough password")
    pid = ann.add_patient("Garcia", "Maria", "1984-03-02").id
    booked = Schedule(ann).book(pid, "2026-12-07 09:00", "lee", 15)
    sync_pair(bob, ann)
    Schedule(ann).move(booked.id, "2026-12-07 10:30")
    Schedule(bob).move(booked.id, "2026-12-07 11:30")
    sync_pair(bob, ann)
    sync_pair(ann, bob)
    conflicts = {c.field: c for c in ann.conflicts() if c.record_id == booked.id}
    start = next(c for c in conflicts["starts_at"].candidates if c.value == "2026-12-07T10:30")
    ann.resolve_conflict(conflicts["starts_at"].id, choose=start.id)
    # The person then looks at the end: if it is still a conflict, they pick Bob's end.
    left = {c.field: c for c in ann.conflicts() if c.record_id == booked.id}
    if "ends_at" in left:
        end = next(c for c in left["ends_at"].candidates if c.value == "2026-12-07T11:45")
        ann.resolve_conflict(left["ends_at"].id, choose=end.id)
    sync_pair(bob, ann)
    assert_converged([ann, bob])
    moved = Schedule(ann).get(booked.id)
    assert (moved.starts_at, moved.ends_at) in {
        ("2026-12-07T10:30", "2026-12-07T10:45"),
        ("2026-12-07T11:30", "2026-12-07T11:45"),
    }


def test_concurrent_moves_never_show_one_moves_start_with_anothers_end() -> None:
    ann, bob = new_replica("ann"), new_replica("bob")
    ann.add_user("lee", "Dr Lee", "clinician", "correct horse battery")
    pid = ann.add_patient("Garcia", "Maria", "1984-03-02").id
    booked = Schedule(ann).book(pid, "2026-12-07 08:00", "lee", 10)
    sync_pair(bob, ann)

    # In this order in time (a few ms apart, so their clocks order them): Bob moves it,
    # Ann moves it elsewhere, Bob lengthens his.
    Schedule(bob).move(booked.id, "2026-12-07 09:30", 10)
    time.sleep(0.005)
    Schedule(ann).move(booked.id, "2026-12-07 08:30", 10)
    time.sleep(0.005)
    Schedule(bob).move(booked.id, "2026-12-07 09:30", 20)
    sync_pair(bob, ann)

    assert_converged([ann, bob])
    shown = Schedule(ann).get(booked.id)
    assert (shown.starts_at, shown.ends_at) in {
        ("2026-12-07T08:30", "2026-12-07T08:40"),
        ("2026-12-07T09:30", "2026-12-07T09:50"),
    }
