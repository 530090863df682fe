"""Stand-in content for files added to a chart in tests: Careline refuses a ``.pdf`` or an
image whose first bytes are not what its name says (core/sync/attachment_files.py), so a
test's made-up file starts as a real one of its kind does, and keeps its size."""

from __future__ import annotations

from pathlib import PurePath

# How a file of each kind tests add really starts.
_STARTS = {
    ".pdf": b"%PDF-1.4\n",
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff\xe0",
}


def as_named(name: str, body: bytes) -> bytes:
    """``body`` with its first bytes those a file called ``name`` starts with (same length
    where ``body`` is longer than them); other names' bodies as they are."""
    start = _STARTS.get(PurePath(name).suffix.lower(), b"")
    return start + body[len(start) :]
