"""Chunked envelope encryption of attachments: flat memory, any file size.

Each attachment gets its own random 256-bit data-encryption key (DEK). The DEK is wrapped
(AES-256-GCM) by a caller-supplied 32-byte key-encryption key (KEK, e.g. the tenant's data
key) and the caller's associated data (AAD, e.g. ``tenant|attachment|record-id``), and
the file is then encrypted in fixed-size chunks under the DEK, one chunk in memory at a
time.

Format, version 1 (all integers big-endian)::

    header  = magic "CLATTENC" (8) | version (1) | chunk size (4) | nonce prefix (8)
              | wrapped DEK (60: nonce 12 | AES-GCM(KEK, DEK) 32 | tag 16)
    chunk i = AES-256-GCM(DEK, nonce = nonce prefix | i (4), plaintext chunk,
                          AAD = SHA-256(header) | i (8) | final flag (1)) with its 16-byte tag

The DEK wrap authenticates the caller's AAD and every header field before it (magic,
version, chunk size, nonce prefix), so a wrong KEK, a wrong AAD and a changed header all
fail there, before any chunk is read. Every chunk's AAD carries the hash of the whole
header, its index and whether it is the last chunk, so

* reordering, dropping or duplicating chunks fails at the first misplaced chunk (its index
  no longer matches the nonce and AAD it was sealed with);
* a chunk taken from another attachment fails (other DEK, other header hash);
* truncation is detected: only the last chunk is sealed with the final flag, and every
  non-final chunk holds exactly ``chunk size`` bytes while the final one holds fewer
  (possibly zero, so a file that is an exact multiple of the chunk size ends with an empty
  final chunk). A stream that ends without a final chunk is refused; bytes appended after
  the final chunk are read as part of it, so it fails authentication.

Decryption writes each chunk only after it has been authenticated, but an attack on a
later chunk is only found when that chunk is reached: the output of a decryption that
raised must be discarded (write to a temporary file and rename on success, or abort the
HTTP response). Errors name what failed, e.g. ``"attachment is truncated: final chunk
missing (stream ends after chunk 3)"`` or ``"chunk 3 failed authentication: ..."``.

Content addressing (:func:`content_id`): the blob id is
``HMAC-SHA256(id key, "careline/blob-id/v1" | len(AAD) | AAD | BLAKE3(plaintext))`` in hex.
The BLAKE3 digest is computed while encrypting, so naming costs no second pass (BLAKE3, not
SHA-256: on CPUs without SHA instructions SHA-256 ran at a tenth of AES-GCM's speed and
capped attachment throughput; the HMAC over the 32-byte digest is negligible). Under a
per-tenant id key the same file gets unrelated names in different tenants, so stored object
names do not reveal that two tenants hold the same file; within a tenant, equal content
under equal AAD gets one name (deduplication). Binding the AAD means a deduplicated object
always decrypts under the AAD its readers use. The id key must be a separate per-tenant
secret (not the KEK); ``EncryptResult.plaintext_digest`` is an unkeyed hash of PHI and
belongs only inside encrypted records.

What Python cannot wipe, stated plainly: plaintext read from the source with ``read()``
(sources without ``readinto``) and every ``bytes`` chunk handed out by the generator APIs
(:class:`StreamEncryptor`, :func:`iter_decrypt`) are immutable objects that linger until the
allocator reuses their memory. The paths that do not hand out chunks keep plaintext in
reusable ``bytearray`` buffers that are zeroed when the stream ends: the DEK is
generated/unwrapped into a ``bytearray`` that is zeroed as soon as the cipher context holds
it (OpenSSL keeps its own key schedule until the context is freed, then clears it), and
:func:`encrypt_stream` (with a ``readinto`` source) and :func:`decrypt_stream` keep plaintext
only in buffers zeroed at the end. The KEK is the caller's object; the caller owns its
lifetime. Memory use is a few chunk-sized buffers, whatever the file size.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import hmac
import os
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.crypto.errors import DecryptionError

DIGEST_SIZE = 32  # BLAKE3 output used for content ids
MAGIC = b"CLATTENC"
VERSION = 1
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12
NONCE_PREFIX_SIZE = 8
WRAPPED_DEK_SIZE = NONCE_SIZE + KEY_SIZE + TAG_SIZE
DEFAULT_CHUNK_SIZE = 1024 * 1024
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
MAX_CHUNKS = 2**32  # the chunk counter is the last 4 bytes of the nonce

_PREFIX = struct.Struct(f">{len(MAGIC)}sBI{NONCE_PREFIX_SIZE}s")
HEADER_SIZE = _PREFIX.size + WRAPPED_DEK_SIZE
_WRAP_LABEL = b"careline/attachment-dek/v1\x00"
_ID_LABEL = b"careline/blob-id/v1\x00"

Key = bytes | bytearray


class TruncatedAttachmentError(DecryptionError):
    """The ciphertext ends too early: in the header, inside a chunk, or before the final chunk."""


class AttachmentFormatError(DecryptionError):
    """Not a Careline encrypted attachment, an unsupported version, or bytes after the end."""


class HeaderAuthenticationError(DecryptionError):
    """The wrapped DEK did not open: wrong KEK, wrong associated data, or an altered header."""


class ChunkAuthenticationError(DecryptionError):
    """A chunk failed authentication; ``index`` says which (0-based)."""

    def __init__(self, index: int) -> None:
        super().__init__(
            f"chunk {index} failed authentication: altered, reordered, taken from another "
            "attachment, or cut short"
        )
        self.index = index


@dataclass(frozen=True)
class EncryptResult:
    """What encryption saw: the plaintext's BLAKE3 digest (32 raw bytes) and both sizes."""

    plaintext_digest: bytes
    plaintext_size: int
    ciphertext_size: int


@dataclass(frozen=True)
class DecryptResult:
    """What decryption produced: the plaintext's BLAKE3 digest (32 raw bytes) and its size."""

    plaintext_digest: bytes
    plaintext_size: int


def ciphertext_size(plaintext_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Exact size of the encrypted form of ``plaintext_size`` bytes."""
    chunks = plaintext_size // chunk_size + 1  # the final chunk is short, possibly empty
    return HEADER_SIZE + plaintext_size + chunks * TAG_SIZE


def largest_ciphertext_size(plaintext_size: int) -> int:
    """The most bytes any valid encryption of ``plaintext_size`` bytes takes (with the
    smallest chunk size allowed, so the most tags): a bound for a download whose plaintext
    size is known, whatever chunk size its writer chose."""
    return ciphertext_size(max(plaintext_size, 0), MIN_CHUNK_SIZE)


def content_id(id_key: Key, plaintext_digest: bytes, aad: bytes) -> str:
    """The blob id (64 lowercase hex digits) of a plaintext, keyed per tenant.

    ``HMAC-SHA256(id_key, label | len(aad) | aad | plaintext_digest)``. Without ``id_key``
    nobody can compute or compare ids, so object names do not leak equality of files across
    tenants; ``aad`` is bound so one id always decrypts under one AAD.
    """
    if len(id_key) < 16:
        raise ValueError("the blob id key must be at least 16 bytes")
    if len(plaintext_digest) != DIGEST_SIZE:
        raise ValueError("plaintext_digest must be a raw 32-byte BLAKE3 digest")
    msg = _ID_LABEL + struct.pack(">I", len(aad)) + aad + plaintext_digest
    return hmac.new(id_key, msg, hashlib.sha256).hexdigest()


def _check_kek(kek: Key) -> None:
    if len(kek) != KEY_SIZE:
        raise ValueError(f"the key-encryption key must be {KEY_SIZE} bytes, got {len(kek)} bytes")


def _check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(
            f"chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, "
            f"got {chunk_size}"
        )


def _wrap_aad(prefix: bytes, aad: bytes) -> bytes:
    return _WRAP_LABEL + prefix + struct.pack(">I", len(aad)) + aad


def _chunk_aad(header_hash: bytes, index: int, final: bool) -> bytes:
    return header_hash + struct.pack(">QB", index, 1 if final else 0)


def _nonce(prefix: bytes, index: int) -> bytes:
    if index >= MAX_CHUNKS:
        raise ValueError("attachment has too many chunks for one key; use a larger chunk size")
    return prefix + struct.pack(">I", index)


def _wipe(buf: bytearray) -> None:
    """Zero a bytearray in place without allocating (exported views stay valid)."""
    if buf:
        ctypes.memset((ctypes.c_char * len(buf)).from_buffer(buf), 0, len(buf))


def _read_into(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src`` until it is full or the source ends; return bytes read.

    Loops over short reads (pipes, sockets, raw files). Uses ``readinto`` when the source has
    it, so plaintext lands in our wipeable buffer; otherwise copies from ``read()``.
    """
    readinto = getattr(src, "readinto", None)
    filled = 0
    total = len(view)
    while filled < total:
        if readinto is not None:
            n = readinto(view[filled:])
            if n is None:  # non-blocking source with nothing ready: not supported
                raise BlockingIOError("source stream would block; use a blocking stream")
        else:
            data = src.read(total - filled)
            n = len(data)
            view[filled : filled + n] = data
        if n == 0:
            break
        filled += n
    return filled


@functools.cache
def _sealer() -> ThreadPoolExecutor:
    """Shared threads that encrypt chunks while the caller hashes them (process-wide; two,
    so concurrent uploads do not queue behind one another for long)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="careline-seal")


def _encrypt_pieces(
    src: BinaryIO, kek: Key, aad: bytes, chunk_size: int, out: list[EncryptResult]
) -> Iterator[memoryview]:
    """Yield the header, then each sealed chunk as a view into one reused buffer.

    A view is valid only until the next item is requested. Appends the result to ``out``
    once the final chunk has been produced.
    """
    _check_kek(kek)
    _check_chunk_size(chunk_size)
    nonce_prefix = os.urandom(NONCE_PREFIX_SIZE)
    prefix = _PREFIX.pack(MAGIC, VERSION, chunk_size, nonce_prefix)
    dek = bytearray(os.urandom(KEY_SIZE))
    # Two plaintext buffers: the next chunk is read while the current one is sealed.
    plains = (bytearray(chunk_size), bytearray(chunk_size))
    sealed = bytearray(chunk_size + TAG_SIZE)
    try:
        wrap_nonce = os.urandom(NONCE_SIZE)
        wrapped = wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, dek, _wrap_aad(prefix, aad))
        cipher = AESGCM(dek)
        _wipe(dek)
        header = prefix + wrapped
        header_hash = hashlib.sha256(header).digest()
        yield memoryview(header)

        digest = blake3.blake3()
        views = (memoryview(plains[0]), memoryview(plains[1]))
        sealed_view = memoryview(sealed)
        index = 0
        size = 0
        written = len(header)
        n = _read_into(src, views[0])
        while True:
            final = n < chunk_size
            chunk = views[index % 2][:n]
            # BLAKE3 and file reads release the GIL, AES-GCM (cryptography) holds it: AES
            # runs on a second thread while this one hashes the chunk and reads the next
            # one into the other buffer, so the three overlap. (Hashing on the other thread
            # instead would wait for the GIL until AES had finished.) The encryption must
            # finish before its output buffer is handed out.
            out_view = sealed_view[: n + TAG_SIZE]
            sealing = _sealer().submit(
                cipher.encrypt_into,
                _nonce(nonce_prefix, index), chunk, _chunk_aad(header_hash, index, final),
                out_view,
            )  # fmt: skip
            try:
                digest.update(chunk)
                following = 0 if final else _read_into(src, views[(index + 1) % 2])
            finally:
                sealing.result()
            size += n
            written += n + TAG_SIZE
            yield out_view
            index += 1
            if final:
                break
            n = following
        out.append(EncryptResult(digest.digest(), size, written))
    finally:
        _wipe(dek)
        for plain in plains:
            _wipe(plain)


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    kek: Key,
    aad: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> EncryptResult:
    """Encrypt ``src`` into ``dst`` chunk by chunk under a fresh DEK wrapped by ``kek``.

    ``aad`` (e.g. ``b"tenant|attachment|id"``) must be given again to decrypt. ``dst.write``
    must consume its argument before returning (files, sockets and BytesIO do): the buffer
    behind it is reused for the next chunk. Memory stays at about two chunks.
    """
    results: list[EncryptResult] = []
    for piece in _encrypt_pieces(src, kek, aad, chunk_size, results):
        dst.write(piece)
    return results[0]


class StreamEncryptor:
    """Iterate to get the encrypted attachment piece by piece (e.g. as an HTTP request body).

    Yields the header, then one ``bytes`` per chunk; :attr:`result` is available once the
    iteration has finished. Single use.
    """

    def __init__(
        self, src: BinaryIO, kek: Key, aad: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        _check_kek(kek)
        _check_chunk_size(chunk_size)
        self._results: list[EncryptResult] = []
        self._pieces = _encrypt_pieces(src, kek, aad, chunk_size, self._results)

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            yield bytes(piece)

    @property
    def result(self) -> EncryptResult:
        """Hash and sizes; raises RuntimeError before the last piece has been taken."""
        if not self._results:
            raise RuntimeError("the attachment has not been fully encrypted yet")
        return self._results[0]


def _decrypt_pieces(
    src: BinaryIO, kek: Key, aad: bytes, out: list[DecryptResult]
) -> Iterator[memoryview]:
    """Yield each authenticated plaintext chunk as a view into one reused, finally wiped buffer."""
    _check_kek(kek)
    header = bytearray(HEADER_SIZE)
    got = _read_into(src, memoryview(header))
    if got >= len(MAGIC) and header[: len(MAGIC)] != MAGIC:
        raise AttachmentFormatError("not a Careline encrypted attachment: bad magic bytes")
    if got < HEADER_SIZE:
        raise TruncatedAttachmentError(
            f"attachment is truncated: header is {got} bytes, expected {HEADER_SIZE}"
        )
    _, version, chunk_size, nonce_prefix = _PREFIX.unpack_from(header)
    if version != VERSION:
        raise AttachmentFormatError(
            f"attachment format version {version} is not supported (this build reads "
            f"version {VERSION})"
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise AttachmentFormatError(
            f"attachment header declares chunk size {chunk_size}, outside "
            f"{MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}"
        )
    prefix = bytes(header[: _PREFIX.size])
    wrapped = bytes(header[_PREFIX.size :])
    dek = bytearray(KEY_SIZE)
    try:
        AESGCM(kek).decrypt_into(
            wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], _wrap_aad(prefix, aad), dek
        )
        cipher = AESGCM(dek)
    except InvalidTag as exc:
        raise HeaderAuthenticationError(
            "attachment header failed authentication: wrong key-encryption key, wrong "
            "associated data, or an altered header"
        ) from exc
    finally:
        _wipe(dek)
    header_hash = hashlib.sha256(header).digest()

    sealed = bytearray(chunk_size + TAG_SIZE)
    plain = bytearray(chunk_size)
    sealed_view = memoryview(sealed)
    plain_view = memoryview(plain)
    digest = blake3.blake3()
    size = 0
    index = 0
    try:
        while True:
            n = _read_into(src, sealed_view)
            if n == 0:
                raise TruncatedAttachmentError(
                    "attachment is truncated: final chunk missing"
                    + (f" (stream ends after chunk {index - 1})" if index else "")
                )
            if n < TAG_SIZE:
                raise TruncatedAttachmentError(
                    f"attachment is truncated: chunk {index} is {n} bytes, shorter than its "
                    f"{TAG_SIZE}-byte tag"
                )
            final = n < len(sealed)
            chunk = plain_view[: n - TAG_SIZE]
            try:
                cipher.decrypt_into(
                    _nonce(nonce_prefix, index),
                    sealed_view[:n],
                    _chunk_aad(header_hash, index, final),
                    chunk,
                )
            except InvalidTag as exc:
                raise ChunkAuthenticationError(index) from exc
            digest.update(chunk)
            size += len(chunk)
            yield chunk
            index += 1
            if final:
                break
        extra = src.read(1)
        if extra:
            raise AttachmentFormatError(
                f"attachment has trailing data after the final chunk (chunk {index - 1})"
            )
        out.append(DecryptResult(digest.digest(), size))
    finally:
        _wipe(plain)


def decrypt_stream(src: BinaryIO, dst: BinaryIO, kek: Key, aad: bytes) -> DecryptResult:
    """Decrypt and authenticate ``src`` into ``dst``; raise a DecryptionError naming the fault.

    Each chunk reaches ``dst`` only after it authenticated, but on an error ``dst`` may hold
    a verified prefix and must be discarded. ``dst.write`` must consume its argument before
    returning; the buffer behind it is reused and finally zeroed.
    """
    results: list[DecryptResult] = []
    for piece in _decrypt_pieces(src, kek, aad, results):
        dst.write(piece)
    return results[0]


def iter_decrypt(src: BinaryIO, kek: Key, aad: bytes) -> Iterator[bytes]:
    """Yield authenticated plaintext chunks (e.g. for a streaming HTTP response).

    An error can arrive after earlier chunks were yielded (truncation is only seen at the
    end); the consumer must then abort, not finish, what it was sending. The yielded
    ``bytes`` cannot be wiped.
    """
    results: list[DecryptResult] = []
    for piece in _decrypt_pieces(src, kek, aad, results):
        yield bytes(piece)
