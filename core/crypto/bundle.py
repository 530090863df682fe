"""A bundle of files as one stream, to seal (core.crypto.sealed_file) without staging it:
``length (4, big-endian) | manifest (JSON) | each listed file's bytes, in order``.

The manifest lists ``files`` as ``{"name": relative path, "size": bytes}`` plus whatever the
caller adds. Reading back (:class:`Unpacker`) writes each file under one folder, refusing
names that would leave it, and files longer or shorter than listed.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from core.errors import CarelineError

_LENGTH = struct.Struct(">I")
MAX_MANIFEST = 16 * 1024 * 1024  # a server with many attachments lists many files


class BundleError(CarelineError):
    """The bundle's manifest or content is not as it should be."""


def _checked_name(name: Any) -> str:
    path = PurePosixPath(str(name))
    # Backslashes and drive letters ("C:") are separators or roots on Windows, where the
    # folder / name join would follow them out of the folder.
    if (not str(name) or path.is_absolute() or any(p in ("..", "") for p in path.parts)
            or any(ch in str(name) for ch in "\\:")):  # fmt: skip
        raise BundleError(f"the backup lists a file outside its folder: {str(name)[:80]!r}")
    return str(path)


class Packer(io.RawIOBase):
    """Readable: the bundle of ``files`` (name in the bundle, file on disk) and ``manifest``."""

    def __init__(self, manifest: dict[str, Any], files: list[tuple[str, Path]]) -> None:
        listed: list[dict[str, Any]] = [
            {"name": _checked_name(n), "size": p.stat().st_size} for n, p in files
        ]
        raw = json.dumps(manifest | {"files": listed}).encode("utf-8")
        if len(raw) > MAX_MANIFEST:  # Unpacker would refuse it: never write such a bundle
            raise BundleError(
                f"{len(listed)} files make a manifest of {len(raw):,} bytes, more than the "
                f"{MAX_MANIFEST:,} a bundle may hold"
            )
        self._sizes = [int(entry["size"]) for entry in listed]
        self._parts: list[bytes | Path] = [_LENGTH.pack(len(raw)), raw, *(p for _, p in files)]
        self._index = 0
        self._current: io.BufferedIOBase | None = None

    def readable(self) -> bool:
        """Yes."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current part, moving to the next when one ends."""
        view = memoryview(buffer).cast("B")
        while True:
            if self._current is None:
                if self._index >= len(self._parts):
                    return 0
                part = self._parts[self._index]
                self._index += 1
                self._current = io.BytesIO(part) if isinstance(part, bytes) else part.open("rb")
            n = int(self._current.readinto(view))
            if n:
                return n
            self._current.close()
            self._current = None

    def close(self) -> None:
        """Close the file being read."""
        if self._current is not None:
            self._current.close()
        super().close()


def _new_private(path: Path) -> BinaryIO:
    """A new file only this user can read."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


class Unpacker(io.RawIOBase):
    """Writable: splits a bundle into its manifest and the files it lists, under ``folder``.
    ``check`` sees the manifest first (and raises to refuse it)."""

    def __init__(self, folder: Path, check: Callable[[dict[str, Any]], None]) -> None:
        self.folder = folder
        self._check = check
        self.manifest: dict[str, Any] | None = None
        self._head = bytearray()
        self._files: list[tuple[Path, int]] = []
        self._out: BinaryIO | None = None
        self._current = ""  # the name of the file ``_out`` writes
        self._left = 0

    def writable(self) -> bool:
        """Yes."""
        return True

    def write(self, data: Any) -> int:
        """Take the next bytes of the bundle."""
        view = memoryview(data).cast("B")
        total = len(view)
        while len(view):
            if self.manifest is None:
                view = self._take_manifest(view)
                continue
            if self._out is None:
                if not self._files:
                    raise BundleError("the backup's content is longer than its manifest says")
                path, self._left = self._files.pop(0)
                self._current = path.relative_to(self.folder).as_posix()
                self._out = _new_private(path)
            n = min(self._left, len(view))
            self._out.write(view[:n])
            view = view[n:]
            self._left -= n
            self._close_if_done()
        return total

    def position(self) -> str | None:
        """The name of the file being written, or of the next one when none is open (None:
        still in the manifest, or past the last file). A failure of the stream feeding this
        unpacker lies in that file's bytes (or in the manifest)."""
        if self.manifest is None:
            return None
        if self._out is not None:
            return self._current
        return self._files[0][0].relative_to(self.folder).as_posix() if self._files else None

    def _close_if_done(self) -> None:
        if self._out is not None and self._left == 0:
            self._out.close()
            self._out = None
        # Empty files are complete as soon as they are reached.
        while self._out is None and self._files and self._files[0][1] == 0:
            _new_private(self._files.pop(0)[0]).close()

    def _take_manifest(self, view: memoryview) -> memoryview:
        need = _LENGTH.size
        if len(self._head) >= _LENGTH.size:
            need += _LENGTH.unpack_from(self._head)[0]
            if need > _LENGTH.size + MAX_MANIFEST:
                raise BundleError("the backup's manifest is too large (damaged?)")
        n = min(need - len(self._head), len(view))
        self._head += view[:n]
        if len(self._head) == need and need > _LENGTH.size:
            self.manifest = self._parse(bytes(self._head[_LENGTH.size :]))
            self._close_if_done()
        return view[n:]

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
            files = [(_checked_name(f["name"]), int(f["size"])) for f in data["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"the backup's manifest is malformed: {exc}") from None
        if len({name for name, _ in files}) != len(files) or any(s < 0 for _, s in files):
            raise BundleError("the backup's manifest lists a file twice or a negative size")
        manifest = dict(data)
        self._check(manifest)
        self._files = [(self.folder / name, size) for name, size in files]
        return manifest

    def finish(self) -> dict[str, Any]:
        """The manifest, once every listed file is complete."""
        self._close_if_done()
        if self.manifest is None or self._files or self._out is not None:
            raise BundleError("the backup's content ends before every file in it is complete")
        return self.manifest

    def close(self) -> None:
        """Close the file being written."""
        if self._out is not None:
            self._out.close()
        super().close()
