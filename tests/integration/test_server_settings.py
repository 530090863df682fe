"""``careline-server`` started with the security settings as operators write them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.server_process import REPO, ServerProcess, child_env, server_admin
from tests.memlock import no_memlock_prefix
from tests.services import free_port


def _run(data: Path, env: dict[str, str], prefix: list[str] | None = None) -> ServerProcess:
    """A server started (ready over TLS) with ``env``, run by ``prefix`` (e.g. prlimit)."""
    program = [*(prefix or []), sys.executable, "-m", "core.cli.server"]
    running = ServerProcess(data, free_port(), program, env=env)
    running.start()
    return running


def test_seed_master_key_spelling_serves_and_administers(tmp_path: Path) -> None:
    key = "base64:" + base64.b64encode(os.urandom(32)).decode()
    env = {"KMS_PROVIDER": "local", "MASTER_ENCRYPTION_KEY": key}
    server_admin(tmp_path / "server", env, "init")
    clinic = server_admin(tmp_path / "server", env, "clinic", "create", "Seed Clinic")
    running = _run(tmp_path / "server", env)
    running.stop()
    assert not (tmp_path / "server" / "master-keys.json").exists()  # the variable's key
    assert server_admin(tmp_path / "server", env, "clinic", "list") == [clinic]


def test_constant_time_ops_false_stops_start_up(tmp_path: Path) -> None:
    running = ServerProcess(tmp_path / "server", free_port(),
                            env={"ENABLE_CONSTANT_TIME_OPS": "false"})  # fmt: skip
    result = running.run("run", "--port", str(running.port), timeout=60)
    assert result.returncode == 2
    assert "ENABLE_CONSTANT_TIME_OPS=false is not allowed" in result.stderr
    assert "hmac.compare_digest" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "server").exists()


def test_unlockable_key_memory_stops_start_up_naming_the_limit(tmp_path: Path) -> None:
    # RLIMIT_MEMLOCK 0 and, as root, no CAP_IPC_LOCK (see tests.memlock).
    result = subprocess.run(
        [*no_memlock_prefix(), sys.executable, "-m", "core.cli.server",
         "--data-dir", str(tmp_path / "server"), "run", "--port", str(free_port())],
        capture_output=True, text=True, cwd=REPO, env=child_env(), timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "could not lock key memory" in result.stderr
    assert "RLIMIT_MEMLOCK is 0 bytes" in result.stderr
    assert "ulimit -l" in result.stderr and "LimitMEMLOCK=" in result.stderr
    assert "ENABLE_MEMORY_LOCKING=false" in result.stderr
    assert "Traceback" not in result.stderr


def test_memory_locking_off_starts_with_a_warning(tmp_path: Path) -> None:
    running = _run(tmp_path / "server", {"ENABLE_MEMORY_LOCKING": "false"}, no_memlock_prefix())
    running.stop()
    docs = [json.loads(x) for x in running.log.read_text().splitlines() if x.startswith("{")]
    warned = [d for d in docs if "ENABLE_MEMORY_LOCKING=false" in d["message"]]
    assert warned and warned[0]["level"] == "warning"
    assert not any("could not lock" in d["message"] for d in docs)
