"""``careline backup create|restore|info`` as operators script them: real processes, real
SQLCipher, the recovery key printed at ``init``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.backup import restored_identity
from tests.attachment_content import as_named
from tests.cheap_kdf import with_cheap_kdf
from tests.crafted_backups import write_crafted
from tests.integration.server_process import clinic_server, server_admin
from tests.integration.staff_clinic import make_staff_clinic, run_as
from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.integration.test_cli_keys import new_clinic

PASSPHRASE = "a passphrase for the backup"


@pytest.fixture
def clinic(tmp_path: Path) -> tuple[Path, str]:
    """A clinic with one patient; returns its folder and recovery key."""
    data = tmp_path / "clinic"
    recovery = new_clinic(data)
    as_admin(data, "patient", "add", "--family", "Okafor", "--given", "Ada",
             "--birth-date", "1980-02-03")  # fmt: skip
    return data, recovery


def _backup(
    data: Path, target: Path, *extra: str, stdin: str = PASSWORD + "\n"
) -> dict[str, object]:
    result = careline(data, "--json", "--password-stdin", "backup", "create", str(target), *extra,
                      stdin=stdin)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _restore(
    backup: Path, target: Path, secret: str, *how: str
) -> subprocess.CompletedProcess[str]:
    return careline(
        target.parent / "unused", "--json", "--user", "admin", "--password-stdin", "backup",
        "restore", str(backup), "--data-dir", str(target), *how, stdin=f"{PASSWORD}\n{secret}\n",
    )  # fmt: skip


def _replica(data: Path) -> str:
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_password("admin", PASSWORD)
    try:
        return str(ws.database.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0])
    finally:
        ws.lock()


def test_restore_with_the_recovery_key_gives_the_records_under_a_new_identity(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, recovery = clinic
    backup = tmp_path / "clinic.clbackup"
    made = _backup(data, backup)
    assert made["opens_with"] == ["recovery"]
    assert backup.stat().st_mode & 0o777 == 0o600
    assert b"Okafor" not in backup.read_bytes()

    restored = tmp_path / "restored"
    result = _restore(backup, restored, recovery, "--recovery-key-stdin")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["needs_join"] is True and doc["recovery_key"] != recovery
    assert doc["old_replica_id"] == _replica(data) != doc["replica_id"] == _replica(restored)
    found = as_admin(restored, "patient", "search", "okafor")
    assert len(found) == 1
    verified = careline(restored, "--password-stdin", "audit", "verify", stdin=PASSWORD + "\n")
    assert verified.returncode == 0, verified.stderr
    refused = careline(restored, "--password-stdin", "sync", "--once", stdin=PASSWORD + "\n")
    assert refused.returncode != 0 and "restored from a backup" in refused.stderr
    ws = Workstation(restored, FAST_PARAMS)
    ws.unlock_with_recovery_key(doc["recovery_key"])  # the new key opens the new key file
    marker = restored_identity(ws.database)
    ws.lock()
    assert marker is not None and marker["old_replica_id"] == doc["old_replica_id"]


def test_a_passphrase_backup_opens_with_the_passphrase_and_not_another(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = clinic
    backup = tmp_path / "clinic.clbackup"
    made = _backup(data, backup, "--passphrase-stdin", stdin=f"{PASSWORD}\n{PASSPHRASE}\n")
    assert made["opens_with"] == ["recovery", "passphrase"]
    info = careline(data, "--json", "backup", "info", str(backup))
    assert json.loads(info.stdout)["opens_with"] == ["recovery", "passphrase"]

    wrong = _restore(backup, tmp_path / "wrong", "not the passphrase", "--passphrase-stdin")
    assert wrong.returncode != 0
    assert "passphrase does not open" in wrong.stderr
    assert not (tmp_path / "wrong").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    right = _restore(backup, tmp_path / "right", PASSPHRASE, "--passphrase-stdin")
    assert right.returncode == 0, right.stderr
    assert len(as_admin(tmp_path / "right", "patient", "search", "okafor")) == 1


def test_a_damaged_backup_or_a_used_folder_is_refused_and_nothing_is_written(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, recovery = clinic
    backup = tmp_path / "clinic.clbackup"
    _backup(data, backup)
    raw = backup.read_bytes()
    (tmp_path / "cut.clbackup").write_bytes(raw[: len(raw) // 2])
    cut = _restore(tmp_path / "cut.clbackup", tmp_path / "t1", recovery, "--recovery-key-stdin")
    assert cut.returncode != 0 and "nothing was restored" in cut.stderr
    assert not (tmp_path / "t1").exists()

    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    refused = _restore(backup, used, recovery, "--recovery-key-stdin")
    assert refused.returncode != 0 and "not an empty folder" in refused.stderr
    assert [p.name for p in used.iterdir()] == ["notes.txt"]

    other = new_clinic(tmp_path / "other")  # another workstation's recovery key
    wrong = _restore(backup, tmp_path / "t2", other, "--recovery-key-stdin")
    assert wrong.returncode != 0 and "recovery key does not open" in wrong.stderr
    assert not (tmp_path / "t2").exists()


def test_scheduled_backups_into_a_folder_keep_the_newest(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = clinic
    folder = tmp_path / "backups"
    (folder).mkdir()
    (folder / "not-ours.txt").write_text("left alone")
    made = []
    for _ in range(3):
        result = careline(data, "--json", "--password-stdin", "backup", "create", "--dir",
                          str(folder), "--keep", "2", stdin=PASSWORD + "\n")  # fmt: skip
        assert result.returncode == 0, result.stderr
        made.append(json.loads(result.stdout)["file"])
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted([Path(made[1]).name, Path(made[2]).name, "not-ours.txt"])


def test_only_an_administrator_backs_up_or_restores(tmp_path: Path) -> None:
    data = tmp_path / "clinic"
    make_staff_clinic(data)
    code, _, err = run_as(data, "nina", "backup", "create", str(tmp_path / "nurse.clbackup"))
    assert code != 0 and "admin" in err
    assert not (tmp_path / "nurse.clbackup").exists()
    made = careline(
        data, "--user", "adm", "--password-stdin", "backup", "create",
        str(tmp_path / "adm.clbackup"), "--passphrase-stdin", stdin=f"{PASSWORD}\n{PASSPHRASE}\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    restore = careline(
        tmp_path / "unused", "--user", "nina", "--password-stdin", "backup", "restore",
        str(tmp_path / "adm.clbackup"), "--data-dir", str(tmp_path / "r"), "--passphrase-stdin",
        stdin=f"{PASSWORD}\n{PASSPHRASE}\n",
    )  # fmt: skip
    assert "admin" in restore.stderr, restore.stderr
    assert restore.returncode != 0 and not (tmp_path / "r").exists()


# The last commit whose backups hold the database and settings only (content version 1):
# the release before attachment files went into backups. Run from a ``git archive`` of it.
VERSION_1_COMMIT = "f90e813b297dbe2e5d797868f2f268463e4775c1"
MARKER = b"CHEST-XRAY-PLAINTEXT-MARKER "
XRAY_SIZE = 3 * 1024 * 1024  # several 1 MiB chunks: the backup ends inside this file


@dataclass(frozen=True)
class WithFile:
    data: Path
    recovery: str
    patient: str
    attachment: dict[str, Any]
    original: Path


@pytest.fixture
def with_file(clinic: tuple[Path, str], tmp_path: Path) -> WithFile:
    """The tester's clinic (T13): no server, one X-ray added here and held nowhere else."""
    data, recovery = clinic
    [patient] = as_admin(data, "patient", "search", "okafor")
    xray = tmp_path / "chest-xray.png"
    xray.write_bytes(as_named(xray.name, (MARKER * (XRAY_SIZE // len(MARKER) + 1))[:XRAY_SIZE]))
    added = as_admin(data, "attachment", "add", patient["id"], str(xray), "--title",
                     "Chest X-ray")  # fmt: skip
    return WithFile(data, recovery, patient["id"], added, xray)


def _get(data: Path, attachment_id: str, out: Path) -> subprocess.CompletedProcess[str]:
    return careline(data, "--password-stdin", "attachment", "get", attachment_id, "-o",
                    str(out), stdin=PASSWORD + "\n")  # fmt: skip


def test_a_file_held_only_here_is_restored_and_opens_with_the_original_bytes(
    with_file: WithFile, tmp_path: Path
) -> None:
    backup = tmp_path / "clinic.clbackup"
    made = _backup(with_file.data, backup)
    assert (made["attachments"], made["attachments_pending"], made["attachments_not_held"]) == (
        1, 1, 0,
    )  # fmt: skip
    size = made["attachment_bytes"]
    assert isinstance(size, int) and size > XRAY_SIZE  # its ciphertext: chunk tags, header
    assert MARKER not in backup.read_bytes()  # never decrypted into the backup
    info = careline(with_file.data, "backup", "info", str(backup))
    assert "It holds the clinic database and 1 attached file (encrypted)." in info.stdout

    restored = tmp_path / "restored"
    done = _restore(backup, restored, with_file.recovery, "--recovery-key-stdin")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attachments"] == 1
    blob = with_file.attachment["blob_id"]
    cached = restored / "attachments" / blob[:2] / blob
    assert cached.read_bytes() == (with_file.data / "attachments" / blob[:2] / blob).read_bytes()
    # Still waiting for upload: once the restored workstation joins a server, it goes up.
    assert (restored / "attachments" / "pending" / blob).exists()
    [listed] = as_admin(restored, "attachment", "list", with_file.patient)
    assert listed["availability"] == "waiting to upload"
    out = tmp_path / "opened.png"
    got = _get(restored, with_file.attachment["id"], out)
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == with_file.original.read_bytes()


@pytest.mark.parametrize("damage", ["flipped", "cut"])
def test_a_damaged_attachment_in_a_backup_is_named_and_nothing_is_restored(
    with_file: WithFile, tmp_path: Path, damage: str
) -> None:
    backup = tmp_path / "clinic.clbackup"
    _backup(with_file.data, backup)
    raw = bytearray(backup.read_bytes())
    if damage == "flipped":
        raw[-1000] ^= 0x01  # inside the X-ray's bytes: the backup ends with them
    else:
        raw = raw[: len(raw) - XRAY_SIZE // 2]  # cut in the middle of the X-ray
    bad = tmp_path / "bad.clbackup"
    bad.write_bytes(bytes(raw))
    result = _restore(bad, tmp_path / "restored", with_file.recovery, "--recovery-key-stdin")
    assert result.returncode != 0
    blob = with_file.attachment["blob_id"]
    assert "failed authentication" in result.stderr, result.stderr
    assert f"in the encrypted file of attachment {blob}" in result.stderr
    assert "nothing was restored" in result.stderr
    assert not (tmp_path / "restored").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


Careline = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def version_1(tmp_path_factory: pytest.TempPathFactory) -> Careline:
    """``careline`` as the code whose backups were version 1 (``careline(DATA, *ARGS,
    stdin=...)``): its own ``core`` and ``app`` only (``-P``: not this checkout's, which
    the working directory would put first)."""
    tree = tmp_path_factory.mktemp("version-1")
    repo = Path(__file__).resolve().parents[2]
    found = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", VERSION_1_COMMIT],
                           capture_output=True)  # fmt: skip
    if found.returncode != 0:
        pytest.skip(f"commit {VERSION_1_COMMIT} is not in this clone")
    archive = subprocess.run(["git", "-C", str(repo), "archive", VERSION_1_COMMIT, "core", "app",
                              "resources"], capture_output=True, check=True)  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    env = {**os.environ, "PYTHONPATH": with_cheap_kdf(str(tree)),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}  # fmt: skip

    def run(data: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-P", "-m", "app.entry", "--data-dir", str(data), *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env,
                              cwd=tree, timeout=120)  # fmt: skip

    probe = subprocess.run(
        [sys.executable, "-P", "-c", "from core.sync import backup; print(backup.CONTENT_VERSION)"],
        capture_output=True, text=True, env=env, cwd=tree, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "1"  # that code, not this checkout's
    return run


def test_a_backup_the_previous_code_made_restores_and_its_files_show_as_elsewhere(
    tmp_path: Path, version_1: Careline
) -> None:
    """A clinic the previous code kept (its own schema: newer code's files it cannot open),
    with a chart file, backed up by that code, restores here; the file shows as elsewhere."""
    data = tmp_path / "old-clinic"
    made_clinic = version_1(data, "--json", "--password-stdin", "init", "--clinic",
                            "Harbour Clinic", "--user", "admin", stdin=PASSWORD + "\n")  # fmt: skip
    assert made_clinic.returncode == 0, made_clinic.stderr
    recovery = str(json.loads(made_clinic.stdout)["recovery_key"])

    def old_admin(*args: str) -> Any:
        done = version_1(data, "--json", "--password-stdin", *args, stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    patient = old_admin("patient", "add", "--family", "Okafor", "--given", "Ada",
                        "--birth-date", "1980-02-03")["id"]  # fmt: skip
    xray = tmp_path / "chest-xray.png"
    xray.write_bytes(MARKER * 1000)
    old_admin("attachment", "add", patient, str(xray), "--title", "Chest X-ray")
    backup = tmp_path / "old.clbackup"
    made = version_1(data, "--json", "--password-stdin", "backup", "create",
                     str(backup), stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "attachments" not in json.loads(made.stdout)  # that code knew nothing of them
    info = careline(data, "backup", "info", str(backup))
    assert "1 attached file" not in info.stdout and "0 attached files" in info.stdout

    restored = tmp_path / "restored"
    done = _restore(backup, restored, recovery, "--recovery-key-stdin")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attachments"] == 0
    assert len(as_admin(restored, "patient", "search", "okafor")) == 1
    [listed] = as_admin(restored, "attachment", "list", patient)
    assert listed["availability"] == "available when connected"  # not in such a backup


def test_the_previous_code_refuses_a_backup_with_files_naming_its_version(
    with_file: WithFile, tmp_path: Path, version_1: Careline
) -> None:
    backup = tmp_path / "new.clbackup"
    _backup(with_file.data, backup)
    old = version_1(
        tmp_path / "unused", "--user", "admin", "--password-stdin", "backup", "restore",
        str(backup), "--data-dir", str(tmp_path / "restored"), "--recovery-key-stdin",
        stdin=f"{PASSWORD}\n{with_file.recovery}\n",
    )  # fmt: skip
    assert old.returncode != 0
    assert "version 2, not careline-workstation-backup version 1" in old.stderr, old.stderr
    assert "nothing was restored" in old.stderr
    assert not (tmp_path / "restored").exists()


def test_crafted_backup_headers_are_refused_as_damaged_and_cannot_spoof_info(
    tmp_path: Path,
) -> None:
    """Anyone can write a backup's header (nothing authenticates it before the content):
    a deeply nested one, an opener Argon2id refuses, terminal control sequences in its
    kind and time are each refused naming the file, never as an unexpected error, and no
    restore folder appears; ``info`` claiming the facts ``backup info`` reports stays
    under its own key."""
    crafted = write_crafted(tmp_path)
    expected = {"nested": "its header is nested too deeply",
                "empty_salt": "the passphrase opener's salt has 0 bytes, not 16",
                "escapes": "its kind must be 1-64 printable characters"}  # fmt: skip
    for name, reason in expected.items():
        info = careline(tmp_path / "unused", "backup", "info", str(crafted[name]))
        target = tmp_path / f"restored-{name}"
        restore = _restore(crafted[name], target, PASSPHRASE, "--passphrase-stdin")
        for result in (info, restore):
            assert result.returncode != 0
            assert f"backup {crafted[name]} is damaged: " in result.stderr, result.stderr
            assert reason in result.stderr
            assert "did not expect" not in result.stderr and "Traceback" not in result.stderr
            assert "\x1b" not in result.stdout + result.stderr
        assert not target.exists()

    spoof = careline(tmp_path / "unused", "--json", "backup", "info", str(crafted["spoof"]))
    assert spoof.returncode == 0, spoof.stderr
    assert json.loads(spoof.stdout) == {
        "kind": "workstation", "created": "2026-01-01T00:00:00+00:00", "opens_with": ["passphrase"],
        "info": {"kind": "server", "created": "1999-01-01", "opens_with": "recovery",
                 "attachments": 3},
    }  # fmt: skip
    text = careline(tmp_path / "unused", "backup", "info", str(crafted["spoof"])).stdout
    assert text.startswith(
        "A workstation backup made 2026-01-01T00:00:00+00:00; it opens with passphrase."
    )


def test_the_join_again_command_restore_prints_works_as_printed(tmp_path: Path) -> None:
    """A workstation enrolled with a server (its certificate pinned with --ca-file) is
    restored from its backup: the command printed to join again, run as printed with the
    password and a new code on standard input, joins and syncs. The pinned certificate is
    kept through the restore; nobody has to find the server's PEM file again."""
    desk, restored = tmp_path / "desk", tmp_path / "restored"
    with clinic_server(tmp_path / "server", "Harbour Clinic") as (server, clinic):

        def code() -> str:
            return str(server_admin(server.data, {}, "enroll-code", clinic)["code"])

        pem = tmp_path / "server.pem"
        pem.write_text(server.ca_pem)
        joined = careline(
            desk, "--user", "admin", "--password-stdin", "enroll", "--server", server.url,
            "--code-stdin", "--ca-file", str(pem), stdin=f"{PASSWORD}\n{code()}\n",
        )  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        pem.unlink()  # the restored computer never sees that file
        as_admin(desk, "patient", "add", "--family", "Mensah", "--given", "Ama",
                 "--birth-date", "1979-05-05")  # fmt: skip
        backup = tmp_path / "desk.clbackup"
        _backup(desk, backup, "--passphrase-stdin", stdin=f"{PASSWORD}\n{PASSPHRASE}\n")
        result = careline(
            tmp_path / "unused", "--user", "admin", "--password-stdin", "backup", "restore",
            str(backup), "--data-dir", str(restored), "--passphrase-stdin",
            stdin=f"{PASSWORD}\n{PASSPHRASE}\n",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        printed = [line.strip() for line in result.stdout.splitlines()]
        command = next(line for line in printed if line.startswith("careline "))
        assert command == (
            f"careline --data-dir {restored} --user admin --password-stdin enroll --server "
            f"{server.url} --code-stdin"
        )
        assert "with your password, then the code, on standard input" in result.stdout
        # Followed as printed: the password, then the code, on standard input.
        again = subprocess.run(
            [sys.executable, "-m", "app.entry", *shlex.split(command)[1:]],
            input=f"{PASSWORD}\n{code()}\n", capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        synced = careline(restored, "--password-stdin", "sync", "--once", stdin=PASSWORD)
        assert synced.returncode == 0, synced.stderr
