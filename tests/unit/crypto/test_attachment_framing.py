"""What the server checks of an attachment it cannot decrypt: the header and a total size
the chunk framing can produce."""

from __future__ import annotations

import io
import os

import pytest

from core.crypto.attachment_framing import check_framing
from core.crypto.streaming import (
    HEADER_SIZE,
    MIN_CHUNK_SIZE,
    AttachmentFormatError,
    TruncatedAttachmentError,
    encrypt_stream,
)


@pytest.mark.parametrize("size", [0, 1, MIN_CHUNK_SIZE - 1, MIN_CHUNK_SIZE, 3 * MIN_CHUNK_SIZE + 5])
def test_every_whole_attachment_passes(size: int) -> None:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(os.urandom(size)), out, os.urandom(32), b"aad", MIN_CHUNK_SIZE)
    data = out.getvalue()
    assert check_framing(data[:HEADER_SIZE], len(data)) == MIN_CHUNK_SIZE


def test_cut_padded_or_foreign_uploads_are_refused() -> None:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(b"x" * 3000), out, os.urandom(32), b"aad", MIN_CHUNK_SIZE)
    data = out.getvalue()
    header = data[:HEADER_SIZE]
    # Cut right after a whole chunk: the final chunk is missing.
    whole_chunks = HEADER_SIZE + 2 * (MIN_CHUNK_SIZE + 16)
    with pytest.raises(TruncatedAttachmentError, match="do not end with a final chunk"):
        check_framing(header, whole_chunks)
    with pytest.raises(TruncatedAttachmentError, match="shorter than its"):
        check_framing(header, HEADER_SIZE - 1)
    with pytest.raises(AttachmentFormatError, match="bad magic"):
        check_framing(b"%PDF-1.7" + header[8:], len(data))
    with pytest.raises(AttachmentFormatError, match="version 9"):
        check_framing(header[:8] + b"\x09" + header[9:], len(data))
