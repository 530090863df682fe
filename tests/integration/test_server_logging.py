"""What ``careline-server run`` writes: JSON log lines on stderr, and the security event log
(SECURITY_AUDIT_LOG), from real server and admin processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.enroll import EnrollmentError, adopt_credential, enroll, tls_trust
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import sync_at
from tests.integration.server_process import ServerProcess, clinic_server, server_admin
from tests.services import free_port

PATIENT = "Quimbleworth"


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of server output that is a JSON object (all of them, in JSON format)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, Path]]:
    """A running server whose admin commands and process write SECURITY_AUDIT_LOG."""
    path = tmp_path / "audit" / "security.jsonl"
    with clinic_server(tmp_path / "server", "Audit Clinic", {"SECURITY_AUDIT_LOG": str(path)}) as (
        running,
        clinic,
    ):
        yield running, clinic, path


def test_server_output_is_json_lines_with_structured_events(
    audited: tuple[ServerProcess, str, Path], tmp_path: Path, no_keyring: None
) -> None:
    running, clinic, _ = audited
    code = server_admin(running.data, running.env, "enroll-code", clinic)["code"]
    credential = enroll(running.url, code, running.ca_pem, "desk")
    # A refused sync request: an INFO event of core.sync.responder.
    refused = httpx.post(
        running.url + "/v1/sync", content=b'{"protocol": "careline-sync", "v": 1}',
        headers={"Authorization": f"Bearer {credential.token}"},
        verify=tls_trust(running.ca_pem),
    )  # fmt: skip
    assert refused.status_code == 400
    running.stop()
    output = running.log.read_text()
    lines = output.splitlines()
    docs = _json_lines(output)
    # Every line is one JSON object (uvicorn's own lines included), bar the start-up banner.
    assert len(docs) == len([line for line in lines if not line.startswith("careline-server:")])
    assert all({"time", "level", "logger", "message"} <= doc.keys() for doc in docs)
    info = [d for d in docs if d["logger"] == "core.sync.responder"]
    assert info and info[0]["level"] == "info"
    assert info[0]["message"].startswith("refused sync request")
    http = [d for d in docs if d["logger"] == "careline.server" and d["message"] == "http"]
    assert {"route": "/v1/sync", "status": 400} in [
        {"route": d["route"], "status": d["status"]} for d in http
    ]
    enrolled = [d for d in docs if d.get("security_event") == "device.enrolled"]
    assert enrolled and enrolled[0]["security_fields"]["device"] == credential.device_id
    # uvicorn's start line names the scheme served: TLS, whoever starts it.
    started = [d["message"] for d in docs if d["message"].startswith("Uvicorn running on")]
    assert started == [f"Uvicorn running on {running.url} (Press CTRL+C to quit)"]


def test_text_format_and_level_settings(tmp_path: Path) -> None:
    running = ServerProcess(
        tmp_path / "server", free_port(), env={"LOG_FORMAT": "text", "LOG_LEVEL": "warning"}
    )
    running.start()
    httpx.get(running.url + "/health", verify=tls_trust(running.ca_pem))
    running.stop()
    output = running.log.read_text()
    assert _json_lines(output) == []
    assert " INFO " not in output  # warning and above only


def test_security_events_of_server_and_admin_commands(
    audited: tuple[ServerProcess, str, Path], tmp_path: Path, no_keyring: None
) -> None:
    running, clinic, path = audited
    env = running.env
    code = server_admin(running.data, env, "enroll-code", clinic)["code"]
    # A workstation enrolls, records a patient and syncs it to the server.
    ws = Workstation(tmp_path / "desk", FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    credential = enroll(
        running.url, code, running.ca_pem, "front desk", op_trust.binding_for(ws.database)
    )
    adopt_credential(ws.database, credential, "admin")
    sync_at(ws, credential)
    ws.lock()
    ws.sign_in("admin", PASSWORD)
    ws.records.add_patient(PATIENT, "Ada", "1915-12-10")
    sync_at(ws, credential)
    ws.lock()
    trust = tls_trust(running.ca_pem)
    # Failed attempts: a used code, a wrong token, a refused sync request.
    with pytest.raises(EnrollmentError):
        enroll(running.url, code, running.ca_pem, "again")
    assert httpx.post(running.url + "/v1/sync", content=b"{}", verify=trust,
                      headers={"Authorization": "Bearer nope"}).status_code == 401  # fmt: skip
    assert httpx.post(running.url + "/v1/sync", content=b"{}", verify=trust,
                      headers={"Authorization": f"Bearer {credential.token}"}
                      ).status_code == 400  # fmt: skip
    # Administration: revocation, key rotation, re-encryption.
    server_admin(running.data, env, "device", "revoke", credential.device_id)
    server_admin(running.data, env, "keys", "rotate")
    server_admin(running.data, env, "keys", "reencrypt")
    running.stop()

    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert PATIENT not in text and "Ada" not in text
    assert code not in text and credential.token not in text
    events = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "event", "outcome", "pid"} <= e.keys() for e in events)
    named = [(e["event"], e["outcome"]) for e in events]
    admin = [(e.get("action"), e["outcome"]) for e in events if e["event"] == "admin"]
    assert ("clinic create", "success") in admin and ("user add", "success") in admin
    assert ("enroll-code", "success") in admin
    assert ("device revoke", "success") in admin
    assert ("keys rotate", "success") in admin and ("keys reencrypt", "success") in admin
    assert ("device.enrolled", "success") in named
    assert ("enroll.refused", "failure") in named
    assert ("device.sign_in_refused", "failure") in named
    refused = [e for e in events if e["event"] == "sync.refused"]
    assert refused and refused[0]["device"] == credential.device_id
    assert refused[0]["clinic"] == clinic and refused[0]["code"] == "malformed"
    revoked = [e for e in events if e.get("action") == "device revoke"]
    assert revoked[0]["id"] == credential.device_id


def test_a_failed_admin_action_is_recorded(audited: tuple[ServerProcess, str, Path]) -> None:
    running, _, path = audited
    bad = running.run("admin", "device", "revoke", "no-such-device")
    assert bad.returncode == 1
    events = [json.loads(line) for line in path.read_text().splitlines()]
    failed = [e for e in events if e["event"] == "admin.failed"]
    assert failed and failed[0]["action"] == "device revoke"
    assert failed[0]["id"] == "no-such-device" and failed[0]["outcome"] == "failure"
