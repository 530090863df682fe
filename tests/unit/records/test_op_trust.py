"""Who made each op, verified before a replica applies it (core.records.op_trust): real
replicas of the test clinic (tests/clinic_identity.py) sign their ops; the receiving
replica checks signatures, certificates, revocations, Yjs clients and authors, and keeps
what fails aside with the reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import time

import pytest

from core.crypto import certs, op_signature
from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import crdt, op_trust
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.replication import ApplyError, apply_ops, replica_id
from core.store import op_signer, oplog
from core.store.database import Database
from core.sync.stores import keep_crl
from tests import clinic_identity
from tests.clinic_identity import certificate_of, join_test_clinic, signed_as, vouched
from tests.unit.sync.replicas import full_dump, materialized, new_replica

SIGNATURE_FAILS = "its signature does not verify"


def _own_ops(r: ClinicRecords) -> list[oplog.Op]:
    me = oplog.identity(r.db).replica_id
    return [op for op in oplog.ops_after(r.db, {}, 1000) if op.origin == me]


def _with_patients(actor: str, count: int) -> ClinicRecords:
    r = new_replica(actor)
    for i in range(count):
        r.add_patient(f"Family{i}", "Given", "1990-01-01")
    return r


def _trust_of(receiver: ClinicRecords, *senders: ClinicRecords) -> op_trust.Trust:
    """The receiver's trust, having been sent the senders' certificates."""
    trust = op_trust.replica_trust(receiver.db)
    assert trust is not None
    trust.learn_certificates([certificate_of(s.db) for s in senders])
    return trust


def _unjoined(actor: str) -> ClinicRecords:
    """A replica that has joined no clinic (made before signing, or never enrolled)."""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    return ClinicRecords(Database.in_memory(key), actor, FAST_PARAMS)


# ----- signatures and the chain ----------------------------------------------------------


def test_a_run_of_an_origins_ops_is_verified_with_one_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann = _with_patients("ann", 6)
    trust = _trust_of(new_replica("bob"), ann)
    checked: list[bytes] = []
    real_verify = op_signature.verify

    def counting(key: object, value: bytes, sig: bytes) -> bool:
        checked.append(value)
        return real_verify(key, value, sig)  # type: ignore[arg-type]

    monkeypatch.setattr(op_signature, "verify", counting)
    assert op_trust.verify(_own_ops(ann), trust) == {}
    assert len(checked) == 1


@pytest.mark.parametrize("index", [0, 2, 5])
@pytest.mark.parametrize("field", ["author", "update", "record_id"])
def test_altering_any_op_of_a_run_names_that_op_and_only_it(index: int, field: str) -> None:
    ann = _with_patients("ann", 6)
    ops = _own_ops(ann)
    value = {"author": "mallory", "update": ops[index].update + b"\x00", "record_id": "other"}
    ops[index] = dataclasses.replace(ops[index], **{field: value[field]})  # type: ignore[arg-type]
    verdicts = op_trust.verify(ops, _trust_of(new_replica("bob"), ann))
    assert list(verdicts) == [(ops[index].origin, ops[index].seq)]
    assert SIGNATURE_FAILS in verdicts[(ops[index].origin, ops[index].seq)]


def test_a_changed_author_is_refused_and_nothing_applied() -> None:
    ann, bob = _with_patients("ann", 1), new_replica("bob")
    [op] = _own_ops(ann)
    before = materialized(bob)
    result = apply_ops(bob.db, [dataclasses.replace(op, author="drlee")], "sync",
                       [certificate_of(ann.db)])  # fmt: skip
    assert result.applied == 0
    [(origin, seq, why)] = result.quarantined
    assert (origin, seq) == (op.origin, 1) and SIGNATURE_FAILS in why
    assert materialized(bob) == before


def test_an_op_signed_for_another_clinic_does_not_verify() -> None:
    ann = _with_patients("ann", 1)
    trust = _trust_of(new_replica("bob"), ann)
    _, elsewhere_pem = certs.create_ca("testclinic")  # same name, other CA
    signed_elsewhere = op_trust.Trust(elsewhere_pem, trust.devices, {}, lambda _: True)
    [op] = _own_ops(ann)
    assert SIGNATURE_FAILS in op_trust.verify([op], signed_elsewhere)[(op.origin, 1)]


# ----- who may sign ------------------------------------------------------------------------


def test_an_op_of_an_origin_with_no_certificate_is_refused() -> None:
    ann = _with_patients("ann", 2)
    [first, _] = _own_ops(ann)
    verdicts = op_trust.verify([first], _trust_of(new_replica("bob")))  # no certificate sent
    assert "is not a device of this clinic" in verdicts[(first.origin, 1)]


def test_a_certificate_not_bound_to_a_replica_or_from_another_ca_is_not_learnt() -> None:
    ann = _with_patients("ann", 1)
    ca_key, ca_pem = clinic_identity.test_ca()
    key = certs.new_private_key()
    # Issued as Careline 0.1.0 did: no replica binding in it.
    unbound = certs.sign_device(ca_key, ca_pem, certs.make_csr(key, "old"), "old")
    other_key, other_pem = certs.create_ca("testclinic")
    binding = op_trust.binding_for(ann.db)
    foreign = certs.sign_device(
        other_key, other_pem, certs.make_csr(certs.new_private_key(), "x", binding), "x"
    )
    trust = op_trust.replica_trust(new_replica("bob").db)
    assert trust is not None
    assert trust.learn_certificates([unbound, foreign]) == []
    [op] = _own_ops(ann)
    assert "not a device of this clinic" in op_trust.verify([op], trust)[(op.origin, 1)]


def test_ops_signed_by_the_clinic_ca_are_accepted_from_any_origin() -> None:
    old = _unjoined("ann")  # an older release's ops, unsigned, no certificate anywhere
    old.add_patient("Vouched", "For", "1990-01-01")
    bob = new_replica("bob")
    ops = _own_ops(old)
    assert op_trust.verify(ops, _trust_of(bob)) == {(ops[0].origin, 1): "it carries no signature"}
    result = apply_ops(bob.db, vouched(ops), "sync")
    assert (result.applied, result.quarantined) == (1, ())
    assert [p.family for p in bob.list_patients()] == ["Vouched"]


def test_a_revoked_device_is_refused_after_its_revocation_and_accepted_before() -> None:
    ann = _with_patients("ann", 2)
    first, second = _own_ops(ann)
    bob = new_replica("bob")
    # Revoked in the second after the first op (CRL times are whole seconds); the second op
    # is made later by the revoked device's key.
    wall = oplog.parse_hlc(first.hlc)[0]
    revoked_at = dt.datetime.fromtimestamp(wall // 1000 + 1, dt.UTC)
    later = oplog.format_hlc(wall + 2000, 0, second.origin)
    first, second = signed_as(ann.db, [first, dataclasses.replace(second, hlc=later)])
    ca_key, ca_pem = clinic_identity.test_ca()
    serial = certs.serial_of(certificate_of(ann.db))
    assert keep_crl(bob.db, certs.make_crl(ca_key, ca_pem, {serial: revoked_at}, 1), "admin")

    result = apply_ops(bob.db, [first, second], "sync", [certificate_of(ann.db)])

    assert result.applied == 1
    [(_, seq, why)] = result.quarantined
    assert seq == 2 and "its device was revoked on" in why
    assert [q.seq for q in op_trust.quarantined(bob.db)] == [2]


def test_changes_copied_from_another_replica_under_a_new_origin_are_refused() -> None:
    ann, mallory, bob = _with_patients("ann", 1), new_replica("mallory"), new_replica("bob")
    [genuine] = _own_ops(ann)
    me = oplog.identity(mallory.db).replica_id
    hlc = oplog.format_hlc(oplog.parse_hlc(genuine.hlc)[0], 0, me)
    replayed = dataclasses.replace(genuine, origin=me, seq=1, hlc=hlc, author="mallory")
    [copied] = signed_as(mallory.db, [replayed])  # a valid signature of her own

    result = apply_ops(bob.db, [copied], "sync", [certificate_of(mallory.db)])

    assert result.applied == 0
    [(_, _, why)] = result.quarantined
    assert why == "it carries changes made by another replica (copied under a new origin)"


@pytest.mark.strict_authors
def test_an_op_by_an_unknown_author_is_refused_and_one_by_a_staff_account_accepted() -> None:
    bob = new_replica("admin")
    bob.set_up_clinic("Riverside", "admin", "Ada Admin", "correct horse battery")
    ann = _with_patients("admin", 1)  # another desk, the same staff account signed in
    ghost = _with_patients("ghost", 1)  # signs properly, but no such person works here

    made = apply_ops(bob.db, _own_ops(ann), "sync", [certificate_of(ann.db)])
    refused = apply_ops(bob.db, _own_ops(ghost), "sync", [certificate_of(ghost.db)])

    assert (made.applied, made.quarantined) == (1, ())
    assert refused.applied == 0
    [(_, _, why)] = refused.quarantined
    assert why == "its author 'ghost' is not an active staff account of this clinic"
    assert [p.family for p in bob.list_patients()] == ["Family0"]


@pytest.mark.strict_authors
def test_a_clinic_set_up_on_a_workstation_is_accepted_by_another_desk() -> None:
    first = new_replica("admin")
    first.set_up_clinic("Riverside", "admin", "Ada Admin", "correct horse battery")
    other = new_replica("other")
    result = apply_ops(other.db, _own_ops(first), "sync", [certificate_of(first.db)])
    assert result.quarantined == ()


@pytest.mark.strict_authors
def test_an_op_by_a_deactivated_account_is_refused() -> None:
    bob = new_replica("admin")
    bob.set_up_clinic("Riverside", "admin", "Ada Admin", "correct horse battery")
    nurse = bob.add_user("nurse", "Nia Nurse", "clinician", "nurse horse battery")

    def deactivate(doc: crdt.RecordDoc, hlc: str) -> None:
        crdt.write(doc, "active", False, hlc, "admin")

    with bob.db.write("admin", "user.deactivate", "user", nurse.id) as tx:
        change(tx, "admin", nurse.id, "user", deactivate)
    deactivated = bob.user("nurse")
    assert deactivated is not None and not deactivated.active
    desk = _with_patients("nurse", 1)  # a desk where she is still signed in

    result = apply_ops(bob.db, _own_ops(desk), "sync", [certificate_of(desk.db)])

    assert result.applied == 0
    [(_, _, why)] = result.quarantined
    assert why == "its author 'nurse' is not an active staff account of this clinic"
    assert bob.list_patients() == []


# ----- signing one's own ops ----------------------------------------------------------------


def test_joining_signs_the_ops_made_before_and_the_chain_goes_on() -> None:
    early = _unjoined("ann")
    for name in ("One", "Two", "Three"):
        early.add_patient(name, "Early", "1990-01-01")
    assert {op.signer for op in _own_ops(early)} == {""}

    join_test_clinic(early.db)
    assert {op.signer for op in _own_ops(early)} == {"device"}
    early.add_patient("Four", "Later", "1990-01-01")

    ops = _own_ops(early)
    clinic = op_signature.clinic_tag(clinic_identity.test_ca()[1])
    assert ops[0].prev == op_signature.GENESIS
    for before, op in itertools.pairwise(ops):
        assert op.prev == op_signer.op_chain(clinic, before, before.prev)
    bob = new_replica("bob")
    assert apply_ops(bob.db, ops, "sync", [certificate_of(early.db)]).applied == 4


def test_a_quarantined_op_is_released_when_a_good_copy_arrives() -> None:
    ann, bob = _with_patients("ann", 2), new_replica("bob")
    ops = _own_ops(ann)
    pem = certificate_of(ann.db)
    tampered = dataclasses.replace(ops[0], author="mallory")
    assert apply_ops(bob.db, [tampered, ops[1]], "sync", [pem], "relay").applied == 0
    [held] = op_trust.quarantined(bob.db)
    assert (held.seq, held.received_from) == (1, "relay")

    assert apply_ops(bob.db, ops, "sync", [pem]).applied == 2
    assert op_trust.quarantined(bob.db) == []
    assert sorted(p.family for p in bob.list_patients()) == ["Family0", "Family1"]


def test_a_replica_that_joined_no_clinic_refuses_every_remote_op_saying_why() -> None:
    ann, lone = _with_patients("ann", 1), _unjoined("lone")
    before = full_dump(lone)
    with pytest.raises(ApplyError, match=r"has joined no clinic .* enroll with the clinic server"):
        apply_ops(lone.db, _own_ops(ann), "sync", [certificate_of(ann.db)])
    assert full_dump(lone) == before


# ----- revocation lists -----------------------------------------------------------------


def test_a_revocation_list_from_another_ca_is_refused() -> None:
    bob = new_replica("bob")
    forger_key, forger_pem = certs.create_ca("testclinic")  # same name, other key
    forged = certs.make_crl(forger_key, forger_pem, {1: dt.datetime.now(dt.UTC)}, 99)
    before = full_dump(bob)
    with pytest.raises(certs.CertificateError, match="signature does not verify"):
        keep_crl(bob.db, forged, "sync")
    assert full_dump(bob) == before


def test_an_older_revocation_list_does_not_replace_a_newer_one() -> None:
    ann, bob = _with_patients("ann", 1), new_replica("bob")
    ca_key, ca_pem = clinic_identity.test_ca()
    serial = certs.serial_of(certificate_of(ann.db))
    long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    newer = certs.make_crl(ca_key, ca_pem, {serial: long_ago}, 5)
    older = certs.make_crl(ca_key, ca_pem, {}, 4)  # from before the revocation

    assert keep_crl(bob.db, newer, "sync")
    assert not keep_crl(bob.db, older, "sync")

    assert op_trust.crl_of(bob.db) == newer
    [op] = _own_ops(ann)
    assert "revoked" in op_trust.verify([op], _trust_of(bob, ann))[(op.origin, 1)]


def test_a_device_certificate_checked_before_is_refused_once_it_expires() -> None:
    """device_key keeps the certificates it checked (every batch builds its trust from all of
    them), but a kept one still stops counting at its expiry."""
    ca_key, ca_pem = clinic_identity.test_ca()
    db = new_replica("ann").db
    key = certs.new_private_key()
    csr = certs.make_csr(key, "short-lived", op_trust.binding_for(db))
    expires_in = 1.5  # seconds (x509 dates are whole seconds)
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=certs.DEVICE_DAYS, seconds=-expires_in)
    pem = certs.sign_device(ca_key, ca_pem, csr, "short-lived", issued_at=issued)
    first = op_trust.device_key(pem, ca_pem)
    assert first is not None and first.replica_id == replica_id(db)
    assert op_trust.device_key(pem, ca_pem) == first  # the kept check
    time.sleep(expires_in + 1)
    assert op_trust.device_key(pem, ca_pem) is None
    # Nor does a kept certificate count under another CA.
    _, other_pem = certs.create_ca("otherclinic")
    assert op_trust.device_key(pem, other_pem) is None
