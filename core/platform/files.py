"""Durable renames: what every atomic file write here needs after ``os.replace``."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable. Windows cannot open a directory to
    fsync it (NTFS journals the rename itself), so there this does nothing."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
