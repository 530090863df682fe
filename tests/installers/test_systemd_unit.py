"""The systemd unit and its environment template (installers/systemd): systemd's own
checker accepts the unit, its sandbox scores as documented, the template names only real
server settings, and a real ``careline-server run`` tells systemd it is ready only once
/health answers."""

from __future__ import annotations

import configparser
import inspect
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.crypto.secure_memory import _PAGE
from core.keys.data_keys import DataKeyCache
from core.server.settings import SERVER_SCHEMA, load_server_settings
from tests.integration.server_process import REPO, SERVER, child_env
from tests.services import free_port

UNIT = REPO / "installers" / "systemd" / "careline-server.service"
ENV_TEMPLATE = REPO / "installers" / "systemd" / "careline-server.env"
# The careline-server package's fixed paths (installers/README.md).
BINARY = "/usr/bin/careline-server"
STATE_DIR = "/var/lib/careline-server"
# Documented in installers/README.md; a change to the unit that scores worse fails here.
MAX_EXPOSURE = 2.0

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None
    and not os.environ.get("CARELINE_REQUIRE_INSTALLER_TOOLS"),
    reason="systemd-analyze is not installed (Debian package systemd)",
)


def _unit() -> configparser.RawConfigParser:
    # strict=False: systemd allows a key more than once (SystemCallFilter=).
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def _testable_copy(folder: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at a program that exists here (verify refuses a
    missing one) and the environment file at the template."""
    text = UNIT.read_text() if text is None else text
    assert BINARY in text
    text = text.replace(BINARY, shutil.which("true") or "/bin/true")
    text = text.replace("/etc/careline/server.env", str(ENV_TEMPLATE))
    copy = folder / "careline-server.service"
    copy.write_text(text)
    return copy


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    result = _verify(_testable_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    # verify exits 0 on unknown keys and bad values too, and only warns: none allowed.
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


@needs_systemd_analyze
def test_systemd_analyze_verify_would_report_a_misspelt_setting(tmp_path: Path) -> None:
    """The check above can fail: a typo in a sandboxing line is reported."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    result = _verify(_testable_copy(tmp_path, broken))
    assert "Unknown key 'ProtectSytem'" in result.stderr


@needs_systemd_analyze
def test_the_sandbox_scores_as_documented(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_testable_copy(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout
    readme = (REPO / "installers" / "README.md").read_text()
    assert f"exposure level {found.group(1)}" in readme


def test_the_unit_runs_the_packaged_binary_sandboxed_on_its_state_directory() -> None:
    service = _unit()["Service"]
    assert service["ExecStart"].startswith(f"{BINARY} --data-dir {STATE_DIR} run ")
    assert f"/var/lib/{service['StateDirectory']}" == STATE_DIR
    assert service["User"] == "careline"
    assert service["Type"] == "notify"
    assert service["EnvironmentFile"] == "/etc/careline/server.env"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["NoNewPrivileges"] == "yes"
    assert service["Restart"] == "on-failure"
    # The template's security event log goes to the one other writable place.
    assert service["LogsDirectory"] == "careline-server"


def test_limit_memlock_covers_a_full_data_key_cache() -> None:
    """Every cached data key holds one locked page, in two caches (current and unwrapped
    keys) of ``max_entries`` each; the limit leaves room for as much again."""
    value = _unit()["Service"]["LimitMEMLOCK"]
    found = re.fullmatch(r"(\d+)([KMG]?)", value)
    assert found, value
    limit = int(found.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[found.group(2)]
    entries = inspect.signature(DataKeyCache).parameters["max_entries"].default
    assert limit >= 2 * (2 * entries * _PAGE)


def _template_lines() -> list[tuple[str, str, bool]]:
    """(name, value, commented out) of each NAME=value line of the template."""
    lines = []
    for line in ENV_TEMPLATE.read_text().splitlines():
        found = re.fullmatch(r"(#?)([A-Z][A-Z0-9_]*)=(.*)", line)
        if found:
            lines.append((found.group(2), found.group(3), bool(found.group(1))))
    return lines


def test_the_env_template_names_every_server_setting_and_nothing_else() -> None:
    known = {s.env for s in SERVER_SCHEMA}
    named = {name for name, _, _ in _template_lines()}
    assert named - known == set(), f"not server settings: {sorted(named - known)}"
    # The data folder is fixed by the unit's ExecStart (the sandbox's one writable place).
    assert known - named == {"CARELINE_DATA_DIR"}, sorted(known - named)


def test_the_env_templates_active_lines_are_valid_settings() -> None:
    active = {name: value for name, value, commented in _template_lines() if not commented}
    assert active, "the template sets nothing"
    settings = load_server_settings(env=active)
    assert str(settings["SECURITY_AUDIT_LOG"]).startswith("/var/log/careline-server/")


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's (abstract: no path length limit)."""
    name = f"careline-notify-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(60)
        yield listener, "@" + name


def test_a_real_server_is_ready_for_systemd_only_once_health_answers(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    listener, address = notify_socket
    data, port = tmp_path / "server", free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVER, "--data-dir", str(data), "run", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            env={**child_env(), "NOTIFY_SOCKET": address},
        )  # fmt: skip
    try:
        try:
            message = listener.recv(4096).decode()
        except TimeoutError:
            raise AssertionError(f"no READY=1:\n{log.read_text(errors='replace')}") from None
        assert message.splitlines()[0] == "READY=1", message
        assert f"STATUS=serving https://127.0.0.1:{port}" in message
        # At once, no retry: the server listens the moment it says it is ready.
        trust = ssl.create_default_context(cafile=str(data / "tls" / "server.pem"))
        reply = httpx.get(f"https://127.0.0.1:{port}/health", verify=trust, timeout=10)
        assert reply.status_code == 200
        assert reply.json() == {"status": "ok"}
        process.terminate()
        assert listener.recv(4096) == b"STOPPING=1"
        assert process.wait(timeout=30) == 0, log.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_a_server_that_cannot_listen_never_says_it_is_ready(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    """The port is taken: the start fails (systemd reports a failed start), no READY=1."""
    listener, address = notify_socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*SERVER, "--data-dir", str(tmp_path / "server"), "run", "--port", str(port)],
            capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
            env={**child_env(), "NOTIFY_SOCKET": address},
        )  # fmt: skip
    assert result.returncode != 0
    assert "address already in use" in result.stderr.lower(), result.stderr
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):
        listener.recv(4096)


def test_every_server_command_in_the_readme_names_the_package_data_folder() -> None:
    """An operator copies installers/README.md's commands: each ``careline-server`` command
    there runs on the package's data folder (the documented backup once named
    /var/lib/careline, where no server lives), and the ``admin`` ones say so."""
    readme = (REPO / "installers" / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```(?:sh|ini)\n(.*?)```", readme, re.S))
    # The container's commands excepted: its image sets CARELINE_DATA_DIR to the folder.
    commands = re.findall(
        r"(?<!compose exec server )careline-server(?:\s|\\\n)+(--data-dir\s+\S+\s+)?"
        r"(?:--json\s+)?(admin|run)\b",
        blocks,
    )
    assert len(commands) >= 5, commands
    for data_dir, _ in commands:
        assert data_dir.split() == ["--data-dir", STATE_DIR], commands
