"""The shipped HAProxy configuration (installers/scale-out/haproxy.cfg: TCP pass-through,
``send-proxy-v2``) in front of an embedded ``careline-server run`` with
``PROXY_PROTOCOL_FROM``: the server sees each client's own address through the balancer,
so one client's wrong enrollment codes neither shut out the others nor hide who sent
them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from core.sync.enroll import enroll, tls_trust
from tests.installers.test_scale_out import BALANCER_SOURCE, haproxy_in_front, nodes, pytestmark
from tests.integration.server_process import server_admin

__all__ = ["pytestmark"]  # haproxy installed, and slow: as the scale-out test


def test_through_haproxy_each_client_is_counted_and_logged_by_its_own_address(
    tmp_path: Path,
) -> None:
    env = {"SECURITY_AUDIT_LOG": str(tmp_path / "security.log"),
           "ENABLE_MEMORY_LOCKING": "false", "PROXY_PROTOCOL_FROM": BALANCER_SOURCE}  # fmt: skip
    [server], cert_pem = nodes(tmp_path, env, 1)
    data = server.data
    clinic = server_admin(data, env, "clinic", "create", "Balanced Clinic")["id"]
    wrong = {"code": "WRONG-CODE-0000", "device_name": "x", "csr": "x" * 200}
    with haproxy_in_front(tmp_path, [server], cert_pem, env) as balanced:
        transport = httpx.HTTPTransport(verify=tls_trust(server.ca_pem), local_address="127.0.0.5")
        with httpx.Client(transport=transport, timeout=30) as attacker:
            statuses = [attacker.post(balanced.lb_url + "/v1/enroll", json=wrong).status_code
                        for _ in range(6)]  # fmt: skip
        code = server_admin(data, env, "enroll-code", clinic, "--ttl", "10")["code"]
        credential = enroll(balanced.lb_url, code, server.ca_pem, "front desk")  # 127.0.0.1
    assert statuses == [400] * 5 + [429]
    assert credential.clinic_id == clinic
    events = [json.loads(line) for line in (tmp_path / "security.log").read_text().splitlines()]
    assert [(e["event"], e.get("client")) for e in events if "enroll" in e["event"]] == [
        *[("enroll.refused", "127.0.0.5")] * 5,
        ("enroll.rate_limited", "127.0.0.5"),
        ("device.enrolled", "127.0.0.1"),
    ]
