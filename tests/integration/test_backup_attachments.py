"""A workstation backup holds the chart files it keeps (T13): one fetched from the clinic
server and one added here and not yet uploaded come back from the backup alone, with the
server out of reach; the one that was waiting for upload goes up once the restored
workstation has joined again, and the clinic's other workstation opens it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.attachments import HERE, PENDING, Attachments
from core.sync.backup import create_backup, restore_backup
from core.sync.join import JoinRequest, join_clinic
from tests.attachment_content import as_named
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import MARKER, Added, Desks, sync_at
from tests.integration.test_cli import as_admin, careline

PASSPHRASE = "a passphrase for the backup"


def _fetched_and_pending(desks: Desks) -> tuple[str, Added, Added]:
    """On B: A's file fetched from the server, and B's own file, not yet uploaded; and
    their patient."""
    patient = desks.patient("Mensah")
    xray = desks.add(patient, "chest-xray.png", 300 * 1024)
    desks.sync_both()
    on_b = desks.on_b()
    assert on_b.fetch(xray.id).availability == HERE
    letter = desks.folder / "letter.pdf"
    letter.write_bytes(as_named("letter.pdf", b"letter.pdf" + MARKER * 5000))
    own = on_b.add(patient, letter, title="Referral letter")
    assert own.availability == PENDING and own.blob_id is not None
    return patient, xray, Added(own.id, own.blob_id)


def _original(desks: Desks, name: str) -> bytes:
    return (desks.folder / name).read_bytes()


def test_the_restored_workstation_opens_both_offline_and_uploads_the_pending_one(
    desks: Desks, tmp_path: Path
) -> None:
    _, xray, letter = _fetched_and_pending(desks)
    backup = tmp_path / "b.clbackup"
    made = create_backup(desks.b, backup, PASSPHRASE, "admin")
    assert (made.attachments, made.pending, made.not_held) == (2, 1, 0)
    assert MARKER not in backup.read_bytes()
    desks.b.lock()
    shutil.rmtree(desks.folder / "b")  # the disk dies

    folder = tmp_path / "b-restored"
    done = restore_backup(backup, folder, "passphrase", PASSPHRASE, "admin", PASSWORD,
                          lambda ws: ws.sign_in("admin", PASSWORD), FAST_PARAMS)  # fmt: skip
    assert (done.attachments, done.pending) == (2, 1)
    ws = Workstation(folder, FAST_PARAMS)
    ws.sign_in("admin", PASSWORD)
    try:
        # Not joined again yet: no server to ask, so both open from the backup alone.
        restored = Attachments.for_records(ws.records)
        assert not restored.can_fetch()
        assert restored.get(xray.id).availability == HERE
        assert restored.get(letter.id).availability == PENDING
        assert restored.read(xray.id) == _original(desks, "chest-xray.png")
        assert restored.read(letter.id) == _original(desks, "letter.pdf")

        code, _ = desks.live.server.registry.issue_enroll_code(desks.a_cred.clinic_id, 10)
        join_clinic(ws, JoinRequest("admin", server_url=desks.live.url, enroll_code=code,
                                    ca_pem=desks.live.ca_pem))  # fmt: skip
        joined = Attachments.for_records(ws.records)
        assert joined.push_pending() == 1
        assert joined.get(letter.id).availability == HERE
    finally:
        ws.lock()
    sync_at(desks.a, desks.a_cred)
    on_a = desks.on_a()
    assert on_a.read(letter.id) == _original(desks, "letter.pdf")


def test_careline_backup_and_restore_bring_back_a_fetched_and_a_pending_file(
    desks: Desks, tmp_path: Path
) -> None:
    patient, xray, letter = _fetched_and_pending(desks)
    data = desks.folder / "b"
    backup = tmp_path / "b.clbackup"
    made = careline(data, "--json", "--password-stdin", "backup", "create", str(backup),
                    "--passphrase-stdin", stdin=f"{PASSWORD}\n{PASSPHRASE}\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["attachments"] == 2
    text = careline(data, "backup", "info", str(backup)).stdout
    assert "It holds the clinic database and 2 attached files (encrypted)." in text
    restored = tmp_path / "b-restored"
    done = careline(
        tmp_path / "unused", "--json", "--user", "admin", "--password-stdin", "backup",
        "restore", str(backup), "--data-dir", str(restored), "--passphrase-stdin",
        stdin=f"{PASSWORD}\n{PASSPHRASE}\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["attachments"], doc["attachments_pending"]) == (2, 1)
    for item, name in ((xray, "chest-xray.png"), (letter, "letter.pdf")):
        out = tmp_path / f"opened-{name}"
        got = as_admin(restored, "attachment", "get", item.id, "-o", str(out))
        assert got["output"] == str(out) and out.read_bytes() == _original(desks, name)
    listed = {a["id"]: a["availability"] for a in
              as_admin(restored, "attachment", "list", patient)}  # fmt: skip
    assert listed == {xray.id: HERE, letter.id: PENDING}
