"""Clocks that lie: no change is refused or held back for its clock, one wrong clock drags
no other replica's timestamps, and the person at a computer whose clock is off is told by
how much.

A wrong wall clock is simulated by shifting ``core.store.clinic_time.wall_ms``, the one
place Careline reads the clock for stamps and offsets, while one replica writes; everything
else is real (SQLCipher replicas, sessions, the responder). tests/integration/test_clocks.py
runs the real programs under libfaketime.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from core.records.clinic import ClinicRecords
from core.store import clinic_time, oplog
from core.store.oplog import parse_hlc
from core.sync import clock
from core.sync import protocol as p
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.unit.sync.replicas import assert_converged, new_replica, pull_from, sync_pair

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@contextmanager
def clock_off(monkeypatch: pytest.MonkeyPatch, ms: int) -> Iterator[None]:
    """This process's wall clock reads ``ms`` off the true time within the block."""
    real = clinic_time.wall_ms
    with monkeypatch.context() as patch:
        patch.setattr(clinic_time, "wall_ms", lambda: real() + ms)
        yield


@dataclass
class OtherClock:
    """A real responder on a computer whose clock reads ``ms`` off this one's: its replies'
    clock is shifted on the way back (only the clock differs, as between two computers)."""

    responder: Responder
    ms: int

    def request(self, message: bytes) -> bytes:
        reply = json.loads(self.responder.handle(message))
        reply["now_ms"] += self.ms
        return json.dumps(reply).encode()


def _own_hlcs(r: ClinicRecords) -> list[str]:
    me = oplog.identity(r.db).replica_id
    rows = r.db.query("SELECT hlc FROM oplog WHERE origin = ? ORDER BY seq", (me,))
    return [str(h) for (h,) in rows]


def _stamped_ms(r: ClinicRecords) -> int:
    """Wall time of the replica's newest own change."""
    return parse_hlc(_own_hlcs(r)[-1])[0]


def test_changes_stamped_days_ahead_and_days_behind_apply_everywhere_and_drag_no_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ahead, behind, server = new_replica("ann"), new_replica("bob"), new_replica("srv")
    pid = server.add_patient("Li", "Wei", "1990-01-01").id
    sync_pair(ahead, server)
    sync_pair(behind, server)
    with clock_off(monkeypatch, 3 * DAY):
        ahead.update_patient(pid, {"phone": "555-0100"})
        ahead.add_allergy(pid, "Latex")
    with clock_off(monkeypatch, -3 * DAY):
        behind.update_patient(pid, {"mrn": "MRN-7"})
        behind.add_allergy(pid, "Penicillin")
    now = clinic_time.wall_ms()
    assert _stamped_ms(ahead) > now + 2 * DAY and _stamped_ms(behind) < now - 2 * DAY

    for r in (ahead, behind, ahead):  # each pushes what it made and pulls the rest
        sync_pair(r, server)
    assert_converged([ahead, behind, server])
    for r in (ahead, behind, server):
        patient = r.get_patient(pid)
        assert (patient.phone, patient.mrn) == ("555-0100", "MRN-7")
        assert {a.substance for a in r.allergies(pid)} == {"Latex", "Penicillin"}
    # Nobody's clock followed the stamps three days ahead: the next change made anywhere,
    # on the workstation whose clock was wrong too (now set right), is stamped now.
    for r in (ahead, behind, server):
        r.update_patient(pid, {"phone": f"555-01{len(r.actor)}"})
        assert abs(_stamped_ms(r) - clinic_time.wall_ms()) < MINUTE


def test_a_change_made_after_seeing_one_stamped_days_ahead_still_replaces_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CRDT, not the clock, says what a write saw: the later edit supersedes the value
    # stamped three days ahead instead of making a conflict that value would "win".
    ahead, other = new_replica("ann"), new_replica("bob")
    pid = ahead.add_patient("Li", "Wei", "1990-01-01").id
    sync_pair(other, ahead)
    with clock_off(monkeypatch, 3 * DAY):
        ahead.update_patient(pid, {"phone": "555-0100"})
    sync_pair(other, ahead)
    other.update_patient(pid, {"phone": "555-0199"})
    sync_pair(other, ahead)
    for r in (ahead, other):
        assert r.get_patient(pid).phone == "555-0199"
        assert r.conflicts() == []


def test_a_0_1_0_peer_is_sent_no_op_stamped_ahead_of_the_clock_it_would_refuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Careline 0.1.0 refused an op stamped more than 5 minutes ahead, and with it the whole
    # batch: such an op (and what its origin made after it) waits for that peer, while
    # everything else still goes; newer peers get it at once.
    ahead, server, old = new_replica("ann"), new_replica("srv"), new_replica("old")
    pid = server.add_patient("Li", "Wei", "1990-01-01").id
    old.add_patient("Chen", "Wei", "1990-01-01")  # has history: pulls ops, no snapshot
    sync_pair(ahead, server)
    with clock_off(monkeypatch, 3 * DAY):
        ahead.update_patient(pid, {"phone": "555-0100"})
    ahead.update_patient(pid, {"mrn": "MRN-7"})  # the clock set right: stamped now
    sync_pair(ahead, server)
    server.add_patient("Osei", "Kofi", "1988-02-02")

    report = pull_from(old, server, protocol=1)
    assert {p.family for p in old.list_patients()} == {"Chen", "Li", "Osei"}
    assert (old.get_patient(pid).phone, old.get_patient(pid).mrn) == (None, None)
    assert report.pulled == 2  # the patient's creation and the other patient
    with clock_off(monkeypatch, 3 * DAY):  # three days on, the clock has come round to it
        pull_from(old, server, protocol=1)
    assert (old.get_patient(pid).phone, old.get_patient(pid).mrn) == ("555-0100", "MRN-7")


def test_every_reply_carries_the_responders_clock() -> None:
    server = new_replica("srv")
    server.add_patient("Li", "Wei", "1990-01-01")
    responder = Responder(server.db)
    requests: list[dict[str, object]] = [
        {"type": "pull", "vv": {}, "max_ops": 10},
        {"type": "push", "ops": []},
        {"type": "snapshot", "after": None, "max_records": 10},
        {"type": "pull", "vv": {"x": -1}, "max_ops": 10},  # an error reply too
    ]
    for request in requests:
        before = clinic_time.wall_ms()
        reply = json.loads(responder.handle(p.encode(request)))
        assert before <= reply["now_ms"] <= clinic_time.wall_ms(), reply["type"]


@pytest.mark.parametrize(("theirs", "words"), [
    (-2 * HOUR, "This computer's clock is 2 hours ahead of the clinic server"),
    (3 * DAY, "This computer's clock is 3 days behind the clinic server"),
    (30_000, None),  # half a minute: network delay and drift, not worth a word
])  # fmt: skip
def test_the_session_measures_this_computers_clock_against_the_other_side(
    theirs: int, words: str | None
) -> None:
    server, desk = new_replica("srv"), new_replica("desk")
    server.add_patient("Li", "Wei", "1990-01-01")
    report = sync(desk.db, OtherClock(Responder(server.db), theirs), "desk")
    assert report.clock_offset_ms is not None
    assert abs(report.clock_offset_ms + theirs) < 1_000
    assert report.to_dict()["clock_offset_ms"] == report.clock_offset_ms
    assert clock.clock_notice(report.clock_offset_ms) == words


def test_an_older_responder_sending_no_clock_leaves_the_offset_unknown() -> None:
    server, desk = new_replica("srv"), new_replica("desk")

    class Older:
        def request(self, message: bytes) -> bytes:
            reply = json.loads(Responder(server.db).handle(message))
            del reply["now_ms"]
            return json.dumps(reply).encode()

    report = sync(desk.db, Older(), "desk")
    assert report.clock_offset_ms is None
    assert report.to_dict()["clock_offset_ms"] is None


def _offset_entries(r: ClinicRecords) -> int:
    rows = r.db.query("SELECT count(*) FROM audit_log WHERE action = 'sync.clock_offset'")
    return int(rows[0][0])


def test_after_syncing_with_the_server_a_desk_whose_clock_is_wrong_stamps_clinic_time() -> None:
    server, desk = new_replica("srv"), new_replica("desk")
    server.add_patient("Li", "Wei", "1990-01-01")
    # The server's clock reads two hours earlier than the desk's: the desk is ahead.
    to_server = OtherClock(Responder(server.db), -2 * HOUR)
    for _ in range(2):
        sync(desk.db, to_server, "desk", clock_reference=True)
    kept = clinic_time.stored(desk.db)
    assert kept is not None and abs(kept.offset_ms - 2 * HOUR) < 1_000
    # Kept once, audited once: the second session measured the same and wrote nothing.
    assert _offset_entries(desk) == 1
    pid = desk.add_patient("Osei", "Kofi", "1988-02-02").id
    assert abs(_stamped_ms(desk) - (clinic_time.wall_ms() - 2 * HOUR)) < 1_000
    # A LAN peer's clock is compared with, never followed.
    peer = new_replica("peer")
    sync(desk.db, OtherClock(Responder(peer.db), 5 * HOUR), "desk")
    assert clinic_time.stored(desk.db) == kept
    # The clock is set right: the next server session finds it so and forgets the offset.
    sync(desk.db, LocalTransport(Responder(server.db)), "desk", clock_reference=True)
    assert clinic_time.stored(desk.db) is None
    assert _offset_entries(desk) == 2
    desk.update_patient(pid, {"phone": "555-0100"})
    assert abs(_stamped_ms(desk) - clinic_time.wall_ms()) < 1_000


def test_a_lan_peer_that_knows_its_clock_is_wrong_answers_in_clinic_time() -> None:
    server, peer, desk = new_replica("srv"), new_replica("peer"), new_replica("desk")
    sync(peer.db, OtherClock(Responder(server.db), 3 * DAY), "peer", clock_reference=True)
    # The peer's own clock is three days behind the server's; it answers with the server's.
    report = sync(desk.db, LocalTransport(Responder(peer.db)), "desk")
    assert report.clock_offset_ms is not None
    assert abs(report.clock_offset_ms + 3 * DAY) < 1_000
    assert clock.clock_notice(report.clock_offset_ms, clock.PEER) == (
        "This computer's clock is 3 days behind the workstation it synced with"
    )


@pytest.mark.parametrize(("offset", "against", "words"), [
    (2 * HOUR, clock.SERVER, "This computer's clock is 2 hours ahead of the clinic server"),
    (-2 * HOUR, clock.SERVER, "This computer's clock is 2 hours behind the clinic server"),
    (90 * MINUTE, clock.PEER,
     "This computer's clock is 90 minutes ahead of the workstation it synced with"),
    (-3 * DAY - 5 * HOUR, clock.PEERS,
     "This computer's clock is 3 days behind the workstations it synced with"),
    (-24 * 365 * DAY, clock.SERVER, "This computer's clock is 24 years behind the clinic server"),
    (2 * MINUTE, clock.SERVER, "This computer's clock is 2 minutes ahead of the clinic server"),
    (2 * MINUTE - 1, clock.SERVER, None),
    (None, clock.SERVER, None),
])  # fmt: skip
def test_the_clock_notice_says_by_how_much_and_which_way(
    offset: int | None, against: str, words: str | None
) -> None:
    assert clock.clock_notice(offset, against) == words


def test_with_several_lan_peers_only_a_clock_off_all_of_them_is_told() -> None:
    # One peer with a bad clock is that peer's to hear about, not everyone's.
    assert clock.session_notice(None, [3 * HOUR, 10_000]) is None
    assert clock.session_notice(None, [3 * HOUR, -5 * HOUR, None]) == (
        "This computer's clock is 3 hours ahead of the workstations it synced with"
    )
    assert clock.session_notice(None, [None, 3 * HOUR]) == (
        "This computer's clock is 3 hours ahead of the workstation it synced with"
    )
    # The server's clock is the clinic's: it decides whenever there was a server session.
    assert clock.session_notice(10_000, [3 * HOUR]) is None
    assert clock.session_notice(None, []) is None
