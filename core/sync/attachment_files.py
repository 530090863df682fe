"""What a file must be before it goes into a chart: not empty, not past the size a chart's
file may be, and, for the kinds Careline can tell by their first bytes (PDF and images),
what its name says it is.

Checked before anything is encrypted or stored (:meth:`core.sync.attachments.Attachments.add`
and the app's Add dialog), so a refused file leaves nothing behind: a fake ``.pdf`` or an
empty scan was accepted before and found out only when someone opened it. Other kinds (a
Word document, a text file, a DICOM export) cannot be told apart reliably by a few bytes;
they are taken as they are, as before.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from core.errors import CarelineError

# The largest file a chart takes. The clinic server refuses ciphertext past
# core.server.service.MAX_ATTACHMENT_BYTES (512 MiB; a test checks this limit's ciphertext
# fits it): a larger file would be stored here and then fail to upload at every sync. Half
# of it leaves room, and is far past a scanned letter, a lab PDF or a photo.
MAX_FILE_BYTES = 256 * 1024 * 1024
# How much of a file's start is read to tell its kind (a PDF reader looks for its header
# in the first 1024 bytes, after anything a scanner put before it).
HEAD_BYTES = 1024

# Kinds told by their first bytes: media type -> (as people name it, signatures).
_SIGNED_KINDS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "application/pdf": ("a PDF", (b"%PDF-",)),
    "image/png": ("a PNG image", (b"\x89PNG\r\n\x1a\n",)),
    "image/jpeg": ("a JPEG image", (b"\xff\xd8\xff",)),
    "image/gif": ("a GIF image", (b"GIF87a", b"GIF89a")),
    "image/bmp": ("a BMP image", (b"BM",)),
    "image/webp": ("a WebP image", (b"RIFF",)),  # and "WEBP" at offset 8: _matches
    "image/tiff": ("a TIFF image", (b"II*\x00", b"MM\x00*")),
}


class FileRefused(CarelineError):
    """A file was not added to a chart; the message names the file and the problem."""


def media_type_of(path: Path) -> str:
    """The media type a file's name claims (``application/octet-stream`` if none)."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def size_text(size: int) -> str:
    """``12.3 MB``, ``512 KB``, ``80 bytes``: a size as people read it (1 MB = 1024 KB)."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} byte" + ("" if size == 1 else "s")


def _matches(media_type: str, head: bytes) -> bool:
    _, signatures = _SIGNED_KINDS[media_type]
    if media_type == "application/pdf":
        return b"%PDF-" in head[:HEAD_BYTES]
    if media_type == "image/webp":
        return head.startswith(b"RIFF") and head[8:12] == b"WEBP"
    return head.startswith(signatures)


def kind_of(head: bytes) -> str | None:
    """The media type of the kind ``head`` (a file's first bytes) starts as, if one of those
    Careline can tell; else None."""
    return next((t for t in _SIGNED_KINDS if _matches(t, head)), None)


def check_file(path: Path) -> str:
    """Refuse (FileRefused, naming the problem) a file that cannot go into a chart: not a
    readable file, empty, larger than :data:`MAX_FILE_BYTES`, or a PDF or image whose
    content is not what its name says. Returns the media type its name claims.

    Reads only the file's first bytes; the size is the file system's."""
    try:
        if not path.is_file():
            raise FileRefused(f"{path} is not a file" if path.exists() else f"no file {path}")
        size = path.stat().st_size
        with path.open("rb") as src:
            head = src.read(HEAD_BYTES)
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from exc
    name = path.name
    if size == 0 or not head:
        raise FileRefused(f"{name} is empty (0 bytes): there is nothing to add")
    if size > MAX_FILE_BYTES:
        shown, limit = size_text(size), size_text(MAX_FILE_BYTES)
        if shown == limit:  # just past it: "256 MB, larger than the 256 MB" says nothing
            shown, limit = f"{size:,} bytes", f"{MAX_FILE_BYTES:,} bytes ({limit})"
        raise FileRefused(f"{name} is {shown}, larger than the {limit} a file in a chart may be")
    media_type = media_type_of(path)
    if media_type in _SIGNED_KINDS and not _matches(media_type, head):
        claimed = _SIGNED_KINDS[media_type][0]
        actual = kind_of(head)
        if media_type == "application/pdf":
            problem = "it does not start with %PDF-"
        else:
            problem = (
                "its content is no image Careline recognises (damaged, or another kind of "
                f"file named {path.suffix})"
            )
        if actual is not None:
            problem = f"its content is {_SIGNED_KINDS[actual][0]}"
            ext = mimetypes.guess_extension(actual) or ""
            problem += f" (rename it to {path.stem}{ext} if that is right)" if ext else ""
        raise FileRefused(f"{name} is not {claimed}: {problem}")
    return media_type
