"""Device-signed ops through a live clinic server (embedded and PostgreSQL): enrollment
binds each device's certificate to its replica, ops arrive signed, and ops a hostile
workstation pushes (another's origin, rewritten, a made-up author, a revoked device's) are
quarantined on the server, never applied, shown by ``admin quarantine list`` and told to
the workstation that made them. A relay cannot forge: a workstation checks the origin's
signature on what the server passes on."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.cli import server as server_cli
from core.crypto import certs, op_signature
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.clinic import ClinicRecords
from core.records.replication import replica_id
from core.records.workstation import Workstation
from core.store import op_signer, oplog
from core.sync import protocol as p
from core.sync.certify import CertifyError, ensure_bound
from core.sync.enroll import EnrollmentError, ServerCredential, adopt_credential, enroll, tls_trust
from core.sync.http_transport import HttpTransport
from core.sync.session import SyncReport, sync
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at

pytestmark = [
    pytest.mark.strict_authors,  # the server runs in this process: check authors
    pytest.mark.database_url_in_env,  # for the admin command run in this process
]


def _desk(live: Live, clinic: str, folder: Path, name: str) -> tuple[Workstation, ServerCredential]:
    return join_clinic(live.server, live.url, live.ca_pem, clinic, folder, name)


def _own_ops(ws: Workstation) -> list[oplog.Op]:
    me = replica_id(ws.database)
    return [o for o in oplog.ops_after(ws.database, {}, 100_000) if o.origin == me]


def _resign(op: oplog.Op, credential: ServerCredential, **changes: Any) -> oplog.Op:
    """``op`` changed and signed with ``credential``'s device key, as a hostile
    workstation holding that key could."""
    op = dataclasses.replace(op, **changes)
    key = certs.load_private_key(credential.private_key_pem.encode("ascii"))
    value = op_signer.op_chain(op_signature.clinic_tag(credential.ca_certificate), op,
                               op_signature.GENESIS)  # fmt: skip
    return dataclasses.replace(
        op, prev=op_signature.GENESIS, sig=op_signature.sign(key, value), signer="device"
    )


def _push(credential: ServerCredential, ops: list[oplog.Op], pems: list[str]) -> dict[str, Any]:
    """A push request as a hostile workstation crafts it, over its own connection."""
    transport = credential.transport()
    try:
        message = {"type": "push", "ops": [p.op_to_wire(o) for o in ops], "certificates": pems}
        reply: dict[str, Any] = json.loads(transport.request(p.encode(message)))
    finally:
        transport.close()
    return reply


def _quarantine_list(live: Live, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """``careline-server --json admin quarantine list`` (in this process, same data)."""
    capsys.readouterr()
    data_dir = str(live.server.data_dir)
    code = server_cli.main(["--data-dir", data_dir, "--json", "admin", "quarantine", "list"])
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_enrollment_binds_the_certificate_and_ops_arrive_signed(live: Live, tmp_path: Path) -> None:
    clinic = add_clinic(live.server, "Signed Clinic")
    desk, credential = _desk(live, clinic, tmp_path / "desk", "desk")
    binding = certs.binding_of(certs.load_certificate(credential.certificate))
    assert binding == op_trust.binding_for(desk.database)
    assert [d.replica_id for d in live.server.registry.devices(clinic)] == [binding.replica_id]

    desk.records.add_patient("Signed", "Ada", "1970-01-01")
    sync_at(desk, credential)
    held = live.server.sync_store(clinic).ops_for({}, 10_000)
    signers = {(o.origin == binding.replica_id, o.signer) for o in held}
    # The desk's ops carry its own signature; the server's (accounts, clinic name) the CA's.
    assert signers == {(True, "device"), (False, "clinic-ca")}
    assert all(o.sig for o in held)
    desk.lock()


def test_hostile_pushes_are_quarantined_on_the_server_and_nothing_is_applied(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clinic = add_clinic(live.server, "Hostile Clinic")
    a, cred_a = _desk(live, clinic, tmp_path / "a", "desk a")
    b, cred_b = _desk(live, clinic, tmp_path / "b", "desk b")
    store = live.server.sync_store(clinic)
    a.records.add_patient("Genuine", "Ama", "1980-02-02")  # not synced yet
    genuine = _own_ops(a)[-1]
    a_origin, b_origin = genuine.origin, replica_id(b.database)
    before = store.version_vector()
    attacks = [
        # A's op rewritten in transit by B (its payload's author changed; A's signature kept).
        [dataclasses.replace(genuine, author="ada")],
        # A's op replayed under B's own origin, signed with B's key.
        [_resign(genuine, cred_b, origin=b_origin, seq=before.get(b_origin, 0) + 1)],
        # B signing an op under A's origin with its own key.
        [_resign(genuine, cred_b)],
    ]
    for ops in attacks:
        reply = _push(cred_b, ops, [cred_a.certificate, cred_b.certificate])
        assert reply["type"] == "ack" and reply["applied"] == 0, reply
        assert len(reply["quarantined"]) == 1
    assert store.version_vector() == before  # nothing applied
    # What the operators' alert rule watches (installers/monitoring/careline-alerts.yml).
    metrics = httpx.get(live.url + "/metrics", verify=tls_trust(live.ca_pem)).text
    assert "\ncareline_sync_ops_quarantined_total 3.0\n" in metrics

    listed = _quarantine_list(live, capsys)
    reasons = {(r["origin"], r["received_from"]): r["reason"] for r in listed}
    assert {r["clinic"] for r in listed} == {clinic}
    assert "signature does not verify" in reasons[(a_origin, f"device:{cred_b.device_id}")]
    assert "another replica" in reasons[(b_origin, f"device:{cred_b.device_id}")]
    assert all(r["record_type"] == "patient" for r in listed)

    # The genuine op still arrives from A, and leaves the quarantine.
    sync_at(a, cred_a)
    assert store.version_vector()[a_origin] == genuine.seq
    assert {(r["origin"], r["seq"]) for r in _quarantine_list(live, capsys)} == {
        (b_origin, before.get(b_origin, 0) + 1)
    }
    a.lock()
    b.lock()


def test_a_made_up_author_is_refused_and_the_workstation_learns_why_at_its_next_sync(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clinic = add_clinic(live.server, "Author Clinic")
    b, cred_b = _desk(live, clinic, tmp_path / "b", "desk b")
    ClinicRecords(b.database, "mallory", FAST_PARAMS).add_patient("Forged", "Fay", "1990-03-03")
    forged = _own_ops(b)[-1]
    assert (forged.author, forged.signer) == ("mallory", "device")  # signed by the device

    first = sync_at(b, cred_b)
    held = live.server.sync_store(clinic).version_vector().get(forged.origin, 0)
    assert held < forged.seq  # not applied
    why = "its author 'mallory' is not an active staff account of this clinic"
    assert (forged.origin, forged.seq, why) in first.refused
    again = sync_at(b, cred_b)  # and the next sync says it again (from the server's list)
    assert (forged.origin, forged.seq, why) in again.refused
    assert again.to_dict()["refused"][0]["reason"] == why  # as `careline sync --json` shows
    [row] = _quarantine_list(live, capsys)
    assert (row["author"], row["reason"]) == ("mallory", why)
    b.lock()


def test_a_revoked_devices_later_ops_are_refused_and_the_revocation_reaches_workstations(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clinic = add_clinic(live.server, "Revoking Clinic")
    a, cred_a = _desk(live, clinic, tmp_path / "a", "desk a")
    b, cred_b = _desk(live, clinic, tmp_path / "b", "desk b")
    a.records.add_patient("Before", "Revocation", "1960-01-01")
    sync_at(a, cred_a)
    live.server.revoke_device(cred_a.device_id)
    time.sleep(1.05)  # revocation lists hold whole seconds (rounded up)
    a.records.add_patient("After", "Revocation", "1960-01-01")  # A still holds its key
    late = _own_ops(a)[-1]

    reply = _push(cred_b, [late], [cred_a.certificate])  # B relays it
    assert reply["applied"] == 0
    [(origin, seq, why)] = p.refusals_from_wire(reply["quarantined"])
    assert (origin, seq) == (late.origin, late.seq) and "revoked" in why
    assert any("revoked" in r["reason"] for r in _quarantine_list(live, capsys))

    # B receives A's op made before the revocation, and the CA's revocation list with it.
    sync_at(b, cred_b)
    assert [p.family for p in b.records.list_patients(10)] == ["Before"]
    crl = op_trust.crl_of(b.database)
    assert crl is not None
    assert certs.serial_of(cred_a.certificate) in certs.read_crl(crl, cred_a.ca_certificate).revoked
    a.lock()
    b.lock()


class _Tampering:
    """A relay between a workstation and the server that alters ops of one origin."""

    def __init__(self, inner: HttpTransport, origin: str) -> None:
        self.inner, self.origin = inner, origin

    def request(self, message: bytes) -> bytes:
        reply = json.loads(self.inner.request(message))
        for op in reply.get("ops", []):
            if op["origin"] == self.origin:
                op["author"] = "admin-2"
        return json.dumps(reply).encode()


def test_a_relay_cannot_alter_what_it_passes_on(live: Live, tmp_path: Path) -> None:
    clinic = add_clinic(live.server, "Relay Clinic")
    a, cred_a = _desk(live, clinic, tmp_path / "a", "desk a")
    b, cred_b = _desk(live, clinic, tmp_path / "b", "desk b")
    a.records.add_patient("Relayed", "Rae", "1975-04-04")
    sync_at(a, cred_a)
    origin = replica_id(a.database)

    inner = HttpTransport(cred_b.server_url, cred_b.token, verify=tls_trust(cred_b.server_ca_pem))
    try:
        report: SyncReport = sync(b.database, _Tampering(inner, origin), "admin")
    finally:
        inner.close()
    assert report.quarantined >= 1
    assert b.records.list_patients(10) == []  # nothing of the altered ops applied
    [held] = [q for q in op_trust.quarantined(b.database) if q.origin == origin][:1]
    assert "signature does not verify" in held.reason

    sync_at(b, cred_b)  # straight from the server: A's signature verifies
    assert [p.family for p in b.records.list_patients(10)] == ["Relayed"]
    assert not [q for q in op_trust.quarantined(b.database) if q.origin == origin]
    a.lock()
    b.lock()


def test_a_device_enrolled_before_signing_is_recertified_and_a_copy_is_refused(
    live: Live, tmp_path: Path
) -> None:
    clinic = add_clinic(live.server, "Upgraded Clinic")
    # Enrolled as Careline 0.1.0 did: a certificate bound to nothing.
    desk = Workstation(tmp_path / "desk", FAST_PARAMS)
    desk.prepare_join("admin", PASSWORD)
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    old = enroll(live.url, code, live.ca_pem, "old desk")
    adopt_credential(desk.database, old, "admin")
    assert op_signer.current(desk.database) is None
    sync_at(desk, old)
    desk.lock()
    desk.sign_in("admin", PASSWORD)
    desk.records.add_patient("Unsigned", "Una", "1950-05-05")
    assert {o.signer for o in _own_ops(desk)} == {""}

    new = ensure_bound(desk.database, old, "admin")  # what `careline sync` does first
    assert certs.binding_of(certs.load_certificate(new.certificate)) == op_trust.binding_for(
        desk.database
    )
    assert {o.signer for o in _own_ops(desk)} == {"device"}  # pending ops signed
    assert ensure_bound(desk.database, new, "admin") is new  # once only
    sync_at(desk, new)
    me = replica_id(desk.database)
    assert {o.signer for o in live.server.sync_store(clinic).ops_for({}, 10_000)
            if o.origin == me} == {"device"}  # fmt: skip
    assert [d.replica_id for d in live.server.registry.devices(clinic)] == [me]
    desk.lock()

    # A copy of that data folder is the same replica: it can neither enroll bound to it,
    # nor re-certify an unbound enrollment to it.
    shutil.copytree(tmp_path / "desk", tmp_path / "copy")
    copy = Workstation(tmp_path / "copy", FAST_PARAMS)
    copy.sign_in("admin", PASSWORD)
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    binding = op_trust.binding_for(copy.database)
    with pytest.raises(EnrollmentError, match=f"replica {me} is already bound to another device"):
        enroll(live.url, code, live.ca_pem, "copy", binding)
    unbound = enroll(live.url, code, live.ca_pem, "copy")  # the code was not used up
    with pytest.raises(CertifyError, match=f"replica {me} is already bound to another device"):
        ensure_bound(copy.database, unbound, "admin")
    response = httpx.post(
        f"{live.url}/v1/certify",
        json={"csr": certs.make_csr(certs.new_private_key(), "x", binding)},
        headers={"Authorization": f"Bearer {unbound.token}"},
        verify=tls_trust(live.ca_pem),
    )
    assert response.status_code == 400
    copy.lock()


# Found by fuzzing (tests/fuzz/corpus/crdt_update): yrs panics applying the first, and
# encoding the document the second leaves. The first's changes are made by Yjs client
# 2885081006840937: rewritten to the pushing device's own (its ops may carry no other's).
_PANICS = {
    "applying": ("crash-update-panics-pycrdt", 2885081006840937),
    "encoding": ("crash-state-panics-pycrdt-on-encoding", None),
}


def _varuint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


@pytest.mark.parametrize("when", sorted(_PANICS))
def test_a_push_that_makes_pycrdt_panic_is_refused_naming_the_record(
    live: Live, tmp_path: Path, when: str
) -> None:
    from tests.fuzz.campaign import CORPUS

    clinic = add_clinic(live.server, "Panic Clinic")
    desk, credential = _desk(live, clinic, tmp_path / "desk", "desk")
    store = live.server.sync_store(clinic)
    patient = desk.records.add_patient("Broken", "Bea", "1980-02-02")  # not synced yet
    genuine = _own_ops(desk)[-1]
    name, client = _PANICS[when]
    update = (CORPUS / "crdt_update" / name).read_bytes()[2:]
    if client is not None:
        own = oplog.identity(desk.database).client_id
        update = update.replace(_varuint(client), _varuint(own))
    before = store.version_vector()

    reply = _push(credential, [_resign(genuine, credential, update=update)], [])

    # Refused by name (on PostgreSQL the encoding panic was a 500 before), in Careline's
    # words: not yrs's ("attempt to divide by zero"), nor where in its source it panicked.
    assert reply["type"] == "error" and reply["code"] == "refused", reply
    message = str(reply["message"])
    assert f"record {patient.id}" in message and "is not a valid Yjs update" in message
    assert "divide" not in message and ".rs" not in message and "anic" not in message
    assert store.version_vector() == before
    # The genuine op then arrives.
    sync_at(desk, credential)
    assert store.version_vector()[genuine.origin] == genuine.seq
    desk.lock()
