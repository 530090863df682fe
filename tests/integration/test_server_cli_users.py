"""``careline-server admin user add|list|role|deactivate|reactivate|reset-password`` as an
operator scripts them, and a deactivation made on the server reaching an enrolled
workstation at its next sync (real processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import PASSWORD
from tests.integration.server_process import ServerProcess, clinic_server, server_admin
from tests.integration.test_cli import careline as careline_stdin
from tests.integration.test_server_cli import server_cli

FIRST, OWN = "tulip window seventeen", "my own quiet harbour"


def test_the_operator_manages_a_clinic_s_staff(tmp_path: Path) -> None:
    operator_manages_staff(tmp_path / "server", {})


def test_the_operator_manages_staff_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    env = {"DATABASE_URL": postgres_url, "DATABASE_SSL_MODE": "disable"}
    operator_manages_staff(tmp_path / "server", env)


def operator_manages_staff(data: Path, env: dict[str, str]) -> None:
    """Every ``admin user`` command on one backend (``env``: its settings)."""

    def ok(*args: str, stdin: str | None = None) -> Any:
        result = server_cli(data, "--json", *args, stdin=stdin, env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def staff(clinic: str) -> dict[str, Any]:
        return {m["username"]: m for m in ok("admin", "user", "list", clinic)}

    ok("admin", "init")
    clinic = ok("admin", "clinic", "create", "Northside Clinic")["id"]
    founder = ok("admin", "user", "add", clinic, "admin", "--role", "admin",
                 stdin=PASSWORD + "\n")  # fmt: skip
    assert founder["must_change_password"] is False  # the founding admin's own password
    nurse = ok("admin", "user", "add", clinic, "nina", "--role", "nurse",
               "--full-name", "Nina Nurse", stdin=FIRST + "\n")  # fmt: skip
    assert nurse["must_change_password"] is True
    listed = staff(clinic)
    assert (listed["nina"]["role"], listed["nina"]["active"]) == ("nurse", True)
    # The founding admin is also a clinician (as with ``careline init``), and the plain
    # list says so, as the workstation's ``user list`` does.
    assert listed["admin"]["roles"] == ["admin", "clinician"]
    plain = server_cli(data, "admin", "user", "list", clinic, env=env)
    assert plain.returncode == 0, plain.stderr
    lines = {line.split()[0]: line.split()[1] for line in plain.stdout.splitlines()}
    assert lines == {"admin": "admin+clinician", "nina": "nurse"}
    assert ok("admin", "user", "role", clinic, "nina", "clinician")["role"] == "clinician"
    assert ok("admin", "user", "deactivate", clinic, "nina")["active"] is False
    assert staff(clinic)["nina"]["active"] is False
    assert ok("admin", "user", "reactivate", clinic, "nina")["active"] is True
    reset = ok("admin", "user", "reset-password", clinic, "admin", stdin=OWN + "\n")
    assert reset == {"username": "admin", "must_change_password": True}
    assert staff(clinic)["admin"]["must_change_password"] is True

    last = server_cli(data, "admin", "user", "deactivate", clinic, "admin", env=env)
    assert last.returncode == 1 and "last active administrator" in last.stderr
    weak = server_cli(
        data, "admin", "user", "reset-password", clinic, "nina", stdin="nina123456\n", env=env
    )
    assert weak.returncode == 1 and "too easy to guess" in weak.stderr
    missing = server_cli(data, "admin", "user", "role", clinic, "ghost", "nurse", env=env)
    assert missing.returncode == 1 and "no staff member 'ghost'" in missing.stderr
    if not env:  # the embedded store's audit chains
        audit = ok("admin", "audit", "verify")
        assert all(part["ok"] for part in audit.values())


def _enroll(server: ServerProcess, clinic: str, desk: Path) -> None:
    code = server_admin(server.data, {}, "enroll-code", clinic, "--ttl", "10")["code"]
    done = careline_stdin(
        desk, "--user", "admin", "--password-stdin", "enroll", "--server", server.url,
        "--code", code, "--ca-file", str(server.data / "tls" / "server.pem"), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def as_nina(desk: Path, password: str, *args: str) -> Any:
    return careline_stdin(
        desk, "--json", "--user", "nina", "--password-stdin", *args, stdin=password + "\n"
    )


def test_a_deactivation_on_the_server_reaches_the_workstation_at_its_next_sync(
    tmp_path: Path,
) -> None:
    desk = tmp_path / "desk"
    with clinic_server(tmp_path / "server", "Sync Clinic") as (server, clinic):
        _enroll(server, clinic, desk)
        server_admin(server.data, {}, "user", "add", clinic, "nina", "--role", "nurse",
                     stdin=FIRST + "\n")  # fmt: skip
        # The admin syncs the desk (it learns of Nina) and gives her a slot with a reset.
        sync = careline_stdin(desk, "--password-stdin", "sync", "--once", stdin=PASSWORD + "\n")
        assert sync.returncode == 0, sync.stderr
        reset = careline_stdin(
            desk, "--password-stdin", "user", "reset-password", "nina",
            stdin=f"{PASSWORD}\n{FIRST}\n",
        )  # fmt: skip
        assert reset.returncode == 0, reset.stderr
        changed = careline_stdin(
            desk, "--user", "nina", "--password-stdin", "password", "change",
            stdin=f"{FIRST}\n{OWN}\n",
        )  # fmt: skip
        assert changed.returncode == 0, changed.stderr
        assert json.loads(as_nina(desk, OWN, "patient", "search", "x").stdout) == []
        sync = careline_stdin(desk, "--password-stdin", "sync", "--once", stdin=PASSWORD + "\n")
        assert sync.returncode == 0, sync.stderr

        # Deactivated on the server while the desk is not syncing: she still works there...
        server_admin(server.data, {}, "user", "deactivate", clinic, "nina")
        assert as_nina(desk, OWN, "patient", "search", "x").returncode == 0
        # ...until the desk's next sync brings the change.
        sync = careline_stdin(desk, "--password-stdin", "sync", "--once", stdin=PASSWORD + "\n")
        assert sync.returncode == 0, sync.stderr
        refused = as_nina(desk, OWN, "patient", "search", "x")
        assert refused.returncode == 3 and "deactivated" in refused.stderr
        again = as_nina(desk, OWN, "patient", "search", "x")
        assert again.returncode == 3 and "has not signed in on this workstation" in again.stderr
