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


def test_a_bundle_whose_manifest_could_not_be_read_back_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unpacker refuses a manifest past MAX_MANIFEST: a backup listing that many files
    # (attachments) would be written, then never restore.
    monkeypatch.setattr("core.crypto.bundle.MAX_MANIFEST", 200)
    (tmp_path / "f").write_bytes(b"x")
    files = [(f"attachments/{i:03d}", tmp_path / "f") for i in range(10)]
    with pytest.raises(BundleError, match="10 files make a manifest of"):
        Packer({}, files)


def test_the_unpacker_says_which_file_it_had_reached(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"first")
    (tmp_path / "b").write_bytes(b"second")
    with Packer({}, [("one", tmp_path / "a"), ("two", tmp_path / "b")]) as packed:
        data = packed.read()
    unpacker = Unpacker(tmp_path / "out", lambda manifest: None)
    with unpacker:
        assert unpacker.position() is None  # in the manifest
        unpacker.write(data[: len(data) - len(b"second") - 2])
        assert unpacker.position() == "one"
        unpacker.write(data[len(data) - len(b"second") - 2 : len(data) - 3])
        assert unpacker.position() == "two"
        unpacker.write(data[len(data) - 3 :])
        assert unpacker.position() is None  # past the last file
        unpacker.finish()
