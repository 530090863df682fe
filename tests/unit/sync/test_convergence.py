"""Property: whatever the edits, partitions and message faults, replicas converge and no
concurrent clinical value or list entry is silently lost.

Random scripts on 3-5 replicas: patient demographics edited, patients created and deleted,
allergies, problems and medications added and removed, unsigned notes typed into, register,
edit-vs-delete and list conflicts resolved; syncs between random pairs over links that drop,
duplicate, replay and reorder requests, replies and the ops inside batches. "Races" (two
replicas changing the same thing before either syncs) make a good share of the examples
conflict. The clinic's day too: appointments booked, moved and their status changed (moved
or changed on two replicas at once), visits started, closed and their reason edited, notes
in visits signed (twice at once, or while typed into elsewhere) with addenda, vital signs
recorded and corrected, doses changed (stop + new), "no known allergies" recorded, and
their conflicts settled. Duplicate patients merged and unmerged (the same pair on two
replicas at once, in opposite directions at once, or while another replica edits the
duplicate or adds to its lists). After every partition heals, every replica must hold
byte-for-byte the same derived state, and an oracle that watched the script (independently
of the replicas) checks what must have survived, and every chart shows what was recorded on
the patients merged into it. Finally every conflict is resolved and all inboxes must empty.

`make test` runs 300 examples; `make soak` runs 10,000 (CARELINE_PROPERTY_EXAMPLES).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.authz.tuples import RelationTuple
from core.records import authorize, crdt, merged
from core.records.allergy_status import AllergyRecords
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError, NotFoundError, ValidationError
from core.records.medications import Medications
from core.records.merges import Merges
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.relations import Access
from core.records.schedule import Schedule
from core.records.types import APPOINTMENT_STATUSES, PATIENT
from core.records.visits import Visits
from core.records.vital_signs import Reading, VitalSigns
from core.store.state_codec import unpack_state
from tests.unit.sync.replicas import (
    FAULTS,
    Wire,
    assert_converged,
    faulty_sync,
    new_replica,
    sync_pair,
)

EXAMPLES = int(os.environ.get("CARELINE_PROPERTY_EXAMPLES", "300"))
FIELDS = ("family", "given", "phone")
VALUES = ("Ames", "Bo", "Cruz", "Diaz")
# A phone holds a number: each value above stands for one when the field edited is a phone.
PHONES = dict(zip(VALUES, ("555-0101", "555-0102", "555-0103", "555-0104"), strict=True))
# Per list: the values entered (each its own logical item) and the table showing the list.
LISTS = {
    "allergies": (("Latex", "Penicillin", "Peanut"), "allergies", "substance"),
    "problems": (("Asthma", "Gout"), "conditions", "description"),
    "medications": (("Insulin", "Statin"), "medications", "name"),
}
LINK_FAULTS = ("none", "none", "none", *FAULTS)

Action = tuple[Any, ...]
T = TypeVar("T")
replica = st.integers(0, 4)
patient = st.integers(0, 3)  # of the 2 seeded patients and those created since
list_field = st.sampled_from(sorted(LISTS))
a_value = st.sampled_from(VALUES)
edit = st.tuples(st.just("edit"), replica, patient, st.sampled_from(FIELDS), a_value)
add = st.tuples(st.just("add"), replica, patient, list_field, st.integers(0, 2))
remove = st.tuples(st.just("remove"), replica, patient, list_field, st.integers(0, 3))
# Resolve a problem, stop a medication, edit an allergy: remove + add in one change.
replace = st.tuples(st.just("replace"), replica, patient, list_field, st.integers(0, 3))
delete = st.tuples(st.just("delete"), replica, patient)
create = st.tuples(st.just("create"), replica, st.sampled_from(VALUES))
note = st.tuples(st.just("note"), replica, patient)
type_in = st.tuples(st.just("type"), replica, st.integers(0, 2), st.integers(0, 8), st.booleans())
resolve = st.tuples(st.just("resolve"), replica, patient, st.integers(0, 3), st.integers(0, 3))
# The clinic's day: appointments, visits, notes in them, vitals, dose changes, "no known
# allergies"; items are picked by index among those made so far (-1: the newest).
item = st.integers(-1, 3)
hour = st.integers(8, 17)
book = st.tuples(st.just("book"), replica, patient, hour)
move = st.tuples(st.just("move"), replica, item, hour)
status = st.tuples(st.just("status"), replica, item, st.sampled_from(APPOINTMENT_STATUSES))
visit = st.tuples(st.just("visit"), replica, patient, st.sampled_from((None, *VALUES)))
close = st.tuples(st.just("close"), replica, item)
reason = st.tuples(st.just("reason"), replica, item, a_value)
visit_note = st.tuples(st.just("visit_note"), replica, item)
sign = st.tuples(st.just("sign"), replica, item)
addendum = st.tuples(st.just("addendum"), replica, item)
vitals = st.tuples(st.just("vitals"), replica, patient, st.booleans(), st.integers(40, 180))
correct = st.tuples(st.just("correct"), replica, item, st.integers(40, 180))
dose = st.tuples(st.just("dose"), replica, patient, st.integers(0, 3))
none_known = st.tuples(st.just("none_known"), replica, patient)
settle = st.tuples(st.just("settle"), replica, st.integers(0, 3), st.integers(0, 3))
# Merge patient i into patient i + offset; undo a patient's merge.
merge = st.tuples(st.just("merge"), replica, patient, st.integers(1, 3))
unmerge = st.tuples(st.just("unmerge"), replica, patient)
# The second replica is drawn as an offset from the first: drawn independently, both would
# mostly be replica 0 (hypothesis favours small numbers) and the action would do nothing.
apart = st.integers(1, 2)  # fewer than 3 replicas apart: never the same replica
link = st.builds(
    lambda a, off, fault, at, seed: ("sync", a, a + off, fault, at, seed),
    replica, apart, st.sampled_from(LINK_FAULTS), st.integers(1, 5), st.integers(0, 2**16),
)  # fmt: skip


@st.composite
def race(draw: st.DrawFn) -> list[Action]:
    """Two replicas change the same field or list item of one patient before either syncs:
    concurrent by construction, so a conflict (or an add-wins merge) must follow. Often the
    two then sync and one of them settles what it sees, as a person at that desk would."""
    first, pid = draw(replica), draw(patient)
    second = first + draw(apart)
    kind = draw(st.sampled_from(("register", "edit_delete", "list", "day", "merge")))
    if kind == "register":
        fname = draw(st.sampled_from(FIELDS))
        one, other = draw(st.lists(st.sampled_from(VALUES), min_size=2, max_size=2, unique=True))
        steps: list[Action] = [
            ("edit", first, pid, fname, one),
            ("edit", second, pid, fname, other),
        ]
    elif kind == "edit_delete":
        fname = draw(st.sampled_from(FIELDS))
        steps = [("delete", first, pid), ("edit", second, pid, fname, draw(a_value))]
    elif kind == "list":
        lname, item = draw(list_field), draw(st.integers(0, 2))
        # The same item added, removed, or replaced (resolved, stopped, edited).
        answer = draw(st.sampled_from(("add", "remove", "replace")))
        steps = [("add", first, pid, lname, item), (answer, second, pid, lname, item)]
    elif kind == "merge":
        # Merged on one replica while the other merges the same pair (either way round),
        # edits the duplicate, adds to its list or undoes an earlier merge.
        off = draw(st.integers(1, 3))
        steps = [("merge", first, pid, off)]
        answer = draw(st.sampled_from(("same", "opposite", "edit", "add", "unmerge", "undo")))
        if answer == "same":
            steps.append(("merge", second, pid, off))
        elif answer == "opposite":
            steps.append(("merge", second, pid + off, 4 - off))
        elif answer == "edit":
            steps.append(("edit", second, pid, draw(st.sampled_from(FIELDS)), draw(a_value)))
        elif answer == "add":
            steps.append(("add", second, pid, draw(list_field), draw(st.integers(0, 2))))
        elif answer == "undo":  # undone on the second once synced, while added to here
            steps += [("sync", second, first, "none", 1, 0), ("unmerge", second, pid)]
            steps.append(("add", first, pid, draw(list_field), draw(st.integers(0, 2))))
        else:
            steps.append(("unmerge", second, pid))
    else:
        steps = draw(_day_race(first, second, pid))
    then = draw(st.sampled_from(("leave", "sync", "settle", "settle")))
    if then != "leave":
        steps.append(("sync", second, first, "none", 1, 0))
        if then == "settle":
            which, choice = draw(st.integers(0, 3)), draw(st.integers(0, 3))
            steps.append(("resolve", draw(st.sampled_from((first, second))), pid, which, choice))
    return steps


def _day_race(first: int, second: int, pid: int) -> st.SearchStrategy[list[Action]]:
    """One of the new records made on ``first`` and synced, then changed on both replicas
    before either syncs again: moved twice, status changed twice, a visit's reason edited
    twice, a note signed while typed into (or signed twice), a vital corrected twice, a
    medication's dose changed while it is stopped or changed elsewhere."""
    shared = ("sync", second, first, "none", 1, 0)
    both = (first, second)
    races: dict[str, tuple[Action, list[Action]]] = {
        "move": (("book", first, pid, 9), [("move", r, -1, 10 + i) for i, r in enumerate(both)]),
        "status": (
            ("book", first, pid, 9),
            [("status", first, -1, "arrived"), ("status", second, -1, "cancelled")],
        ),
        "reason": (
            ("visit", first, pid, None),
            [("reason", r, -1, VALUES[i]) for i, r in enumerate(both)],
        ),
        "sign_type": (
            ("visit_note", first, -1),
            [("sign", first, -1), ("type", second, -1, 0, True)],
        ),
        "sign_twice": (("visit_note", first, -1), [("sign", r, -1) for r in both]),
        "correct": (
            ("vitals", first, pid, False, 70),
            [("correct", r, -1, 80 + i) for i, r in enumerate(both)],
        ),
        "dose": (
            ("add", first, pid, "medications", 0),
            [("dose", first, pid, 0), ("replace", second, pid, "medications", 0)],
        ),
    }

    def steps(name: str) -> list[Action]:
        made, racing = races[name]
        # A visit note needs a visit: started first, on the same replica.
        before: list[Action] = [("visit", first, pid, None)] if name.startswith("sign") else []
        return [*before, made, shared, *racing]

    return st.sampled_from(sorted(races)).map(steps)


single = st.one_of(
    edit, edit, add, add, remove, replace, delete, create, note, type_in, type_in, resolve, resolve,
    link, link, link, link,
    book, move, status, visit, close, reason, visit_note, sign, addendum, vitals, correct,
    dose, none_known, settle, merge, merge, unmerge,
).map(lambda action: [action])  # fmt: skip
actions = st.lists(st.one_of(single, race()), min_size=6, max_size=30).map(
    lambda groups: [action for group in groups for action in group]
)


@dataclass(frozen=True)
class ListChange:
    """A list change as the test saw it made: what it had seen, what it touched."""

    id: str
    seen: frozenset[str]  # ids of the changes of that list its replica held when it was made
    key: str | None = None  # the logical item (allergy substance, problem, medication name)
    added: str | None = None
    removed: str | None = None
    resolution: bool = False
    also_added: str | None = None  # a dose change adds the stopped and the new medication


@dataclass
class Oracle:
    """What the test itself saw happen, independently of the replicas' final state."""

    writes: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (patient, field)
    superseded: set[str] = field(default_factory=set)
    added: dict[str, set[str]] = field(default_factory=dict)  # by list
    removed: dict[str, set[str]] = field(default_factory=dict)
    delete_observed: dict[str, set[str]] = field(default_factory=dict)
    list_changes: dict[tuple[str, str], list[ListChange]] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)
    # Records of the clinic's day made anywhere (none is ever deleted), by table.
    made: dict[str, set[str]] = field(default_factory=dict)
    signed: dict[str, set[str]] = field(default_factory=dict)  # note -> texts signed
    addenda: dict[str, int] = field(default_factory=dict)  # note -> addenda written
    # What was written together: an appointment's (start, end) by a booking or a move, a
    # reading's (value, as typed, unit typed, flag) by a recording or a correction.
    together: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)


def _doc(r: ClinicRecords, record_id: str) -> crdt.RecordDoc:
    """A record's stored document, read without writing anything."""
    [(state,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (record_id,))
    return crdt.load(unpack_state(state), 1)


def _history_ids(r: ClinicRecords, pid: str, lname: str) -> set[str]:
    return {c.change_id for c in crdt.all_history(_doc(r, pid)).get(lname, [])}


def _track_list_change(
    o: Oracle, r: ClinicRecords, pid: str, lname: str, before: set[str], **what: Any
) -> None:
    [new] = _history_ids(r, pid, lname) - before  # every list change is recorded, once
    o.list_changes.setdefault((pid, lname), []).append(ListChange(new, frozenset(before), **what))


def _expected_list_conflict(changes: list[ListChange]) -> set[str]:
    """Entry ids two unsettled concurrent changes disagree on (the oracle's own rule:
    same item, neither saw the other, not the same removal twice, no resolution that saw
    both)."""
    involved: set[str] = set()
    for i, x in enumerate(changes):
        for y in changes[i + 1 :]:
            if x.key is None or x.key != y.key:
                continue
            if x.id in y.seen or y.id in x.seen:
                continue
            if x.added is None and y.added is None and x.removed == y.removed:
                continue
            if any(r.resolution and {x.id, y.id} <= r.seen | {r.id} for r in changes):
                continue
            touched = (x.added, x.also_added, x.removed, y.added, y.also_added, y.removed)
            involved |= {e for e in touched if e}
    return involved


def _live(r: ClinicRecords, pid: str, fname: str) -> list[crdt.RegisterEntry]:
    return crdt.live(_doc(r, pid), fname)


def _all_live_ids(r: ClinicRecords, pid: str) -> set[str]:
    return {e.write_id for f in PATIENT.registers for e in _live(r, pid, f)}


def _track_write(o: Oracle, r: ClinicRecords, pid: str, fname: str, before: set[str]) -> None:
    after = {e.write_id for e in _live(r, pid, fname)}
    new = after - before
    assert len(new) == 1
    o.writes.setdefault((pid, fname), set()).update(new)
    o.superseded |= before


def _entries(r: ClinicRecords, pid: str, lname: str) -> list[tuple[str, str]]:
    """(id, item) of a patient's list entries as the replica shows them."""
    _, table, column = LISTS[lname]
    rows = r.db.query(f"SELECT id, {column} FROM {table} WHERE patient_id = ? ORDER BY id", (pid,))
    return [(str(i), str(v)) for i, v in rows]


def _visible(r: ClinicRecords, pid: str) -> bool:
    return bool(r.db.query("SELECT 1 FROM patients WHERE id = ?", (pid,)))


PASSWORD = "long enough password"
# The item-indexed changes of the clinic's day and the table their targets are counted in.
DAY_ITEMS = {
    "move": "appointments",
    "status": "appointments",
    "close": "encounters",
    "reason": "encounters",
    "visit_note": "encounters",
    "sign": "notes",
    "addendum": "notes",
    "correct": "observations",
    "settle": "",
}


def _signed_body(r: ClinicRecords, note_id: str) -> str:
    """The signed text (of concurrent signings, the one shown), read from the document."""
    signed = crdt.winner(_doc(r, note_id), "signed_body")
    assert signed is not None
    return str(signed.value)


def _reading(r: Reading) -> tuple[Any, ...]:
    return (r.value, r.entered_value, r.entered_unit, r.flag)


def _refused(r: ClinicRecords, do: Callable[[], T]) -> T | None:
    """``do()``, or None where it was refused (not synced here yet, not allowed now): a
    refused change writes nothing at all."""
    ops = r.db.query("SELECT count(*) FROM oplog")
    try:
        return do()
    except (ValidationError, NotFoundError):
        assert r.db.query("SELECT count(*) FROM oplog") == ops
        return None


@dataclass
class Run:
    """One example: the replicas, the patients and notes made so far, the oracle."""

    replicas: list[ClinicRecords]
    patients: list[str]
    oracle: Oracle = field(default_factory=Oracle)
    notes: list[str] = field(default_factory=list)
    wire: Wire = field(default_factory=Wire)
    words: int = 0
    made: dict[str, list[str]] = field(default_factory=dict)  # by table, in making order

    def act(self, action: Action) -> None:
        """Carry out one scripted action (skipped if the replica cannot see its target)."""
        kind, n = action[0], len(self.replicas)
        r = self.replicas[int(action[1]) % n]
        if kind == "sync":
            other, fault = self.replicas[int(action[2]) % n], str(action[3])
            if other is r:
                return
            if fault == "none":
                sync_pair(r, other)
            else:
                faulty_sync(r, other, fault, self.wire, int(action[4]), int(action[5]))
            return
        if kind == "create":
            self.patients.append(r.add_patient(str(action[2]), "New", "1990-01-01").id)
            return
        if kind == "type":
            self._type(r, action)
            return
        if kind in DAY_ITEMS:
            self._day_item(r, action)
            return
        pid = self.patients[int(action[2]) % len(self.patients)]
        if not _visible(r, pid):
            return
        o = self.oracle
        if kind == "edit":
            fname, value = str(action[3]), str(action[4])
            value = PHONES[value] if fname == "phone" else value
            before = {e.write_id for e in _live(r, pid, fname)}
            r.update_patient(pid, {fname: value})
            if before != {e.write_id for e in _live(r, pid, fname)}:
                _track_write(o, r, pid, fname, before)
        elif kind == "add":
            self._add(r, pid, str(action[3]), int(action[4]))
        elif kind == "remove":
            self._remove(r, pid, str(action[3]), int(action[4]))
        elif kind == "replace":
            self._replace(r, pid, str(action[3]), int(action[4]))
        elif kind == "delete":
            seen = _all_live_ids(r, pid)
            r.delete_patient(pid)
            o.delete_observed.setdefault(pid, set()).update(seen)
        elif kind == "note":
            self.notes.append(Notes(r).create(pid, "Seen.").id)
            o.notes.add(self.notes[-1])
        elif kind == "resolve":
            self._resolve(r, pid, int(action[3]), int(action[4]))
        elif kind == "merge":
            into = self.patients[(int(action[2]) + int(action[3])) % len(self.patients)]
            if into != pid and _visible(r, into):
                _refused(r, lambda: Merges(r).merge(pid, into, "same person"))
        elif kind == "unmerge":
            _refused(r, lambda: Merges(r).unmerge(pid))
        else:
            self._day_patient(r, pid, action)

    def _made(self, table: str, record_id: str) -> None:
        self.made.setdefault(table, []).append(record_id)
        self.oracle.made.setdefault(table, set()).add(record_id)

    def _together(self, record_id: str, values: tuple[Any, ...]) -> None:
        self.oracle.together.setdefault(record_id, set()).add(values)

    def _pick(self, r: ClinicRecords, table: str, which: int) -> str | None:
        """One of the records made so far that ``r`` holds (as a person picks from what
        their screen shows), else one it does not hold yet (the change is then refused)."""
        made = self.notes if table == "notes" else self.made.get(table, [])
        held = {str(i) for (i,) in r.db.query(f"SELECT id FROM {table}")} if made else set()
        shown = [i for i in made if i in held] or made
        return shown[which % len(shown)] if shown else None

    def _day_patient(self, r: ClinicRecords, pid: str, action: Action) -> None:
        """Book, start a visit, record vitals, change a dose, record no known allergies."""
        kind = action[0]
        if kind == "book":
            # The clinician's account, made where the booking is (one record everywhere:
            # its id derives from the login name).
            if r.user("lee") is None:
                r.add_user("lee", "Dr Lee", "clinician", PASSWORD)
            when = f"2026-12-07 {int(action[3]):02d}:00"
            made = _refused(r, lambda: Schedule(r).book(pid, when, "lee", 15, allow_overlap=True))
            if made is not None:
                self._made("appointments", made.id)
                self._together(made.id, (made.starts_at, made.ends_at))
        elif kind == "visit":
            started = _refused(r, lambda: Visits(r).start(pid, action[3]))
            if started is not None:
                self._made("encounters", started.id)
        elif kind == "vitals":
            visit = self._pick(r, "encounters", -1) if action[3] else None
            pulse = {"pulse": str(action[4])}
            taken = _refused(r, lambda: VitalSigns(r).record(pid, pulse, encounter_id=visit))
            for reading in taken or []:
                self._made("observations", reading.id)
                self._together(reading.id, _reading(reading))
        elif kind == "dose":
            self._dose(r, pid, int(action[3]))
        elif kind == "none_known":
            _refused(r, lambda: AllergyRecords(r).record_no_known_allergies(pid))

    def _dose(self, r: ClinicRecords, pid: str, which: int) -> None:
        """Change a medication's dose: stop + new in one change (a replace adding two)."""
        present = _entries(r, pid, "medications")
        if not present:
            return
        eid, value = present[which % len(present)]
        before = _history_ids(r, pid, "medications")
        self.words += 1
        new = _refused(r, lambda: Medications(r).change_dose(eid, {"dose": f"{self.words} mg"}))
        if new is None:  # already stopped: nothing was written
            return
        now = {i for i, _ in _entries(r, pid, "medications")}
        [stopped] = now - {i for i, _ in present} - {new.id}  # kept as history
        self.oracle.added.setdefault("medications", set()).update({new.id, stopped})
        self.oracle.removed.setdefault("medications", set()).add(eid)
        _track_list_change(
            self.oracle, r, pid, "medications", before, key=value.casefold(),
            added=new.id, also_added=stopped, removed=eid,
        )  # fmt: skip

    def _day_item(self, r: ClinicRecords, action: Action) -> None:
        """Change an appointment, visit, note or reading made earlier (refused, writing
        nothing, where this replica has not got it yet or the change is not allowed)."""
        kind, which = action[0], int(action[2])
        if kind == "settle":
            self._settle(r, which, int(action[3]))
            return
        table = DAY_ITEMS[kind]
        target = self._pick(r, table, which)
        if target is None:
            return
        o = self.oracle
        if kind == "move":
            when = f"2026-12-07 {int(action[3]):02d}:30"
            moved = _refused(r, lambda: Schedule(r).move(target, when, allow_overlap=True))
            if moved is not None:
                self._together(target, (moved.starts_at, moved.ends_at))
        elif kind == "status":
            _refused(r, lambda: Schedule(r).set_status(target, str(action[3])))
        elif kind == "close":
            _refused(r, lambda: Visits(r).close(target))
        elif kind == "reason":
            update = {"reason": f"{action[3]} visit"}
            _refused(r, lambda: ClinicalEntries(r).update("encounter", target, update))
        elif kind == "visit_note":
            note = _refused(r, lambda: Visits(r).add_note(target))
            if note is not None:
                self.notes.append(note.id)
                o.notes.add(note.id)
        elif kind == "sign":
            note = _refused(r, lambda: Notes(r).sign(target))
            if note is not None:
                o.signed.setdefault(target, set()).add(_signed_body(r, target))
        elif kind == "addendum":
            if _refused(r, lambda: Notes(r).add_addendum(target, "Addendum.")) is not None:
                o.addenda[target] = o.addenda.get(target, 0) + 1
        elif kind == "correct":
            fixed = _refused(r, lambda: VitalSigns(r).correct(target, str(action[3])))
            if fixed is not None:
                self._together(target, _reading(fixed))

    def _settle(self, r: ClinicRecords, which: int, choice: int) -> None:
        """Resolve a conflict on a record of the clinic's day (patients' own are tracked
        by ``_resolve``)."""
        listed = [c for c in r.conflicts() if c.record_type != "patient"]
        if not listed:
            return
        conflict = listed[which % len(listed)]
        if conflict.kind == "set":
            r.resolve_conflict(conflict.id, choose="merged")
        else:
            chosen = conflict.candidates[choice % len(conflict.candidates)]
            r.resolve_conflict(conflict.id, choose=chosen.id)

    def _add(self, r: ClinicRecords, pid: str, lname: str, item: int) -> None:
        values, _, column = LISTS[lname]
        value = values[item % len(values)]
        before = _history_ids(r, pid, lname)
        if lname == "allergies":
            eid = r.add_allergy(pid, value).id
        else:
            eid = ClinicalEntries(r).add_to_list(pid, lname, {column: value})
        self.oracle.added.setdefault(lname, set()).add(eid)
        _track_list_change(self.oracle, r, pid, lname, before, key=value.casefold(), added=eid)

    def _remove(self, r: ClinicRecords, pid: str, lname: str, which: int) -> None:
        present = _entries(r, pid, lname)
        if not present:
            return
        eid, value = present[which % len(present)]
        before = _history_ids(r, pid, lname)
        if lname == "allergies":
            r.remove_allergy(eid)
        else:
            ClinicalEntries(r).remove_from_list(pid, lname, eid)
        self.oracle.removed.setdefault(lname, set()).add(eid)  # one this replica could see
        _track_list_change(self.oracle, r, pid, lname, before, key=value.casefold(), removed=eid)

    def _replace(self, r: ClinicRecords, pid: str, lname: str, which: int) -> None:
        present = _entries(r, pid, lname)
        if not present:
            return
        eid, value = present[which % len(present)]
        before = _history_ids(r, pid, lname)
        try:
            if lname == "allergies":
                self.words += 1  # a new reaction each time: an edit that changes something
                new = AllergyRecords(r).edit(eid, f"reaction {self.words}", None).id
            elif lname == "problems":
                new = Problems(r).resolve(eid, "2026-01-02").id
            else:
                new = Medications(r).stop(eid, "2026-01-02").id
        except ValidationError:  # already resolved or stopped: nothing was written
            assert _history_ids(r, pid, lname) == before
            return
        self.oracle.added.setdefault(lname, set()).add(new)
        self.oracle.removed.setdefault(lname, set()).add(eid)
        _track_list_change(
            self.oracle, r, pid, lname, before, key=value.casefold(), added=new, removed=eid
        )

    def _type(self, r: ClinicRecords, action: Action) -> None:
        """Insert a new word into an unsigned note, or delete one, as a person typing."""
        if not self.notes:
            return
        note_id = self.notes[int(action[2]) % len(self.notes)]
        try:
            words = Notes(r).get(note_id).body.split()
        except NotFoundError:  # not synced to this replica yet
            return
        at = int(action[3])
        if bool(action[4]) or len(words) < 2:  # a note is never left empty
            self.words += 1
            words.insert(at % (len(words) + 1), f"w{self.words}")
        else:
            del words[at % len(words)]
        _refused(r, lambda: Notes(r).edit(note_id, " ".join(words)))  # refused once signed

    def _resolve(self, r: ClinicRecords, pid: str, which: int, choice: int) -> None:
        """Resolve one of the conflicts this replica shows on the patient."""
        listed = r.conflicts(pid)
        if not listed:
            return
        conflict = listed[which % len(listed)]
        o = self.oracle
        if conflict.kind == "set":
            before = _history_ids(r, pid, conflict.field)
            r.resolve_conflict(conflict.id, choose="merged")  # the list stays as shown
            _track_list_change(o, r, pid, conflict.field, before, resolution=True)
            return
        candidate = conflict.candidates[choice % len(conflict.candidates)]
        if conflict.field == "deleted":
            seen = _all_live_ids(r, pid)
            r.resolve_conflict(conflict.id, choose=candidate.id)
            if candidate.field == "deleted":  # the deletion stands, having seen every edit
                o.delete_observed.setdefault(pid, set()).update(seen)
            return
        before = {e.write_id for e in _live(r, pid, conflict.field)}
        r.resolve_conflict(conflict.id, choose=candidate.id)
        _track_write(o, r, pid, conflict.field, before)  # supersedes every live value

    def heal(self) -> None:
        """Heal every partition: two rounds through replica 0 reach everyone."""
        for _ in range(2):
            for r in self.replicas[1:]:
                sync_pair(r, self.replicas[0])


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(n=st.integers(3, 5), script=actions)
def test_replicas_converge_without_silent_loss(n: int, script: list[Action]) -> None:
    replicas = [new_replica(f"user{i}") for i in range(n)]
    patients = [replicas[0].add_patient(f"Seed{i}", "Patient", "1980-01-01").id for i in range(2)]
    for r in replicas[1:]:
        sync_pair(r, replicas[0])
    run = Run(replicas, patients)
    for action in script:
        run.act(action)
    run.heal()
    assert_converged(replicas)  # same ops, byte-for-byte the same derived state
    _check_nothing_lost(run)
    _resolve_everything(run)


def _check_nothing_lost(run: Run) -> None:
    """The oracle's checks, on the healed state (the same on every replica)."""
    final, oracle = run.replicas[0], run.oracle
    conflicts = {(c.record_id, c.field): c for c in final.conflicts()}
    for (pid, fname), ids in oracle.writes.items():
        live = {e.write_id: e for e in _live(final, pid, fname)}
        for write_id in ids:
            # Every write is live (value or conflict) unless a later write observed it.
            assert write_id in live or write_id in oracle.superseded
        if not _visible(final, pid):
            # Deleted by someone who saw every value: nothing left to choose between.
            assert (pid, fname) not in conflicts
        elif len({e.value for e in live.values()}) > 1:
            conflict = conflicts[(pid, fname)]
            assert {c.id for c in conflict.candidates} == set(live)

    for lname, (_, table, _) in LISTS.items():
        added, removed = oracle.added.get(lname, set()), oracle.removed.get(lname, set())
        kept = {str(row[0]) for row in final.db.query(f"SELECT id FROM {table}")}
        assert kept <= added  # nothing appears from nowhere
        assert not kept & removed  # a remove that observed an entry removes it
        # Every other entry added anywhere is still on the chart (unless the patient is gone).
        assert added - removed - _deleted_patients_entries(final, oracle, lname) <= kept

    for pid in run.patients:
        visible = _visible(final, pid)
        for lname in LISTS:
            # A list conflict is open exactly when two unsettled concurrent changes disagree
            # about the same item, and it names every entry they touched.
            expected = _expected_list_conflict(oracle.list_changes.get((pid, lname), []))
            open_list = conflicts.get((pid, lname))
            assert (open_list is not None) == (visible and bool(expected))
            if open_list is not None:
                assert {i.id for i in open_list.items} == expected
        if not visible:
            # Gone only if a deletion saw every live edit (edit-vs-delete is a conflict):
            # a patient created anywhere is never lost otherwise.
            assert pid in oracle.delete_observed
            assert _all_live_ids(final, pid) <= oracle.delete_observed[pid]
    # Notes are never deleted: every note typed anywhere is on every replica.
    assert {str(i) for (i,) in final.db.query("SELECT id FROM notes")} == oracle.notes
    _check_clinic_day(final, oracle)
    _check_merges(final, run.patients)


def _check_merges(final: ClinicRecords, patients: list[str]) -> None:
    """Every chart shows what was recorded on the patients merged into it, and lists show
    exactly the patients merged into no one (chains and loops resolved)."""
    shown = {p.id for p in final.list_patients(limit=1000)}
    for pid in patients:
        if not _visible(final, pid):
            continue
        survivor = merged.survivor(final.db, pid)
        assert survivor in shown and (pid in shown) == (survivor == pid)
        assert final.open_chart(pid).patient.id == survivor
        on_chart = {a.id for a in final.allergies(survivor)}
        assert {i for i, _ in _entries(final, pid, "allergies")} <= on_chart
        notes = {n.id for n in Notes(final).for_patient(survivor)}
        own = final.db.query("SELECT id FROM notes WHERE patient_id = ?", (pid,))
        assert {str(i) for (i,) in own} <= notes


def _check_clinic_day(final: ClinicRecords, oracle: Oracle) -> None:
    """Appointments, visits and readings are never lost; a signed note stays signed with
    a text someone signed, and keeps every addendum; appointments and readings show what
    one booking, move, recording or correction wrote."""
    for table in ("appointments", "encounters", "observations"):
        kept = {str(i) for (i,) in final.db.query(f"SELECT id FROM {table}")}
        assert kept == oracle.made.get(table, set()), table
    for note_id, texts in oracle.signed.items():
        assert Notes(final).get(note_id).signed_at is not None
        assert _signed_body(final, note_id) in texts
    for note_id, count in oracle.addenda.items():
        assert len(Notes(final).get(note_id).addenda) == count
    # Shown as written together (a conflict open or not): never one workstation's start
    # with another's end, or one correction's value with another's flag.
    for aid, starts, ends, state in final.db.query(
        "SELECT id, starts_at, ends_at, status FROM appointments"
    ):
        assert (starts, ends) in oracle.together[aid] and state in APPOINTMENT_STATUSES
    for observation_id in oracle.made.get("observations", set()):
        reading = VitalSigns(final).get(observation_id)
        assert _reading(reading) in oracle.together[observation_id]


def _resolve_everything(run: Run) -> None:
    """A person works through the whole inbox on one replica: each resolution is one op,
    and once synced no replica shows any conflict."""
    r = run.replicas[-1]
    me_ops = "SELECT count(*) FROM oplog"
    for _ in range(4):  # settling a field of a deleted record reopens its deletion once
        listed = r.conflicts()
        if not listed:
            break
        for conflict in sorted(listed, key=lambda c: c.field == "deleted"):
            if conflict.id not in {c.id for c in r.conflicts()}:
                continue  # settled with another: one choice settles a whole reading
            before = r.db.query(me_ops)[0][0]
            if conflict.kind == "set":
                r.resolve_conflict(conflict.id, choose="merged")
            else:
                r.resolve_conflict(conflict.id, choose=conflict.candidates[0].id)
            assert r.db.query(me_ops)[0][0] == before + 1
    run.heal()
    for replica in run.replicas:
        assert replica.conflicts() == []
    assert_converged(run.replicas)
    _check_clinic_day(r, run.oracle)  # the choices made keep each reading whole


def _deleted_patients_entries(final: ClinicRecords, oracle: Oracle, lname: str) -> set[str]:
    """Entries of deleted patients are not shown, by design: they are kept in the document."""
    hidden: set[str] = set()
    for pid in oracle.delete_observed:
        if not _visible(final, pid):
            hidden |= {e.element_id for e in crdt.elements(_doc(final, pid), lname)}
    return hidden


# ----- permissions granted and revoked while ops travel ---------------------------------

_GRANT = st.tuples(st.sampled_from(("grant", "revoke")))
_PRESCRIBE = st.tuples(st.just("prescribe"), st.integers(0, 2), st.sampled_from(VALUES))
_SYNC = st.tuples(
    st.just("sync"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(LINK_FAULTS),
    st.integers(0, 3), st.integers(0, 1000),
)  # fmt: skip
permission_script = st.lists(st.one_of(_GRANT, _PRESCRIBE, _PRESCRIBE, _SYNC, _SYNC), max_size=24)


@pytest.mark.strict_authz
@pytest.mark.slow
@settings(
    max_examples=max(20, EXAMPLES // 10),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=permission_script)
def test_grants_and_revokes_decide_every_op_alike_on_every_replica(script: list[Action]) -> None:
    """A front-desk account (nina) is granted and revoked the clinician role on replica 0
    while she prescribes on any replica and replicas sync over faulty links. Grants and
    revokes are causally ordered with her ops (replica 0 syncs with everyone before and
    after each change: the order README "Authorization at remote apply" handles), so every
    replica judges each op by the role she held at its HLC, as her own workstation did:
    all replicas converge, nothing is quarantined, and exactly the prescriptions made while
    she held the role exist."""
    replicas = [new_replica("admin") for _ in range(3)]
    founder = replicas[0]
    founder.set_up_clinic("Riverside", "admin", "Ada Admin", "correct horse battery")
    founder.add_user("nina", "Nina Desk", "front_desk", "correct horse battery")
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    nina_role = RelationTuple("clinic:clinic", "clinician", "user:nina")

    def barrier() -> None:
        for other in replicas[1:]:
            sync_pair(other, founder)
        for other in replicas[1:]:
            sync_pair(other, founder)

    barrier()
    granted = False
    made: list[str] = []
    wire = Wire()
    for step in script:
        if step[0] in ("grant", "revoke"):
            barrier()
            if step[0] == "grant":
                Access(founder).grant(nina_role)
            else:
                Access(founder).revoke(nina_role)
            granted = step[0] == "grant"
            barrier()
        elif step[0] == "prescribe":
            nina = ClinicRecords(replicas[step[1]].db, "nina")
            name = f"{step[2]}-{len(made)}"
            if granted:
                Medications(nina).start(pid, {"name": name})
                made.append(name)
            else:
                with pytest.raises(NotAllowedError):
                    Medications(nina).start(pid, {"name": name})
        else:
            _, i, j, fault, at, seed = step
            if i != j:
                faulty_sync(replicas[i], replicas[j], fault, wire, at, seed)
    for _ in range(2):
        for i in range(1, 3):
            sync_pair(replicas[i], founder)
    assert_converged(replicas)
    for r in replicas:
        assert r.db.query("SELECT count(*) FROM quarantine") == [(0,)]
        names = [str(n) for (n,) in r.db.query("SELECT name FROM medications")]
        assert sorted(names) == sorted(made)


def test_an_op_made_after_a_revoke_it_had_seen_is_quarantined_everywhere() -> None:
    """The rule's other half: a workstation that ignores its own gate prescribes after the
    revoke reached it; every other replica refuses the op with the reason."""
    replicas = [new_replica("admin") for _ in range(3)]
    founder = replicas[0]
    founder.set_up_clinic("Riverside", "admin", "Ada Admin", "correct horse battery")
    founder.add_user("nina", "Nina Desk", "front_desk", "correct horse battery")
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    nina_role = RelationTuple("clinic:clinic", "clinician", "user:nina")
    Access(founder).grant(nina_role)
    for r in replicas[1:]:
        sync_pair(r, founder)
    Medications(ClinicRecords(replicas[1].db, "nina")).start(pid, {"name": "Statin"})
    Access(founder).revoke(nina_role)
    sync_pair(replicas[1], founder)  # the revoke reaches nina's workstation (and her op, 0)
    Medications(ClinicRecords(replicas[1].db, "nina")).start(pid, {"name": "Insulin"})
    authorize_on = authorize.ENFORCING
    authorize.ENFORCING = True  # the receivers check (this test runs relaxed locally)
    try:
        for r in (founder, replicas[2]):
            report = sync_pair(r, replicas[1])
            assert len(report.refused) == 0  # refusals are told to the op's origin, not r
            names = sorted(str(n) for (n,) in r.db.query("SELECT name FROM medications"))
            assert names == ["Statin"]
            [(reason,)] = r.db.query("SELECT reason FROM quarantine")
            assert "prescribe needs a clinician" in str(reason)
    finally:
        authorize.ENFORCING = authorize_on
