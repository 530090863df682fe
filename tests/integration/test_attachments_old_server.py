"""Attachment records with this release's fields relayed by the previous release's server
(issue #16): clinics upgrade one machine at a time, so a chart's attachment list must reach
every workstation through a replica that does not know the new fields, and the file waits
for upload (not lost, not an error in sync) until the server can take it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sync.attachments import PENDING, REMOTE, AttachmentProblem, Attachments
from tests.attachment_content import as_named
from tests.integration.server_fixtures import enroll_desk, sync_at
from tests.integration.server_process import ServerProcess
from tests.releases import PREVIOUS, release
from tests.services import free_port


@pytest.fixture
def old_server(tmp_path: Path) -> Iterator[ServerProcess]:
    previous = release(PREVIOUS)
    server = ServerProcess(tmp_path / "server", free_port(), [str(previous.careline_server)])
    try:
        yield server
    finally:
        server.stop()


def _json(result: object) -> dict[str, str]:
    assert getattr(result, "returncode", None) == 0, getattr(result, "stderr", result)
    document: dict[str, str] = json.loads(getattr(result, "stdout", ""))
    return document


def test_the_previous_release_relays_attachment_records(
    old_server: ServerProcess, tmp_path: Path, no_keyring: None
) -> None:
    clinic = _json(old_server.run("--json", "admin", "clinic", "create", "Mixed"))["id"]
    added = old_server.run("admin", "user", "add", clinic, "admin", "--role", "admin")
    assert added.returncode == 0, added.stderr
    old_server.start()
    desks = []
    for n in range(2):
        code = _json(old_server.run("--json", "admin", "enroll-code", clinic))["code"]
        desks.append(enroll_desk(old_server.url, old_server.ca_pem, code, tmp_path / f"d{n}"))
    (a, a_cred), (b, b_cred) = desks
    patient = a.records.add_patient("Relay", "Rita", "1975-05-05").id
    scan = tmp_path / "scan.png"
    scan.write_bytes(as_named("scan.png", b"not really a PNG" * 1000))
    on_a = Attachments(a.records, tmp_path / "d0", credential=a_cred)
    on_a.add(patient, scan, title="Wound photo", date="2026-12-01", category="photo")

    sync_at(a, a_cred)
    with pytest.raises(AttachmentProblem, match="stopped"):
        on_a.push_pending()  # the old server has no client-encrypted uploads
    assert [x.availability for x in on_a.for_patient(patient)] == [PENDING]

    sync_at(b, b_cred)
    on_b = Attachments(b.records, tmp_path / "d1", credential=b_cred)
    [seen] = on_b.for_patient(patient)
    assert (seen.title, seen.date, seen.category, seen.filename, seen.availability) == (
        "Wound photo", "2026-12-01", "photo", "scan.png", REMOTE,
    )  # fmt: skip
    a.lock()
    b.lock()
