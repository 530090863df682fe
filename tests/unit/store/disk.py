"""Byte-exact snapshots of a data folder, to prove a failed operation changed nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder`` (the database, its -wal and -shm, keyslots.json, anything
    else): relative path -> (mode, SHA-256 of the bytes). A file that appears, disappears,
    changes mode or changes a single byte makes two snapshots differ."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
