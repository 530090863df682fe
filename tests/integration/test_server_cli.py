"""``careline-server`` admin commands as operators script them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.services import free_port

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
    assert ok(data, "admin", "init") == {"data_dir": str(data), "created": True}
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
    assert server_cli(data, "admin", "init").returncode == 0
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
    # The password comes on standard input, the command's only source: it has no
    # --password-stdin to name.
    for action, what in ((("add", "Twice", "bob", "--role", "admin"), "password"),
                         (("reset-password", "Twice", "bob"), "new password")):  # fmt: skip
        nothing = server_cli(data, "admin", "user", *action, stdin="")
        assert nothing.returncode == 2
        assert nothing.stderr == (
            f"careline-server: configuration: admin user {action[0]}: standard input has no "
            f"{what} line\n"
        )


def test_clinic_ids_and_names_cannot_be_confused(tmp_path: Path) -> None:
    """A clinic named with another clinic's id would make ``enroll-code NAME`` issue a
    code for the other clinic: such names are refused, and ids and names resolve apart."""
    data = tmp_path / "server"
    ok(data, "admin", "init")
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


def _refused_for_no_server(result: subprocess.CompletedProcess[str], folder: Path) -> None:
    assert result.returncode == 2, result.stderr
    assert f"there is no Careline server in {folder}" in result.stderr
    assert "nothing was created" in result.stderr
    assert "/var/lib/careline-server" in result.stderr  # where the package keeps it
    assert "--data-dir" in result.stderr and "CARELINE_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_admin_commands_refuse_a_folder_holding_no_server(tmp_path: Path) -> None:
    """The documented nightly backup with the wrong --data-dir, or a code issued with none:
    refused, naming the folder and the package's, and nothing is created there (no empty
    registry, no new master key, no 'Backed up 0 clinic(s)')."""
    empty = tmp_path / "careline"  # e.g. /var/lib/careline instead of .../careline-server
    empty.mkdir()
    (tmp_path / "backups").mkdir()
    backup = server_cli(
        empty, "admin", "backup", str(tmp_path / "backups" / "nightly.clbackup"),
        "--keys-out", str(tmp_path / "backups" / "keys.clbackup"), stdin=PASSWORD + "\n",
    )  # fmt: skip
    _refused_for_no_server(backup, empty)
    assert list(empty.iterdir()) == [] and list((tmp_path / "backups").iterdir()) == []
    absent = tmp_path / "nowhere"
    _refused_for_no_server(server_cli(absent, "admin", "enroll-code", "Hillside Clinic"), absent)
    assert not absent.exists()
    # No --data-dir at all (the mass-enrollment loop over ssh): the user's default folder
    # is named as such, and not made.
    home = tmp_path / "root-home"
    clean = {k: v for k, v in os.environ.items()
             if k not in ("KMS_PROVIDER", "DATABASE_URL", "CARELINE_DATA_DIR")}  # fmt: skip
    bare = subprocess.run(
        [sys.executable, "-m", "core.cli.server", "--json", "admin", "enroll-code",
         "Hillside Clinic"],
        capture_output=True, text=True, timeout=120,
        env={**clean, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")},
    )  # fmt: skip
    _refused_for_no_server(bare, home / ".local" / "share" / "careline-server")
    assert "the default for this user" in bare.stderr
    assert not home.exists()


def test_creating_the_first_clinic_in_an_empty_folder_makes_the_server_and_says_so(
    tmp_path: Path,
) -> None:
    """The contract's set-up (DESIGN.md: ``admin clinic create NAME``) still works on a new
    folder, and says on stderr that it made a server there, so a wrong --data-dir shows."""
    data = tmp_path / "new-server"
    made = server_cli(data, "--json", "admin", "clinic", "create", "Northside Clinic")
    assert made.returncode == 0, made.stderr
    assert f"{data} held no server: making a new one there" in made.stderr
    assert json.loads(made.stdout)["name"] == "Northside Clinic"
    again = server_cli(data, "admin", "clinic", "create", "Southside Clinic")
    assert again.returncode == 0 and "held no server" not in again.stderr


def test_a_registry_without_its_master_key_is_refused(tmp_path: Path) -> None:
    """A server folder whose master-keys.json went missing (a restore without --keys-file,
    a copy that left it out): refused naming the file, and no new key is made, which
    would open nothing and stand in for the lost one."""
    data = tmp_path / "server"
    ok(data, "admin", "init")
    ok(data, "admin", "clinic", "create", "Northside Clinic")
    (data / "master-keys.json").unlink()
    listed = server_cli(data, "admin", "clinic", "list")
    assert listed.returncode == 2, listed.stderr
    assert f"the master key file {data / 'master-keys.json'} is missing" in listed.stderr
    assert not (data / "master-keys.json").exists()


def test_backup_into_a_missing_folder_is_refused_by_name(tmp_path: Path) -> None:
    data = tmp_path / "server"
    ok(data, "admin", "init")
    missing = tmp_path / "no-such-folder"
    result = server_cli(
        data, "admin", "backup", str(missing / "server.clbackup"),
        "--keys-out", str(tmp_path / "keys.clbackup"), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"the folder {missing} does not exist" in result.stderr
    assert f"mkdir -p {missing}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "keys.clbackup").exists()


def test_misspelt_settings_stop_the_start(tmp_path: Path) -> None:
    """DATABASE_URI, KMS_PROVIDR and PROXY_PROTOCOL_FORM would leave the server on the
    embedded store with a local key and no PROXY header: the start is refused naming each
    and the setting meant, before anything is made."""
    data = tmp_path / "server"
    env = {"DATABASE_URI": "postgresql://db/careline", "KMS_PROVIDR": "vault",
           "PROXY_PROTOCOL_FORM": "10.0.0.5", "ENABLE_MEMORY_LOCKING": "false"}  # fmt: skip
    started = server_cli(data, "run", "--port", "0", env=env)
    assert started.returncode == 2, started.stderr
    for wrong, meant in (("DATABASE_URI", "DATABASE_URL"), ("KMS_PROVIDR", "KMS_PROVIDER"),
                         ("PROXY_PROTOCOL_FORM", "PROXY_PROTOCOL_FROM")):  # fmt: skip
        assert f"{wrong} is not a setting (did you mean {meant}?)" in started.stderr
    assert not data.exists()
    # Words in another order, or another case, are near misses too; other programs'
    # names that merely extend a setting's (boto3's AWS_ENDPOINT_URL_S3) are not.
    reordered = server_cli(data, "admin", "init", env={"PROVIDER_KMS": "vault-transit"})
    assert "PROVIDER_KMS is not a setting (did you mean KMS_PROVIDER?)" in reordered.stderr
    lower = server_cli(data, "admin", "init", env={"database_url": "postgresql://db/x"})
    assert "database_url is not a setting (did you mean DATABASE_URL?)" in lower.stderr
    assert server_cli(data, "admin", "init", env={"AWS_ENDPOINT_URL_S3": "x"}).returncode == 0


def test_a_failed_init_makes_nothing_and_the_next_says_it_made_the_server(
    tmp_path: Path, postgres_url: str
) -> None:
    """PostgreSQL refusing the default DATABASE_SSL_MODE (verify-full: the local one speaks
    no TLS) stops ``admin init``: no master key file is left behind to make the folder pass
    for a server, so the run that does set it up says so."""
    url = postgres_url.split("?", 1)[0]  # the mode comes from DATABASE_SSL_MODE alone
    data = tmp_path / "new" / "server"
    refused = server_cli(data, "admin", "init", env={"DATABASE_URL": url})
    assert refused.returncode == 2, refused.stderr
    assert "server does not support SSL" in refused.stderr
    assert not (tmp_path / "new").exists()
    # Nor does the first clinic, which makes a server in an empty folder too.
    first = server_cli(data, "admin", "clinic", "create", "Bay", env={"DATABASE_URL": url})
    assert first.returncode == 2, first.stderr
    assert not (tmp_path / "new").exists()
    # A folder IT made beforehand keeps what it held, and only that.
    data.mkdir(parents=True)
    (data / "notes.txt").write_text("set up by IT\n")
    assert server_cli(data, "admin", "init", env={"DATABASE_URL": url}).returncode == 2
    assert [p.name for p in data.iterdir()] == ["notes.txt"]
    made = server_cli(
        data, "--json", "admin", "init", env={"DATABASE_URL": url, "DATABASE_SSL_MODE": "disable"}
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == {"data_dir": str(data), "created": True}


def test_an_admin_command_with_postgresql_down_says_so_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """A one-shot admin command does not wait for PostgreSQL as the service starting beside
    it does: one clear line, no retry lines from the connection pool, in seconds."""
    data = tmp_path / "server"
    env = {"DATABASE_URL": postgres_url, "DATABASE_SSL_MODE": "disable"}
    assert server_cli(data, "admin", "init", env=env).returncode == 0
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/careline"  # nothing listens
    started = time.monotonic()
    result = server_cli(data, "admin", "clinic", "list", env={**env, "DATABASE_URL": down})
    assert time.monotonic() - started < 10
    assert result.returncode == 2
    assert result.stderr == (
        f"careline-server: configuration: DATABASE_URL: cannot connect to {down} (is "
        "PostgreSQL running, and does DATABASE_SSL_MODE=disable suit it?)\n"
    )
