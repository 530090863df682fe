"""Sealed backup files: only the secrets named in the header open them, and any damage is
named before the content is trusted."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import struct

import pytest

from core.crypto import aead, sealed_file
from core.crypto.kdf import FAST_PARAMS
from core.crypto.keyslots import make_slot
from core.crypto.sealed_file import Header, SealedFileError, WrongSecretError
from core.keys.recovery import new_recovery_key, normalize_recovery_key
from tests.crafted_backups import header_bytes

CHUNK = 1024
CONTENT = os.urandom(5 * CHUNK + 17)  # several chunks and a short final one


PHRASE = "pass phrase"


def _seal(passphrase: str | None = PHRASE, recovery: str | None = None) -> bytes:
    key = sealed_file.new_content_key()
    openers: list[sealed_file.Opener] = []
    if recovery is not None:
        kek = aead.generate_key()
        slot = make_slot(kek, "db1", "recovery", "recovery", normalize_recovery_key(recovery),
                         FAST_PARAMS)  # fmt: skip
        openers.append(sealed_file.recovery_opener(key, kek, slot, "db1", len(openers)))
    if passphrase is not None:
        openers.append(sealed_file.passphrase_opener(key, passphrase, len(openers),
                                                     params=FAST_PARAMS))  # fmt: skip
    out = io.BytesIO()
    header = Header("workstation", "2026-01-01T00:00:00Z", openers, {"replica_id": "r1"})
    sealed_file.write(out, io.BytesIO(CONTENT), key, header, chunk_size=CHUNK)
    return out.getvalue()


def _open(blob: bytes, kind: str, secret: bytes) -> bytes:
    src = io.BytesIO(blob)
    header = sealed_file.read_header(src, "backup x")
    key = sealed_file.unwrap(header, kind, secret, "backup x")
    out = io.BytesIO()
    sealed_file.read_content(src, out, key, header, "backup x")
    return out.getvalue()


def test_the_passphrase_or_the_recovery_key_opens_it() -> None:
    recovery = new_recovery_key()
    blob = _seal("pass phrase", recovery)
    assert _open(blob, "passphrase", b"pass phrase") == CONTENT
    assert _open(blob, "recovery", normalize_recovery_key(recovery)) == CONTENT
    header = sealed_file.read_header(io.BytesIO(blob), "backup x")
    assert header.kinds() == ["recovery", "passphrase"]
    assert CONTENT[:64] not in blob


def test_a_wrong_secret_is_named_as_such() -> None:
    blob = _seal("pass phrase", new_recovery_key())
    with pytest.raises(WrongSecretError, match="backup passphrase does not open backup x"):
        _open(blob, "passphrase", b"other phrase")
    with pytest.raises(WrongSecretError, match="recovery key does not open"):
        _open(blob, "recovery", normalize_recovery_key(new_recovery_key()))


def test_a_kind_of_secret_the_file_was_not_sealed_to_is_refused_naming_what_opens_it() -> None:
    with pytest.raises(WrongSecretError, match="opens with the backup passphrase"):
        _open(_seal("pass phrase"), "recovery", normalize_recovery_key(new_recovery_key()))


@pytest.mark.parametrize(
    ("cut", "message"),
    [(5, "ends inside its header"), (-1, "cut short"), (-CHUNK - 10, "cut short|truncated")],
)
def test_a_truncated_file_is_refused(cut: int, message: str) -> None:
    blob = _seal()
    with pytest.raises(SealedFileError, match=message):
        _open(blob[:cut], "passphrase", b"pass phrase")


def test_an_altered_header_or_content_is_refused() -> None:
    blob = bytearray(_seal())
    header_end = blob.index(b'"replica_id": "r1"')
    altered_header = bytearray(blob)
    altered_header[header_end + len('"replica_id": "r')] = ord("2")
    with pytest.raises(SealedFileError, match="header does not match its content"):
        _open(bytes(altered_header), "passphrase", b"pass phrase")
    altered_content = bytearray(blob)
    altered_content[-100] ^= 1
    with pytest.raises(SealedFileError, match="failed authentication"):
        _open(bytes(altered_content), "passphrase", b"pass phrase")
    with pytest.raises(SealedFileError, match="failed authentication"):  # appended bytes
        _open(bytes(blob) + b"x", "passphrase", b"pass phrase")


def test_a_file_that_is_no_backup_or_a_newer_format_is_named() -> None:
    with pytest.raises(SealedFileError, match="not a Careline backup"):
        sealed_file.read_header(io.BytesIO(b"SQLite format 3\x00" + bytes(100)), "backup x")
    newer = bytearray(_seal())
    newer[len(sealed_file.MAGIC)] = 9
    with pytest.raises(SealedFileError, match="format version 9"):
        sealed_file.read_header(io.BytesIO(bytes(newer)), "backup x")


def _with_openers(openers: list[dict[str, object]]) -> bytes:
    body = json.dumps({"kind": "workstation", "created": "2026-01-01T00:00:00Z",
                       "info": {}, "openers": openers}).encode()  # fmt: skip
    return b"CLBACKUP" + struct.pack(">BI", 1, len(body)) + body


def test_a_hostile_header_cannot_make_the_reader_run_argon2_without_end() -> None:
    # Each passphrase opener costs one Argon2id run at the file's own parameters (bounded
    # at 1 GiB and 64 passes): thousands of them in a 1 MiB header would keep a restore
    # busy for hours before saying the passphrase is wrong. Refused at the header.
    header = sealed_file.read_header(io.BytesIO(_seal()), "backup x")
    opener = header.openers[0].to_dict()
    many = _with_openers([opener] * (sealed_file.MAX_OPENERS + 1))
    with pytest.raises(SealedFileError, match="openers"):
        sealed_file.read_header(io.BytesIO(many), "backup x")


def test_a_recovery_opener_must_carry_a_recovery_slot() -> None:
    # A "recovery" opener whose slot is a raw keyring slot would skip Argon2id: the file
    # is damaged (or forged), not openable.
    recovery = new_recovery_key()
    header = sealed_file.read_header(io.BytesIO(_seal(None, recovery)), "backup x")
    opener = header.openers[0].to_dict()
    slot = dict(opener["slot"])
    slot["kind"] = "keyring"
    slot.pop("kdf")
    with pytest.raises(SealedFileError, match="recovery key slot"):
        sealed_file.read_header(io.BytesIO(_with_openers([opener | {"slot": slot}])), "backup x")


def _passphrase_opener() -> dict[str, object]:
    return sealed_file.read_header(io.BytesIO(_seal()), "backup x").openers[0].to_dict()


def test_a_deeply_nested_header_is_refused_as_damaged_naming_the_file() -> None:
    # Well under MAX_HEADER, yet nested past Python's recursion limit: json's decoder
    # raises RecursionError, which the reader turns into the file's fault.
    nested = header_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(SealedFileError, match="backup x is damaged: its header is nested too"):
        sealed_file.read_header(io.BytesIO(nested), "backup x")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "workstation\x1b[2J\x1b[31mOK"}, "its kind must be 1-64 printable"),
        ({"kind": "w" * 65}, "its kind must be 1-64 printable"),
        ({"kind": 7}, "its kind must be 1-64 printable"),
        ({"created": "2026-01-01\r\x1b[K"}, "creation time must be 1-64 printable"),
        ({"created": "yesterday"}, "creation time is not an ISO 8601 time"),
        ({"created": None}, "creation time must be"),
        ({"info": {"attachments": {"a": [1]}}}, "info attachments must be a whole number"),
        ({"info": {"note": "\x1b]0;title\x07"}}, "info note must be 1-64 printable"),
        ({"info": {f"k{i}": i for i in range(17)}}, "info must be an object of at most 16"),
        ({"info": [1, 2]}, "info must be an object"),
        ({"openers": "passphrase"}, "a list of openers"),
    ],
)
def test_a_header_with_a_malformed_field_is_refused_naming_it(
    changes: dict[str, object], message: str
) -> None:
    doc = {"kind": "workstation", "created": "2026-01-01T00:00:00+00:00",
           "info": {"attachments": 2}, "openers": [_passphrase_opener()]} | changes  # fmt: skip
    with pytest.raises(SealedFileError, match=f"backup x is damaged: .*{message}") as caught:
        sealed_file.read_header(io.BytesIO(header_bytes(doc)), "backup x")
    assert "\x1b" not in str(caught.value) and "\r" not in str(caught.value)


@pytest.mark.parametrize("salt", [b"", b"s" * 8, b"s" * 17])
def test_an_opener_with_a_salt_of_the_wrong_size_is_refused_at_the_header(salt: bytes) -> None:
    opener = _passphrase_opener() | {"salt": base64.b64encode(salt).decode()}
    with pytest.raises(SealedFileError, match=f"salt has {len(salt)} bytes, not 16"):
        sealed_file.read_header(io.BytesIO(_with_openers([opener])), "backup x")


def test_a_recovery_slot_with_a_salt_of_the_wrong_size_is_refused_at_the_header() -> None:
    header = sealed_file.read_header(io.BytesIO(_seal(None, new_recovery_key())), "backup x")
    opener = header.openers[0].to_dict()
    slot = dict(opener["slot"]) | {"salt": ""}
    with pytest.raises(SealedFileError, match="the recovery opener's salt has 0 bytes"):
        sealed_file.read_header(io.BytesIO(_with_openers([opener | {"slot": slot}])), "backup x")


def test_an_opener_the_kdf_refuses_is_named_damaged_not_an_unexpected_error() -> None:
    # Past read_header's checks (a Header made in code): whatever the KDF raises on the
    # opener's own salt or parameters is the file's fault, said as such.
    header = sealed_file.read_header(io.BytesIO(_seal()), "backup x")
    broken = dataclasses.replace(header.openers[0], salt=b"")
    with pytest.raises(SealedFileError, match="backup x is damaged: its backup passphrase opener"):
        sealed_file.unwrap(dataclasses.replace(header, openers=[broken]), "passphrase",
                           PHRASE.encode(), "backup x")  # fmt: skip


def test_the_facts_careline_writes_pass_the_header_checks() -> None:
    header = sealed_file.read_header(io.BytesIO(_seal()), "backup x")
    assert (header.kind, header.created, header.info) == (
        "workstation",
        "2026-01-01T00:00:00Z",
        {"replica_id": "r1"},
    )
