"""The hybrid logical clock: what a person relies on is that a change made after seeing
another sorts after it, and that every replica shows the same value of a conflicted field.

Clocks that run fast are simulated by setting a replica's stored clock (``meta.hlc``), the
state a replica whose wall clock ran ahead would have left; everything else goes through
the real write path and real sync sessions between SQLCipher replicas.
"""

from __future__ import annotations

import time

from core.records.clinic import ClinicRecords
from core.store import oplog
from core.store.oplog import format_hlc, parse_hlc
from tests.unit.sync.replicas import materialized, new_replica, sync_pair


def _replica_id(r: ClinicRecords) -> str:
    return oplog.identity(r.db).replica_id


def _set_clock(r: ClinicRecords, wall_ms: int, counter: int) -> None:
    """Leave ``r``'s clock where a replica whose wall clock said ``wall_ms`` leaves it."""
    with r.db.write("test", "clock.set", "meta", "hlc") as tx:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('hlc', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (format_hlc(wall_ms, counter, _replica_id(r)),),
        )


def _last_op_hlc(r: ClinicRecords) -> str:
    """HLC of the newest op this replica made itself."""
    me = _replica_id(r)
    [(hlc,)] = r.db.query("SELECT hlc FROM oplog WHERE origin = ? ORDER BY seq DESC LIMIT 1", (me,))
    return str(hlc)


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_a_write_made_after_receiving_a_fast_clocks_op_sorts_after_it() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    pid = a.add_patient("Li", "Wei", "1990-01-01").id
    sync_pair(b, a)
    _set_clock(b, _now_ms() + 120_000, 7)  # bob's workstation runs two minutes fast
    b.update_patient(pid, {"phone": "555-0100"})
    remote = _last_op_hlc(b)
    assert parse_hlc(remote)[:2] > parse_hlc(_last_op_hlc(a))[:2]
    sync_pair(a, b)
    a.update_patient(pid, {"given": "Wei-Ming"})  # made after seeing bob's change
    local = _last_op_hlc(a)
    assert local > remote  # HLC strings sort as the clock does
    wall, counter, replica = parse_hlc(local)
    # Ann's own wall clock is behind bob's op: the clock took the remote time and counted on.
    assert (wall, counter) == (parse_hlc(remote)[0], parse_hlc(remote)[1] + 1)
    assert replica == _replica_id(a)


def test_an_older_remote_op_never_moves_the_clock_back() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    pid = a.add_patient("Li", "Wei", "1990-01-01").id
    sync_pair(b, a)
    b.update_patient(pid, {"phone": "555-0100"})  # bob's clock: now
    _set_clock(a, _now_ms() + 60_000, 0)  # ann's is a minute ahead
    a.update_patient(pid, {"given": "Ann's"})
    before = _last_op_hlc(a)
    sync_pair(a, b)
    a.update_patient(pid, {"given": "Ann's again"})
    assert _last_op_hlc(a) > before


def test_the_clock_counts_on_within_a_millisecond_and_when_the_wall_clock_steps_back() -> None:
    r = new_replica("ann")
    me = _replica_id(r)
    t = 1_800_000_000_000
    with r.db.write("test", "clock", "meta", "hlc") as tx:
        first = oplog.tick(tx, me, now_ms=t)
        same_ms = oplog.tick(tx, me, now_ms=t)
        stepped_back = oplog.tick(tx, me, now_ms=t - 60_000)  # NTP moved the clock a minute
        oplog.observe(tx, format_hlc(t + 500, 41, "f" * 16), me, now_ms=t + 100)
        after_remote = oplog.tick(tx, me, now_ms=t + 100)
        oplog.observe(tx, format_hlc(1_000_000_000_000, 0, "0" * 16), me, now_ms=t)  # old
        after_old = oplog.tick(tx, me, now_ms=t - 60_000)
    assert first < same_ms < stepped_back < after_remote < after_old
    assert parse_hlc(after_remote) == (t + 500, 42, me)
    assert parse_hlc(after_old) == (t + 500, 43, me)
    with r.db.write("test", "clock", "meta", "hlc") as tx:
        oplog.observe(tx, format_hlc(t + 600, oplog.HLC_MAX_COUNTER, "f" * 16), me, now_ms=t)
        carried = oplog.tick(tx, me, now_ms=t)
    assert parse_hlc(carried) == (t + 601, 0, me)  # carries instead of widening


def test_a_remote_clock_within_five_minutes_ahead_is_followed_and_one_further_is_not() -> None:
    r = new_replica("ann")
    me = _replica_id(r)
    t = 1_800_000_000_000
    lead = oplog.MAX_CLOCK_LEAD_MS
    with r.db.write("test", "clock", "meta", "hlc") as tx:
        assert oplog.observe(tx, format_hlc(t + lead, 3, "b" * 16), me, now_ms=t) == 0
        followed = oplog.tick(tx, me, now_ms=t)
        days_ahead = t + 3 * 86_400_000
        assert oplog.observe(tx, format_hlc(days_ahead, 0, "c" * 16), me, now_ms=t) == (
            days_ahead - t
        )
        assert oplog.observe(tx, format_hlc(t + lead + 1, 0, "c" * 16), me, now_ms=t) == lead + 1
        not_dragged = oplog.tick(tx, me, now_ms=t + 1)
    # Causally after the op within the bound; the ones beyond it left the clock alone.
    assert parse_hlc(followed) == (t + lead, 4, me)
    assert parse_hlc(not_dragged) == (t + lead, 5, me)


def test_a_batch_holding_one_op_days_ahead_is_still_followed_as_far_as_the_bound() -> None:
    r = new_replica("ann")
    me = _replica_id(r)
    t = 1_800_000_000_000
    batch = [format_hlc(t + 3 * 86_400_000, 0, "c" * 16), format_hlc(t + 60_000, 2, "b" * 16)]
    with r.db.write("test", "clock", "meta", "hlc") as tx:
        assert oplog.observe(tx, batch, me, now_ms=t) == 3 * 86_400_000
        after = oplog.tick(tx, me, now_ms=t)
    assert parse_hlc(after) == (t + 60_000, 3, me)  # after the op a minute ahead


def test_a_clock_set_back_by_more_than_five_minutes_stamps_from_the_clock_again() -> None:
    r = new_replica("ann")
    me = _replica_id(r)
    t = 1_800_000_000_000
    with r.db.write("test", "clock", "meta", "hlc") as tx:
        oplog.tick(tx, me, now_ms=t + 2 * 3_600_000)  # the clock ran two hours ahead
        back = oplog.tick(tx, me, now_ms=t)  # and was set right
        on = oplog.tick(tx, me, now_ms=t)
    # Not frozen at the wrong moment until real time came round to it.
    assert parse_hlc(back) == (t, 0, me)
    assert parse_hlc(on) == (t, 1, me)


def test_a_clock_before_1970_or_after_2286_still_stamps_a_write() -> None:
    r = new_replica("ann")
    me = _replica_id(r)
    with r.db.write("test", "clock", "meta", "hlc") as tx:
        before = oplog.tick(tx, me, now_ms=-86_400_000)
        tx.execute("DELETE FROM meta WHERE key = 'hlc'")
        after = oplog.tick(tx, me, now_ms=10**14)
    assert parse_hlc(before)[0] == 0
    assert parse_hlc(after)[0] == oplog.HLC_MAX_WALL - 1


def _conflicted_given(*replicas: ClinicRecords) -> list[str]:
    """The displayed given name on each replica, checking each shows the conflict."""
    shown = []
    for r in replicas:
        [conflict] = r.conflicts()
        assert conflict.field == "given"
        assert len(conflict.candidates) == 2
        shown.append(r.list_patients()[0].given)
    return shown


def _three_replicas_with_a_patient() -> tuple[ClinicRecords, ClinicRecords, ClinicRecords, str]:
    a, b, c = new_replica("ann"), new_replica("bob"), new_replica("cy")
    pid = a.add_patient("Li", "Wei", "1990-01-01").id
    sync_pair(b, a)
    sync_pair(c, a)
    return a, b, c, pid


def _spread(a: ClinicRecords, b: ClinicRecords, c: ClinicRecords) -> None:
    """Every replica receives both writes, each in its own order (c: bob's first)."""
    sync_pair(c, b)
    sync_pair(c, a)
    sync_pair(a, b)
    sync_pair(b, a)


def test_the_displayed_winner_of_a_conflict_is_the_newest_clock_on_every_replica() -> None:
    for fast_writes_first in (True, False):
        a, b, c, pid = _three_replicas_with_a_patient()
        # The replica whose clock is ahead has the smaller replica id, and writes first or
        # second in real time: only the clock can make its value the one shown.
        fast, slow = sorted((a, b), key=_replica_id)
        _set_clock(fast, _now_ms() + 60_000, 0)
        writes = [(fast, "newest"), (slow, "older")]
        for writer, value in writes if fast_writes_first else writes[::-1]:
            writer.update_patient(pid, {"given": value})
        assert _last_op_hlc(fast) > _last_op_hlc(slow)
        _spread(a, b, c)
        assert _conflicted_given(a, b, c) == ["newest"] * 3
        assert materialized(a) == materialized(b) == materialized(c)


def test_writes_in_the_same_clock_tick_are_ordered_by_replica_id_on_every_replica() -> None:
    a, b, c, pid = _three_replicas_with_a_patient()
    tick = _now_ms() + 30_000
    for r in (a, b):
        _set_clock(r, tick, 5)  # both clocks stand at exactly the same time and count
    a.update_patient(pid, {"given": "from ann"})
    b.update_patient(pid, {"given": "from bob"})
    assert parse_hlc(_last_op_hlc(a))[:2] == parse_hlc(_last_op_hlc(b))[:2] == (tick, 6)
    _spread(a, b, c)
    higher = "from ann" if _replica_id(a) > _replica_id(b) else "from bob"
    assert _conflicted_given(a, b, c) == [higher] * 3
    assert materialized(a) == materialized(b) == materialized(c)
