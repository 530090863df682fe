"""A workstation joining a clinic downloads it as the server's snapshot image, over HTTPS
from a real server (embedded store and PostgreSQL), and goes on syncing as any other."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.crypto.kdf import FAST_PARAMS
from core.platform.file_lock import lock_fd
from core.records import replication
from core.records.workstation import Workstation
from core.sync.enroll import ServerCredential, load_credential, tls_trust
from core.sync.join import FirstSyncUnfinishedError, JoinRequest, JoinResult
from core.sync.join import join_clinic as join_workflow
from core.sync.session import SyncReport
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, live_server, sync_at
from tests.services import free_port


def _image_rows(ws: Workstation) -> list[tuple[str, str]]:
    return [
        (str(a), str(d))
        for a, d in ws.database.query(
            "SELECT action, details FROM audit_log WHERE action LIKE 'sync.snapshot%'"
        )
    ]


def _patients(ws: Workstation) -> list[str]:
    return sorted(p.family for p in ws.records.list_patients())


def _clinic_with_patients(live: Live, tmp_path: Path, count: int) -> tuple[str, Workstation]:
    clinic = add_clinic(live.server, "Harbour Clinic")
    first, credential = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a")
    for i in range(count):
        first.records.add_patient(f"Family{i:03d}", "Given", "1980-01-01")
    sync_at(first, credential)
    return clinic, first


def _built(live: Live, clinic: str) -> None:
    keeper = live.server.image_keeper(clinic)
    keeper.min_records = 0  # a small clinic, for the test: built all the same
    keeper.prepare()
    assert keeper.wait(60) and keeper.last_error is None


def test_a_joining_workstation_gets_the_image_then_syncs_both_ways(
    live: Live, tmp_path: Path
) -> None:
    clinic, first = _clinic_with_patients(live, tmp_path, 30)
    _built(live, clinic)

    second, credential = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b")

    actions = [a for a, _ in _image_rows(second)]
    assert actions == ["sync.snapshot_image"]  # no page was downloaded
    assert _patients(second) == _patients(first)
    assert len(_patients(second)) == 30
    # The downloaded file is gone; only the replica's own files are left.
    assert not [p for p in (tmp_path / "b").rglob(".image-*")]
    # It goes on like any replica: its change reaches the other workstation, and back.
    added = second.records.add_patient("Newcomer", "Nora", "1991-03-04")
    sync_at(second, credential)
    sync_at(first, _credential_of(first))
    assert first.records.get_patient(added.id).given == "Nora"
    first.lock()
    second.lock()


def _credential_of(ws: Workstation) -> ServerCredential:
    credential = load_credential(ws.database)
    assert credential is not None
    return credential


def test_an_image_gone_from_the_server_falls_back_to_pages_and_is_made_again(
    live: Live, tmp_path: Path
) -> None:
    clinic, first = _clinic_with_patients(live, tmp_path, 12)
    _built(live, clinic)
    keeper = live.server.image_keeper(clinic)
    offered = keeper.offer({}, 0)
    assert offered is not None
    # What the endpoint says to a device asking for an image it was not offered.
    credential = _credential_of(first)
    with httpx.Client(
        base_url=live.url,
        headers={"Authorization": f"Bearer {credential.token}"},
        verify=tls_trust(credential.server_ca_pem),
    ) as client:
        missing = client.get("/v1/sync/images/" + "0" * 32)
        assert missing.status_code == 404 and "by pages" in missing.text
        malformed = client.get("/v1/sync/images/" + "Z" * 32)
        assert malformed.status_code == 400 and "32 lowercase hex digits" in malformed.text
        assert client.get(f"/v1/sync/images/{offered.id}").content[:16] != b"SQLite format 3\0"
        stranger = httpx.get(f"{live.url}/v1/sync/images/{offered.id}",
                             verify=tls_trust(credential.server_ca_pem))  # fmt: skip
        assert stranger.status_code == 401

    # The file is gone from the server's disk (a cleaner emptied its spool): the offer is
    # still made, the file cannot be sent, and the workstation downloads pages instead.
    image_files = list(keeper.folder.glob("*.db"))
    assert len(image_files) == 1
    image_files[0].unlink()
    second, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b")
    actions = [a for a, _ in _image_rows(second)]
    assert "sync.snapshot_image" not in actions and "sync.snapshot" in actions
    assert _patients(second) == _patients(first)
    # ... and the server made a new image for the next one.
    assert keeper.wait(60)
    again = keeper.offer({}, 0)
    assert again is not None and again.id != offered.id
    third, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "c")
    assert [a for a, _ in _image_rows(third)] == ["sync.snapshot_image"]
    for ws in (first, second, third):
        ws.lock()


def test_with_snapshot_images_off_every_workstation_downloads_pages(tmp_path: Path) -> None:
    with live_server(tmp_path / "server", {"SNAPSHOT_IMAGES": "false"}) as live:
        clinic, first = _clinic_with_patients(live, tmp_path, 6)
        keeper = live.server.image_keeper(clinic)
        keeper.min_records = 0
        second, _ = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b")
        live.server.prepare_images()
        assert keeper.wait(10)
        assert not list(keeper.folder.glob("*.db"))  # never built
        assert [a for a, _ in _image_rows(second)] == ["sync.snapshot", "sync.snapshot_done"]
        assert _patients(second) == _patients(first)
        first.lock()
        second.lock()


def test_images_left_by_a_server_process_that_died_are_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.server.service")
    spool = tmp_path / "server" / "spool"
    dead, alive = spool / "images-dead", spool / "images-alive"
    for folder in (dead, alive):
        folder.mkdir(parents=True)
        (folder / "0123.db").write_bytes(b"ciphertext under a key no process holds")
        (folder / ".owner").touch()
    with (alive / ".owner").open("r+b") as held:  # another live process holds its own
        lock_fd(held.fileno())
        with live_server(tmp_path / "server") as live:
            clinic = add_clinic(live.server, "Harbour Clinic")
            own = live.server.image_keeper(clinic).folder.parent
            assert not dead.exists()
            assert (alive / "0123.db").exists()
            # The administrator can tell where the disk space went: one line, naming the
            # folder removed and what it held (the image and the lock file).
            removed = [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]
            assert removed == [
                f"removed {dead}, the snapshot images folder of a server process that is no "
                "longer running (2 files, 39 bytes; their keys died with it)"
            ]
            assert own.exists() and own.parent == spool
        assert not own.exists()  # removed when the server stops


def _server_events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The server's JSON log lines of ``event`` (its request log and its own events)."""
    found = []
    for record in caplog.records:
        if record.name == "careline.server" and record.getMessage().startswith("{"):
            line = json.loads(record.getMessage())
            if line.get("event") == event:
                found.append(line)
    return found


def _awaited(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """``event``'s lines once there is one: the server logs a download after its end,
    which it may notice a moment after the client's."""
    deadline = time.monotonic() + 10
    while not _server_events(caplog, event) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _server_events(caplog, event)


def test_an_image_download_cut_off_is_logged_as_cut_off_and_a_whole_one_as_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="careline.server")
    with live_server(tmp_path / "server") as live:
        clinic, first = _clinic_with_patients(live, tmp_path, 6)
        _built(live, clinic)
        keeper = live.server.image_keeper(clinic)
        offered = keeper.offer({}, 0)
        assert offered is not None
        credential = _credential_of(first)
        route = "/v1/sync/images/{image_id}"
        with httpx.Client(
            base_url=live.url,
            headers={"Authorization": f"Bearer {credential.token}"},
            verify=tls_trust(credential.server_ca_pem),
        ) as client:
            whole = client.get(f"/v1/sync/images/{offered.id}")
            assert whole.status_code == 200 and len(whole.content) == offered.size
            assert whole.headers["content-length"] == str(offered.size)
            assert _awaited(caplog, "sync.image_sent") == [
                {"event": "sync.image_sent", "route": route, "device": credential.device_id,
                 "image": offered.id, "bytes_sent": offered.size,
                 "bytes_expected": offered.size}
            ]  # fmt: skip
            assert not _server_events(caplog, "sync.image_cut_off")

            # This clinic's image is small enough for the loopback's socket buffers to take
            # it whole before a client could leave: the file is made 64 MiB (the endpoint
            # sends the file as it is), so the server is still sending when the client goes.
            [image_file] = keeper.folder.glob("*.db")
            os.truncate(image_file, 64 * 2**20)
            caplog.clear()
            with client.stream("GET", f"/v1/sync/images/{offered.id}") as response:
                assert response.status_code == 200
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received >= 256 * 1024:
                        break  # leaving the block closes the connection mid-body
            [cut] = _awaited(caplog, "sync.image_cut_off")
            named = ("route", "device", "image", "bytes_expected", "reason")
            assert {k: cut[k] for k in named} == {
                "route": route, "device": credential.device_id, "image": offered.id,
                "bytes_expected": 64 * 2**20, "reason": "client_gone",
            }  # fmt: skip
            assert received <= cut["bytes_sent"] < 64 * 2**20
            assert not _server_events(caplog, "sync.image_sent")
            # The request log says so too, and so does the metric.
            [logged] = [e for e in _awaited(caplog, "http") if e["route"] == route]
            assert logged["status"] == 200 and logged["completed"] is False
            assert logged["bytes"] == cut["bytes_sent"]
            metrics = client.get("/metrics").text
        assert (
            'careline_http_responses_cut_off_total{route="/v1/sync/images/{image_id}",'
            'status="200"} 1.0'
        ) in metrics
        first.lock()


def _join_request(live: Live, code: str) -> JoinRequest:
    """An attended join as the wizard and ``careline enroll`` make it (``code`` empty: the
    resume of one kept here)."""
    return JoinRequest(
        "admin", PASSWORD, server_url=live.url, enroll_code=code, ca_pem=live.ca_pem,
        device_name="Front desk",
    )  # fmt: skip


def _held(ws: Workstation) -> int:
    ws.sign_in("admin", PASSWORD)
    try:
        return replication.records_held(ws.database)
    finally:
        ws.lock()


def test_a_join_counts_each_record_once_though_some_changed_after_the_image(
    tmp_path: Path,
) -> None:
    with live_server(tmp_path / "server") as live:
        clinic, first = _clinic_with_patients(live, tmp_path, 12)
        _built(live, clinic)
        # Changed after the image was made: these records come in the image and again as
        # ops pulled after it; one more record comes as ops alone.
        for patient in first.records.list_patients()[:5]:
            first.records.update_patient(patient.id, {"given": "Changed"})
        first.records.add_patient("Latecomer", "Lee", "1990-02-03")
        sync_at(first, _credential_of(first))
        on_server = live.server.sync_store(clinic).snapshot_size()
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        desk = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS)
        reports: list[SyncReport] = []
        result: JoinResult = join_workflow(desk, _join_request(live, code), reports.append)
        first.lock()
    last = reports[-1]
    assert last.snapshot_image and last.pulled >= 6  # the image, then the changes as ops
    # Each record once: the clinic's records as the server holds them, and as the desk does
    # (the snapshot's records plus the ops pulled would count six of them twice).
    assert result.records == on_server == _held(desk)
    assert last.snapshot_records + last.pulled > result.records


def test_a_join_finished_after_the_image_by_a_later_attempt_reports_the_records_held(
    tmp_path: Path,
) -> None:
    data, port = tmp_path / "server", free_port()
    desk = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS)

    def stop_after_the_image(report: SyncReport) -> None:
        if report.snapshot_image:
            live.halt()  # the server goes away before the pulls that follow the image

    with live_server(data, port=port) as live:
        clinic, first = _clinic_with_patients(live, tmp_path, 12)
        _built(live, clinic)
        first.lock()
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        with pytest.raises(FirstSyncUnfinishedError, match="no new code is needed"):
            join_workflow(desk, _join_request(live, code), stop_after_the_image)
    with live_server(data, port=port) as live:
        on_server = live.server.sync_store(clinic).snapshot_size()
        # The next attempt stores no snapshot and pulls nothing new: it used to say "0
        # records received" of a computer holding the whole clinic.
        result = join_workflow(desk, _join_request(live, ""))
    assert result.clinic_name == "Harbour Clinic"
    assert result.records == on_server == _held(desk) > 12
