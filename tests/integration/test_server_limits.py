"""``careline-server run`` as a real process, attacked at its HTTP edge: oversized and
lying bodies, invalid fields, guessed enrollment codes and clients dropping mid-body."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from core.crypto import certs
from core.sync import protocol
from core.sync.enroll import EnrollmentError, enroll, tls_trust
from tests.conftest import PASSWORD
from tests.integration.server_process import (
    Relay,
    ServerProcess,
    clinic_server,
    proxy_v2_header,
    server_admin,
)
from tests.integration.test_cli import careline as workstation_cli

MiB = 1024 * 1024
_SYNC_COUNT = r'careline_http_requests_total\{route="/v1/sync",status="(\d+)"\} (\S+)'


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """One server process for the module (set up by its admin CLI); the clinic id."""
    with clinic_server(tmp_path_factory.mktemp("limits") / "server", "Limits Clinic") as served:
        yield served


@pytest.fixture(scope="module")
def token(running: tuple[ServerProcess, str]) -> str:
    """A device token of the module's clinic."""
    server, clinic = running
    return enroll(server.url, _code(server, clinic), server.ca_pem, "desk").token


def _code(server: ServerProcess, clinic: str) -> str:
    return str(server_admin(server.data, {}, "enroll-code", clinic, "--ttl", "10")["code"])


def _connect(server: ServerProcess, source: str = "127.0.0.1") -> ssl.SSLSocket:
    """A raw TLS connection to the server, as a hostile client would open one."""
    context = ssl.create_default_context(cafile=str(server.data / "tls" / "server.pem"))
    raw = socket.create_connection(
        ("127.0.0.1", server.port), timeout=30, source_address=(source, 0)
    )
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _reply(conn: ssl.SSLSocket) -> tuple[int, bytes]:
    """The status and body of the reply read from ``conn`` until the server closes it."""
    data = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _headers(path: str, *lines: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


def test_a_200_mb_enrollment_is_refused_before_it_is_sent(
    running: tuple[ServerProcess, str],
) -> None:
    """The reply (413) arrives, and the connection is closed, before a byte of a declared
    200 MB body was sent: the server reads none of it, so its memory cannot follow it."""
    server, _ = running
    with _connect(server) as conn:
        conn.sendall(_headers("/v1/enroll", f"Content-Length: {200 * MiB}",
                              "Content-Type: application/json"))  # fmt: skip
        status, body = _reply(conn)  # read until the server closes the connection
    assert status == 413
    assert "larger than the limit of 16384 bytes" in json.loads(body)["detail"]


@pytest.mark.parametrize(("path", "limit"), [("/v1/enroll", 16 * 1024),
                                             ("/v1/sync", protocol.MAX_MESSAGE_BYTES)])  # fmt: skip
def test_a_chunked_body_is_cut_off_at_the_limit(
    running: tuple[ServerProcess, str], token: str, path: str, limit: int
) -> None:
    """No length declared: the server reads up to the limit, then refuses and closes the
    connection; the rest of the body is never read."""
    server, _ = running
    chunk = b" " * (256 * 1024)
    with _connect(server) as conn:
        auth = f"Authorization: Bearer {token}"
        conn.sendall(_headers(path, auth, "Transfer-Encoding: chunked"))
        try:
            for _ in range(limit // len(chunk) + 2):
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server replied and closed: the rest is never read
        status, body = _reply(conn)
    assert status == 413
    assert f"larger than the limit of {limit} bytes" in json.loads(body)["detail"]


def test_an_invalid_field_is_named_and_never_echoed(running: tuple[ServerProcess, str]) -> None:
    server, _ = running
    marker = "CSR-SECRET-MARKER-" * 500  # 9,000 characters: past the CSR's 8 KiB limit
    with httpx.Client(verify=tls_trust(server.ca_pem), timeout=30) as client:
        too_long = {"code": "not-a-real-code", "device_name": "x", "csr": marker}
        reply = client.post(server.url + "/v1/enroll", json=too_long)
        not_text = {**too_long, "code": ["not-a-real-code"], "csr": marker[:200]}
        wrong_type = client.post(server.url + "/v1/enroll", json=not_text)
    assert reply.status_code == 422
    assert "CSR-SECRET-MARKER" not in reply.text
    assert reply.json()["detail"] == [
        {
            "loc": ["body", "csr"],
            "msg": "String should have at most 8192 characters",
            "type": "string_too_long",
        }
    ]
    assert wrong_type.status_code == 422
    assert "not-a-real-code" not in wrong_type.text and "CSR-SECRET" not in wrong_type.text
    assert [p["loc"] for p in wrong_type.json()["detail"]] == [["body", "code"]]


def test_guessing_enrollment_codes_is_slowed_per_address(
    running: tuple[ServerProcess, str],
) -> None:
    """Wrong codes from one address get 429 after a few; another address's wrong code is
    still answered as such. The refused address still enrolls with a correct code, and a
    known but used code from it gets its own reason, not 429 (only failures count)."""
    server, clinic = running
    statuses = []
    with _client(server, "127.0.0.2") as client:
        for attempt in range(12):
            body = {"code": f"wrong-code-{attempt:04d}", "device_name": "x", "csr": "x" * 200}
            statuses.append(client.post(server.url + "/v1/enroll", json=body).status_code)
        refused = client.post(server.url + "/v1/enroll", json=body)
        code = _code(server, clinic)
        enrolled = client.post(server.url + "/v1/enroll", json=_enrollment(code))
        used = client.post(server.url + "/v1/enroll", json=_enrollment(code))
        still = client.post(server.url + "/v1/enroll", json=body)
    assert statuses[:5] == [400] * 5
    assert set(statuses[5:]) == {429}
    assert refused.status_code == 429
    assert "too many failed enrollment attempts" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) > 0
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["clinic_id"] == clinic
    assert used.status_code == 400 and "has already been used" in used.json()["detail"]
    assert still.status_code == 429  # the correct code did not reset the count
    with pytest.raises(EnrollmentError, match="not valid"):  # another address: its own count
        enroll(server.url, "wrong-code-from-here", server.ca_pem, "desk")


def _client(server: ServerProcess, source: str) -> httpx.Client:
    """An HTTPS client of ``server`` connecting from ``source``."""
    transport = httpx.HTTPTransport(verify=tls_trust(server.ca_pem), local_address=source)
    return httpx.Client(transport=transport, timeout=30)


def _enrollment(code: str) -> dict[str, str]:
    """An enrollment request with ``code`` and a real certificate request."""
    return {"code": code, "device_name": "desk",
            "csr": certs.make_csr(certs.new_private_key(), "pending")}  # fmt: skip


def test_wrong_codes_through_a_shared_address_do_not_stop_a_correct_one(
    tmp_path: Path,
) -> None:
    """Behind a TCP pass-through balancer (or one NAT address) every client reaches the
    server from one address. An attacker's wrong codes through it are refused and, past
    the limit, answered 429 and logged once; the clinic's workstation, through the same
    balancer, still enrolls with its correct code, and the security log says so."""
    log_file = tmp_path / "security.log"
    env = {"SECURITY_AUDIT_LOG": str(log_file), "ENABLE_MEMORY_LOCKING": "false"}
    with clinic_server(tmp_path / "server", "NAT Clinic", env) as (server, clinic):
        code = _code(server, clinic)
        with Relay(server.port, source="127.0.0.3") as balancer:
            trust = tls_trust(server.ca_pem)
            with httpx.Client(verify=trust, timeout=30) as attacker:
                for attempt in range(9):
                    body = {"code": f"WRONG-CODE-{attempt:04d}", "device_name": "x",
                            "csr": "x" * 200}  # fmt: skip
                    attacker.post(balancer.url + "/v1/enroll", json=body)
                last = attacker.post(balancer.url + "/v1/enroll", json=body)
            credential = enroll(balancer.url, code, server.ca_pem, "front desk")
    assert last.status_code == 429
    assert credential.clinic_id == clinic
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    enroll_events = [(e["event"], e.get("client")) for e in events if "enroll" in e["event"]]
    assert enroll_events == [
        *[("enroll.refused", "127.0.0.3")] * 5,
        ("enroll.rate_limited", "127.0.0.3"),  # once, not once per refused request
        ("device.enrolled", "127.0.0.3"),
    ]


def test_a_client_dropping_mid_sync_is_no_server_error(
    running: tuple[ServerProcess, str], token: str
) -> None:
    """Content-Length larger than the body, then the connection closes: no traceback in
    the server's log, and the server goes on serving."""
    server, _ = running
    before = server.log.read_text(errors="replace")
    with httpx.Client(verify=tls_trust(server.ca_pem), timeout=30) as client:
        earlier = _sync_outcomes(client, server)
    for _ in range(3):
        with _connect(server) as conn:
            auth = f"Authorization: Bearer {token}"
            conn.sendall(_headers("/v1/sync", auth, "Content-Length: 100000"))
            conn.sendall(b'{"protocol": "careline-sync", "v": 2, ')
    with httpx.Client(verify=tls_trust(server.ca_pem), timeout=30) as client:
        # Wait until the server has finished with the three dropped requests (counted in
        # its metrics whatever their outcome), then see what they came to.
        deadline = time.monotonic() + 30
        while (dropped := _sync_outcomes(client, server) - earlier).total() < 3:
            assert time.monotonic() < deadline, dropped
            time.sleep(0.05)
        assert dropped == {"400": 3}  # answered as a client error, not a 500
        assert client.get(server.url + "/health").json() == {"status": "ok"}
        pull = protocol.encode({"type": "pull", "vv": {}, "max_ops": 1})
        reply = client.post(server.url + "/v1/sync", content=pull,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert reply.status_code == 200
    added = server.log.read_text(errors="replace")[len(before) :]
    assert "Traceback" not in added and "Exception in ASGI application" not in added


def _sync_outcomes(client: httpx.Client, server: ServerProcess) -> Counter[str]:
    """How many /v1/sync requests the server finished, by status (from its metrics)."""
    outcomes: Counter[str] = Counter()
    for line in client.get(server.url + "/metrics").text.splitlines():
        found = re.match(
            r'careline_http_requests_total\{route="/v1/sync",status="(\d+)"\} (\S+)', line
        )
        if found:
            outcomes[found[1]] = int(float(found[2]))
    return outcomes


@pytest.mark.parametrize("source", ["--code-stdin", "--code-file"])
def test_enroll_takes_the_code_from_stdin_or_a_file(
    running: tuple[ServerProcess, str], tmp_path: Path, source: str
) -> None:
    """Out of the process list: the code on the line after the password, or in a file."""
    server, clinic = running
    code = _code(server, clinic)
    ca = str(server.data / "tls" / "server.pem")
    base = ["--json", "--user", "admin", "--password-stdin", "enroll", "--server", server.url,
            "--ca-file", ca]  # fmt: skip
    if source == "--code-stdin":
        args, stdin = [*base, "--code-stdin"], f"{PASSWORD}\n{code}\n"
    else:
        (tmp_path / "code.txt").write_text(code + "\n")
        args, stdin = [*base, "--code-file", str(tmp_path / "code.txt")], PASSWORD + "\n"
    done = workstation_cli(tmp_path / "desk", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert code not in " ".join(args)
    assert json.loads(done.stdout)["clinic"] == "Limits Clinic"
    missing = workstation_cli(tmp_path / "other", *base, "--code-stdin", stdin=PASSWORD + "\n")
    assert missing.returncode == 2
    assert "--code-stdin: standard input has no code line" in missing.stderr
    assert not (tmp_path / "other" / "clinic.db").exists()


def test_a_body_a_little_too_large_gets_the_413_not_a_reset(
    running: tuple[ServerProcess, str],
) -> None:
    """A client that sends its whole (slightly oversized) body before reading the reply, as
    HTTP libraries do, reads the 413 naming the limit instead of a connection reset."""
    server, _ = running
    body = json.dumps({"code": "x", "device_name": "x", "csr": "y" * 1_000_000}).encode()
    ca_file = server.data / "tls" / "server.pem"
    # requests (urllib3) gives up on a reply once its send fails, unlike httpx.
    with requests.Session() as session:
        replies = [
            session.post(server.url + "/v1/enroll", data=body, verify=str(ca_file), timeout=30)
            for _ in range(5)
        ]
    assert [r.status_code for r in replies] == [413] * 5
    assert "larger than the limit of 16384 bytes" in replies[0].json()["detail"]


def test_behind_a_balancer_sending_proxy_headers_each_client_has_its_own_count(
    tmp_path: Path,
) -> None:
    """With PROXY_PROTOCOL_FROM naming the balancer (which sends PROXY protocol v2 headers,
    as HAProxy's send-proxy-v2 does), the limit and the security log see each client: the
    attacker is refused and named, the workstation behind the same balancer is not counted
    with it. The balancer's connection without a header is dropped; a header from anyone
    else is not believed (it is no TLS handshake), and a direct client still connects."""
    log_file = tmp_path / "security.log"
    env = {"SECURITY_AUDIT_LOG": str(log_file), "ENABLE_MEMORY_LOCKING": "false",
           "PROXY_PROTOCOL_FROM": "127.0.0.3, 192.0.2.0/24"}  # fmt: skip
    wrong = {"code": "WRONG-CODE-0000", "device_name": "x", "csr": "x" * 200}
    with clinic_server(tmp_path / "server", "Proxied Clinic", env) as (server, clinic):
        with Relay(server.port, source="127.0.0.3", proxy_v2=True) as balancer:
            with _client(server, "127.0.0.5") as attacker:
                statuses = [attacker.post(balancer.url + "/v1/enroll", json=wrong).status_code
                            for _ in range(7)]  # fmt: skip
            with _client(server, "127.0.0.6") as desk:
                own = desk.post(balancer.url + "/v1/enroll", json=wrong)
                enrolled = desk.post(balancer.url + "/v1/enroll", json=_enrollment(
                    _code(server, clinic)))  # fmt: skip
        with Relay(server.port, source="127.0.0.3") as headerless, pytest.raises(httpx.HTTPError):
            httpx.get(headerless.url + "/health", verify=tls_trust(server.ca_pem), timeout=30)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as forged:
            # Not from a balancer: the header is refused (and logged), never believed.
            forged.sendall(proxy_v2_header(("192.0.2.9", 1234), ("127.0.0.1", server.port)))
            # The server closes such a connection at once: the request after the header may
            # already meet the reset (or a broken pipe), as its answer may.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                forged.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert not forged.recv(1024).startswith(b"HTTP")
        direct = httpx.get(server.url + "/health", verify=tls_trust(server.ca_pem), timeout=30)
    assert statuses == [400] * 5 + [429] * 2
    assert own.status_code == 400 and "not valid" in own.json()["detail"]
    assert enrolled.status_code == 201, enrolled.text
    assert direct.status_code == 200
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(e["event"], e.get("client")) for e in events if "enroll" in e["event"]] == [
        *[("enroll.refused", "127.0.0.5")] * 5,
        ("enroll.rate_limited", "127.0.0.5"),
        ("enroll.refused", "127.0.0.6"),
        ("device.enrolled", "127.0.0.6"),
    ]
    assert "connection from balancer 127.0.0.3 dropped" in server.log.read_text()
    assert "header arrived from 127.0.0.1, which is not in PROXY_PROTOCOL_FROM" in (
        server.log.read_text()
    )
