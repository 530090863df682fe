"""``careline-server`` admin commands as operators script them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PASSWORD = "correct horse battery"


def server_cli(
    data: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("KMS_PROVIDER", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "core.cli.server", "--data-dir", str(data), *args],
        input=stdin, capture_output=True, text=True, env={**clean, **(env or {})}, timeout=120,
    )  # fmt: skip


def ok(data: Path, *args: str, stdin: str | None = None) -> Any:
    result = server_cli(data, "--json", *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_admin_commands(tmp_path: Path) -> None:
    data = tmp_path / "server"
    clinic = ok(data, "admin", "clinic", "create", "Northside Clinic")
    assert ok(data, "admin", "clinic", "list") == [clinic]
    user = ok(data, "admin", "user", "add", clinic["id"], "nurse.li", "--role", "clinician",
              stdin=PASSWORD + "\n")  # fmt: skip
    # The clinic's first account keeps its password (later ones change theirs at first
    # sign-in: tests/integration/test_server_cli_users.py).
    assert user == {"id": "user:nurse.li", "username": "nurse.li", "role": "clinician",
                    "must_change_password": False}  # fmt: skip
    code = ok(data, "admin", "enroll-code", "Northside Clinic", "--ttl", "15")
    assert len(code["code"].split("-")) == 8 and code["clinic"] == clinic["id"]
    assert ok(data, "admin", "device", "list") == []
    rotated = ok(data, "admin", "keys", "rotate")
    assert rotated["rewrapped"] >= 3
    # Everything still opens after rotation, and after re-encrypting every replica.
    assert ok(data, "admin", "clinic", "list") == [clinic]
    assert ok(data, "admin", "keys", "reencrypt") == {"reencrypted": [clinic["id"]]}
    assert ok(data, "admin", "user", "add", clinic["id"], "dr.ng", "--role", "clinician",
              stdin=PASSWORD + "\n")["username"] == "dr.ng"  # fmt: skip
    audit = ok(data, "admin", "audit", "verify")
    assert all(part["ok"] for part in audit.values())
    key_file = data / "master-keys.json"
    if key_file.exists():
        assert key_file.stat().st_mode & 0o777 == 0o600


def test_errors_name_the_problem(tmp_path: Path) -> None:
    data = tmp_path / "server"
    bad = server_cli(data, "admin", "clinic", "list", env={"KMS_PROVIDER": "vualt"})
    assert bad.returncode == 2
    assert "KMS_PROVIDER" in bad.stderr and "'vualt'" in bad.stderr
    pg = server_cli(data, "admin", "clinic", "list", env={"DATABASE_URL": "postgresql://x"})
    assert pg.returncode == 2
    assert "DATABASE_URL" in pg.stderr
    assert server_cli(data, "admin", "clinic", "create", "Twice").returncode == 0
    twice = server_cli(data, "admin", "clinic", "create", "Twice")
    assert twice.returncode == 1
    assert "already exists" in twice.stderr
    missing = server_cli(data, "admin", "enroll-code", "Nowhere")
    assert missing.returncode == 1
    assert "no clinic named 'Nowhere'" in missing.stderr
    weak = server_cli(
        data, "admin", "user", "add", "Twice", "bob", "--role", "admin", stdin="short\n"
    )
    assert weak.returncode == 1
    assert "password" in weak.stderr


def test_clinic_ids_and_names_cannot_be_confused(tmp_path: Path) -> None:
    """A clinic named with another clinic's id would make ``enroll-code NAME`` issue a
    code for the other clinic: such names are refused, and ids and names resolve apart."""
    data = tmp_path / "server"
    north = ok(data, "admin", "clinic", "create", "Northside Clinic")
    for lookalike in (north["id"], north["id"].upper(), "0123456789abcdef"):
        refused = server_cli(data, "admin", "clinic", "create", lookalike)
        assert refused.returncode == 1, refused.stdout
        assert "looks like a clinic id" in refused.stderr
    assert ok(data, "admin", "clinic", "list") == [north]
    # A name holding hex digits among other characters is a name like any other.
    south = ok(data, "admin", "clinic", "create", "Clinic 0123456789abcdef")
    assert ok(data, "admin", "enroll-code", north["id"])["clinic"] == north["id"]
    assert ok(data, "admin", "enroll-code", "Northside Clinic")["clinic"] == north["id"]
    assert ok(data, "admin", "enroll-code", south["name"])["clinic"] == south["id"]
    assert ok(data, "admin", "enroll-code", south["id"])["clinic"] == south["id"]
    unknown = server_cli(data, "admin", "enroll-code", "fedcba9876543210")
    assert unknown.returncode == 1
    assert "no clinic with id 'fedcba9876543210'" in unknown.stderr
