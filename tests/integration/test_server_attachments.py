"""Attachments through the live server over TLS, on the filesystem and on (moto) S3:
streamed round trips, content-addressed dedup, tenant isolation, auth, nothing in plaintext
at rest, multipart above the threshold, and hostile requests."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import boto3
import httpx
import pytest

from core.crypto.kdf import FAST_PARAMS
from core.keys.providers import provider_from_settings
from core.server.service import ClinicServer, FilesystemClinicBlobs, S3ClinicBlobs
from core.server.settings import load_server_settings
from core.sync import attachments_client as client
from core.sync.enroll import ServerCredential, enroll, tls_trust
from core.sync.http_transport import DeviceRejectedError
from tests.integration import server_fixtures
from tests.integration.server_fixtures import Live, live_server
from tests.services import Service, create_postgres_database, drop_postgres_database

MiB = 1024 * 1024
MARKER = b"PLAINTEXT-MARKER-Zephyrine-Quill"
S3_THRESHOLD = 5 * MiB  # the smallest S3_ENCRYPTION_THRESHOLD settings allow


@dataclass
class Setup:
    """A live server on one storage backend, with two clinics and a device in each."""

    backend: str
    live: Live
    a: ServerCredential
    b: ServerCredential
    s3: Any = None
    bucket: str = ""

    def auth(self, credential: ServerCredential) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential.token}"}

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.live.url, verify=tls_trust(self.live.ca_pem), timeout=60)


def _device(live: Live, clinic_id: str) -> ServerCredential:
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    return enroll(live.url, code, live.ca_pem, "desk")


@pytest.fixture(scope="module", params=["filesystem", "s3+postgres"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"server-{backend}")
    env: dict[str, str] = {}
    s3: Any = None
    bucket = ""
    database_url = None
    if backend == "s3+postgres":  # the production shape: S3 blobs, PostgreSQL records
        database_url = create_postgres_database()
        moto: Service = request.getfixturevalue("moto")
        bucket = f"careline-att-{uuid.uuid4().hex[:12]}"
        s3 = boto3.client(
            "s3", endpoint_url=moto.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        s3.create_bucket(Bucket=bucket)
        env = {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": moto.url,
            "S3_ENCRYPTION_THRESHOLD": str(S3_THRESHOLD),
            "AWS_REGION": "us-east-1",
            "DATABASE_URL": database_url,
        }

    def make_server(data_dir: Path, extra: Mapping[str, str] | None = None) -> ClinicServer:
        # The server as `careline-server run` configures it: blob store from settings.
        settings = load_server_settings(cli={"data_dir": data_dir}, env={**env, **(extra or {})})
        provider = provider_from_settings(settings, data_dir)
        return ClinicServer(data_dir, provider, FAST_PARAMS, settings=settings)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(server_fixtures, "make_server", make_server)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")  # moto's dummy credentials for boto3
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with live_server(data_dir) as live:
            expected = S3ClinicBlobs if s3 is not None else FilesystemClinicBlobs
            assert isinstance(live.server.blob_stores, expected)
            clinic_a = live.server.create_clinic("Attachment Clinic A").id
            clinic_b = live.server.create_clinic("Attachment Clinic B").id
            yield Setup(backend, live, _device(live, clinic_a), _device(live, clinic_b), s3, bucket)
    if s3 is not None:
        s3.close()
    if database_url is not None:
        drop_postgres_database(database_url)


def _file(folder: Path, name: str, size: int, marker: bool = False) -> Path:
    path = folder / name
    data = bytearray(os.urandom(size))
    if marker:
        for at in range(0, max(size - len(MARKER), 0), 64 * 1024):
            data[at : at + len(MARKER)] = MARKER
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("size", [0, 1, MiB, 3 * MiB + 123])
def test_round_trip(setup: Setup, tmp_path: Path, size: int) -> None:
    src = _file(tmp_path, "scan.bin", size)
    blob_id = client.upload(setup.a, src)
    assert len(blob_id) == 64
    got = client.download(setup.a, blob_id, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert got.size == size
    assert got.digest == blake3.blake3(src.read_bytes()).hexdigest()
    assert (tmp_path / "back.bin").stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_content_addressed_dedup_within_a_clinic_only(setup: Setup, tmp_path: Path) -> None:
    src = _file(tmp_path, "lab.pdf", 200_000)
    with setup.http() as http:
        first = http.post("/v1/attachments", content=src.read_bytes(), headers=setup.auth(setup.a))
        again = http.post("/v1/attachments", content=src.read_bytes(), headers=setup.auth(setup.a))
        other = http.post("/v1/attachments", content=src.read_bytes(), headers=setup.auth(setup.b))
    assert first.status_code == again.status_code == other.status_code == 201
    one, two, three = first.json(), again.json(), other.json()
    assert one["id"] == two["id"]
    assert (one["deduplicated"], two["deduplicated"]) == (False, True)
    assert one["size"] == 200_000
    assert one["digest"] == blake3.blake3(src.read_bytes()).hexdigest()
    # The same file in another clinic gets an unrelated id (per-clinic id key).
    assert three["id"] != one["id"] and not three["deduplicated"]
    assert three["digest"] == one["digest"]
    entries = setup.live.server.audit_entries(setup.a.clinic_id)
    actions = [(e[3], e[5]) for e in entries if e[4] == "attachment"]
    assert [a for a, e in actions if e == one["id"]] == ["attachment.upload"] * 2


def test_a_device_cannot_reach_another_clinics_attachment(setup: Setup, tmp_path: Path) -> None:
    blob_id = client.upload(setup.b, _file(tmp_path, "b.bin", 5000))
    with setup.http() as http:
        assert http.get(f"/v1/attachments/{blob_id}", headers=setup.auth(setup.b)).is_success
        theirs = http.get(f"/v1/attachments/{blob_id}", headers=setup.auth(setup.a))
        nowhere = http.get(f"/v1/attachments/{secrets.token_hex(32)}", headers=setup.auth(setup.a))
    assert theirs.status_code == nowhere.status_code == 404
    assert theirs.content == nowhere.content
    assert theirs.json() == {"detail": "no attachment with this id in this clinic"}
    with pytest.raises(client.AttachmentNotFoundError, match="no attachment with this id"):
        client.download(setup.a, blob_id, tmp_path / "stolen.bin")
    assert not (tmp_path / "stolen.bin").exists()
    assert list(tmp_path.glob("*.part")) == []


def test_nothing_is_stored_in_plaintext(setup: Setup, tmp_path: Path) -> None:
    src = _file(tmp_path, "note.txt", 2 * MiB + 7, marker=True)
    blob_id = client.upload(setup.a, src)
    assert MARKER in src.read_bytes()
    stored: list[bytes] = []
    if setup.s3 is not None:
        listing = setup.s3.list_objects_v2(Bucket=setup.bucket)["Contents"]
        keys = [o["Key"] for o in listing]
        assert any(k.endswith(f"/attachments/{blob_id}") for k in keys)
        stored = [setup.s3.get_object(Bucket=setup.bucket, Key=k)["Body"].read() for k in keys]
    for f in setup.live.server.data_dir.rglob("*"):
        if f.is_file():
            stored.append(f.read_bytes())
    assert stored
    assert all(MARKER not in content for content in stored)
    assert client.download(setup.a, blob_id, tmp_path / "back.txt").size == 2 * MiB + 7


@pytest.mark.parametrize("setup", ["s3+postgres"], indirect=True)
def test_s3_multipart_above_the_threshold(setup: Setup, tmp_path: Path) -> None:
    big = client.upload(setup.a, _file(tmp_path, "big.bin", 6 * MiB))
    small = client.upload(setup.a, _file(tmp_path, "small.bin", 4 * MiB))
    prefix = f"clinics/{setup.a.clinic_id}/attachments/"
    big_head = setup.s3.head_object(Bucket=setup.bucket, Key=prefix + big)
    small_head = setup.s3.head_object(Bucket=setup.bucket, Key=prefix + small)
    assert big_head["ETag"].strip('"').endswith("-2")  # multipart, 5 MiB parts
    assert "-" not in small_head["ETag"]  # one PutObject
    assert client.download(setup.a, big, tmp_path / "big.back").size == 6 * MiB


@pytest.mark.parametrize("setup", ["filesystem"], indirect=True)
def test_tokens_are_required_and_revocation_is_immediate(setup: Setup, tmp_path: Path) -> None:
    src = _file(tmp_path, "x.bin", 100)
    blob_id = client.upload(setup.a, src)
    with setup.http() as http:
        anonymous_up = http.post("/v1/attachments", content=b"abc")
        anonymous_down = http.get(f"/v1/attachments/{blob_id}")
        anonymous_bad_id = http.get("/v1/attachments/a%2Fb")
        forged = http.get(
            f"/v1/attachments/{blob_id}", headers={"Authorization": f"Bearer {setup.a.device_id}.x"}
        )
    assert anonymous_up.status_code == anonymous_down.status_code == forged.status_code == 401
    assert anonymous_bad_id.status_code == 401
    assert "device token is required" in anonymous_up.json()["detail"]

    clinic = setup.a.clinic_id
    doomed = _device(setup.live, clinic)
    kept = client.upload(doomed, src)
    setup.live.server.registry.revoke(doomed.device_id)
    with pytest.raises(DeviceRejectedError, match="revoked"):
        client.upload(doomed, src)
    with pytest.raises(DeviceRejectedError, match="revoked"):
        client.download(doomed, kept, tmp_path / "no.bin")
    assert not (tmp_path / "no.bin").exists()


@pytest.mark.parametrize("setup", ["filesystem"], indirect=True)
def test_malformed_ids_and_oversized_uploads(setup: Setup, tmp_path: Path) -> None:
    auth = setup.auth(setup.a)
    with setup.http() as http:
        for bad in [
            "abc",
            "A" * 64,
            "0" * 63 + "g",
            "-" * 64,
            "0" * 65,
            "0" * 64 + "%00",
            "a%2Fb",
            "",
        ]:
            reply = http.get(f"/v1/attachments/{bad}", headers=auth)
            assert reply.status_code == 400, bad
            assert "malformed attachment id" in reply.json()["detail"]
        server = setup.live.server
        server.max_attachment_bytes = 4096
        try:
            declared = http.post("/v1/attachments", content=b"x" * 5000, headers=auth)
            chunked = http.post(
                "/v1/attachments", content=iter([b"x" * 3000, b"y" * 3000]), headers=auth
            )
            fits = http.post("/v1/attachments", content=b"z" * 4096, headers=auth)
        finally:
            server.max_attachment_bytes = 512 * MiB
    assert declared.status_code == chunked.status_code == 413
    assert "larger than the limit of 4096 bytes" in declared.json()["detail"]
    assert "larger than the limit" in chunked.json()["detail"]
    assert fits.status_code == 201
    with pytest.raises(client.AttachmentError, match="malformed attachment id"):
        client.download(setup.a, "../../etc/passwd", tmp_path / "x")


@pytest.mark.parametrize("setup", ["filesystem"], indirect=True)
def test_tampering_is_refused_and_leaves_no_file(setup: Setup, tmp_path: Path) -> None:
    src = _file(tmp_path, "scan.bin", 3 * MiB)
    blob_id = client.upload(setup.a, src)
    [blob] = setup.live.server.data_dir.glob(f"blobs/*/{blob_id[:2]}/{blob_id}")
    original = blob.read_bytes()
    try:
        late = bytearray(original)
        late[-20] ^= 1  # the last chunk: the response has started when this is found
        blob.write_bytes(bytes(late))
        with pytest.raises(client.AttachmentError, match="cut short"):
            client.download(setup.a, blob_id, tmp_path / "late.bin")
        assert not (tmp_path / "late.bin").exists()
        early = bytearray(original)
        early[30] ^= 1  # the header: refused before any byte is sent
        blob.write_bytes(bytes(early))
        with pytest.raises(client.AttachmentError, match="failed its integrity check"):
            client.download(setup.a, blob_id, tmp_path / "early.bin")
        # A blob of the same clinic filed under another id decrypts, but is not that id.
        other = client.upload(setup.a, _file(tmp_path, "other.bin", 10))
        [other_blob] = setup.live.server.data_dir.glob(f"blobs/*/{other[:2]}/{other}")
        blob.write_bytes(other_blob.read_bytes())
        with pytest.raises(client.AttachmentError, match="cut short"):
            client.download(setup.a, blob_id, tmp_path / "swapped.bin")
        assert list(tmp_path.glob("*.part")) == []
        with pytest.raises(client.AttachmentError, match="expected"):
            client.download(setup.a, other, tmp_path / "o.bin", expected_digest="00" * 32)
    finally:
        blob.write_bytes(original)
    assert client.download(setup.a, blob_id, tmp_path / "ok.bin").size == 3 * MiB


@pytest.mark.parametrize("setup", ["filesystem"], indirect=True)
def test_openapi_describes_the_attachment_endpoints(setup: Setup) -> None:
    with setup.http() as http:
        doc = http.get("/openapi.json").json()
    upload = doc["paths"]["/v1/attachments"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    created = upload["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"].endswith("/AttachmentStored")
    assert {"400", "401", "413"} <= set(upload["responses"])
    stored = doc["components"]["schemas"]["AttachmentStored"]
    assert set(stored["required"]) >= {"id", "size", "digest"}
    get = doc["paths"]["/v1/attachments/{attachment_id}"]["get"]
    assert get["responses"]["200"]["content"]["application/octet-stream"]["schema"] == {
        "type": "string",
        "format": "binary",
    }
    assert get["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Problem"
    )
