"""A batch that brings many care-team tuple ops at once (a clinic's first upload of care
teams, after an import or a LAN-only period) is judged op by op exactly as the rule says
(core/records/remote_authz.py): the same decisions as the same ops arriving one per batch,
judged the long way; and the permission history is not worked out again after each op
(5,000 tuple ops pushed at once took longer than the server's 30 s request timeout)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.authz.tuples import RelationTuple
from core.records import authorize, remote_authz
from core.records.break_glass import BreakGlass
from core.records.clinic import ClinicRecords
from core.records.relations import Access
from core.records.replication import apply_ops
from core.records.staff import Staff
from core.store import oplog
from tests.clinic_identity import certificate_of
from tests.unit.sync.replicas import dump_diff, materialized, new_replica, sync_pair

PASSWORD = "correct horse battery"
STAFF = (("cleo", "clinician"), ("nina", "nurse"), ("nora", "nurse"), ("dana", "admin"),
         ("fay", "front_desk"))  # fmt: skip


def _care(pid: str, who: str, relation: str = "care_team") -> RelationTuple:
    return RelationTuple(f"patient:{pid}", relation, f"user:{who}")


@contextlib.contextmanager
def _forged() -> Iterator[None]:
    """A workstation that ignores its own gate (a forged client)."""
    authorize.ENFORCING = False
    try:
        yield
    finally:
        authorize.ENFORCING = True


class Clinic:
    """A founder's replica, its staff's own replicas, and two targets that hold what
    everyone held before the ops under test: one gets them in one batch, the other one
    per batch."""

    def __init__(self, patients: int) -> None:
        self.founder = new_replica("admin")
        self.founder.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
        for name, role in STAFF:
            self.founder.add_user(name, name.title(), role, PASSWORD)
        self.pids = [
            self.founder.add_patient(f"Pat{i:04d}", "Bo", "1970-01-01").id for i in range(patients)
        ]
        self.desks = {name: new_replica(name) for name, _ in STAFF}
        self.batch, self.single = new_replica("admin"), new_replica("admin")
        for r in (*self.desks.values(), self.batch, self.single):
            sync_pair(r, self.founder)
        self.held = oplog.version_vector(self.batch.db)

    def replicas(self) -> list[ClinicRecords]:
        return [self.founder, *self.desks.values()]

    def new_ops(self, order: str = "hlc") -> tuple[list[oplog.Op], list[str]]:
        """Every op made since the targets synced, from whichever replica holds it, and
        the devices' certificates. In HLC order (each origin's in its own order, causes
        before their effects), or origin by origin with the founder's first (as a relay may
        send them: the staff's ops are then judged with permission writes stamped later
        than them already known, which count within the 24 h leeway)."""
        found: dict[tuple[str, int], oplog.Op] = {}
        for r in self.replicas():
            for op in oplog.ops_after(r.db, self.held, 10**9):
                found[(op.origin, op.seq)] = op
        founder = oplog.identity(self.founder.db).replica_id

        def key(op: oplog.Op) -> tuple[Any, ...]:
            if order == "hlc":
                return (op.hlc, op.origin, op.seq)
            return (op.origin != founder, op.origin, op.seq)

        ops = sorted(found.values(), key=key)
        return ops, [certificate_of(r.db) for r in self.replicas()]


@pytest.fixture
def clinic() -> Clinic:
    return Clinic(patients=6)


def _one_per_batch(
    target: ClinicRecords, ops: list[oplog.Op], certificates: list[str]
) -> list[tuple[str, int, str]]:
    """Apply ``ops`` one per batch; an origin whose op is refused stops there, as within a
    batch (its later ops build on the refused one and wait for it)."""
    refused: list[tuple[str, int, str]] = []
    stopped: set[str] = set()
    for op in ops:
        if op.origin in stopped:
            continue
        result = apply_ops(target.db, [op], "peer", certificates)
        if result.quarantined:
            refused += result.quarantined
            stopped.add(op.origin)
    return refused


@pytest.mark.strict_authz
@pytest.mark.parametrize("order", ["hlc", "founder first"])
def test_a_batch_of_tuple_ops_is_decided_as_the_same_ops_one_per_batch_the_long_way(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """Grants, revokes and re-grants; an admin deactivated, and reactivated; a clinician
    taken off a restricted chart's care team, and a nurse put back on one; each author's
    ops before and after they lose a permission, all in one batch in HLC order. The batch
    (the history worked out write by write) decides every op as the same ops arriving one
    per batch, each judged against the tuples worked out in full for each moment (the rule
    as written in the module docstring), and leaves the same records."""
    c = clinic
    admin, desks = Access(c.founder), c.desks
    restricted, team = c.pids[0], c.pids[1:]
    admin.grant(_care(restricted, "*", "restricted"))
    for pid in team:
        admin.grant(_care(pid, "nina"))
    admin.revoke(_care(team[0], "nina"))
    admin.grant(_care(team[0], "nina"))  # re-granted
    admin.revoke(_care(team[1], "nina"))  # revoked for good
    for who in ("cleo", "nina", "nora"):
        admin.grant(_care(restricted, who))
    for name in ("dana", "cleo", "nina", "nora"):
        sync_pair(desks[name], c.founder)  # each has heard of the grants so far
    Access(desks["dana"]).grant(_care(team[2], "cleo"))  # an admin's: passes
    Access(desks["cleo"]).grant(_care(restricted, "fay"))  # on the care team: passes
    desks["nina"].update_patient(restricted, {"phone": "555-0101"})  # on the team: passes
    Staff(c.founder).deactivate("dana")
    admin.revoke(_care(restricted, "cleo"))
    admin.revoke(_care(restricted, "nina"))
    admin.revoke(_care(restricted, "nora"))
    admin.grant(_care(restricted, "nora"))  # back on it
    # Their desks have not heard: each author's op after losing the permission.
    Access(desks["dana"]).grant(_care(team[3], "cleo"))
    Access(desks["cleo"]).grant(_care(restricted, "nora"))
    desks["nina"].update_patient(restricted, {"phone": "555-0102"})
    desks["nora"].update_patient(restricted, {"phone": "555-0103"})  # re-granted: passes
    with _forged():
        Access(desks["fay"]).grant(_care(team[4], "fay"))  # never hers to grant
    Staff(c.founder).reactivate("dana")
    admin.grant(_care(team[4], "cleo"))
    ops, certificates = c.new_ops(order)
    assert len({op.origin for op in ops}) == 6

    result = apply_ops(c.batch.db, ops, "peer", certificates)
    # The long way: every moment's tuples worked out from every write (no stamps sorted,
    # no tuple read on its own), as before any of it was kept or worked out incrementally.
    monkeypatch.setattr(remote_authz.History, "_boundaries", lambda self: None)
    refused = _one_per_batch(c.single, ops, certificates)

    assert sorted(result.quarantined) == sorted(refused)
    assert dump_diff(materialized(c.single), materialized(c.batch)) == {}
    if order != "hlc":
        return
    by_author = {(op.origin, op.seq): op.author for op in ops}
    assert sorted(by_author[(o, s)] for o, s, _ in refused) == ["cleo", "dana", "fay", "nina"]
    assert all("was not allowed to make it" in why for _, _, why in refused)
    assert result.applied == len(ops) - 4
    assert c.batch.get_patient(restricted).phone == "555-0103"


def _counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Count calls of ``owner.name`` (kept working as before)."""
    calls: list[int] = []
    original: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.mark.strict_authz
def test_a_large_batch_of_tuple_ops_works_the_history_out_once_not_per_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first upload of care teams: hundreds of tuple ops, and a few staff changes, in
    one batch. The permission history is worked out from every write once for the batch
    (not again after each op learns its tuple), no moment's tuples are listed in full, and
    the registers read per op do not grow with the batch."""
    c = Clinic(patients=240)
    admin = Access(c.founder)
    for i, pid in enumerate(c.pids):
        admin.grant(_care(pid, "nina" if i % 2 else "cleo"))
        if i == 120:
            Staff(c.founder).deactivate("fay")  # user ops amid the tuple ops
            Staff(c.founder).add_role("nora", "clinician")
    ops, certificates = c.new_ops()
    assert len(ops) == 242
    built = _counting(monkeypatch, remote_authz._Index, "build")
    listed = _counting(monkeypatch, remote_authz.History, "_tuples_at")
    reads = _counting(monkeypatch, remote_authz.History, "value_at")
    result = apply_ops(c.batch.db, ops, "peer", certificates)
    assert result.applied == len(ops)
    assert len(built) == 1  # for the batch, from what was stored before it
    assert listed == []
    # Before: every register of every tuple record, read again for each op (tens of
    # thousands of reads per op here). Now a few dozen per op, whatever the batch's size.
    assert len(reads) < 60 * len(ops), len(reads) / len(ops)


def _random_history(rng: random.Random, index_early: bool) -> remote_authz.History:
    """Users and tuple records written at random HLCs: names shared by two accounts, roles
    changed, accounts deactivated and back, tuples granted and revoked, a tuple record's
    subject rewritten, ``since`` values moving first grants earlier. With ``index_early``
    the history's index is built before the writes, so each is added to it one by one."""
    history = remote_authz.History()
    if index_early:
        history.index()
    names, roles = ["nina", "cleo", "dana"], ["admin", "clinician", "nurse", "front_desk"]
    charts = ["patient:p1", "patient:p2", "clinic:clinic"]
    for n in range(rng.randint(5, 40)):
        hlc = oplog.format_hlc(rng.randint(1, 30) * 1000, rng.randint(0, 2), "a" * 16)
        if rng.random() < 0.5:
            rid = f"user:{rng.randint(0, 3)}"
            fld, value = rng.choice([
                ("username", rng.choice(names)), ("role", rng.choice(roles)),
                ("staff_role", rng.choice([*roles, ""])), ("active", rng.random() < 0.7),
                ("other_roles", " ".join(rng.sample(roles, rng.randint(0, 2)))),
                ("other_roles_since", oplog.format_hlc(rng.randint(1, 30) * 1000, 0, "b" * 16)),
            ])  # fmt: skip
            history.add(rid, "user", fld, remote_authz.Write(hlc, f"w{n}", value), False)
        else:
            rid = f"rel:{rng.randint(0, 5)}"
            fld, value = rng.choice([
                ("object", rng.choice(charts)),
                ("relation", rng.choice(["care_team", "restricted", "clinician"])),
                ("subject", rng.choice([*(f"user:{x}" for x in names), "user:*"])),
                ("granted", rng.random() < 0.7),
                ("since", oplog.format_hlc(rng.randint(1, 30) * 1000, 0, "b" * 16)),
            ])  # fmt: skip
            history.add(rid, "relation", fld, remote_authz.Write(hlc, f"w{n}", value), False)
    return history


@pytest.mark.parametrize("seed", range(150))
def test_the_tuples_read_as_of_a_time_are_those_listed_in_full(seed: int) -> None:
    """What a check reads as of each time (``TuplesAt``, from the index kept write by write
    or built at once) is exactly the tuples the rule lists in full at that time."""
    rng = random.Random(seed)
    incremental = _random_history(rng, True)
    built = _random_history(random.Random(seed), False)
    stamps = incremental.index().every
    assert stamps == built.index().every
    for hlc in [oplog.format_hlc(0, 0, "0" * 16), *stamps, "~"]:
        listed = incremental._tuples_at(hlc)
        keys = {(t.object, t.relation) for t in listed} | {
            (obj, rel) for obj in ("patient:p1", "patient:p2", "clinic:clinic")
            for rel in ("care_team", "restricted", "clinician", "admin", "nurse", "front_desk")
        }  # fmt: skip
        for history in (incremental, built):
            reader = history.reader_at(hlc)
            for obj, rel in keys:
                expected = {t.subject for t in listed if (t.object, t.relation) == (obj, rel)}
                assert set(reader.read(obj, rel)) == expected, (seed, hlc, obj, rel)


@pytest.mark.strict_authz
def test_break_glass_grants_in_a_batch_decide_as_the_same_ops_one_per_batch(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grant counts for its person's later ops on its chart alike whether it arrives in
    the same batch (learnt as the batch goes) or in an earlier one (read from the grants
    held): nina's work under her grant passes; nora's on the same chart, and nina's on
    another restricted chart, do not."""
    c = clinic
    admin, desks = Access(c.founder), c.desks
    secret, other = c.pids[0], c.pids[1]
    for pid in (secret, other):
        admin.grant(_care(pid, "*", "restricted"))
    for name in ("nina", "nora"):
        sync_pair(desks[name], c.founder)
    # Nora's op on the chart first (no grant of hers, ever), nina's grant, her work.
    with _forged():
        desks["nora"].update_patient(secret, {"phone": "555-0199"})
    BreakGlass(desks["nina"]).open(secret, "collapsed", 30)
    desks["nina"].update_patient(secret, {"phone": "555-0101"})  # under her grant
    with _forged():
        desks["nina"].update_patient(other, {"phone": "555-0102"})  # not that chart
    ops, certificates = c.new_ops()

    result = apply_ops(c.batch.db, ops, "peer", certificates)
    monkeypatch.setattr(remote_authz.History, "_boundaries", lambda self: None)
    refused = _one_per_batch(c.single, ops, certificates)

    assert sorted(result.quarantined) == sorted(refused)
    assert dump_diff(materialized(c.single), materialized(c.batch)) == {}
    by_author = {(op.origin, op.seq): op.author for op in ops}
    assert sorted(by_author[(o, s)] for o, s, _ in refused) == ["nina", "nora"]
    assert c.batch.get_patient(secret).phone == "555-0101"
    assert c.batch.get_patient(other).phone != "555-0102"
