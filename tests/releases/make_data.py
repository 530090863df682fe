"""Data sets written by an earlier release, for the upgrade tests (issue #11 section 2).

Regenerate (the tag must be in this clone; PostgreSQL on 127.0.0.1:5432, trust auth)::

    .venv/bin/python -m tests.releases.make_data [--tag v0.1.0]

then commit ``tests/releases/data/<tag>/``. Everything is made by THAT release: its own
``careline`` and ``careline-server`` console scripts, installed in its own venv by
:func:`tests.releases.release`, and (for what its CLI cannot do, such as notes in v0.1.0)
a short script run by its own interpreter against its own ``core`` package. Nothing of the
current code touches the data. Written under ``tests/releases/data/<tag>/``:

- ``workstation/``: the data dir of a workstation made by ``careline init`` (clinic.db,
  keyslots.json: a password slot and the recovery slot). Patients (non-ASCII names
  included), allergies, notes (one edited, one signed with an addendum), and open conflicts
  made by a second workstation paired over the LAN (``serve``, ``pair join``) that edited
  the same field and recorded the same allergy before ``sync --peer``.
- ``server/``: the embedded ``careline-server`` data dir (registry, clinic replica, local
  master key file) of a clinic whose two enrolled workstations wrote the same kind of data
  and synced, conflict included.
- ``postgres/dump.sql``: ``pg_dump`` (plain SQL) of a ``careline-server`` that ran on
  PostgreSQL with ``MASTER_ENCRYPTION_KEY`` (in the manifest) and a clinic as above.
- ``manifest.json``: tag, commit, the test-only password and recovery key, and what the
  old release itself read back (``--json`` output of patient search and show, conflicts
  list, audit verify, db check, notes, server device list and audit verify).

Names and values are fixed; ids, clocks, keys and the recovery key are random (the release
makes them), so a regenerated set differs in those and nowhere else.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.cheap_kdf import CHEAP_KDF_SITE, is_cheap
from tests.releases import PREVIOUS, Release, release
from tests.services import (
    create_postgres_database,
    drop_postgres_database,
    free_port,
    free_port_pair,
)

DATA = Path(__file__).resolve().parent / "data"
# Test data only: these open nothing but the committed sample files.
PASSWORD = "correct horse battery"
# Deterministic, so a regenerated dump opens with the same key (base64 of 32 bytes).
MASTER_KEY = base64.b64encode(hashlib.sha256(b"careline release test data").digest()).decode()
CLINIC = "Clínica Harbour"
SERVER_CLINIC = "Clinique du Port"
# (family, given, birth date, sex, MRN, phone): non-ASCII names on purpose.
PATIENTS = (
    ("Müller", "Zoë", "1958-03-14", "female", "HC-1001", "555-0101"),
    ("Ọkafọ", "Ngozi", "1971-11-02", "female", "HC-1002", None),
    ("Søndergård", "Åsa", "1989-07-30", "other", None, "555-0103"),
    ("O'Brien", "Seán", "2001-01-09", "male", "HC-1004", None),
    ("王", "小明", "1995-05-05", "male", "HC-1005", None),
)
# (patient index, substance, reaction, severity)
ALLERGIES = (
    (0, "Penicillin", "anaphylaxis", "severe"),
    (0, "Latex", "rash", "mild"),
    (1, "Sulfonamides", None, "moderate"),
    (3, "Ibuprofen", "hives", None),
)
# Both workstations record this for patient 2 before they sync: the same item twice.
SHARED_ALLERGY = (2, "Codeine", "nausea", "moderate")
# Both workstations change patient 0's phone before they sync: a register conflict.
CONFLICT_FIELD = "phone"
CONFLICT_VALUES = ("555-0111", "555-0222")

# Run by the release's own interpreter (never this repo's code: the cwd is a scratch dir
# and PYTHONSAFEPATH keeps it off sys.path). argv: data dir, user, password, JSON request.
NOTES_SCRIPT = r"""
import json, sys
from pathlib import Path
from core.records.notes import Notes
from core.records.workstation import Workstation

data_dir, user, password, request = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ws = Workstation(Path(data_dir))
ws.sign_in(user, password)
try:
    notes = Notes(ws.records)
    for item in request.get("write", []):
        note = notes.create(item["patient_id"], item["body"])
        if "edit" in item:
            notes.edit(note.id, item["edit"])
        if item.get("sign"):
            notes.sign(note.id)
        if "addendum" in item:
            notes.add_addendum(note.id, item["addendum"])
    out = {}
    for pid in request.get("read", []):
        out[pid] = [
            {"id": n.id, "patient_id": n.patient_id, "encounter_id": n.encounter_id,
             "author": n.author, "body": n.body, "signed_at": n.signed_at,
             "addenda": [a.__dict__ for a in n.addenda]}
            for n in notes.for_patient(pid)
        ]
    print(json.dumps(out, ensure_ascii=False))
finally:
    ws.lock()
"""

NOTES: tuple[dict[str, Any], ...] = (
    {"patient": 0, "body": "Seen for a cough.", "edit": "Seen for a dry cough; no fever."},
    {"patient": 1, "body": "Blood pressure reviewed — stable.", "sign": True,
     "addendum": "Patient asked for a follow-up in März."},
)  # fmt: skip

SERVER_SETTINGS = (
    "DATABASE_URL", "DATABASE_SSL_MODE", "KMS_PROVIDER", "MASTER_ENCRYPTION_KEY",
    "CREDENTIALS_DIRECTORY", "STORAGE_BACKEND", "AWS_KMS_KEY_ID", "VAULT_ADDR", "VAULT_TOKEN",
)  # fmt: skip


class Old:
    """Runs one earlier release's commands in a scratch folder."""

    def __init__(self, rel: Release, scratch: Path) -> None:
        self.rel = rel
        self.scratch = scratch

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """No OS keyring (as headless Linux), no server settings unless given, no code of
        this repository on the path."""
        env = {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS}
        env.pop("PYTHONPATH", None)
        if is_cheap(os.environ.get("PYTHONPATH")):
            env["PYTHONPATH"] = CHEAP_KDF_SITE  # its sitecustomize only (tests.cheap_kdf)
        env.update(PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", PYTHONSAFEPATH="1")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def run(
        self, exe: Path, *args: str, stdin: str = "", env: Mapping[str, str] | None = None
    ) -> str:
        """Run a release command; its stdout (failing loudly with its stderr)."""
        done = subprocess.run(
            [str(exe), *args], input=stdin, capture_output=True, text=True,
            cwd=self.scratch, env=self.env(env), timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            command = " ".join([exe.name, *args])
            raise RuntimeError(f"{command}: exit {done.returncode}\n{done.stderr}")
        return done.stdout

    def careline(self, data_dir: Path, *args: str, stdin: str = PASSWORD + "\n") -> Any:
        """``careline --json --password-stdin`` as admin; the parsed JSON document."""
        out = self.run(
            self.rel.careline, "--data-dir", str(data_dir), "--json", "--user", "admin",
            "--password-stdin", *args, stdin=stdin,
        )  # fmt: skip
        return json.loads(out)

    def server(self, data_dir: Path, env: Mapping[str, str], *args: str, stdin: str = "") -> Any:
        """``careline-server --json ...``; the parsed JSON document."""
        out = self.run(
            self.rel.careline_server, "--data-dir", str(data_dir), "--json", *args,
            stdin=stdin, env=env,
        )  # fmt: skip
        return json.loads(out)

    def notes(self, data_dir: Path, request: Mapping[str, Any]) -> Any:
        """Write and read notes through the release's own Python API."""
        script = self.scratch / "notes_script.py"
        script.write_text(NOTES_SCRIPT)
        out = self.run(
            self.rel.python, str(script), str(data_dir), "admin", PASSWORD, json.dumps(request)
        )
        return json.loads(out)


@contextmanager
def background(old: Old, argv: list[str], env: Mapping[str, str], log: Path) -> Iterator[None]:
    """A long-running release command, stopped with SIGTERM at the end of the block."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            cwd=old.scratch, env=old.env(env),
        )  # fmt: skip
    try:
        assert process.stdin is not None
        process.stdin.write((PASSWORD + "\n").encode())
        process.stdin.close()
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for(what: str, ready: Any, log: Path, timeout: float = 60) -> None:
    """Poll ``ready()`` until true (the release's server or peer has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start:\n{log.read_text(errors='replace')}")


def add_records(old: Old, desk: Path) -> list[str]:
    """The fixed patients and allergies, by the release's CLI; the patient ids."""
    ids = []
    for family, given, born, sex, mrn, phone in PATIENTS:
        args = ["patient", "add", "--family", family, "--given", given, "--birth-date", born,
                "--sex", sex]  # fmt: skip
        args += ["--mrn", mrn] if mrn else []
        args += ["--phone", phone] if phone else []
        ids.append(old.careline(desk, *args)["id"])
    for index, substance, reaction, severity in ALLERGIES:
        args = ["allergy", "add", ids[index], substance]
        args += ["--reaction", reaction] if reaction else []
        args += ["--severity", severity] if severity else []
        old.careline(desk, *args)
    request = {
        "write": [
            {"patient_id": ids[n["patient"]], **{k: v for k, v in n.items() if k != "patient"}}
            for n in NOTES
        ]
    }
    old.notes(desk, request)
    return ids


def concurrent_edits(old: Old, desk: Path, ids: list[str], value: str) -> None:
    """What each of two workstations does before they next sync."""
    old.careline(desk, "patient", "set", ids[0], CONFLICT_FIELD, value)
    index, substance, reaction, severity = SHARED_ALLERGY
    old.careline(
        desk, "allergy", "add", ids[index], substance, "--reaction", reaction,
        "--severity", severity,
    )  # fmt: skip


def read_back(old: Old, desk: Path, ids: list[str]) -> dict[str, Any]:
    """What the release itself shows of a workstation's records."""
    return {
        "patient_ids": ids,
        "search": {
            text: old.careline(desk, "patient", "search", text)
            for text in [p[0] for p in PATIENTS] + ["HC-1002", "1989-07-30"]
        },
        "charts": {pid: old.careline(desk, "patient", "show", pid) for pid in ids},
        "notes": old.notes(desk, {"read": ids}),
        "conflicts": old.careline(desk, "conflicts", "list"),
        "audit_verify": old.careline(desk, "audit", "verify"),
        # Without its path: the scratch folder it was made in.
        "db_check": {k: v for k, v in old.careline(desk, "db", "check").items() if k != "path"},
    }


def make_workstation(old: Old, out: Path) -> dict[str, Any]:
    """A workstation made by ``init``, with conflicts from a LAN-paired second one."""
    a, b = old.scratch / "ws-a", old.scratch / "ws-b"
    init = old.careline(a, "init", "--clinic", CLINIC, "--user", "admin", "--full-name", "Ada Ó")
    ids = add_records(old, a)
    port = free_port_pair()
    log = old.scratch / "serve.log"
    serve = [str(old.rel.careline), "--data-dir", str(a), "--json", "--password-stdin",
             "serve", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with background(old, serve, {}, log):
        wait_for("careline serve", lambda: log.exists() and b'"port"' in log.read_bytes(), log)
        code = old.careline(a, "pair", "code")["code"]
        joined = old.careline(b, "pair", "join", "--peer", f"127.0.0.1:{port}", "--code", code)
        assert joined["records"] > 0, joined
        # Both edit before either syncs: the second sync meets the first's changes.
        concurrent_edits(old, a, ids, CONFLICT_VALUES[0])
        concurrent_edits(old, b, ids, CONFLICT_VALUES[1])
        old.careline(b, "sync", "--peer", f"127.0.0.1:{port}", "--once")
    seen = read_back(old, a, ids)
    copy_data_dir(a, out / "workstation")
    return {"clinic": CLINIC, "user": "admin", "recovery_key": init["recovery_key"], **seen}


def copy_data_dir(source: Path, target: Path) -> None:
    """A closed data dir as it is on disk (a -wal or -shm left over would be a bug)."""
    leftovers = [p.name for p in source.rglob("*") if p.name.endswith(("-wal", "-shm"))]
    assert not leftovers, leftovers
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock", "tls"))


def make_server_clinic(old: Old, server_dir: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """A clinic on a ``careline-server`` (embedded, or on PostgreSQL per ``env``) that two
    enrolled workstations wrote to and synced with, conflict included. ``desk``: what the
    first workstation read back after the last sync, i.e. what the server holds."""
    clinic = old.server(server_dir, env, "admin", "clinic", "create", SERVER_CLINIC)
    old.server(server_dir, env, "admin", "user", "add", clinic["id"], "admin", "--role", "admin",
               "--full-name", "Ada Ó", stdin=PASSWORD + "\n")  # fmt: skip
    codes = [old.server(server_dir, env, "admin", "enroll-code", clinic["id"])["code"]
             for _ in range(2)]  # fmt: skip
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    cert = server_dir / "tls" / "server.pem"
    log = old.scratch / f"server-{port}.log"
    run = [str(old.rel.careline_server), "--data-dir", str(server_dir), "run", "--host",
           "127.0.0.1", "--port", str(port)]  # fmt: skip
    desks = [old.scratch / f"desk-{port}-{n}" for n in (1, 2)]

    def ready() -> bool:
        if not cert.exists():
            return False
        try:
            trust = ssl.create_default_context(cafile=str(cert))
            return httpx.get(url + "/ready", verify=trust, timeout=2).status_code == 200
        except (httpx.HTTPError, ssl.SSLError, OSError):
            return False

    with background(old, run, env, log):
        wait_for("careline-server run", ready, log)
        enroll = ("enroll", "--server", url, "--ca-file", str(cert), "--code")
        old.careline(desks[0], *enroll, codes[0], "--device-name", "Front desk")
        ids = add_records(old, desks[0])
        old.careline(desks[0], "sync", "--once")
        old.careline(desks[1], *enroll, codes[1], "--device-name", "Consulting room")
        for desk, value in zip(desks, CONFLICT_VALUES, strict=True):
            concurrent_edits(old, desk, ids, value)
        for desk in (desks[0], desks[1], desks[0]):  # everyone has everything after this
            old.careline(desk, "sync", "--once")
        seen = read_back(old, desks[0], ids)
    return {
        "clinic": SERVER_CLINIC,
        "clinic_id": clinic["id"],
        "user": "admin",
        "server_clinics": old.server(server_dir, env, "admin", "clinic", "list"),
        "server_devices": old.server(server_dir, env, "admin", "device", "list"),
        "server_audit_verify": old.server(server_dir, env, "admin", "audit", "verify"),
        "desk": seen,
    }


def make_embedded_server(old: Old, out: Path) -> dict[str, Any]:
    """The embedded server's data dir (SQLCipher registry and replica, master key file)."""
    server_dir = old.scratch / "server"
    seen = make_server_clinic(old, server_dir, {})
    copy_data_dir(server_dir, out / "server")
    return seen


def make_postgres_server(old: Old, out: Path) -> dict[str, Any]:
    """A server on PostgreSQL, dumped as plain SQL; its master key is MASTER_KEY."""
    url = create_postgres_database()
    try:
        env = {"DATABASE_URL": url, "DATABASE_SSL_MODE": "disable", "KMS_PROVIDER": "local",
               "MASTER_ENCRYPTION_KEY": MASTER_KEY}  # fmt: skip
        seen = make_server_clinic(old, old.scratch / "pg-server", env)
        target = out / "postgres"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        # No owner (the restoring user owns it); privileges kept: the tenant role's grants.
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--format=plain", url.split("?", 1)[0]],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (target / "dump.sql").write_text(dump)
    finally:
        drop_postgres_database(url)
    return {"master_encryption_key": MASTER_KEY, "kms_provider": "local", **seen}


def main(argv: list[str] | None = None) -> int:
    """Build the data set of one release tag."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=PREVIOUS, help=f"release tag (default {PREVIOUS})")
    args = parser.parse_args(argv)
    rel = release(args.tag)
    out = DATA / args.tag
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="careline-release-data-") as scratch:
        old = Old(rel, Path(scratch))
        manifest = {
            "tag": rel.tag,
            "commit": rel.commit,
            "password": PASSWORD,
            "workstation": make_workstation(old, out),
            "server": make_embedded_server(old, out),
            "postgres": make_postgres_server(old, out),
        }
    text = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
