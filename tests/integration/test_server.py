"""The clinic server, live over TLS: enrollment, sync between workstations, tenant
isolation, revocation, and hostile requests."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from core.audit.verify import verify_audit_log
from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.server.registry import Registry
from core.store import audit_chain
from core.store.oplog import version_vector
from core.sync import audit_anchor, protocol
from core.sync.audit_anchor import local_head
from core.sync.enroll import (
    EnrollmentError,
    ServerCredential,
    adopt_credential,
    enroll,
    load_credential,
    tls_trust,
)
from core.sync.http_transport import DeviceRejectedError
from core.sync.session import SyncReport, sync
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, live_server, rewrite_audit_tail


def _clinic(live: Live, name: str) -> str:
    clinic = live.server.create_clinic(name)
    live.server.add_user(clinic.id, "admin", "Ada Admin", "admin", PASSWORD)
    return clinic.id


def _workstation(live: Live, clinic_id: str, folder: Path) -> tuple[Workstation, ServerCredential]:
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    ws = Workstation(folder, FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    credential = enroll(live.url, code, live.ca_pem, "desk", op_trust.binding_for(ws.database))
    adopt_credential(ws.database, credential, "admin")
    _sync(ws)
    ws.lock()
    ws.sign_in("admin", PASSWORD)
    return ws, credential


def _sync(ws: Workstation) -> SyncReport:
    credential = load_credential(ws.database)
    assert credential is not None
    transport = credential.transport()
    try:
        return sync(ws.database, transport, "admin")
    finally:
        transport.close()


def test_two_workstations_converge_through_the_server_with_a_conflict(
    live: Live, tmp_path: Path
) -> None:
    clinic = _clinic(live, "Harbour Clinic")
    a, cred_a = _workstation(live, clinic, tmp_path / "a")
    b, _ = _workstation(live, clinic, tmp_path / "b")
    assert a.records.clinic_name() == "Harbour Clinic"
    assert certs.verify_device(cred_a.certificate, cred_a.ca_certificate, set())

    patient = a.records.add_patient("Mensah", "Ama", "1979-05-05")
    _sync(a)
    _sync(b)
    assert b.records.get_patient(patient.id).family == "Mensah"

    a.records.update_patient(patient.id, {"phone": "555-0001"})
    b.records.update_patient(patient.id, {"phone": "555-0002"})
    for ws in (a, b, a):
        _sync(ws)
    for ws in (a, b):
        [conflict] = ws.records.conflicts()
        assert {c.value for c in conflict.candidates} == {"555-0001", "555-0002"}
    chosen = next(c for c in a.records.conflicts()[0].candidates if c.value == "555-0002")
    a.records.resolve_conflict(a.records.conflicts()[0].id, choose=chosen.id)
    _sync(a)
    _sync(b)
    assert a.records.conflicts() == b.records.conflicts() == []
    assert b.records.get_patient(patient.id).phone == "555-0002"
    assert live.server.sync_store(clinic).version_vector() == version_vector(a.database)
    a.lock()
    b.lock()


def test_enrollment_codes_are_one_time_and_expire(live: Live, tmp_path: Path) -> None:
    clinic = _clinic(live, "One Time")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    enroll(live.url, code, live.ca_pem)
    with pytest.raises(EnrollmentError, match="has already been used; ask IT for a new one"):
        enroll(live.url, code, live.ca_pem)
    expired, _ = live.server.registry.issue_enroll_code(clinic, 1)
    with live.server.registry.db.write("test", "test.expire", "enroll_code", "all") as tx:
        tx.execute("UPDATE enroll_codes SET expires_at = '2000-01-01T00:00:00+00:00'")
    with pytest.raises(EnrollmentError, match="expired at 2000-01-01T00:00:00"):
        enroll(live.url, expired, live.ca_pem)
    with pytest.raises(EnrollmentError, match="not valid"):
        enroll(live.url, "AAAA-BBBB-CCCC-DDDD", live.ca_pem)


def test_unpinned_tls_is_refused(live: Live) -> None:
    clinic = _clinic(live, "Pinned")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    with pytest.raises(EnrollmentError, match="cannot reach the server"):
        enroll(live.url, code, None)  # the generated certificate is not in the system CAs


def test_revoked_device_is_refused_at_once(live: Live, tmp_path: Path) -> None:
    clinic = _clinic(live, "Revocations")
    ws, credential = _workstation(live, clinic, tmp_path / "ws")
    live.server.registry.revoke(credential.device_id)
    with pytest.raises(DeviceRejectedError, match="revoked"):
        _sync(ws)
    devices = {d.id: d for d in live.server.registry.devices(clinic)}
    assert not devices[credential.device_id].active
    ws.lock()


def test_a_device_only_ever_sees_its_own_clinic(live: Live, tmp_path: Path) -> None:
    clinic_a, clinic_b = _clinic(live, "Clinic A"), _clinic(live, "Clinic B")
    a, cred_a = _workstation(live, clinic_a, tmp_path / "a")
    b, _ = _workstation(live, clinic_b, tmp_path / "b")
    secret = b.records.add_patient("Secretariat", "Bea", "1990-01-01")
    _sync(b)
    a.records.add_patient("Alpha", "Al", "1990-01-01")
    _sync(a)
    assert a.records.search_patients("secretariat") == []
    assert b.records.search_patients("alpha") == []
    with pytest.raises(Exception, match="no patient"):
        a.records.get_patient(secret.id)
    # Even asking with B's version vector yields only A's own clinic's ops.
    b_vv = version_vector(b.database)
    with httpx.Client(verify=tls_trust(live.ca_pem)) as client:
        pull = protocol.encode({"type": "pull", "vv": {}, "max_ops": 1000})
        reply = client.post(live.url + "/v1/sync", content=pull,
                            headers={"Authorization": f"Bearer {cred_a.token}"})  # fmt: skip
        ops = json.loads(reply.content)["ops"]
        assert {op["origin"] for op in ops}.isdisjoint(set(b_vv) - set(version_vector(a.database)))
        assert secret.id not in {op["record"] for op in ops}
        snapshot = protocol.encode({"type": "snapshot", "after": None, "max_records": 2000})
        page = client.post(live.url + "/v1/sync", content=snapshot,
                           headers={"Authorization": f"Bearer {cred_a.token}"})  # fmt: skip
        assert secret.id not in {r["id"] for r in json.loads(page.content)["records"]}
    a.lock()
    b.lock()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "not valid JSON"),
        (json.dumps({"protocol": "careline-sync", "v": 99, "type": "pull"}).encode(), 400,
         "version 99"),
        (protocol.encode({"type": "push", "ops": [{"origin": "x"}]}), 400, "ops[0]"),
    ],
)  # fmt: skip
def test_bad_sync_messages_get_a_clear_4xx_and_change_nothing(
    live: Live, tmp_path: Path, body: bytes, status: int, message: str
) -> None:
    clinic = _clinic(live, "Hostile")
    _, credential = _workstation(live, clinic, tmp_path / "ws")
    store = live.server.sync_store(clinic)
    before = store.version_vector(), store.ops_for({}, 10_000), store.snapshot_page(None, 10_000)
    with httpx.Client(verify=tls_trust(live.ca_pem)) as client:
        reply = client.post(live.url + "/v1/sync", content=body,
                            headers={"Authorization": f"Bearer {credential.token}"})  # fmt: skip
    assert reply.status_code == status
    assert message in reply.json()["message"]
    after = store.version_vector(), store.ops_for({}, 10_000), store.snapshot_page(None, 10_000)
    assert after == before


def test_oversized_and_unauthenticated_requests(live: Live, tmp_path: Path) -> None:
    clinic = _clinic(live, "Limits")
    _, credential = _workstation(live, clinic, tmp_path / "ws")
    auth = {"Authorization": f"Bearer {credential.token}"}
    with httpx.Client(verify=tls_trust(live.ca_pem), timeout=60) as client:
        big = client.post(live.url + "/v1/sync", content=b" " * (protocol.MAX_MESSAGE_BYTES + 1),
                          headers=auth)  # fmt: skip
        assert big.status_code == 413
        anonymous = client.post(live.url + "/v1/sync", content=b"{}")
        assert anonymous.status_code == 401
        assert "device token is required" in anonymous.json()["detail"]
        forged_token = {"Authorization": f"Bearer {credential.device_id}.x"}
        forged = client.post(live.url + "/v1/sync", content=b"{}", headers=forged_token)
        assert forged.status_code == 401
        assert client.get(live.url + "/health").json() == {"status": "ok"}
        assert client.get(live.url + "/ready").json() == {"status": "ready"}
        metrics = client.get(live.url + "/metrics").text
        assert "careline_http_requests_total" in metrics
        assert "/v1/sync" in client.get(live.url + "/openapi.json").json()["paths"]


def test_server_files_hold_no_plaintext(live: Live, tmp_path: Path) -> None:
    clinic = _clinic(live, "Plaintext Check")
    ws, _ = _workstation(live, clinic, tmp_path / "ws")
    ws.records.add_patient("Quetzalcoatl", "Xiomara", "1990-01-01")
    _sync(ws)
    for f in live.server.data_dir.rglob("*"):
        if f.is_file():
            content = f.read_bytes()
            assert b"Quetzalcoatl" not in content, f
            assert b"Xiomara" not in content, f
            assert b"Plaintext Check" not in content, f
    ws.lock()


def test_registry_audit_records_device_events(live: Live, tmp_path: Path) -> None:
    clinic = _clinic(live, "Audited")
    _, credential = _workstation(live, clinic, tmp_path / "ws")
    live.server.registry.revoke(credential.device_id)
    actions = [r[0] for r in live.server.registry.db.query("SELECT action FROM audit_log")]
    assert {"clinic.create", "enroll_code.issue", "device.enroll", "device.revoke"} <= set(actions)
    report = live.server.audit_report()
    assert all(r["ok"] for r in report.values())
    assert isinstance(live.server.registry, Registry)


def test_server_revocations_reach_workstations_lan_refusal_list(live: Live, tmp_path: Path) -> None:
    from core.sync.lan.identity import revoked_serials

    clinic = _clinic(live, "Revocation List")
    keeper, _ = _workstation(live, clinic, tmp_path / "keeper")
    _, stolen = _workstation(live, clinic, tmp_path / "stolen")
    live.server.registry.revoke(stolen.device_id)
    credential = load_credential(keeper.database)
    assert credential is not None
    transport = credential.transport()
    try:
        from core.sync.lan.identity import merge_revoked

        sync(
            keeper.database,
            transport,
            "admin",
            on_revoked=lambda serials: merge_revoked(keeper.database, serials, "admin"),
        )
    finally:
        transport.close()
    assert certs.serial_of(stolen.certificate) in revoked_serials(keeper.database)
    keeper.lock()


def test_metrics_need_the_configured_token(tmp_path: Path, no_keyring: None) -> None:
    env = {"METRICS_TOKEN": "scrape-secret-0123456789"}
    with (
        live_server(tmp_path / "server", env) as live,
        httpx.Client(verify=tls_trust(live.ca_pem)) as client,
    ):
        assert client.get(live.url + "/metrics").status_code == 401
        wrong = {"Authorization": "Bearer scrape-secret-9876543210"}
        assert client.get(live.url + "/metrics", headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {env['METRICS_TOKEN']}"}
        reply = client.get(live.url + "/metrics", headers=right)
        assert reply.status_code == 200
        assert "careline_http_requests_total" in reply.text


def test_one_code_raced_by_several_devices_enrolls_exactly_one(live: Live) -> None:
    clinic = _clinic(live, "Raced Code")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def attempt() -> None:
        start.wait()
        try:
            enroll(live.url, code, live.ca_pem, "racer")
            outcomes.append("enrolled")
        except EnrollmentError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("enrolled") == 1, outcomes
    assert len(live.server.registry.devices(clinic)) == 1


def test_a_rewritten_audit_log_is_caught_at_the_next_sync(live: Live, tmp_path: Path) -> None:
    """The server keeps each workstation's audit head; a consistent rewrite of entries it
    has seen passes the local check but not the next sync, which names the entry."""
    ws, _ = _workstation(live, _clinic(live, "Anchor Clinic"), tmp_path / "desk")
    try:
        ws.records.open_chart(ws.records.add_patient("Lee", "Roy", "1960-01-01").id)
        anchored = local_head(ws.database)
        assert anchored is not None
        assert _sync(ws).audit_problem is None  # the server records this head
        assert _sync(ws).audit_problem is None  # and hands it back: it checks out
        rewrite_audit_tail(ws, anchored.seq - 1)  # hide who opened the chart, say
        assert verify_audit_log(ws.database).ok  # the log alone cannot tell
        report = _sync(ws)
        assert report.audit_problem is not None
        assert "differs from what the clinic server recorded" in report.audit_problem
        assert report.pulled == 0 and report.pushed >= 0  # sync itself went on
        # The altered log was not offered as the new anchor: it is reported every time.
        assert _sync(ws).audit_problem == report.audit_problem
    finally:
        ws.lock()


def _recorded(live: Live, credential: ServerCredential) -> audit_chain.Head:
    """The audit head the server holds for the credential's device."""
    held = live.server.sync_store(credential.clinic_id).anchor_audit(credential.device_id, None)
    assert held.recorded is not None
    return held.recorded


def _reported_and_kept(
    live: Live, ws: Workstation, credential: ServerCredential, problem: str
) -> audit_chain.Head:
    """A sync reports ``problem`` with the audit log and leaves the server's anchor where
    it was; returns that anchor."""
    before = _recorded(live, credential)
    report = _sync(ws)
    assert report.audit_problem is not None and problem in report.audit_problem
    assert _recorded(live, credential) == before
    return before


def _offer(
    credential: ServerCredential,
    head: audit_chain.Head,
    proof: list[bytes] | None = None,
    version: int = protocol.VERSION,
) -> dict[str, object]:
    """A hand-made pull offering ``head``, sent with the device's own token (which whoever
    holds the database key can read), as an attacker would."""
    request: dict[str, object] = {"type": "pull", "vv": {}, "max_ops": 1}
    request["audit_head"] = protocol.head_to_wire(head)
    if proof is not None:
        request["audit_proof"] = protocol.proof_to_wire(proof)
    transport = credential.transport()
    try:
        return protocol.decode(transport.request(protocol.encode(request, version)), ("ops",))
    finally:
        transport.close()


def test_each_sync_moves_the_anchor_on_proof_that_the_log_extends_it(
    live: Live, tmp_path: Path
) -> None:
    ws, credential = _workstation(live, _clinic(live, "Moving Clinic"), tmp_path / "desk")
    try:
        first = _recorded(live, credential)
        ws.records.add_patient("Lee", "Roy", "1960-01-01")
        assert _sync(ws).audit_problem is None
        moved = _recorded(live, credential)
        assert moved.seq > first.seq
        # The anchor is an entry of this log, as it stands.
        assert ws.database.query("SELECT hash FROM audit_log WHERE seq = ?", (moved.seq,)) == [
            (moved.hash,)
        ]
    finally:
        ws.lock()


@pytest.mark.parametrize("forgery", ["no proof", "version 1, as 0.1.0 sends", "a forged proof"])
def test_a_forged_pull_cannot_move_the_anchor_to_a_rewritten_log(
    live: Live, tmp_path: Path, forgery: str
) -> None:
    """Someone holding the database key rewrites the log, then offers its new head with the
    device token: the server keeps its anchor, and the next sync still reports the log."""
    ws, credential = _workstation(live, _clinic(live, "Forged Clinic"), tmp_path / "desk")
    try:
        ws.records.open_chart(ws.records.add_patient("Lee", "Roy", "1960-01-01").id)
        assert _sync(ws).audit_problem is None
        recorded = _recorded(live, credential)
        ws.records.add_patient("Kim", "Ann", "1970-01-01")  # entries beyond the anchor
        rewrite_audit_tail(ws, recorded.seq - 1)
        forged = local_head(ws.database)
        assert forged is not None and forged.seq > recorded.seq
        if forgery == "no proof":
            reply = _offer(credential, forged)
        elif forgery == "a forged proof":  # the rewritten entries after the anchor
            reached, entries = audit_anchor.proof(ws.database, recorded, forged)
            reply = _offer(credential, reached, entries)
        else:
            reply = _offer(credential, forged, version=1)
        assert reply["audit_anchor_moved"] is False
        assert reply["audit_anchor"] == protocol.head_to_wire(recorded)
        assert _recorded(live, credential) == recorded
        _reported_and_kept(live, ws, credential, "differs from what the clinic server recorded")
    finally:
        ws.lock()


def test_an_altered_entry_after_the_anchor_is_reported_when_the_server_refuses_it(
    live: Live, tmp_path: Path
) -> None:
    """An entry after the anchor edited without recomputing the chain: the server refuses
    the proof and the workstation reports it (the anchor itself still checks out)."""
    ws, credential = _workstation(live, _clinic(live, "Edited Clinic"), tmp_path / "desk")
    try:
        recorded = _recorded(live, credential)
        ws.records.add_patient("Lee", "Roy", "1960-01-01")
        ws.database._conn.execute(
            "UPDATE audit_log SET actor = 'someone-else' WHERE seq = ?", (recorded.seq + 1,)
        )
        assert _reported_and_kept(live, ws, credential, "did not accept") == recorded
    finally:
        ws.lock()


def test_the_server_never_moves_a_recorded_audit_head_backwards(live: Live, tmp_path: Path) -> None:
    ws, credential = _workstation(live, _clinic(live, "Rollback Clinic"), tmp_path / "desk")
    try:
        recorded = _recorded(live, credential)
        ahead = local_head(ws.database)
        assert ahead is not None and ahead.seq > recorded.seq
        _, entries = audit_anchor.proof(ws.database, recorded, ahead)
        assert _offer(credential, ahead, entries)["audit_anchor_moved"] is True
        # An older head (a restored backup, a cut log) does not replace the newer one.
        assert _offer(credential, recorded, [])["audit_anchor_moved"] is False
        assert _recorded(live, credential) == ahead
        ws.database._conn.execute("DELETE FROM audit_log WHERE seq >= ?", (ahead.seq,))
        report = _sync(ws)
        assert report.audit_problem is not None and "is missing" in report.audit_problem
    finally:
        ws.lock()
