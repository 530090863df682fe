"""A bundle of files read back under one folder: names that would leave it are refused."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from core.crypto.bundle import BundleError, Packer, Unpacker


def _bundle(names: list[str]) -> bytes:
    raw = json.dumps({"files": [{"name": n, "size": 1} for n in names]}).encode()
    return struct.pack(">I", len(raw)) + raw + b"x" * len(names)


def _unpack(data: bytes, folder: Path) -> dict[str, Any]:
    unpacker = Unpacker(folder, lambda manifest: None)
    with unpacker:
        unpacker.write(data)
        return unpacker.finish()


def test_files_come_back_as_they_went_in(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"first")
    (tmp_path / "b").write_bytes(b"")
    packed = Packer({"format": "t"}, [("one", tmp_path / "a"), ("sub/two", tmp_path / "b")])
    with packed:
        data = packed.read()
    manifest = _unpack(data, tmp_path / "out")
    assert manifest["format"] == "t"
    assert (tmp_path / "out" / "one").read_bytes() == b"first"
    assert (tmp_path / "out" / "sub" / "two").read_bytes() == b""
    assert (tmp_path / "out" / "one").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "name", ["../escape", "/etc/passwd", "a/../../b", "..\\..\\escape", "C:\\Windows\\x", "C:x"]
)
def test_a_name_that_would_leave_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    # Backslashes and drive letters leave the folder on Windows, where Path joins them so.
    with pytest.raises(BundleError, match="outside its folder"):
        _unpack(_bundle([name]), tmp_path / "out")
    assert not any(tmp_path.rglob("escape"))
