"""Blob stores (filesystem and real moto S3) and encrypted, content-addressed attachments."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import pytest

from core.crypto.streaming import HeaderAuthenticationError
from core.store.blobs import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
    BlobStoreError,
    FilesystemBlobStore,
    InvalidBlobIdError,
    get_attachment,
    put_attachment,
)
from core.store.blobs.s3 import S3BlobStore
from tests.services import Service

MiB = 1024 * 1024
MARKER = b"PATIENT:Jo-Smith-1970-01-01;MRN=0042"
KEK = bytes(range(32))
ID_KEY_A = b"tenant-a blob id key, 32 bytes.."
ID_KEY_B = b"tenant-b blob id key, 32 bytes.."
AAD = b"tenant-a|attachment"
PART = 5 * MiB  # S3's smallest part size (moto enforces it too)


def blob_id(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


class PatternStream(io.RawIOBase):
    """``size`` bytes generated on the fly (never held whole), with MARKER throughout.

    Optionally raises after ``fail_after`` bytes, like a dropped upload.
    """

    def __init__(self, size: int, fail_after: int | None = None) -> None:
        super().__init__()
        block = bytearray()
        while len(block) < 64 * 1024:
            block += MARKER + hashlib.sha256(len(block).to_bytes(8, "big")).digest()
        self._block = bytes(block)
        self._size = size
        self._pos = 0
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise ConnectionResetError("source went away")
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos, len(self._block))
        offset = self._pos % len(self._block)
        n = min(n, len(self._block) - offset)
        view[:n] = self._block[offset : offset + n]
        self._pos += n
        return n


def pattern(size: int, fail_after: int | None = None) -> BinaryIO:
    """A non-seekable BinaryIO over a PatternStream."""
    return io.BufferedReader(PatternStream(size, fail_after))


def contains_marker(stream: BinaryIO) -> bool:
    tail = b""
    while block := stream.read(4 * MiB):
        if MARKER in tail + block:
            return True
        tail = block[-len(MARKER) :]
    return False


@pytest.fixture(scope="module")
def s3(moto: Service) -> Iterator[Any]:
    client = boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"careline-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    client = request.getfixturevalue("s3")
    return S3BlobStore(request.getfixturevalue("bucket"), client, PART, part_size=PART)


# -- both stores ---------------------------------------------------------------------------


def test_put_get_exists_delete(store: BlobStore) -> None:
    bid = blob_id(1)
    assert not store.exists(bid)
    assert store.put(bid, io.BytesIO(b"ciphertext")) == 10
    assert store.exists(bid)
    with store.get(bid) as f:
        assert f.read() == b"ciphertext"
    assert store.put(bid, io.BytesIO(b"replaced")) == 8
    with store.get(bid) as f:
        assert f.read() == b"replaced"
    store.delete(bid)
    assert not store.exists(bid)
    store.delete(bid)  # idempotent


def test_missing_blob_is_named(store: BlobStore) -> None:
    bid = blob_id(2)
    with pytest.raises(BlobNotFoundError, match=f"blob '{bid}': not found") as info:
        store.get(bid)
    assert info.value.blob_id == bid


BAD_IDS = [
    "",
    "../../../etc/passwd",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "../" + "a" * 61,
    "a" * 31 + "/" + "a" * 32,
    "a" * 63 + "\x00",
    "a" * 63 + "\n",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_before_any_io(store: BlobStore, bad: str, tmp_path: Path) -> None:
    for call in (
        lambda: store.put(bad, io.BytesIO(b"x")),
        lambda: store.get(bad),
        lambda: store.exists(bad),
        lambda: store.delete(bad),
    ):
        with pytest.raises(InvalidBlobIdError, match="invalid id: expected 64 lowercase hex"):
            call()
    assert not (tmp_path / "etc").exists()


# -- filesystem ----------------------------------------------------------------------------


def test_filesystem_layout_and_permissions(tmp_path: Path) -> None:
    fs = FilesystemBlobStore(tmp_path / "blobs")
    bid = blob_id(3)
    fs.put(bid, io.BytesIO(b"x" * 100))
    path = tmp_path / "blobs" / bid[:2] / bid
    assert fs.path_for(bid) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "blobs").stat().st_mode) == 0o700


def test_filesystem_failed_write_leaves_old_blob_and_no_temp_files(tmp_path: Path) -> None:
    fs = FilesystemBlobStore(tmp_path / "blobs")
    bid = blob_id(4)
    with pytest.raises(ConnectionResetError):
        fs.put(bid, pattern(3 * MiB, fail_after=2 * MiB))
    assert not fs.exists(bid)
    assert list(fs.path_for(bid).parent.iterdir()) == []
    fs.put(bid, io.BytesIO(b"old version"))
    with pytest.raises(ConnectionResetError):
        fs.put(bid, pattern(3 * MiB, fail_after=MiB))
    with fs.get(bid) as f:
        assert f.read() == b"old version"
    assert [p.name for p in fs.path_for(bid).parent.iterdir()] == [bid]


def test_filesystem_error_names_blob_and_path(tmp_path: Path) -> None:
    fs = FilesystemBlobStore(tmp_path / "blobs")
    bid = blob_id(5)
    fs.path_for(bid).parent.write_text("a file where the fan-out directory should be")
    with pytest.raises(BlobStoreError, match=f"blob '{bid}': could not write .*{bid}"):
        fs.put(bid, io.BytesIO(b"x"))


# -- S3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seekable", [True, False], ids=["file", "stream"])
@pytest.mark.parametrize(
    ("size", "parts"),
    [(1000, 0), (PART - 1, 0), (PART, 1), (2 * PART + 123, 3)],
    ids=["small", "below", "at-threshold", "three-parts"],
)
def test_s3_single_put_below_threshold_multipart_at_and_above(
    s3: Any, bucket: str, tmp_path: Path, seekable: bool, size: int, parts: int
) -> None:
    store = S3BlobStore(bucket, s3, multipart_threshold=PART, part_size=PART)
    bid = blob_id(size)
    if seekable:
        path = tmp_path / "ciphertext"
        with path.open("wb") as out, pattern(size) as generated:
            shutil.copyfileobj(generated, out)
        with path.open("rb") as src:
            assert store.put(bid, src) == size
    else:
        assert store.put(bid, pattern(size)) == size
    head = s3.head_object(Bucket=bucket, Key=bid)
    assert head["ContentLength"] == size
    etag = head["ETag"].strip('"')
    assert etag.endswith(f"-{parts}") if parts else "-" not in etag
    with store.get(bid) as got, pattern(size) as expected:
        while block := got.read(MiB):
            assert block == expected.read(len(block))
        assert expected.read(1) == b""


def test_s3_small_threshold_tops_up_first_part(s3: Any, bucket: str) -> None:
    store = S3BlobStore(bucket, s3, multipart_threshold=1024, part_size=PART)
    bid = blob_id(6)
    assert store.put(bid, pattern(PART + 10)) == PART + 10
    assert s3.head_object(Bucket=bucket, Key=bid)["ETag"].strip('"').endswith("-2")


@pytest.mark.parametrize("seekable", [True, False], ids=["file", "stream"])
def test_s3_failed_multipart_upload_is_aborted(s3: Any, bucket: str, seekable: bool) -> None:
    store = S3BlobStore(bucket, s3, multipart_threshold=PART, part_size=PART)
    bid = blob_id(7)

    class Failing(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            if self.tell() >= PART:
                raise ConnectionResetError("disk went away")
            return super().read(size)

    src: BinaryIO = Failing(bytes(3 * PART)) if seekable else pattern(3 * PART, PART + 1)
    with pytest.raises(ConnectionResetError):
        store.put(bid, src)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not store.exists(bid)


def test_s3_errors_name_blob_bucket_and_problem(s3: Any) -> None:
    store = S3BlobStore("careline-no-such-bucket", s3)
    bid = blob_id(8)
    with pytest.raises(
        BlobStoreError,
        match=f"blob '{bid}': S3 PutObject of s3://careline-no-such-bucket/{bid} failed: "
        "bucket 'careline-no-such-bucket' does not exist",
    ):
        store.put(bid, io.BytesIO(b"x"))
    # HEAD cannot tell a missing bucket from a missing key; GET can.
    assert not store.exists(bid)
    with pytest.raises(BlobStoreError, match=r"GetObject .* bucket 'careline-no-such-bucket'"):
        store.get(bid)
    with pytest.raises(ValueError, match="part_size must be between"):
        S3BlobStore("b", s3, part_size=MiB)


def test_s3_prefix(s3: Any, bucket: str) -> None:
    store = S3BlobStore(bucket, s3, prefix="attachments/")
    bid = blob_id(9)
    store.put(bid, io.BytesIO(b"x"))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"attachments/{bid}"]


# -- encrypted attachments -----------------------------------------------------------------


def raw_bytes(store: BlobStore, bid: str) -> bytes:
    """What is really stored: the file on disk, or the object as S3 returns it."""
    if isinstance(store, FilesystemBlobStore):
        return store.path_for(bid).read_bytes()
    assert isinstance(store, S3BlobStore)
    body = store.client.get_object(Bucket=store.bucket, Key=bid)["Body"]
    try:
        return bytes(body.read())
    finally:
        body.close()


def test_attachment_round_trip_dedup_and_no_plaintext_at_rest(store: BlobStore) -> None:
    size = 3 * MiB + 17
    stored = put_attachment(store, pattern(size), kek=KEK, aad=AAD, id_key=ID_KEY_A)
    assert not stored.deduplicated
    assert stored.plaintext_size == size
    assert stored.uploaded_bytes > size
    raw = raw_bytes(store, stored.blob_id)
    assert len(raw) == stored.uploaded_bytes
    assert MARKER not in raw
    out = io.BytesIO()
    result = get_attachment(store, stored.blob_id, out, kek=KEK, aad=AAD, id_key=ID_KEY_A)
    assert result.plaintext_digest == stored.plaintext_digest
    assert out.getvalue() == pattern(size).read()

    again = put_attachment(store, pattern(size), kek=KEK, aad=AAD, id_key=ID_KEY_A)
    assert (again.blob_id, again.deduplicated, again.uploaded_bytes) == (stored.blob_id, True, 0)
    other_tenant = put_attachment(store, pattern(size), kek=KEK, aad=AAD, id_key=ID_KEY_B)
    assert other_tenant.blob_id != stored.blob_id  # names do not reveal equal files
    assert not other_tenant.deduplicated


def test_attachment_swapped_object_or_wrong_keys_are_refused(store: BlobStore) -> None:
    a = put_attachment(store, io.BytesIO(b"A" * 5000), kek=KEK, aad=AAD, id_key=ID_KEY_A)
    b = put_attachment(store, io.BytesIO(b"B" * 5000), kek=KEK, aad=AAD, id_key=ID_KEY_A)
    store.put(b.blob_id, io.BytesIO(raw_bytes(store, a.blob_id)))  # misfiled object
    with pytest.raises(BlobIntegrityError, match="does not match the blob id"):
        get_attachment(store, b.blob_id, io.BytesIO(), kek=KEK, aad=AAD, id_key=ID_KEY_A)
    with pytest.raises(BlobIntegrityError):
        get_attachment(store, a.blob_id, io.BytesIO(), kek=KEK, aad=AAD, id_key=ID_KEY_B)
    with pytest.raises(HeaderAuthenticationError):
        get_attachment(store, a.blob_id, io.BytesIO(), kek=os.urandom(32), aad=AAD, id_key=ID_KEY_A)
    with pytest.raises(HeaderAuthenticationError):
        get_attachment(store, a.blob_id, io.BytesIO(), kek=KEK, aad=b"other", id_key=ID_KEY_A)


def test_64_mb_attachment_keeps_memory_flat(store: BlobStore) -> None:
    """Encrypt+store and fetch+decrypt 64 MiB generated on the fly: traced peak < 6 MiB."""
    size = 64 * MiB
    source = pattern(size)
    tracemalloc.start()
    try:
        stored = put_attachment(store, source, kek=KEK, aad=AAD, id_key=ID_KEY_A)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with open(os.devnull, "wb") as sink:
            result = get_attachment(store, stored.blob_id, sink, kek=KEK, aad=AAD, id_key=ID_KEY_A)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.plaintext_size == result.plaintext_size == size
    assert put_peak < 6 * MiB, f"upload path peaked at {put_peak / MiB:.1f} MiB"
    assert get_peak < 6 * MiB, f"download path peaked at {get_peak / MiB:.1f} MiB"
    if isinstance(store, FilesystemBlobStore):
        with store.path_for(stored.blob_id).open("rb") as f:
            assert not contains_marker(f)
