"""Relation tuples as records: written through the one write path (audited, an op in the
log), read back by the tuple reader with the implicit ones (roles from active accounts,
each patient's clinic), a deactivated account with none, and a grant concurrent with a
revoke a conflict in the inbox that a person settles."""

from __future__ import annotations

import json
import time

import pytest
from pycrdt import Map

from core.authz.tuples import RelationTuple
from core.records import authorize, crdt, remote_authz
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.errors import NotAllowedError, ValidationError
from core.records.medications import Medications
from core.records.relations import Access, StoreTuples, relation_id
from core.records.replication import ApplyError, apply_ops
from core.records.staff import Staff
from core.store import oplog
from core.store.state_codec import unpack_state
from tests.clinic_identity import certificate_of, signed_as
from tests.unit.sync.replicas import (
    assert_converged,
    dump_diff,
    full_dump,
    new_replica,
    pull_from,
    sync_pair,
)

PASSWORD = "correct horse battery"


def _clinic() -> ClinicRecords:
    founder = new_replica("admin")
    founder.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    founder.add_user("nina", "Nina Nurse", "nurse", PASSWORD)
    return founder


def test_a_grant_is_an_audited_op_and_the_reader_sees_it() -> None:
    founder = _clinic()
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    t = RelationTuple(f"patient:{pid}", "care_team", "user:nina")
    rid = Access(founder).grant(t)
    assert rid == relation_id(t)
    [(action, details)] = founder.db.query(
        "SELECT action, details FROM audit_log WHERE entity_id = ?", (rid,)
    )
    assert action == "access.grant" and "care_team" in details
    assert founder.db.query("SELECT record_type FROM oplog WHERE record_id = ?", (rid,)) == [
        ("relation",)
    ]
    reader = StoreTuples(founder.db)
    assert list(reader.read(f"patient:{pid}", "care_team")) == ["user:nina"]
    assert list(reader.read(f"patient:{pid}", "clinic")) == ["clinic:clinic"]
    assert sorted(reader.read("clinic:clinic", "clinician")) == ["user:admin"]  # the founder
    assert list(reader.read("clinic:clinic", "nurse")) == ["user:nina"]  # from her role
    assert list(reader.read(f"patient:{pid}", "break_glass")) == []  # no break-glass table
    Access(founder).revoke(t)
    assert list(StoreTuples(founder.db).read(f"patient:{pid}", "care_team")) == []


def test_a_deactivated_account_has_no_tuples() -> None:
    founder = _clinic()
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    Access(founder).grant(RelationTuple(f"patient:{pid}", "care_team", "user:nina"))
    with founder.db.write("admin", "user.deactivate", "user", "user:nina") as tx:
        change(tx, "admin", "user:nina", "user", founder.setter({"active": False}))
    reader = StoreTuples(founder.db)
    assert list(reader.read("clinic:clinic", "nurse")) == []
    assert list(reader.read(f"patient:{pid}", "care_team")) == []


def test_tuples_outside_the_schema_are_refused() -> None:
    founder = _clinic()
    with pytest.raises(ValidationError, match="clinic role"):
        Access(founder).grant(RelationTuple("clinic:clinic", "owner", "user:nina"))
    with pytest.raises(ValidationError, match="neither"):
        Access(founder).grant(RelationTuple("ward:3", "care_team", "user:nina"))


@pytest.mark.strict_authz
def test_a_grant_concurrent_with_a_revoke_is_a_conflict_a_person_settles() -> None:
    a = _clinic()
    b = new_replica("admin")
    pid = a.add_patient("Ames", "Bo", "1970-01-01").id
    t = RelationTuple(f"patient:{pid}", "care_team", "user:nina")
    Access(a).grant(t)
    sync_pair(b, a)
    Access(a).revoke(t)  # on one workstation...
    Access(b).grant(t)  # ...while another grants it again (a new write, concurrent)
    sync_pair(b, a)
    assert_converged([a, b])
    [conflict] = [c for c in a.conflicts() if c.record_type == "relation"]
    assert conflict.field == "granted"
    assert sorted(str(c.value) for c in conflict.candidates) == ["False", "True"]
    keep = next(c.id for c in conflict.candidates if c.value is False)
    nina = ClinicRecords(a.db, "nina")
    with pytest.raises(NotAllowedError, match="can change who may see a chart"):
        nina.resolve_conflict(conflict.id, choose=keep)  # a nurse: not hers to settle
    a.resolve_conflict(conflict.id, choose=keep)  # the founder, a clinician on the chart
    assert [c for c in a.conflicts() if c.record_type == "relation"] == []
    assert list(StoreTuples(a.db).read(f"patient:{pid}", "care_team")) == []


def _history_with_grant_at(grant_ms: int) -> remote_authz.History:
    """nina, a front-desk account since time 0, granted clinician at ``grant_ms``."""
    history = remote_authz.History()
    at0 = oplog.format_hlc(1_000, 0, "a" * 16)
    for fld, value in (("username", "nina"), ("role", "front_desk"), ("active", True)):
        history.add("user:nina", "user", fld, remote_authz.Write(at0, f"u-{fld}", value), False)
    then = oplog.format_hlc(grant_ms, 0, "a" * 16)
    for fld, value in (("object", "clinic:clinic"), ("relation", "clinician"),
                       ("subject", "user:nina"), ("granted", True)):  # fmt: skip
        history.add("rel:n", "relation", fld, remote_authz.Write(then, f"r-{fld}", value), False)
    return history


def test_a_fork_of_a_kept_history_changes_without_changing_it() -> None:
    """A batch works on a fork of the history kept between batches: what the batch learns
    (a revoke it applies, then rolled back, say) never reaches the kept one."""
    kept = _history_with_grant_at(2_000)
    later = oplog.format_hlc(5_000, 0, "b" * 16)
    assert remote_authz.RemotePermissions(kept)._held(later, "prescribe", "patient:p1", "nina")
    fork = kept.fork()
    revoke = remote_authz.Write(oplog.format_hlc(3_000, 0, "a" * 16), "r-revoke", False)
    fork.add("rel:n", "relation", "granted", revoke, True)

    assert not remote_authz.RemotePermissions(fork)._held(later, "prescribe", "patient:p1", "nina")
    assert remote_authz.RemotePermissions(kept)._held(later, "prescribe", "patient:p1", "nina")
    assert "r-revoke" not in kept.writes["rel:n"]["granted"]
    assert fork.new and not kept.new


@pytest.mark.parametrize(("grant_after_ms", "allowed"), [
    (-1, True),  # granted before the op
    (2 * 3600_000, True),  # the admin's clock two hours ahead of nina's: still hers
    (25 * 3600_000, False),  # a grant a day later does not reach back
])  # fmt: skip
def test_an_op_is_judged_at_its_time_and_grants_shortly_after_it(
    grant_after_ms: int, allowed: bool
) -> None:
    op_ms = 10 * 3600_000
    history = _history_with_grant_at(op_ms + grant_after_ms)
    permissions = remote_authz.RemotePermissions(history)
    op_hlc = oplog.format_hlc(op_ms, 0, "b" * 16)
    held = any(
        permissions._held(at, "prescribe", "patient:p1", "nina") for at in history.moments(op_hlc)
    )
    assert held is allowed


def test_answers_worked_out_once_per_permission_epoch_still_tell_charts_apart() -> None:
    """Remote apply asks the engine once per permission, author and epoch for every chart
    no tuple names; a chart that a tuple names (restricted) is still judged on its own, and
    a new permission write (a revoke) makes every answer be worked out again."""
    history = remote_authz.History()
    at0 = oplog.format_hlc(1_000, 0, "a" * 16)
    for fld, value in (("username", "nina"), ("role", "clinician"), ("active", True)):
        history.add("user:nina", "user", fld, remote_authz.Write(at0, f"u-{fld}", value), False)
    for fld, value in (("object", "patient:p2"), ("relation", "restricted"),
                       ("subject", "user:*"), ("granted", True)):  # fmt: skip
        history.add("rel:r", "relation", fld, remote_authz.Write(at0, f"r-{fld}", value), False)
    permissions = remote_authz.RemotePermissions(history)
    op_at = oplog.format_hlc(5_000, 0, "b" * 16)
    asked = [(chart, permissions._held(op_at, "prescribe", chart, "nina"))
             for chart in ("patient:p1", "patient:p2", "patient:p3")]  # fmt: skip
    assert asked == [("patient:p1", True), ("patient:p2", False), ("patient:p3", True)]
    revoked = oplog.format_hlc(4_000, 0, "a" * 16)
    history.add("user:nina", "user", "active", remote_authz.Write(revoked, "u-off", False), False)
    assert not permissions._held(op_at, "prescribe", "patient:p1", "nina")
    before_revoke = oplog.format_hlc(3_000, 0, "b" * 16)
    assert permissions._held(before_revoke, "prescribe", "patient:p3", "nina")


@pytest.mark.strict_authz
def test_an_admin_registers_a_patient_on_one_replica_and_every_replica_accepts_it() -> None:
    """Registering needs register_patient (an admin has it), locally and at remote apply:
    the registration's demographics are part of it, not an edit."""
    a = _clinic()
    a.add_user("adm", "Adam Admin", "admin", PASSWORD)
    b = new_replica("admin")
    sync_pair(b, a)
    ClinicRecords(a.db, "adm").add_patient("Ames", "Bo", "1970-01-01")
    with pytest.raises(NotAllowedError):  # but changing them later is not an admin's job
        ClinicRecords(a.db, "adm").update_patient(a.list_patients()[0].id, {"phone": "555-0001"})
    sync_pair(b, a)
    assert [p.family for p in b.list_patients()] == ["Ames"]
    assert b.db.query("SELECT count(*) FROM quarantine") == [(0,)]


@pytest.mark.strict_authz
def test_each_op_of_a_batch_is_judged_by_what_it_changes_after_the_ops_before_it() -> None:
    """One batch brings a clinician's prescription and then a front-desk phone change to
    the same chart: the second op is judged on what it changed after the first (the phone),
    not on the prescription before it, and a front-desk prescription in the same batch is
    quarantined while the ops before it apply."""
    founder = new_replica("admin")
    founder.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    founder.add_user("fay", "Fay Desk", "front_desk", PASSWORD)
    desk, target = new_replica("fay"), new_replica("admin")
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    for r in (desk, target):
        sync_pair(r, founder)
    Medications(founder).start(pid, {"name": "Statin"})
    sync_pair(desk, founder)
    ClinicRecords(desk.db, "fay").update_patient(pid, {"phone": "555-0101"})
    authorize.ENFORCING = False  # fay's workstation ignores its own gate (a forged client)
    Medications(ClinicRecords(desk.db, "fay")).start(pid, {"name": "Opioid"})
    authorize.ENFORCING = True
    report = pull_from(target, desk)  # one batch: prescription, phone, forged prescription
    assert report.pulled == 2  # the forged one is kept aside
    assert target.get_patient(pid).phone == "555-0101"
    names = [str(n) for (n,) in target.db.query("SELECT name FROM medications")]
    assert names == ["Statin"]
    [(reason,)] = target.db.query("SELECT reason FROM quarantine")
    assert "its author 'fay' was not allowed" in str(reason)


@pytest.mark.strict_authz
@pytest.mark.parametrize("entry", ["{not json", '{"v": "x", "h": "12345;789.0000.zz", "a": "x"}'])
def test_an_op_leaving_a_malformed_entry_in_a_chart_is_refused_under_permission_checks(
    entry: str,
) -> None:
    """The permission check compares an op's document before and after by its register
    entries as stored, unparsed (remote_authz.summary): a malformed entry the op leaves is
    refused when the record is derived, and the batch changes nothing."""
    founder = new_replica("admin")
    founder.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    target, forger_replica = new_replica("admin"), new_replica("admin")
    for r in (target, forger_replica):
        sync_pair(r, founder)
    forger = oplog.identity(forger_replica.db)
    [(state,)] = target.db.query("SELECT state FROM record_states WHERE id = ?", (pid,))
    doc = crdt.load(unpack_state(state), forger.client_id)
    deps = doc.get_state()
    doc.get("r", type=Map)["phone/forged"] = entry
    hlc = oplog.format_hlc(int(time.time() * 1000), 0, forger.replica_id)
    op = oplog.Op(forger.replica_id, 1, pid, "patient", doc.get_update(deps), deps, hlc, "admin")
    [signed] = signed_as(forger_replica.db, [op])
    before = full_dump(target)
    with pytest.raises(ApplyError, match="malformed entry"):
        apply_ops(target.db, [signed], "peer", [certificate_of(forger_replica.db)])
    assert dump_diff(before, full_dump(target)) == {}


@pytest.mark.strict_authz
@pytest.mark.parametrize("root", ["s", "r"])
def test_an_entry_rewritten_in_place_is_judged_as_a_change_of_its_field(root: str) -> None:
    """A forged op keeps an entry's key and rewrites its content (no Careline write does:
    each makes a new id): a front-desk account turning a chart's penicillin allergy into
    latex (a list element), or its allergy status into "none known" (a register entry),
    changes the allergies, which needs record_allergy. Quarantined, as a new entry would be;
    the same person's phone change in the same batch still applies."""
    founder = _clinic()
    founder.add_user("fay", "Fay Desk", "front_desk", PASSWORD)
    desk, target = new_replica("fay"), new_replica("admin")
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    founder.add_allergy(pid, "Penicillin", "hives", "severe")
    for r in (desk, target):
        sync_pair(r, founder)
    ClinicRecords(desk.db, "fay").update_patient(pid, {"phone": "555-0101"})
    field = "allergies" if root == "s" else "allergy_status"

    def rewrite(doc: crdt.RecordDoc, hlc: str) -> None:
        entries = doc.get(root, type=Map)
        [key] = [k for k in entries if k.startswith(f"{field}/")]
        entry = json.loads(entries[key])
        if root == "s":
            entry["v"]["substance"] = "Latex"
        else:
            entry["v"] = "none_known"
        entries[key] = json.dumps(entry, sort_keys=True, separators=(",", ":"))

    authorize.ENFORCING = False  # fay's workstation ignores its own gate (a forged client)
    with desk.db.write("fay", "patient.update", "patient", pid) as tx:
        change(tx, "fay", pid, "patient", rewrite)
    authorize.ENFORCING = True
    report = pull_from(target, desk)  # one batch: the phone change, then the rewrite
    assert report.pulled == 1
    assert target.get_patient(pid).phone == "555-0101"
    assert [str(s) for (s,) in target.db.query("SELECT substance FROM allergies")] == ["Penicillin"]
    [(reason,)] = target.db.query("SELECT reason FROM quarantine")
    assert "its author 'fay' was not allowed" in str(reason)
    assert "record allergy" in str(reason)


@pytest.mark.strict_authz
def test_the_permission_history_is_kept_between_batches_until_a_permission_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Remote apply judged every batch against a permission history rebuilt from every user
    and tuple record (a second a batch at 5,000 care-team tuples). It is kept between
    batches while no user or tuple record is stored; a change of one, arriving in a batch
    or made here, counts from the very next batch."""
    founder = new_replica("admin")
    founder.set_up_clinic("Riverside", "admin", "Ada Admin", PASSWORD)
    founder.add_user("fay", "Fay Desk", "front_desk", PASSWORD)
    desk, target = new_replica("fay"), new_replica("admin")
    pid = founder.add_patient("Ames", "Bo", "1970-01-01").id
    for r in (desk, target):
        sync_pair(r, founder)
    built: list[int] = []
    load = remote_authz.load_history

    def counted(db: object) -> remote_authz.History:
        built.append(1)
        return load(db)  # type: ignore[arg-type]

    monkeypatch.setattr(remote_authz, "load_history", counted)
    fay = ClinicRecords(desk.db, "fay")

    fay.update_patient(pid, {"phone": "555-0101"})
    pull_from(target, desk)
    fay.update_patient(pid, {"phone": "555-0102"})
    pull_from(target, desk)
    assert target.get_patient(pid).phone == "555-0102"
    assert len(built) == 1  # built for the first batch (the target started from a
    # snapshot, which keeps none), reused by the second

    # Fay is deactivated on the founder's replica; the target learns it in a batch.
    Staff(founder).deactivate("fay")
    pull_from(target, founder)
    fay.update_patient(pid, {"phone": "555-0103"})  # her desk has not heard yet
    pull_from(target, desk)
    assert target.get_patient(pid).phone == "555-0102"
    [(reason,)] = target.db.query("SELECT reason FROM quarantine")
    assert "its author 'fay' was not allowed" in str(reason)
    assert len(built) == 2  # rebuilt once, for the batch after the one that brought it

    # Reactivated here, by the target's own admin: the next batch sees it.
    Staff(ClinicRecords(target.db, "admin")).reactivate("fay")
    pull_from(target, desk)  # the op kept aside is sent again, and now passes
    assert target.get_patient(pid).phone == "555-0103"
    assert target.db.query("SELECT count(*) FROM quarantine") == [(0,)]
    assert len(built) == 3  # rebuilt once, for the batch after the change made here
