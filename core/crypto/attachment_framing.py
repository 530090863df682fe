"""What a keyless party (the server) can check of an encrypted attachment.

The server never holds the clinic's attachment key, so it cannot decrypt or recompute the
blob id (a keyed HMAC over the plaintext). It can still refuse damaged or foreign uploads:
the client declares the SHA-256 of the ciphertext it sends, and the server checks

* the header: magic, format version and a chunk size inside the allowed range;
* the framing: a total size that the chunk layout of :mod:`core.crypto.streaming` can
  produce (whole chunks of ``chunk size + tag`` bytes, then one shorter final chunk of at
  least a tag), so a truncated or padded upload is refused before it is stored;
* the declared ciphertext SHA-256 and size against what arrived.

Authenticity of the content (that it decrypts, and to the plaintext its id names) is only
checkable with the key, by the workstation that opens it.
"""

from __future__ import annotations

from core.crypto.streaming import (
    _PREFIX,
    HEADER_SIZE,
    MAGIC,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    VERSION,
    AttachmentFormatError,
    TruncatedAttachmentError,
)


def check_framing(header: bytes, total_size: int) -> int:
    """Check an encrypted attachment's header and total size; return its chunk size.

    Raises AttachmentFormatError (not a Careline attachment, unsupported version, bad chunk
    size, bytes after the final chunk) or TruncatedAttachmentError, each naming the fault.
    """
    if len(header) >= len(MAGIC) and header[: len(MAGIC)] != MAGIC:
        raise AttachmentFormatError("not a Careline encrypted attachment: bad magic bytes")
    if len(header) < _PREFIX.size or total_size < HEADER_SIZE:
        raise TruncatedAttachmentError(
            f"attachment is truncated: {total_size} bytes, shorter than its "
            f"{HEADER_SIZE}-byte header"
        )
    _, version, chunk_size, _ = _PREFIX.unpack_from(header)
    if version != VERSION:
        raise AttachmentFormatError(f"attachment format version {version} is not supported")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise AttachmentFormatError(
            f"attachment header declares chunk size {chunk_size}, outside "
            f"{MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}"
        )
    last = (total_size - HEADER_SIZE) % (chunk_size + TAG_SIZE)
    if last < TAG_SIZE:
        # Either the final (short) chunk is missing or cut inside its tag.
        raise TruncatedAttachmentError(
            f"attachment is truncated: {total_size} bytes do not end with a final chunk "
            f"(chunk size {chunk_size})"
        )
    return int(chunk_size)
