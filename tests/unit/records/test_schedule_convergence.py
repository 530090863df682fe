"""Property: whatever the schedule edits on three workstations and the order they sync in,
the replicas converge, and every appointment shows a start and end that were written
together (a move writes both in one op, so the deterministic winner never pairs one
workstation's start with another's end) with the start before the end."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.records.errors import NotFoundError, ValidationError
from core.records.schedule import Schedule
from core.records.types import APPOINTMENT_STATUSES
from tests.unit.sync.replicas import assert_converged, new_replica, sync_pair

EXAMPLES = min(int(os.environ.get("CARELINE_PROPERTY_EXAMPLES", "60")), 500)
PASSWORD = "long enough password"

replica = st.integers(0, 2)
appointment = st.integers(0, 3)
book = st.tuples(st.just("book"), replica, st.integers(8, 17), st.sampled_from((10, 15, 30)))
move = st.tuples(
    st.just("move"), replica, appointment, st.integers(8, 17), st.sampled_from((None, 20, 45))
)
status = st.tuples(st.just("status"), replica, appointment, st.sampled_from(APPOINTMENT_STATUSES))
sync = st.tuples(st.just("sync"), replica, st.integers(1, 2))
script = st.lists(st.one_of(book, move, move, status, sync), min_size=4, max_size=25)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=script)
def test_schedules_converge_with_whole_moves(steps: list[tuple[Any, ...]]) -> None:
    replicas = [new_replica(name) for name in ("ann", "bob", "cat")]
    first = replicas[0]
    first.add_user("lee", "Dr Lee", "clinician", PASSWORD)
    pid = first.add_patient("Garcia", "Maria", "1984-03-02").id
    for other in replicas[1:]:
        sync_pair(other, first)
    booked: list[str] = []
    written: dict[str, set[tuple[str, str]]] = {}  # appointment -> (start, end) written
    day = dt.date(2026, 12, 7)
    for step in steps:
        kind, r = step[0], replicas[step[1]]
        # The clinic's clock on the evening of that day: every status may be set.
        schedule = Schedule(r, lambda: dt.datetime(2026, 12, 7, 18, 0))
        try:
            if kind == "book":
                a = schedule.book(pid, f"{day} {step[2]:02d}:00", "lee", minutes=step[3],
                                  allow_overlap=True)  # fmt: skip
                booked.append(a.id)
                written[a.id] = {(a.starts_at, a.ends_at)}
            elif kind == "move" and booked:
                target = booked[step[2] % len(booked)]
                a = schedule.move(target, f"{day} {step[3]:02d}:30", minutes=step[4],
                                  allow_overlap=True)  # fmt: skip
                written[target].add((a.starts_at, a.ends_at))
            elif kind == "status" and booked:
                schedule.set_status(booked[step[2] % len(booked)], step[3])
            elif kind == "sync":
                sync_pair(r, replicas[(step[1] + step[2]) % 3])
        except (ValidationError, NotFoundError):
            pass  # not allowed from where it stands, or not on this replica yet
    for _ in range(2):
        for other in replicas[1:]:
            sync_pair(other, first)
    assert_converged(replicas)
    for a in Schedule(first).day(day):
        assert (a.starts_at, a.ends_at) in written[a.id]
        assert a.starts_at < a.ends_at
        assert a.status in APPOINTMENT_STATUSES
    for r in replicas:
        r.db.close()
