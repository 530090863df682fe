"""``careline`` commands when the server or a LAN peer cannot be reached: stderr holds the
one plain message (README "Sync", "When the server cannot be reached"), never the
connection's own text, which only ``CARELINE_LOG_LEVEL=info`` shows. Real processes, a
real server over TLS on 127.0.0.1 and real SQLCipher."""

from __future__ import annotations

import subprocess
from pathlib import Path

from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import add_clinic, live_server
from tests.integration.test_cli import careline
from tests.services import free_port, free_port_pair


def _only(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The command failed with exit 1, ``message`` the one line on stderr (no log line
    before it quoting the connection)."""
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"careline: error: {message}\n"
    assert result.stdout == ""


def _enroll(folder: Path, url: str, code: str, *more: str) -> subprocess.CompletedProcess[str]:
    return careline(
        folder, "--password-stdin", "--user", "admin", "enroll", "--server", url,
        "--code-stdin", *more, stdin=f"{PASSWORD}\n{code}\n",
    )  # fmt: skip


def _refused(url: str) -> str:
    return (
        f"cannot reach the server at {url}: nothing there accepted the connection (check "
        "the server address and port, and that the server is running)"
    )


def test_enroll_and_sync_with_the_server_down_say_it_once_in_plain_words(
    tmp_path: Path,
) -> None:
    url = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    _only(_enroll(tmp_path / "new", url, "ABCD-EFGH"), _refused(url))

    port = free_port()
    with live_server(tmp_path / "server", port=port) as live:
        code, _ = live.server.registry.issue_enroll_code(add_clinic(live.server, "Bay"), 10)
        pem = tmp_path / "server.pem"
        pem.write_text(live.ca_pem)
        joined = _enroll(tmp_path / "desk", live.url, code, "--ca-file", str(pem))
        assert joined.returncode == 0, joined.stderr
    down = careline(tmp_path / "desk", "--password-stdin", "sync", "--once", stdin=PASSWORD)
    _only(down, f"sync failed: {_refused(live.url)}")

    # Whoever looks into it asks for the log, and gets the connection's own text.
    logged = careline(
        tmp_path / "desk", "--password-stdin", "sync", "--once", stdin=PASSWORD,
        env={"CARELINE_LOG_LEVEL": "info", "CARELINE_LOG_FORMAT": "text"},
    )  # fmt: skip
    assert logged.returncode == 1
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in logged.stderr
    assert logged.stderr.endswith(f"careline: error: sync failed: {_refused(live.url)}\n")


def test_enroll_without_the_servers_certificate_says_it_is_a_certificate_problem(
    tmp_path: Path,
) -> None:
    with live_server(tmp_path / "server") as live:
        code, _ = live.server.registry.issue_enroll_code(add_clinic(live.server, "Bay"), 10)
        # No --ca-file: this computer's CAs do not know the server's own certificate.
        result = _enroll(tmp_path / "new", live.url, code)
    _only(
        result,
        f"cannot reach the server at {live.url}: a certificate problem, the server did not "
        "present a certificate this computer trusts for that address (check the server "
        "address and the clinic's CA certificate or fingerprint with your IT contact)",
    )


def test_sync_with_a_peer_where_nothing_listens_says_so_in_plain_words(
    workstation: Workstation,
) -> None:
    lan_id.ensure_identity(workstation.database, "admin")
    workstation.lock()
    address = f"127.0.0.1:{free_port_pair()}"
    result = careline(
        workstation.data_dir, "--password-stdin", "sync", "--once", "--peer", address,
        stdin=PASSWORD,
    )  # fmt: skip
    _only(
        result,
        f"sync failed: cannot reach the peer {address}: nothing there accepted the "
        "connection (check the address and port, and that Careline runs there: the app, "
        "or 'careline serve')",
    )
