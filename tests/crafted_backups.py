"""Hostile sealed-file headers, as anyone can write them: the header is read (``backup
info``, the start of a restore) before anything authenticates it. Shared by the unit tests
of :mod:`core.crypto.sealed_file` and the CLI tests of both programs."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

from core.crypto import sealed_file
from core.crypto.kdf import FAST_PARAMS


def header_bytes(doc: Any) -> bytes:
    """A sealed file's prefix and header (``doc`` as JSON, or raw bytes), then 64 bytes
    standing in for content."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return sealed_file.MAGIC + struct.pack(">BI", 1, len(body)) + body + bytes(64)


def opener(kind: str = "passphrase", salt: bytes = b"s" * 16) -> dict[str, Any]:
    """A well-formed passphrase-style opener (it opens nothing)."""
    return {"kind": kind, "wrapped": base64.b64encode(b"x" * 48).decode(),
            "salt": base64.b64encode(salt).decode(), "kdf": FAST_PARAMS.to_dict()}  # fmt: skip


def header_doc(kind: str = "workstation", **changes: Any) -> dict[str, Any]:
    """A well-formed header of ``kind``, one passphrase opener; ``changes`` replace fields."""
    opens = "operator" if kind.startswith("server") else "passphrase"
    doc = {"kind": kind, "created": "2026-01-01T00:00:00+00:00", "info": {},
           "openers": [opener(opens)]}  # fmt: skip
    return doc | changes


def write_crafted(folder: Path, kind: str = "workstation") -> dict[str, Path]:
    """The crafted files by name: ``nested`` (200 KB of brackets), ``empty_salt`` (an
    opener Argon2id refuses), ``escapes`` (terminal control sequences in kind and time) and
    ``spoof`` (``info`` naming the facts ``backup info`` reports, well-formed otherwise)."""
    op = "operator" if kind.startswith("server") else "passphrase"
    escapes = kind + "\x1b[2J\x1b[31mOK: verified by Careline\x1b[0m"
    claims = {"kind": "server", "created": "1999-01-01", "opens_with": "recovery",
              "attachments": 3}  # fmt: skip
    files = {
        "nested": header_bytes(b"[" * 100_000 + b"]" * 100_000),
        "empty_salt": header_bytes(header_doc(kind, openers=[opener(op, b"")])),
        "escapes": header_bytes(header_doc(escapes, created="2026-01-01\r\x1b[K")),
        "spoof": header_bytes(header_doc(kind, info=claims)),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.clbackup"
        paths[name].write_bytes(data)
    return paths
