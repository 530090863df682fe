"""``careline-server run`` as the shipped service runs it (``--host 0.0.0.0``): its generated
certificate is valid for the machine's own addresses, a workstation told an address it does
not name says so (and may try again), and ``TLS_NAMES`` adds one without any workstation
enrolling again. A load balancer's PROXY header reaching a server that does not list it is
logged, naming the setting to change."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import httpx
import pytest

from core.crypto import certs
from core.server.tls_certificate import interface_addresses
from core.sync.ca_pin import ca_for_fingerprint, pem_fingerprint
from core.sync.enroll import ServerUnreachableError, enroll, tls_trust
from tests.conftest import PASSWORD
from tests.integration.server_process import ServerProcess, proxy_v2_header, server_admin
from tests.services import free_port


def _lan_address() -> str:
    """An address of this machine's that is not loopback (what workstations use)."""
    for text in interface_addresses():
        address = ipaddress.ip_address(text)
        if address.version == 4 and not address.is_loopback:
            return text
    pytest.skip("this machine has no IPv4 address but loopback")


@pytest.fixture
def clinic(tmp_path: Path) -> tuple[Path, str]:
    """A server data folder holding one clinic with an admin; the clinic id."""
    data = tmp_path / "server"
    clinic = server_admin(data, {}, "clinic", "create", "Hillside")["id"]
    server_admin(data, {}, "user", "add", clinic, "admin", "--role", "admin",
                 stdin=PASSWORD + "\n")  # fmt: skip
    return data, clinic


def _serving(data: Path, port: int, env: dict[str, str] | None = None) -> ServerProcess:
    server = ServerProcess(data, port, env=env, host="0.0.0.0")  # noqa: S104 (the unit's)
    server.start()
    return server


def _reply(conn: socket.socket) -> bytes:
    """What the server answers before it closes the connection."""
    try:
        return conn.recv(1024)
    except ConnectionResetError:
        return b""


def _code(data: Path, clinic: str) -> str:
    return str(server_admin(data, {}, "enroll-code", clinic, "--ttl", "10")["code"])


@pytest.fixture
def port() -> int:
    """A free port (the same across a restart)."""
    return free_port()


def test_the_certificate_names_the_machines_addresses_and_tls_names_adds_one(
    clinic: tuple[Path, str], port: int
) -> None:
    """Enrolling by the server's LAN address works under --host 0.0.0.0. By an address the
    certificate does not name (127.0.0.2), the workstation is told which names it has and
    to ask for TLS_NAMES, as a failure it may retry. Once IT lists 127.0.0.2 and restarts
    the server, the same pin enrolls by it, the desk enrolled before still syncs through
    its pin, and the fingerprint IT hands out still finds the pinned certificate."""
    data, clinic_id = clinic
    lan = _lan_address()
    server = _serving(data, port)
    try:
        pin = server.ca_pem
        by_lan = enroll(f"https://{lan}:{port}", _code(data, clinic_id), pin, "desk-1")
        with pytest.raises(ServerUnreachableError) as refused:
            enroll(f"https://127.0.0.2:{port}", _code(data, clinic_id), pin, "desk-2")
    finally:
        server.stop()
    words = str(refused.value)
    assert "the server's certificate does not name 127.0.0.2 (it names: " in words
    assert lan in words.split("(it names: ")[1]
    assert "TLS_NAMES" in words and "fingerprint" not in words

    server = _serving(data, port, {"TLS_NAMES": "127.0.0.2, careline.hillside.lan"})
    try:
        assert server.ca_pem == pin  # nothing for workstations to change
        by_name = enroll(f"https://127.0.0.2:{port}", _code(data, clinic_id), pin, "desk-2")
        trust = tls_trust(by_lan.server_ca_pem)  # the first desk's pin, unchanged
        assert httpx.get(f"https://{lan}:{port}/health", verify=trust).status_code == 200
        found = ca_for_fingerprint(f"https://127.0.0.2:{port}", pem_fingerprint(pin))
    finally:
        server.stop()
    assert by_name.device_id != by_lan.device_id
    assert pem_fingerprint(found) == pem_fingerprint(pin)
    issued = (data / "tls" / "issued.pem").read_text()
    assert {"127.0.0.2", "careline.hillside.lan", lan} <= set(certs.server_names(issued))
    serving = [line for line in server.log.read_text().splitlines() if "serving" in line]
    said = serving[-1].split("valid for ")[1]  # what IT reads at start
    assert "careline.hillside.lan" in said and "127.0.0.2" in said and lan in said


def test_a_proxy_header_from_an_address_not_listed_is_logged_once(
    clinic: tuple[Path, str], port: int
) -> None:
    """A balancer sending PROXY v2 headers (and v1) to a server without
    PROXY_PROTOCOL_FROM: its connections are closed, and the server's log says, once per
    address, what arrived from where and which setting to change. A workstation's own TLS
    connection is served as before."""
    data, _ = clinic
    server = _serving(data, port)
    try:
        for header in (proxy_v2_header(("192.0.2.9", 1234), ("127.0.0.1", port)),) * 3 + (
            b"PROXY TCP4 192.0.2.9 127.0.0.1 1234 8443\r\n",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as balancer:
                balancer.sendall(header)
                assert _reply(balancer) == b""  # closed, nothing said
        direct = httpx.get(server.url + "/health", verify=tls_trust(server.ca_pem))
        assert direct.status_code == 200
    finally:
        server.stop()
    log = server.log.read_text()
    expected = (
        "a PROXY protocol header arrived from 127.0.0.1, which is not in PROXY_PROTOCOL_FROM: "
        "add it (installers/README.md, Scale-out)"
    )
    assert log.count(expected) == 1, log
