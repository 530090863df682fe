"""Attachments in the chart (issue #16) through a live server: the workstation encrypts,
the server only ever holds ciphertext it verifies without the key, an upload cut off
mid-way resumes where it stopped, a second workstation fetches and opens the file, and
damaged or truncated blobs are refused with a clear error."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest

from core.crypto.streaming import HEADER_SIZE, TAG_SIZE
from core.records.workstation import Workstation
from core.sync import blob_client
from core.sync.attachments import (
    HERE,
    PENDING,
    REMOTE,
    AttachmentProblem,
    Attachments,
    export_key,
    held_keys,
    import_key,
)
from core.sync.enroll import ServerCredential, tls_trust
from tests.attachment_content import as_named
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, live_server, sync_at
from tests.services import Service, free_port

MiB = 1024 * 1024
MARKER = b"PLAINTEXT-MARKER-Quillon-Vesper-"
SIZE = 20 * MiB


@dataclass
class Clinic:
    live: Live
    a: Workstation
    a_cred: ServerCredential
    b: Workstation
    b_cred: ServerCredential
    patient: str
    folder: Path

    def attachments(self, ws: Workstation, cred: ServerCredential | None, name: str) -> Attachments:
        return Attachments(ws.records, self.folder / name, credential=cred)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    folder = tmp_path_factory.mktemp("attachments")
    with live_server(folder / "server") as live:
        clinic_id = add_clinic(live.server, "Riverside")
        a, a_cred = join_clinic(live.server, live.url, live.ca_pem, clinic_id, folder / "a", "a")
        b, b_cred = join_clinic(live.server, live.url, live.ca_pem, clinic_id, folder / "b", "b")
        patient = a.records.add_patient(family="Okafor", given="Ada", birth_date="1980-02-03").id
        yield Clinic(live, a, a_cred, b, b_cred, patient, folder)


def _letter(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        out.write(as_named(path.name, MARKER))  # begins as its kind does; the marker follows
        remaining = size - len(MARKER)
        while remaining > 0:
            piece = min(remaining, MiB)
            out.write((MARKER * (piece // len(MARKER) + 1))[:piece])
            remaining -= piece
    return path


def _holds_marker(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and MARKER in p.read_bytes()]


class _Cut(Exception):
    """The connection 'drops' after a number of bytes."""


def test_added_offline_cut_mid_upload_resumed_and_opened_elsewhere(
    clinic: Clinic, tmp_path: Path
) -> None:
    source = _letter(tmp_path / "scan.pdf", SIZE)
    # Added while not connected: no credential, so nothing leaves this workstation.
    offline = clinic.attachments(clinic.a, None, "a")
    added = offline.add(
        clinic.patient, source, title="Cardiology letter", date="2026-11-30", category="letter"
    )
    assert added.availability == PENDING and offline.push_pending() == 0
    assert not _holds_marker(clinic.folder / "a" / "attachments")  # the cache is ciphertext

    # The record syncs at once; the file is not on the server yet.
    sync_at(clinic.a, clinic.a_cred)
    sync_at(clinic.b, clinic.b_cred)
    on_b = clinic.attachments(clinic.b, clinic.b_cred, "b")
    [listed] = on_b.for_patient(clinic.patient)
    assert (listed.title, listed.availability, listed.size) == ("Cardiology letter", REMOTE, SIZE)
    with pytest.raises(AttachmentProblem, match="available when connected"):
        on_b.fetch(listed.id)

    # Reconnected: the upload is cut off after about 6 MiB...
    online = clinic.attachments(clinic.a, clinic.a_cred, "a")
    [blob_id] = online.pending()
    path = online.cache.path_for(blob_id)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    def cut(done: int, total: int) -> None:
        if done > 6 * MiB:
            raise _Cut

    with pytest.raises(_Cut):
        blob_client.push(clinic.a_cred, blob_id, path, sha, cut)
    held, complete = blob_client.upload_offset(clinic.a_cred, blob_id)
    assert 0 < held < path.stat().st_size and not complete
    # ... and the next sync sends only the rest.
    sent = blob_client.push(clinic.a_cred, blob_id, path, sha)
    assert sent == path.stat().st_size - held
    assert online.push_pending() == 1 and online.pending() == []

    # The second workstation gets the clinic attachment key sealed for its device
    # certificate (the first sealed it when it synced the file up) and opens the file.
    assert held_keys(clinic.b.records) == {}
    out = tmp_path / "copy.pdf"
    on_b.open_to(listed.id, out)
    assert held_keys(clinic.b.records) == held_keys(clinic.a.records)
    assert out.read_bytes() == source.read_bytes()
    assert on_b.get(listed.id).availability == HERE

    # Only ciphertext at rest on the server (blobs and upload staging alike).
    assert not _holds_marker(clinic.folder / "server")


def test_a_download_cut_off_resumes(clinic: Clinic, tmp_path: Path) -> None:
    a = clinic.attachments(clinic.a, clinic.a_cred, "a")
    item = a.add(clinic.patient, _letter(tmp_path / "lab.pdf", 3 * MiB), title="Lab results")
    a.push_pending()
    sync_at(clinic.a, clinic.a_cred)
    sync_at(clinic.b, clinic.b_cred)
    b = clinic.attachments(clinic.b, clinic.b_cred, "b")
    assert item.blob_id is not None
    dest = b.cache.path_for(item.blob_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    row = b.entries.get("attachment", item.id)

    def cut(done: int, total: int) -> None:
        if done > MiB:
            raise _Cut

    with pytest.raises(_Cut):
        blob_client.fetch(clinic.b_cred, item.blob_id, dest, row["sha256"], cut)
    part = dest.with_name(dest.name + ".part")
    assert part.stat().st_size > 0 and not dest.exists()
    b.open_to(item.id, tmp_path / "lab-copy.pdf")
    assert (tmp_path / "lab-copy.pdf").read_bytes() == (tmp_path / "lab.pdf").read_bytes()


def test_a_damaged_blob_on_the_server_is_refused(clinic: Clinic, tmp_path: Path) -> None:
    a = clinic.attachments(clinic.a, clinic.a_cred, "a")
    item = a.add(clinic.patient, _letter(tmp_path / "x.jpg", 2 * MiB), title="Photo")
    a.push_pending()
    assert item.blob_id is not None
    stored = next((clinic.folder / "server" / "blobs").rglob(item.blob_id))
    data = bytearray(stored.read_bytes())
    data[HEADER_SIZE + 10] ^= 1
    stored.write_bytes(bytes(data))
    sync_at(clinic.a, clinic.a_cred)
    sync_at(clinic.b, clinic.b_cred)
    b = clinic.attachments(clinic.b, clinic.b_cred, "b")
    with pytest.raises(AttachmentProblem, match="arrived damaged or is not the file"):
        b.open_to(item.id, tmp_path / "x-copy.jpg")
    assert not (tmp_path / "x-copy.jpg").exists()


def _put(clinic: Clinic, blob_id: str, body: bytes, sha: str) -> httpx.Response:
    with httpx.Client(base_url=clinic.live.url, verify=tls_trust(clinic.live.ca_pem)) as http:
        return http.put(
            f"/v1/blobs/{blob_id}",
            content=body,
            headers={
                "Authorization": f"Bearer {clinic.a_cred.token}",
                "Upload-Offset": "0",
                "Upload-Length": str(len(body)),
                "X-Ciphertext-SHA256": sha,
            },
        )


def test_the_server_refuses_truncated_or_mislabelled_uploads(
    clinic: Clinic, tmp_path: Path
) -> None:
    a = Attachments(clinic.a.records, tmp_path, credential=None)
    item = a.add(clinic.patient, _letter(tmp_path / "t.pdf", MiB + 100), title="T")
    assert item.blob_id is not None
    whole = a.cache.path_for(item.blob_id).read_bytes()
    truncated = whole[: HEADER_SIZE + MiB + TAG_SIZE]  # the final chunk is missing
    refused = _put(clinic, item.blob_id, truncated, hashlib.sha256(truncated).hexdigest())
    assert refused.status_code == 422
    assert "truncated" in refused.json()["detail"]
    mislabelled = _put(clinic, item.blob_id, whole, hashlib.sha256(b"other").hexdigest())
    assert mislabelled.status_code == 422
    assert "not the declared" in mislabelled.json()["detail"]
    assert not blob_client.upload_offset(clinic.a_cred, item.blob_id)[1]  # nothing stored
    not_ours = _put(clinic, item.blob_id, os.urandom(4096), "0" * 64)
    assert not_ours.status_code == 422


def test_a_workstation_without_the_key_is_told_how_to_get_it(
    clinic: Clinic, tmp_path: Path
) -> None:
    a = clinic.attachments(clinic.a, clinic.a_cred, "a")
    item = a.add(clinic.patient, _letter(tmp_path / "k.pdf", 4096), title="Key test")
    a.push_pending()
    sync_at(clinic.a, clinic.a_cred)
    # A copy of b's records with no server to ask and no key: the refusal names the way out.
    b = clinic.attachments(clinic.b, None, "b")
    sync_at(clinic.b, clinic.b_cred)
    b_cache = b.cache.path_for(item.blob_id or "")
    b_cache.parent.mkdir(parents=True, exist_ok=True)
    b_cache.write_bytes(a.cache.path_for(item.blob_id or "").read_bytes())
    with clinic.b.database.write("admin", "test.forget", "attachment_key", "all") as tx:
        tx.execute("DELETE FROM meta WHERE key = 'attachment_keys'")
    with pytest.raises(AttachmentProblem, match="attachment key import"):
        b.open_to(item.id, tmp_path / "k-copy.pdf")
    import_key(clinic.b.records, export_key(clinic.a.records))
    b.open_to(item.id, tmp_path / "k-copy.pdf")
    assert (tmp_path / "k-copy.pdf").read_bytes() == (tmp_path / "k.pdf").read_bytes()


def test_on_s3_only_ciphertext_is_stored_and_a_cut_upload_resumes(
    tmp_path: Path, moto: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # moto's dummy credentials
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"careline-chart-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    env = {
        "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": moto.url,
        "S3_ENCRYPTION_THRESHOLD": str(5 * MiB), "AWS_REGION": "us-east-1",
    }  # fmt: skip
    with live_server(tmp_path / "server", env) as live:
        clinic_id = add_clinic(live.server, "Bucket Clinic")
        a, a_cred = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "a")
        b, b_cred = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "b")
        patient = a.records.add_patient(family="Lind", given="Sven", birth_date="1950-01-01").id
        source = _letter(tmp_path / "ct.pdf", 12 * MiB)
        on_a = Attachments(a.records, tmp_path / "a", credential=a_cred)
        item = on_a.add(patient, source, title="CT report", category="imaging")
        assert item.blob_id is not None
        path = on_a.cache.path_for(item.blob_id)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()

        def cut(done: int, total: int) -> None:
            if done > 7 * MiB:
                raise _Cut

        with pytest.raises(_Cut):
            blob_client.push(a_cred, item.blob_id, path, sha, cut)
        assert on_a.push_pending() == 1
        sync_at(a, a_cred)
        sync_at(b, b_cred)
        out = tmp_path / "ct-copy.pdf"
        Attachments(b.records, tmp_path / "b", credential=b_cred).open_to(item.id, out)
        assert out.read_bytes() == source.read_bytes()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert any(k.endswith(f"/attachments/{item.blob_id}") for k in keys)
        for key in keys:
            assert MARKER not in s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert not _holds_marker(tmp_path / "server")
        a.lock()
        b.lock()
    s3.close()


def test_an_upload_resumes_after_the_server_restarts(tmp_path: Path) -> None:
    port = free_port()
    with live_server(tmp_path / "server", port=port) as live:
        clinic_id = add_clinic(live.server, "Restart Clinic")
        a, a_cred = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "a")
        patient = a.records.add_patient(family="Rest", given="Art", birth_date="1966-06-16").id
        on_a = Attachments(a.records, tmp_path / "a", credential=a_cred)
        item = on_a.add(patient, _letter(tmp_path / "mri.pdf", 10 * MiB), title="MRI")
        assert item.blob_id is not None
        path = on_a.cache.path_for(item.blob_id)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()

        def cut(done: int, total: int) -> None:
            if done > 6 * MiB:
                raise _Cut

        with pytest.raises(_Cut):
            blob_client.push(a_cred, item.blob_id, path, sha, cut)
    with pytest.raises(AttachmentProblem, match="Connection refused"):
        on_a.push_pending()  # the server is down: the file stays queued
    assert on_a.pending() == [item.blob_id]
    with live_server(tmp_path / "server", port=port):
        held, _ = blob_client.upload_offset(a_cred, item.blob_id)
        assert 0 < held < path.stat().st_size  # what arrived before the restart was kept
        assert blob_client.push(a_cred, item.blob_id, path, sha) == path.stat().st_size - held
        assert blob_client.upload_offset(a_cred, item.blob_id) == (0, True)
        on_a.push_pending()
        assert on_a.pending() == []
    a.lock()


def test_other_bytes_stored_under_a_files_id_are_noticed_by_its_uploader(
    clinic: Clinic, tmp_path: Path
) -> None:
    a = Attachments(clinic.a.records, tmp_path, credential=clinic.a_cred)
    real = a.add(clinic.patient, _letter(tmp_path / "real.pdf", 5000), title="Real")
    other = a.add(clinic.patient, _letter(tmp_path / "other.pdf", 7000), title="Other")
    assert real.blob_id is not None and other.blob_id is not None
    squatted = a.cache.path_for(other.blob_id).read_bytes()  # well-formed, but not "real"
    stored = _put(clinic, real.blob_id, squatted, hashlib.sha256(squatted).hexdigest())
    assert stored.status_code == 201
    with pytest.raises(AttachmentProblem, match="the server holds other bytes under"):
        a.push_pending()
    assert real.blob_id in a.pending()  # still queued, not marked as uploaded
