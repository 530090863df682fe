"""Local master keys: a key file, a systemd credential, or MASTER_ENCRYPTION_KEY.

Sources, in the order :func:`core.keys.providers.provider_from_settings` tries them:

1. ``MASTER_ENCRYPTION_KEY``: base64 of 32 random bytes (``openssl rand -base64 32``),
   optionally written ``base64:...``.
   One version, read-only.
2. A systemd credential, ``$CREDENTIALS_DIRECTORY/careline-master-key`` (``LoadCredential=``
   or ``LoadCredentialEncrypted=``): either a key file exported from Careline (JSON, every
   version) or one key (32 raw bytes, or their base64). Read-only.
3. ``master-keys.json`` in the server's data directory, created on first use with mode
   0600. Careline refuses to start when group or other users have any access to it.
   ``rotate`` and ``retire`` rewrite it atomically under an exclusive lock, so several
   server processes can share it.

A master key version is named by a fingerprint of the key (``lk-`` + 16 hex digits of
HMAC-SHA256 of a fixed label), so the same key keeps the same version whichever source it
comes from. Data keys are wrapped with AES-256-GCM; the associated data is the wrapped
key's envelope (provider, tenant, purpose, version).

What stays in memory: master keys live in :class:`SecureMemory`. Reading them (the JSON
file, the environment variable, the credential) necessarily passes through immutable
``bytes``/``str`` objects Python cannot wipe, and so does every ``read()`` handed to the
AES-GCM code (OpenSSL clears its own key schedule). ``os.environ`` keeps its copy of
``MASTER_ENCRYPTION_KEY`` for the life of the process; prefer the key file or a systemd
credential.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from core.config.settings import ConfigError
from core.crypto import aead
from core.crypto.errors import DecryptionError
from core.crypto.secure_memory import SecureMemory
from core.keys.files import (
    exclusive_lock,
    parse_versioned_json,
    write_private_temp,
)
from core.keys.providers.base import DATA_KEY_SIZE, KeyProvider, WrappedKey, secure_key
from core.keys.providers.errors import (
    KeyVersionError,
    MasterKeyFileError,
    ReadOnlyKeySourceError,
)
from core.platform.files import fsync_dir

KEY_FILE_NAME = "master-keys.json"
CREDENTIAL_NAME = "careline-master-key"
ENV_NAME = "MASTER_ENCRYPTION_KEY"
FILE_FORMAT = "careline-master-keys"
FILE_VERSION = 1
_AAD_LABEL = b"careline-local-datakey\x00"


def master_key_version(key: SecureMemory) -> str:
    """The version name of a master key: a fingerprint that reveals nothing about it."""
    mac = hmac.new(key.read(), b"careline-master-key-id-v1", hashlib.sha256).hexdigest()
    return "lk-" + mac[:16]


def parse_master_key_value(value: str, name: str = ENV_NAME) -> SecureMemory:
    """Decode base64 of exactly 32 bytes into SecureMemory; ConfigError naming ``name``.

    A ``base64:`` prefix (as the seed document and other tools write keys) is accepted.
    The message never repeats the value. ``value`` itself is an immutable ``str``.
    """
    text = value.strip()
    if text[:7].lower() == "base64:":
        text = text[7:].strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{name} is not valid base64; it must be the base64 encoding of exactly "
            f"{DATA_KEY_SIZE} random bytes (e.g. `openssl rand -base64 32`)"
        ) from None
    if len(raw) != DATA_KEY_SIZE:
        raise ConfigError(
            f"{name} decodes to {len(raw)} bytes; it must be the base64 encoding of exactly "
            f"{DATA_KEY_SIZE} random bytes (e.g. `openssl rand -base64 32`)"
        )
    return SecureMemory.from_bytes(bytearray(raw))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


_Stamp = tuple[int, int, int]


def _stamp(info: os.stat_result) -> _Stamp:
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _read_private_file(path: Path) -> tuple[bytes, _Stamp]:
    """Read ``path`` (no symlinks), refusing it when group or others have any access.

    Also returns the file's identity (inode, mtime, size) to notice later changes. Windows
    has neither ``O_NOFOLLOW`` nor owner/group/other bits (its ACLs decide who may read, and
    Python cannot read ACLs): there a symlink is refused by an ``lstat`` beforehand, and
    the access check is left to the folder's ACL.
    """
    if os.name != "posix" and path.is_symlink():
        raise MasterKeyFileError(
            f"master key file {path} cannot be opened: it must be a regular file, not a symlink"
        )
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except PermissionError:
        # E.g. a restore run as root, then the service started as its own user.
        raise MasterKeyFileError(
            f"master key file {path} cannot be opened: permission denied. It must belong to "
            "the user the server runs as (for the package: chown -R careline:careline "
            f"{path.parent})"
        ) from None
    except OSError as exc:
        raise MasterKeyFileError(
            f"master key file {path} cannot be opened: {exc.strerror} "
            "(it must be a regular file, not a symlink)"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyFileError(f"master key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if os.name == "posix" and mode & 0o077:
            raise MasterKeyFileError(
                f"master key file {path} has mode {mode:04o}: group or other users can access "
                f"it. Refusing to start; restrict it to its owner with `chmod 600 {path}`"
            )
        return fh.read(), _stamp(info)


def _exclusive(path: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise rotate/retire across processes sharing ``path`` (a sibling lock file)."""
    return exclusive_lock(path.with_name(path.name + ".lock"))


class _KeySet:
    """Parsed master keys: versions -> SecureMemory, the current one, retired names."""

    def __init__(
        self,
        keys: dict[str, SecureMemory],
        current: str,
        retired: set[str],
        created: dict[str, str],
    ) -> None:
        self.keys = keys
        self.current = current
        self.retired = retired
        self.created = created

    @classmethod
    def single(cls, key: SecureMemory) -> _KeySet:
        version = master_key_version(key)
        return cls({version: key}, version, set(), {version: _now()})

    @classmethod
    def parse(cls, raw: bytes, where: str) -> _KeySet:
        data = parse_versioned_json(
            raw, FILE_FORMAT, FILE_VERSION, where, MasterKeyFileError, "master key file"
        )
        keys: dict[str, SecureMemory] = {}
        created: dict[str, str] = {}
        try:
            for entry in data["keys"]:
                raw_key = base64.b64decode(entry["key"], validate=True)
                if len(raw_key) != DATA_KEY_SIZE:
                    raise ValueError(f"a key is {len(raw_key)} bytes, not {DATA_KEY_SIZE}")
                key = SecureMemory.from_bytes(bytearray(raw_key))
                version = master_key_version(key)
                if version != entry["id"]:
                    key.close()
                    raise ValueError(f"key {entry['id']!r} does not match its fingerprint")
                keys[version] = key
                created[version] = str(entry.get("created", ""))
            current = str(data["current"])
            retired = {str(v) for v in data.get("retired", [])}
            if current not in keys:
                raise ValueError(f"the current version {current!r} is not among the keys")
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            for key in keys.values():
                key.close()
            raise MasterKeyFileError(f"{where} is malformed: {exc}") from None
        return cls(keys, current, retired, created)

    def dump(self) -> bytes:
        """JSON form. The base64 key text is an immutable copy Python cannot wipe."""
        doc = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "current": self.current,
            "keys": [
                {
                    "id": version,
                    "key": base64.b64encode(key.read()).decode("ascii"),
                    "created": self.created.get(version, ""),
                }
                for version, key in self.keys.items()
            ],
            "retired": sorted(self.retired),
        }
        return json.dumps(doc, indent=2).encode("utf-8")

    def close(self) -> None:
        for key in self.keys.values():
            key.close()


class LocalKeyProvider(KeyProvider):
    """Master keys held in this process (SecureMemory). Build with a ``from_*`` method."""

    kind = "local"

    def __init__(
        self, keyset: _KeySet, source: str, key_file: Path | None, stamp: _Stamp | None = None
    ) -> None:
        super().__init__()
        self._set = keyset
        self._source = source
        self._key_file = key_file
        self._stamp = stamp
        self._lock = threading.RLock()

    # ----- construction ---------------------------------------------------------------

    @classmethod
    def from_key_file(cls, path: Path, *, create: bool = True) -> Self:
        """Load ``path``; create it (mode 0600, one fresh key) if missing and ``create``.

        Raises MasterKeyFileError if group/other users can access the file, or it is damaged.
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise MasterKeyFileError(f"master key file {path} is missing")
            cls._create_key_file(path)
        raw, stamp = _read_private_file(path)
        keyset = _KeySet.parse(raw, f"master key file {path}")
        return cls(keyset, f"key file {path}", path, stamp)

    @classmethod
    def from_env_value(cls, value: str, name: str = ENV_NAME) -> Self:
        """One master key from base64 text (MASTER_ENCRYPTION_KEY); read-only.

        Bad base64 or a length other than 32 bytes raises ConfigError naming ``name``.
        """
        return cls(_KeySet.single(parse_master_key_value(value, name)), f"environment {name}", None)

    @classmethod
    def from_credential(cls, credentials_dir: Path, name: str = CREDENTIAL_NAME) -> Self:
        """Master keys from the systemd credential ``credentials_dir/name``; read-only.

        The credential holds an exported key file (JSON) or one key (32 raw bytes or base64).
        systemd already restricts the credentials directory to the service, so its mode is
        not checked here.
        """
        path = Path(credentials_dir) / name
        where = f"systemd credential {path}"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise MasterKeyFileError(f"{where} cannot be read: {exc.strerror}") from None
        if len(raw) == DATA_KEY_SIZE:  # no key file or base64 key is this short
            keyset = _KeySet.single(SecureMemory.from_bytes(bytearray(raw)))
        elif raw.lstrip().startswith(b"{"):
            keyset = _KeySet.parse(raw, where)
        else:
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:
                raise ConfigError(
                    f"{where} is neither a key file, 32 raw bytes, nor base64 of 32 bytes"
                ) from None
            keyset = _KeySet.single(parse_master_key_value(text, where))
        return cls(keyset, where, None)

    @staticmethod
    def _create_key_file(path: Path) -> None:
        try:
            LocalKeyProvider._create_key_file_unchecked(path)
        except OSError as exc:
            raise MasterKeyFileError(
                f"cannot create master key file {path}: {exc.strerror}"
            ) from None

    @staticmethod
    def _create_key_file_unchecked(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        keyset = _KeySet.single(SecureMemory.from_bytes(bytearray(aead.generate_key())))
        try:
            tmp = write_private_temp(path.parent, keyset.dump(), ".master-keys-")
        finally:
            keyset.close()
        try:
            # link() never replaces: if another process created the file first, keep theirs.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)
        fsync_dir(path.parent)

    # ----- properties -----------------------------------------------------------------

    @property
    def source(self) -> str:
        """Where the master keys came from (for logs and error messages)."""
        return self._source

    @property
    def key_file(self) -> Path | None:
        """The key file, or None for read-only sources."""
        return self._key_file

    def versions(self) -> tuple[str, ...]:
        """Master key versions usable for unwrap."""
        with self._lock:
            return tuple(self._set.keys)

    def current_version(self) -> str:
        """Version new data keys are wrapped under.

        With a key file, a rotation by another process is noticed here (one ``stat``).
        """
        with self._lock:
            if not self._closed:
                self._follow_file_locked(quiet=True)
            return self._set.current

    # ----- key management -------------------------------------------------------------

    def rotate(self) -> str:
        """Add a fresh master key to the key file and make it current.

        Other processes sharing the file pick the new version up the first time they meet
        a data key wrapped under it. Read-only sources raise ReadOnlyKeySourceError.
        """
        path = self._writable_file("rotate")
        with self._lock, _exclusive(path):
            self._reload_locked()
            new_key = SecureMemory.from_bytes(bytearray(aead.generate_key()))
            version = master_key_version(new_key)
            self._set.keys[version] = new_key
            self._set.created[version] = _now()
            self._set.current = version
            self._save_or_reload_locked(path)
            return version

    def retire(self, version: str) -> None:
        """Delete master key ``version`` from the key file (and zero it here).

        Anything still wrapped under it can no longer be opened: rewrap first.
        """
        path = self._writable_file("retire a master key version")
        with self._lock, _exclusive(path):
            self._reload_locked()
            if version == self._set.current:
                raise KeyVersionError(
                    f"master key version {version!r} is current and cannot be retired; rotate first"
                )
            if version in self._set.retired:
                return
            key = self._set.keys.pop(version, None)
            if key is None:
                raise KeyVersionError(f"master key version {version!r} is unknown")
            key.close()
            self._set.created.pop(version, None)
            self._set.retired.add(version)
            self._save_or_reload_locked(path)

    def close(self) -> None:
        """Zero every master key held."""
        with self._lock:
            self._set.close()
            super().close()

    # ----- data keys ------------------------------------------------------------------

    @staticmethod
    def _aad(kind: str, tenant: str, purpose: str, version: str) -> bytes:
        return _AAD_LABEL + WrappedKey(kind, tenant, purpose, version, b"").header()

    def _generate(self, tenant: str, purpose: str) -> tuple[SecureMemory, bytes, str]:
        with self._lock:
            self._check_open()
            self._follow_file_locked()
            version = self._set.current
            master = self._set.keys[version].read()
        key = SecureMemory.from_bytes(bytearray(aead.generate_key()))
        wrapped = aead.encrypt(master, key.read(), self._aad(self.kind, tenant, purpose, version))
        return key, wrapped, version

    def _decrypt(self, env: WrappedKey) -> bytes:
        master = self._master(env.version)
        try:
            return aead.decrypt(
                master, env.ciphertext, self._aad(self.kind, env.tenant, env.purpose, env.version)
            )
        except DecryptionError:
            raise self._tampered(env) from None

    def _unwrap(self, env: WrappedKey) -> SecureMemory:
        return secure_key(bytearray(self._decrypt(env)), "the local provider")

    def _rewrap(self, env: WrappedKey) -> tuple[bytes, str]:
        # The plaintext data key passes through this process as immutable bytes.
        plaintext = self._decrypt(env)
        with self._lock:
            version = self._set.current
            master = self._set.keys[version].read()
        aad = self._aad(self.kind, env.tenant, env.purpose, version)
        return aead.encrypt(master, plaintext, aad), version

    # ----- internals ------------------------------------------------------------------

    def _master(self, version: str) -> bytes:
        with self._lock:
            self._check_open()
            # Another process may have rotated or retired a version in the shared file.
            self._follow_file_locked()
            key = self._set.keys.get(version)
            if key is not None:
                return key.read()
            if version in self._set.retired:
                raise KeyVersionError(
                    f"master key version {version!r} has been retired; data keys wrapped "
                    "under it can no longer be opened"
                )
            raise KeyVersionError(
                f"master key version {version!r} is not known to the local key provider "
                f"({self._source}; known: {', '.join(self._set.keys)})"
            )

    def _writable_file(self, action: str) -> Path:
        self._check_open()
        if self._key_file is None:
            raise ReadOnlyKeySourceError(
                f"cannot {action}: the master key comes from {self._source}, which Careline "
                "does not change. Use a key file, or install a new key through that source"
            )
        return self._key_file

    def _follow_file_locked(self, quiet: bool = False) -> None:
        """Reload the key file if another process replaced it since we read it."""
        if self._key_file is None:
            return
        try:
            changed = _stamp(os.stat(self._key_file, follow_symlinks=False)) != self._stamp
        except OSError:
            if quiet:
                return
            changed = True  # let the reload report the problem
        if changed:
            if quiet:
                with contextlib.suppress(MasterKeyFileError):
                    self._reload_locked()
            else:
                self._reload_locked()

    def _reload_locked(self) -> None:
        assert self._key_file is not None
        try:
            raw, stamp = _read_private_file(self._key_file)
        except FileNotFoundError:
            raise MasterKeyFileError(f"master key file {self._key_file} has gone") from None
        fresh = _KeySet.parse(raw, f"master key file {self._key_file}")
        self._set.close()
        self._set, self._stamp = fresh, stamp

    def _save_or_reload_locked(self, path: Path) -> None:
        try:
            tmp = write_private_temp(path.parent, self._set.dump(), ".master-keys-")
            try:
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            fsync_dir(path.parent)
            # Writers hold the exclusive lock, so this is the file we just wrote.
            self._stamp = _stamp(os.stat(path, follow_symlinks=False))
        except OSError as exc:
            # Keep memory consistent with the file that is still on disk.
            self._reload_locked()
            raise MasterKeyFileError(
                f"master key file {path} could not be written: {exc.strerror}"
            ) from None


def local_provider(
    master_key_value: str | None,
    data_dir: Path,
    environ: Mapping[str, str],
) -> LocalKeyProvider:
    """Pick the local source: MASTER_ENCRYPTION_KEY, else the systemd credential, else the
    key file ``data_dir/master-keys.json`` (created on first use)."""
    if master_key_value:
        return LocalKeyProvider.from_env_value(master_key_value)
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL_NAME).exists():
        return LocalKeyProvider.from_credential(Path(credentials))
    return LocalKeyProvider.from_key_file(Path(data_dir) / KEY_FILE_NAME)
