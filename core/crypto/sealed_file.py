"""Sealed backup files: a versioned header naming who may open the file, then the content
encrypted in chunks (:mod:`core.crypto.streaming`), never whole in memory.

Format, version 1 (integers big-endian)::

    magic "CLBACKUP" (8) | version (1) | header length (4) | header (UTF-8 JSON)
    content = core.crypto.streaming format under a random 32-byte content key,
              AAD = "careline/backup/v1" | SHA-256(magic | version | length | header)

The header holds the file's kind, its creation time and its openers; no patient data. Each
opener wraps the content key (AES-256-GCM) under one secret:

- ``passphrase``: Argon2id(passphrase, salt, parameters stored beside it);
- ``recovery``: a copy of the workstation's recovery key slot (:mod:`core.crypto.keyslots`:
  the recovery key, stretched with Argon2id, unwraps the workstation's key-encryption key),
  and the content key wrapped under that key-encryption key. A workstation seals to its
  recovery key with no person present (the key-encryption key is in locked memory while it
  is unlocked), yet only the recovery key, kept offline, opens the file;
- ``operator``: like ``passphrase``, for the server's operator passphrase.

Every header byte is authenticated through the content's AAD: an altered header (an opener
swapped for another file's, a changed kind) fails before any content is written. A wrong
secret fails at the opener; truncation, altered, reordered or appended chunks fail as the
streaming format says. Decrypted output must be discarded if opening raised (callers write
to a staging place and move it into position only on success).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from core.crypto import aead, streaming
from core.crypto.bundle import Packer
from core.crypto.errors import DecryptionError
from core.crypto.kdf import SALT_SIZE, Argon2Params, derive_key, new_salt
from core.crypto.keyslots import KeySlot, open_slot
from core.platform.files import fsync_dir

MAGIC = b"CLBACKUP"
VERSION = 1
MAX_HEADER = 1024 * 1024
# Opening tries each opener of the secret's kind, one Argon2id run each at the file's own
# (bounded) parameters: a header listing thousands would keep a restore busy for hours.
# Careline writes at most two.
MAX_OPENERS = 4
OPENER_KINDS = ("passphrase", "recovery", "operator")
_SECRET_NAMES = {"passphrase": "backup passphrase", "recovery": "recovery key",
                 "operator": "operator passphrase"}  # fmt: skip
_PREFIX = struct.Struct(f">{len(MAGIC)}sBI")
_CONTENT_LABEL = b"careline/backup/v1"
_WRAP_LABEL = "careline/backup-key/v1"
# Passphrases are chosen by people: the desktop's default Argon2id profile (64 MiB, 3 passes).
PASSPHRASE_PARAMS = Argon2Params()
# The files travel (USB disks, cloud folders) and are attacked offline: a new backup's
# passphrase has at least this many characters (opening one is not checked).
MIN_PASSPHRASE = 12


def check_new_passphrase(passphrase: str, name: str = "backup passphrase") -> None:
    """Refuse (ValueError, naming it) a passphrase too short to seal a new backup with."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValueError(f"the {name} must have at least {MIN_PASSPHRASE} characters")


class SealedFileError(DecryptionError):
    """Not a Careline backup, an unsupported version, a damaged header, or no opener fits."""


class WrongSecretError(SealedFileError):
    """The secret given opens none of the file's openers."""


@dataclass(frozen=True)
class Opener:
    """One way to unwrap the content key (see the module docstring)."""

    kind: str  # "passphrase" | "recovery" | "operator"
    wrapped: bytes
    salt: bytes = b""
    params: Argon2Params | None = None
    slot: KeySlot | None = None  # recovery: the workstation's recovery slot
    slot_db: str = ""  # recovery: the key file's database id the slot is bound to

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        data: dict[str, Any] = {"kind": self.kind, "wrapped": _b64(self.wrapped)}
        if self.params is not None:
            data |= {"salt": _b64(self.salt), "kdf": self.params.to_dict()}
        if self.slot is not None:
            data |= {"slot": self.slot.to_dict(), "slot_db": self.slot_db}
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Opener:
        """Parse, refusing anything malformed (ValueError)."""
        if not isinstance(data, dict) or data.get("kind") not in (
            "passphrase",
            "recovery",
            "operator",
        ):
            raise ValueError("an opener must be an object of kind passphrase, recovery or operator")
        kind = str(data["kind"])
        wrapped = _unb64(data.get("wrapped"))
        if kind == "recovery":
            slot = KeySlot.from_dict(data.get("slot"))
            if slot.kind != "recovery":  # another kind of slot could skip Argon2id
                raise ValueError("a recovery opener must hold the recovery key slot")
            _check_salt(slot.salt, kind)
            return cls(kind, wrapped, slot=slot, slot_db=str(data.get("slot_db", "")))
        salt = _check_salt(_unb64(data.get("salt")), kind)
        return cls(kind, wrapped, salt, Argon2Params.from_dict(data.get("kdf")))


def _check_salt(salt: bytes, kind: str) -> bytes:
    """``salt`` if it has the size Careline writes (Argon2id itself refuses short ones)."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"the {kind} opener's salt has {len(salt)} bytes, not {SALT_SIZE}")
    return salt


@dataclass(frozen=True)
class Header:
    """The readable part of a sealed file."""

    kind: str  # what the content is: "workstation" | "server"
    created: str
    openers: list[Opener]
    info: dict[str, Any] = field(default_factory=dict)  # non-secret, non-PHI facts
    raw: bytes = b""  # the exact prefix and header bytes, as authenticated

    def kinds(self) -> list[str]:
        """The kinds of secret that open this file."""
        return [o.kind for o in self.openers]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(text, validate=True)


def _wrap_aad(kind: str, index: int) -> bytes:
    return f"{_WRAP_LABEL}|{kind}|{index}".encode()


def wipe(key: bytearray) -> None:
    """Zero a content key in place."""
    streaming._wipe(key)


def new_content_key() -> bytearray:
    """A fresh random content key (the caller wipes it)."""
    return bytearray(aead.generate_key())


def passphrase_opener(
    content_key: bytes | bytearray,
    passphrase: str,
    index: int,
    kind: str = "passphrase",
    params: Argon2Params = PASSPHRASE_PARAMS,
) -> Opener:
    """An opener for ``passphrase`` at position ``index`` of the header's openers."""
    if not passphrase:
        raise ValueError("the backup passphrase is empty")
    salt = new_salt()
    key = derive_key(passphrase.encode("utf-8"), salt, params)
    return Opener(kind, aead.encrypt(key, bytes(content_key), _wrap_aad(kind, index)), salt, params)


def recovery_opener(
    content_key: bytes | bytearray, kek: bytes, slot: KeySlot, slot_db: str, index: int
) -> Opener:
    """An opener the recovery key opens through ``slot`` (which wraps ``kek``)."""
    if slot.kind != "recovery":
        raise ValueError("a recovery opener needs the recovery key slot")
    wrapped = aead.encrypt(kek, bytes(content_key), _wrap_aad("recovery", index))
    return Opener("recovery", wrapped, slot=slot, slot_db=slot_db)


def write(dst: BinaryIO, src: BinaryIO, content_key: bytes | bytearray, header: Header,
          chunk_size: int = streaming.DEFAULT_CHUNK_SIZE) -> streaming.EncryptResult:  # fmt: skip
    """Write the sealed file: the header, then ``src`` encrypted in chunks."""
    body = json.dumps({
        "kind": header.kind, "created": header.created, "info": header.info,
        "openers": [o.to_dict() for o in header.openers],
    }).encode("utf-8")  # fmt: skip
    raw = _PREFIX.pack(MAGIC, VERSION, len(body)) + body
    dst.write(raw)
    return streaming.encrypt_stream(src, dst, content_key, _content_aad(raw), chunk_size)


def write_bundle_file(target: Path, header: Header, content_key: bytes | bytearray,
                      manifest: dict[str, Any], files: list[tuple[str, Path]]) -> None:  # fmt: skip
    """Seal ``files`` with ``manifest`` (a :mod:`core.crypto.bundle`) at ``target``, all or
    nothing: written to a private partial file beside it, synced, then renamed into place
    and the rename synced, so a crash leaves the previous ``target`` (or none), never half a
    backup. The partial file is removed if anything fails."""
    partial = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")
    try:
        with partial.open("xb") as out, cast(BinaryIO, Packer(manifest, files)) as src:
            os.chmod(partial, 0o600)
            write(out, src, content_key, header)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        fsync_dir(target.parent)
    finally:
        partial.unlink(missing_ok=True)


def _content_aad(raw_header: bytes) -> bytes:
    return _CONTENT_LABEL + hashlib.sha256(raw_header).digest()


def read_header(src: BinaryIO, where: str) -> Header:
    """Read and parse the header at the start of ``src`` (which is left at the content)."""
    prefix = src.read(_PREFIX.size)
    if len(prefix) >= len(MAGIC) and prefix[: len(MAGIC)] != MAGIC:
        raise SealedFileError(f"{where} is not a Careline backup (its first bytes are wrong)")
    if len(prefix) < _PREFIX.size:
        raise SealedFileError(f"{where} is truncated: it ends inside its header")
    _, version, length = _PREFIX.unpack(prefix)
    if version != VERSION:
        raise SealedFileError(
            f"{where} has backup format version {version}; this Careline reads version {VERSION}"
        )
    if length > MAX_HEADER:
        raise SealedFileError(f"{where} is damaged: it declares a {length}-byte header")
    body = src.read(length)
    if len(body) < length:
        raise SealedFileError(f"{where} is truncated: it ends inside its header")
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("openers"), list):
            raise ValueError("it must be an object with a list of openers")
        if len(data["openers"]) > MAX_OPENERS:
            raise ValueError(f"{len(data['openers'])} openers, more than {MAX_OPENERS}")
        openers = [Opener.from_dict(o) for o in data["openers"]]
        kind = _text(data.get("kind"), "its kind")
        created = _time(data.get("created"))
        return Header(kind, created, openers, _facts(data.get("info", {})), prefix + body)
    except RecursionError:
        # json's decoder guards its own recursion: a deeply nested header is refused here,
        # however deep, before anything else reads it.
        raise SealedFileError(f"{where} is damaged: its header is nested too deeply") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SealedFileError(f"{where} is damaged: its header is malformed ({exc})") from None


# The header is read, and its kind, time and facts shown (``backup info``), before anything
# authenticates it: each is short printable text or a plain number, so a crafted file can
# neither flood a terminal nor send it control sequences.
_MAX_TEXT = 64
_MAX_FACTS = 16


def _text(value: Any, name: str) -> str:
    """``value`` if it is 1-64 printable characters (no control or format characters)."""
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_TEXT or not value.isprintable():
        raise ValueError(f"{name} must be 1-{_MAX_TEXT} printable characters")
    return value


def _time(value: Any) -> str:
    """``value`` if it is an ISO 8601 date and time (as Careline writes ``created``)."""
    text = _text(value, "its creation time")
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("its creation time is not an ISO 8601 time") from None
    return text


def _facts(value: Any) -> dict[str, Any]:
    """The header's ``info``: at most 16 facts, each named by short text and holding a whole
    number, true/false or short text (Careline writes counts and ids)."""
    if not isinstance(value, dict) or len(value) > _MAX_FACTS:
        raise ValueError(f"info must be an object of at most {_MAX_FACTS} facts")
    for name, fact in value.items():
        _text(name, "a name in info")
        if isinstance(fact, str):
            _text(fact, f"info {name}")
        elif not isinstance(fact, (bool, int)):
            raise ValueError(f"info {name} must be a whole number, true/false or short text")
    return value


def unwrap(header: Header, kind: str, secret: bytes, where: str) -> bytearray:
    """The content key from the opener of ``kind`` (``secret``: the passphrase's UTF-8
    bytes, or the recovery key's normalised bytes). Raises WrongSecretError."""
    found = False
    for index, opener in enumerate(header.openers):
        if opener.kind != kind:
            continue
        found = True
        try:
            if opener.slot is not None:
                key = open_slot(opener.slot, opener.slot_db, secret)
            else:
                assert opener.params is not None  # parsed so
                key = derive_key(secret, opener.salt, opener.params)
            return bytearray(aead.decrypt(key, opener.wrapped, _wrap_aad(kind, index)))
        except DecryptionError:
            continue
        except MemoryError:
            raise  # the machine's limit, not the file's fault: said as such by the caller
        except Exception as exc:  # the KDF refused the opener's own salt or parameters
            raise SealedFileError(
                f"{where} is damaged: its {_SECRET_NAMES[kind]} opener cannot be used "
                f"({type(exc).__name__}: {exc})"
            ) from None
    name = _SECRET_NAMES[kind]
    if not found:
        kinds = " or ".join(f"the {_SECRET_NAMES[k]}" for k in header.kinds())
        raise WrongSecretError(f"{where} cannot be opened with a {name}: it opens with {kinds}")
    raise WrongSecretError(f"the {name} does not open {where} (wrong {name}, or an altered header)")


def read_content(src: BinaryIO, dst: BinaryIO, content_key: bytes | bytearray, header: Header,
                 where: str) -> streaming.DecryptResult:  # fmt: skip
    """Decrypt the content after the header into ``dst``; a DecryptionError names the fault
    (and ``dst`` must then be discarded)."""
    try:
        return streaming.decrypt_stream(src, dst, content_key, _content_aad(header.raw))
    except streaming.HeaderAuthenticationError:
        raise SealedFileError(
            f"{where} is damaged or altered: its header does not match its content"
        ) from None
    except DecryptionError as exc:
        text = str(exc).replace("attachment", "backup")
        raise SealedFileError(f"{where}: {text}") from None
