"""Blobs as S3 objects (boto3), streamed: single PutObject below a size threshold,
multipart upload at or above it.

Only ciphertext is ever uploaded: attachments are encrypted client-side
(:mod:`core.crypto.streaming`) before they reach this store. Bucket-side encryption (SSE)
may be on as well, but nothing here asks for it or relies on it.

Memory stays flat: a seekable source (a file) is uploaded section by section straight from
the file; an unseekable one is spooled to an unnamed temporary file one part at a time
(at most ``max(multipart_threshold, part_size)`` bytes of ciphertext on disk). boto3 reads
each body in bounded blocks. A failed multipart upload is aborted, so no parts linger.

Requires the ``server`` extra (boto3); import this module, not the package, to use it.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from core.store.blobs.base import BlobStore, copy_stream, validate_blob_id
from core.store.blobs.errors import BlobNotFoundError, BlobStoreError

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class _Section(io.RawIOBase):
    """A read-only, seekable window ``[start, start + size)`` of a seekable file.

    Positions are relative to the window, so botocore can ``seek(0)`` to rewind a body for
    checksums and retries.
    """

    def __init__(self, file: BinaryIO, start: int, size: int) -> None:
        super().__init__()
        self._file = file
        self._start = start
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        self._file.seek(self._start + self._pos)
        data = self._file.read(want)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        # Skip RawIOBase's bytearray-then-copy; botocore reads bounded blocks.
        if size < 0:
            size = self._size - self._pos
        size = min(size, self._size - self._pos)
        if size <= 0:
            return b""
        self._file.seek(self._start + self._pos)
        data = self._file.read(size)
        self._pos += len(data)
        return data

    def __len__(self) -> int:
        return self._size - self._pos


class _S3Reader(io.RawIOBase):
    """A StreamingBody as a raw stream whose read errors become BlobStoreErrors."""

    def __init__(self, body: Any, blob_id: str, where: str) -> None:
        super().__init__()
        self._body = body
        self._blob_id = blob_id
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except (BotoCoreError, OSError) as exc:
            raise BlobStoreError(self._blob_id, f"download of {self._where} failed: {exc}") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class S3BlobStore(BlobStore):
    """A :class:`BlobStore` in an S3 bucket (any S3-compatible endpoint boto3 can reach).

    ``client`` is a boto3 S3 client. Objects are named ``prefix + blob_id``. Blobs of
    ``multipart_threshold`` bytes or more go up as multipart uploads in ``part_size`` parts
    (the first part may be larger when the threshold is).
    """

    def __init__(
        self,
        bucket: str,
        client: Any,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        prefix: str = "",
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 1 <= multipart_threshold <= MAX_PART_SIZE:
            raise ValueError(
                f"multipart_threshold must be between 1 and {MAX_PART_SIZE} bytes, "
                f"got {multipart_threshold}"
            )
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(
                f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes (S3 "
                f"limits), got {part_size}"
            )
        self.bucket = bucket
        self.client = client
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.prefix = prefix
        self._spool_dir = spool_dir
        config = getattr(getattr(client, "meta", None), "config", None)
        # Mirror s3transfer: with boto's default flexible checksums, declare CRC32 on the
        # multipart upload so every part's checksum is checked and recorded.
        self._checksum: dict[str, str] = (
            {"ChecksumAlgorithm": "CRC32"}
            if getattr(config, "request_checksum_calculation", None) == "when_supported"
            else {}
        )

    def key_for(self, blob_id: str) -> str:
        """The object key of a blob (after validating the id)."""
        return self.prefix + validate_blob_id(blob_id)

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _fail(
        self, blob_id: str, action: str, key: str, exc: Exception, *, reading: bool = False
    ) -> NoReturn:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "unknown"))
            message = error.get("Message") or exc.response.get("ResponseMetadata", {}).get(
                "HTTPStatusCode", ""
            )
            if reading and code in _MISSING_CODES:
                raise BlobNotFoundError(blob_id, f"not found ({self._where(key)})") from exc
            detail = f"{code}: {message}" if message else code
            if code == "NoSuchBucket":
                detail = f"bucket {self.bucket!r} does not exist ({detail})"
        else:
            detail = str(exc)
        raise BlobStoreError(
            blob_id, f"S3 {action} of {self._where(key)} failed: {detail}"
        ) from exc

    # -- writing -----------------------------------------------------------------------

    def put(self, blob_id: str, stream: BinaryIO) -> int:
        """Upload ``stream``: PutObject below the threshold, multipart at or above it."""
        key = self.key_for(blob_id)
        if stream.seekable():
            return self._put_seekable(blob_id, key, stream)
        return self._put_unseekable(blob_id, key, stream)

    def _put_seekable(self, blob_id: str, key: str, stream: BinaryIO) -> int:
        start = stream.tell()
        size = stream.seek(0, io.SEEK_END) - start
        stream.seek(start)
        if size < self.multipart_threshold:
            self._put_object(blob_id, key, _Section(stream, start, size), size)
            return size
        first = max(self.multipart_threshold, self.part_size)

        def parts() -> Iterator[tuple[_Section, int]]:
            offset = 0
            while offset < size:
                length = min(first if offset == 0 else self.part_size, size - offset)
                yield _Section(stream, start + offset, length), length
                offset += length

        self._multipart(blob_id, key, parts())
        stream.seek(start + size)
        return size

    def _put_unseekable(self, blob_id: str, key: str, stream: BinaryIO) -> int:
        with tempfile.TemporaryFile(dir=self._spool_dir) as spool:
            size = copy_stream(stream, spool.write, self.multipart_threshold)
            if size < self.multipart_threshold:
                spool.flush()
                self._put_object(blob_id, key, _Section(spool, 0, size), size)
                return size
            if size < self.part_size:
                size += copy_stream(stream, spool.write, self.part_size - size)

            def parts() -> Iterator[tuple[_Section, int]]:
                nonlocal size
                length = size
                while length > 0:
                    spool.flush()
                    yield _Section(spool, 0, length), length
                    spool.seek(0)
                    spool.truncate()
                    length = copy_stream(stream, spool.write, self.part_size)
                    size += length

            self._multipart(blob_id, key, parts())
            return size

    def _put_object(self, blob_id: str, key: str, body: _Section, size: int) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentLength=size)
        except (BotoCoreError, ClientError) as exc:
            self._fail(blob_id, "PutObject", key, exc)

    def _multipart(self, blob_id: str, key: str, parts: Iterator[tuple[_Section, int]]) -> None:
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, **self._checksum
            )
        except (BotoCoreError, ClientError) as exc:
            self._fail(blob_id, "CreateMultipartUpload", key, exc)
        upload_id = created["UploadId"]
        done: list[dict[str, Any]] = []
        action = "UploadPart 1"
        try:
            for number, (body, length) in enumerate(parts, start=1):
                if number > MAX_PARTS:
                    raise BlobStoreError(
                        blob_id,
                        f"too large for {MAX_PARTS} parts of {self.part_size} bytes; "
                        "raise part_size",
                    )
                action = f"UploadPart {number}"
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                    **self._checksum,
                )
                part = {"PartNumber": number, "ETag": response["ETag"]}
                if "ChecksumCRC32" in response and self._checksum:
                    part["ChecksumCRC32"] = response["ChecksumCRC32"]
                done.append(part)
            action = "CompleteMultipartUpload"
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
            )
        except BaseException as exc:
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, BotoCoreError | ClientError):
                self._fail(blob_id, action, key, exc)
            raise

    # -- reading and the rest -------------------------------------------------------------

    def get(self, blob_id: str) -> BinaryIO:
        """Stream the object (a buffered reader over the HTTP body); close it when done."""
        key = self.key_for(blob_id)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            self._fail(blob_id, "GetObject", key, exc, reading=True)
        raw = _S3Reader(response["Body"], blob_id, self._where(key))
        return io.BufferedReader(raw, buffer_size=256 * 1024)

    def exists(self, blob_id: str) -> bool:
        """HeadObject: True if the object exists, False if S3 says 404."""
        key = self.key_for(blob_id)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES:
                return False
            self._fail(blob_id, "HeadObject", key, exc)
        except BotoCoreError as exc:
            self._fail(blob_id, "HeadObject", key, exc)
        return True

    def delete(self, blob_id: str) -> None:
        """DeleteObject (S3 does not report whether the object existed)."""
        key = self.key_for(blob_id)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            self._fail(blob_id, "DeleteObject", key, exc)
