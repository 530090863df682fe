"""What a file must be to go into a chart (core/sync/attachment_files.py): the kinds told by
their first bytes are checked against the name, the others taken as they are; the size
limit is one the clinic server accepts once encrypted."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.crypto.streaming import ciphertext_size
from core.server.service import MAX_ATTACHMENT_BYTES
from core.sync.attachment_files import MAX_FILE_BYTES, FileRefused, check_file, size_text

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20


@pytest.mark.parametrize(
    ("name", "content", "media_type"),
    [
        ("letter.pdf", b"%PDF-1.7\n...", "application/pdf"),
        # A scanner's junk before the header: PDF readers look in the first 1024 bytes.
        ("scan.pdf", b"\r\n\x00" * 10 + b"%PDF-1.4", "application/pdf"),
        ("wound.png", PNG, "image/png"),
        ("photo.jpg", b"\xff\xd8\xff\xe1Exif", "image/jpeg"),
        ("ecg.gif", b"GIF89a....", "image/gif"),
        ("skin.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        ("xray.tif", b"II*\x00\x08\x00", "image/tiff"),
        ("notes.txt", b"anything at all", "text/plain"),  # no signature to check
        ("referral.docx", b"not checked", None),
    ],
)
def test_a_file_that_is_what_its_name_says_is_taken(
    tmp_path: Path, name: str, content: bytes, media_type: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    found = check_file(path)
    assert found == media_type or media_type is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("lab.pdf", b"", "lab.pdf is empty (0 bytes): there is nothing to add"),
        ("lab.pdf", b"<html>login</html>", "lab.pdf is not a PDF: it does not start with %PDF-"),
        ("lab.pdf", PNG, "lab.pdf is not a PDF: its content is a PNG image (rename it to lab.png "
                         "if that is right)"),
        ("rash.jpg", b"plain text", "rash.jpg is not a JPEG image: its content is no image "
                                    "Careline recognises (damaged, or another kind of file "
                                    "named .jpg)"),
        ("skin.webp", b"RIFF\x10\x00\x00\x00WAVEfmt ", "skin.webp is not a WebP image"),
    ],
)  # fmt: skip
def test_an_empty_or_fake_file_is_refused_naming_the_problem(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileRefused) as refused:
        check_file(path)
    assert str(refused.value).startswith(message)


def test_a_file_past_the_limit_is_refused_saying_the_limit_and_its_size(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    with path.open("wb") as out:
        out.write(b"%PDF-1.4")
        out.truncate(MAX_FILE_BYTES + 1)  # sparse
    with pytest.raises(FileRefused) as refused:
        check_file(path)
    assert str(refused.value) == (
        "scan.pdf is 268,435,457 bytes, larger than the 268,435,456 bytes (256 MB) a file in a "
        "chart may be"
    )
    with path.open("r+b") as out:
        out.truncate(MAX_FILE_BYTES)
    assert check_file(path) == "application/pdf"  # the limit itself is taken


def test_the_largest_file_taken_fits_the_servers_upload_limit_once_encrypted() -> None:
    assert ciphertext_size(MAX_FILE_BYTES) <= MAX_ATTACHMENT_BYTES


def test_sizes_read_as_people_read_them() -> None:
    assert [size_text(n) for n in (1, 80, 2048, 300 * 1024 * 1024, 1536 * 1024)] == [
        "1 byte", "80 bytes", "2 KB", "300 MB", "1.5 MB",
    ]  # fmt: skip
