"""Chunked envelope encryption: round trips, and every way of tampering is named."""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO, cast

import blake3
import pytest

from core.crypto import streaming
from core.crypto.errors import DecryptionError
from core.crypto.streaming import (
    HEADER_SIZE,
    MAGIC,
    TAG_SIZE,
    AttachmentFormatError,
    ChunkAuthenticationError,
    HeaderAuthenticationError,
    StreamEncryptor,
    TruncatedAttachmentError,
    content_id,
    decrypt_stream,
    encrypt_stream,
    iter_decrypt,
)

KEK = bytes(range(32))
AAD = b"tenant-1|attachment|rec-42"
CHUNK = 1024
MiB = 1024 * 1024
MARKER = b"PATIENT:Jo-Smith-1970-01-01"


def seal(data: bytes, chunk: int = CHUNK, kek: bytes = KEK, aad: bytes = AAD) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, kek, aad, chunk)
    return out.getvalue()


def unseal(blob: bytes, kek: bytes = KEK, aad: bytes = AAD) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, kek, aad)
    return out.getvalue()


def chunks_of(blob: bytes, chunk: int = CHUNK) -> tuple[bytes, list[bytes]]:
    """Split a sealed attachment into its header and its sealed chunks."""
    header, rest = blob[:HEADER_SIZE], blob[HEADER_SIZE:]
    step = chunk + TAG_SIZE
    return header, [rest[i : i + step] for i in range(0, len(rest), step)]


def plaintext(size: int) -> bytes:
    body = (MARKER + os.urandom(64)) * (size // (len(MARKER) + 64) + 1)
    return body[:size]


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, CHUNK),
        (1, CHUNK),
        (CHUNK - 1, CHUNK),
        (CHUNK, CHUNK),
        (3 * CHUNK, CHUNK),
        (3 * CHUNK + 5, CHUNK),
        (2 * MiB, streaming.DEFAULT_CHUNK_SIZE),
        (2 * MiB + MiB // 2, streaming.DEFAULT_CHUNK_SIZE),
    ],
)
def test_round_trip(size: int, chunk: int) -> None:
    data = plaintext(size)
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(data), out, KEK, AAD, chunk)
    blob = out.getvalue()
    assert result.plaintext_size == size
    assert result.plaintext_digest == blake3.blake3(data).digest()
    assert result.ciphertext_size == len(blob) == streaming.ciphertext_size(size, chunk)
    _, sealed = chunks_of(blob, chunk)
    assert len(sealed) == size // chunk + 1  # exact multiples end with an empty final chunk
    back = io.BytesIO()
    decrypted = decrypt_stream(io.BytesIO(blob), back, KEK, AAD)
    assert back.getvalue() == data
    assert decrypted.plaintext_digest == result.plaintext_digest
    assert decrypted.plaintext_size == size


class Trickle(io.RawIOBase):
    """A source (or a tampered ciphertext) that hands out at most 7 bytes per read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(memoryview(buffer)[:7])


class ReadOnly:
    """A source with ``read`` only (no ``readinto``)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 5) if size >= 0 else size)


def test_short_reads_and_read_only_sources() -> None:
    data = plaintext(3 * CHUNK + 100)
    for src in (Trickle(data), ReadOnly(data)):
        out = io.BytesIO()
        encrypt_stream(cast(BinaryIO, src), out, KEK, AAD, CHUNK)
        assert unseal(out.getvalue()) == data
        back = io.BytesIO()
        decrypt_stream(cast(BinaryIO, Trickle(out.getvalue())), back, KEK, AAD)
        assert back.getvalue() == data


def test_ciphertext_is_fresh_and_hides_plaintext() -> None:
    data = plaintext(5 * CHUNK)
    a, b = seal(data), seal(data)
    assert a != b  # fresh DEK and nonce prefix each time
    assert MARKER not in a
    assert a[: len(MAGIC)] == MAGIC


def test_wrong_kek_or_aad_is_refused() -> None:
    blob = seal(plaintext(3000))
    with pytest.raises(HeaderAuthenticationError, match="wrong key-encryption key"):
        unseal(blob, kek=os.urandom(32))
    with pytest.raises(HeaderAuthenticationError, match="wrong associated data"):
        unseal(blob, aad=b"tenant-2|attachment|rec-42")


# Header layout: magic 8 | version 1 | chunk size 4 | nonce prefix 8 | wrapped DEK 60.
@pytest.mark.parametrize(
    ("offset", "value", "error", "message"),
    [
        (0, b"X", AttachmentFormatError, "bad magic"),
        (8, b"\x02", AttachmentFormatError, "version 2 is not supported"),
        (9, struct.pack(">I", 2048), HeaderAuthenticationError, "altered header"),
        (9, struct.pack(">I", 1), AttachmentFormatError, "chunk size 1, outside"),
        (13, b"\xff", HeaderAuthenticationError, "altered header"),
        (21, b"\xff", HeaderAuthenticationError, "altered header"),  # wrap nonce
        (40, b"\xff", HeaderAuthenticationError, "altered header"),  # wrapped key
        (HEADER_SIZE - 1, b"\xff", HeaderAuthenticationError, "altered header"),  # tag
    ],
)
def test_header_tampering_is_detected(
    offset: int, value: bytes, error: type[DecryptionError], message: str
) -> None:
    blob = bytearray(seal(plaintext(3000)))
    original = bytes(blob[offset : offset + len(value)])
    if original == value:
        value = bytes(x ^ 1 for x in value)
    blob[offset : offset + len(value)] = value
    with pytest.raises(error, match=message):
        unseal(bytes(blob))


def test_truncation_is_detected() -> None:
    data = plaintext(3 * CHUNK + 100)
    blob = seal(data)
    header, sealed = chunks_of(blob)
    assert len(sealed) == 4
    without_final = header + b"".join(sealed[:3])
    with pytest.raises(TruncatedAttachmentError, match=r"final chunk missing \(.*after chunk 2"):
        unseal(without_final)
    with pytest.raises(TruncatedAttachmentError, match="final chunk missing"):
        unseal(header)
    with pytest.raises(ChunkAuthenticationError, match="chunk 3 failed authentication") as info:
        unseal(blob[:-10])  # inside the final chunk
    assert info.value.index == 3
    with pytest.raises(TruncatedAttachmentError, match="chunk 3 is 5 bytes"):
        unseal(without_final + sealed[3][:5])
    with pytest.raises(TruncatedAttachmentError, match="header is 20 bytes"):
        unseal(blob[:20])
    with pytest.raises(TruncatedAttachmentError, match="header is 0 bytes"):
        unseal(b"")
    # A cut inside a full chunk makes it look final: it fails, sealed as non-final.
    with pytest.raises(ChunkAuthenticationError, match="chunk 1 failed"):
        unseal(header + sealed[0] + sealed[1][:-1])


def test_exact_multiple_without_its_empty_final_chunk_is_truncated() -> None:
    blob = seal(plaintext(2 * CHUNK))
    header, sealed = chunks_of(blob)
    assert len(sealed[-1]) == TAG_SIZE  # the empty final chunk
    with pytest.raises(TruncatedAttachmentError, match="final chunk missing"):
        unseal(header + b"".join(sealed[:-1]))


def test_reordered_dropped_and_duplicated_chunks_are_detected() -> None:
    header, c = chunks_of(seal(plaintext(4 * CHUNK + 1)))
    with pytest.raises(ChunkAuthenticationError, match="chunk 0 failed"):
        unseal(header + c[1] + c[0] + b"".join(c[2:]))
    with pytest.raises(ChunkAuthenticationError, match="chunk 2 failed"):
        unseal(header + c[0] + c[1] + b"".join(c[3:]))  # chunk 2 dropped
    with pytest.raises(ChunkAuthenticationError, match="chunk 2 failed"):
        unseal(header + c[0] + c[1] + c[1] + b"".join(c[2:]))
    with pytest.raises(ChunkAuthenticationError, match="chunk 1 failed"):
        unseal(header + c[0] + c[-1])  # the final chunk moved forward


def test_chunks_from_another_file_are_detected() -> None:
    header_a, a = chunks_of(seal(plaintext(3 * CHUNK + 7)))
    header_b, b = chunks_of(seal(plaintext(3 * CHUNK + 7)))
    with pytest.raises(ChunkAuthenticationError, match="chunk 1 failed"):
        unseal(header_a + a[0] + b[1] + a[2] + a[3])
    with pytest.raises(ChunkAuthenticationError, match="chunk 0 failed"):
        unseal(header_b + b"".join(a))


def test_altered_chunk_bytes_and_appended_data_are_detected() -> None:
    blob = seal(plaintext(3 * CHUNK + 7))
    for position in (HEADER_SIZE + 5, HEADER_SIZE + CHUNK + TAG_SIZE + CHUNK + 3, len(blob) - 1):
        altered = bytearray(blob)
        altered[position] ^= 0x01
        with pytest.raises(ChunkAuthenticationError):
            unseal(bytes(altered))
    # Appended bytes become part of the last chunk read, which then fails.
    for extra in (b"\x00", os.urandom(CHUNK + TAG_SIZE + 1)):
        with pytest.raises(ChunkAuthenticationError, match="chunk 3 failed"):
            unseal(blob + extra)


def test_stream_encryptor_and_iter_decrypt() -> None:
    data = plaintext(3 * CHUNK + 11)
    enc = StreamEncryptor(io.BytesIO(data), KEK, AAD, CHUNK)
    with pytest.raises(RuntimeError, match="not been fully encrypted"):
        _ = enc.result
    pieces = list(enc)
    assert len(pieces) == 1 + 4  # header + chunks
    assert enc.result.plaintext_size == len(data)
    blob = b"".join(pieces)
    assert enc.result.ciphertext_size == len(blob)
    out = list(iter_decrypt(io.BytesIO(blob), KEK, AAD))
    assert [len(p) for p in out] == [CHUNK, CHUNK, CHUNK, 11]
    assert b"".join(out) == data
    # Truncation only shows at the end: earlier chunks were already handed out.
    got: list[bytes] = []
    with pytest.raises(TruncatedAttachmentError):
        got.extend(iter_decrypt(io.BytesIO(blob[: -(11 + TAG_SIZE)]), KEK, AAD))
    assert len(got) == 3


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes, got 16"):
        seal(b"x", kek=bytes(16))
    with pytest.raises(ValueError, match="chunk size must be between"):
        seal(b"x", chunk=100)
    with pytest.raises(ValueError, match="chunk size must be between"):
        StreamEncryptor(io.BytesIO(b""), KEK, AAD, streaming.MAX_CHUNK_SIZE + 1)
    with pytest.raises(ValueError, match="32 bytes"):
        unseal(seal(b"x"), kek=KEK + b"x")


def test_content_id_is_keyed_per_tenant_and_binds_aad() -> None:
    digest = blake3.blake3(b"scan.pdf contents").digest()
    tenant_a, tenant_b = os.urandom(32), os.urandom(32)
    blob_id = content_id(tenant_a, digest, AAD)
    assert len(blob_id) == 64
    assert int(blob_id, 16) >= 0
    assert blob_id == content_id(tenant_a, digest, AAD)
    assert blob_id != content_id(tenant_b, digest, AAD)
    assert blob_id != content_id(tenant_a, digest, AAD + b"x")
    assert blob_id != digest.hex()
    with pytest.raises(ValueError, match="at least 16 bytes"):
        content_id(b"short", digest, AAD)
