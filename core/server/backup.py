"""Backing up and restoring the embedded server: ``careline-server admin backup|restore``.

The embedded server keeps, in its data folder, the registry (``registry.db``) and one
SQLCipher replica per clinic (``clinics/<id>/clinic.db``), each under a data key wrapped by
the master key (``registry.key.json``, the registry's key table); encrypted attachments
(``blobs/``); its TLS certificate and key (``tls/``); and, with the local key provider and
no other source configured, the master key itself (``master-keys.json``).

A backup is two sealed files (core.crypto.sealed_file), both opened by the operator's
passphrase:

- the data: a consistent copy of every store (Database.copy_to: each copied in one read
  snapshot while the server keeps running; each store separately, which sync tolerates: a
  replica is a log that converges), the attachments, the TLS files and the wrapped keys;
- the master key, in a file of its own, because a backup that holds its own key protects
  nothing: keep the two apart (different media, different people). A master key from
  MASTER_ENCRYPTION_KEY, a systemd credential, AWS KMS or Vault is not in the data folder
  and is not exported: it is kept where it lives (README "Backup and restore").

A restored server gives every clinic replica a new replica id and Yjs client id
(:func:`adopt_restored`): the lost server may have made ops of its own (admin writes,
signed by the clinic CA) after the backup that workstations already hold; numbering new
ones ``(old id, seq)`` again would collide with them. Those ops still come back from the
workstations under the old id, which stays in the version vector.

Left out: ``spool/`` (attachment uploads in progress), lock files, SQLite side files.
Attachments are copied after the stores, so every attachment a copied store names is in
the backup (an upload stores its blob before its record refers to it).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from core.crypto import sealed_file
from core.crypto.bundle import BundleError, Unpacker
from core.crypto.errors import DecryptionError
from core.errors import CarelineError
from core.keys.providers import provider_from_settings
from core.keys.providers.local import KEY_FILE_NAME
from core.platform.files import fsync_dir
from core.server.service import ClinicServer
from core.store import oplog
from core.store.database import DB_FILE_NAME, Database

DATA_FORMAT = "careline-server-backup"
KEYS_FORMAT = "careline-server-keys"
VERSION = 1
REGISTRY_FILE = "registry.db"
_SKIPPED_DIRS = {"spool"}
_SKIPPED_SUFFIXES = (".lock", "-wal", "-shm", "-journal")
# The local key provider writes the master key to ".master-keys-XXXX" (or
# ".master-keys.json-XXXX") before renaming it into place; a crash or a concurrent rotation
# can leave or show one, and it must never reach the data backup.
_KEY_TEMP_PREFIX = "." + Path(KEY_FILE_NAME).stem


class ServerBackupError(CarelineError):
    """A server backup or restore failed; the message says why and what was left."""


@dataclass(frozen=True)
class ServerBackup:
    """What ``admin backup`` wrote."""

    path: Path
    keys_path: Path | None  # None: the master key is not in the data folder
    clinics: int
    files: int


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _seal(target: Path, kind: str, manifest: dict[str, Any], files: list[tuple[str, Path]],
          passphrase: str, info: dict[str, Any]) -> None:  # fmt: skip
    """Write ``files`` sealed to ``passphrase`` at the new file ``target``, atomically."""
    key = sealed_file.new_content_key()
    try:
        opener = sealed_file.passphrase_opener(key, passphrase, 0, kind="operator")
        header = sealed_file.Header(kind, _now(), [opener], info)
        sealed_file.write_bundle_file(target, header, key, manifest, files)
    finally:
        sealed_file.wipe(key)


def _other_files(data_dir: Path) -> list[tuple[str, Path]]:
    """Every file to copy as it is: not the stores (copied live), the master key file or
    its temporary copies, uploads in progress, locks or SQLite side files."""
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(data_dir):
        here = Path(root)
        rel_root = here.relative_to(data_dir)
        # At the top: uploads in progress, and the copies of backups being made (ours too).
        dirs[:] = sorted(d for d in dirs if not (rel_root == Path(".") and (
            d in _SKIPPED_DIRS or d.startswith(".backup-"))))  # fmt: skip
        for name in sorted(names):
            rel = (rel_root / name).as_posix()
            if (
                name.endswith(_SKIPPED_SUFFIXES)
                or rel in (KEY_FILE_NAME, REGISTRY_FILE)
                or name.startswith(_KEY_TEMP_PREFIX)
                or (rel.startswith("clinics/") and name == DB_FILE_NAME)
                or not (here / name).is_file()
            ):
                continue
            found.append((rel, here / name))
    return found


def backup_server(
    server: ClinicServer, target: Path, keys_target: Path | None, passphrase: str
) -> ServerBackup:
    """Back up the embedded server's data to ``target`` and its master key file to
    ``keys_target`` (module docstring). Neither may exist; both appear only when complete."""
    if server.pg is not None:
        raise ServerBackupError(
            "this server keeps its clinics in PostgreSQL: back it up with pg_dump, the bucket's "
            "versioning and the key service's own backup (README 'Backup and restore')"
        )
    try:
        sealed_file.check_new_passphrase(passphrase, "operator passphrase")
    except ValueError as exc:
        raise ServerBackupError(str(exc)) from None
    for path in (target, keys_target):
        if path is not None and path.exists():
            raise ServerBackupError(f"{path} already exists; choose a new file name")
    key_file = server.data_dir / KEY_FILE_NAME
    if keys_target is not None and not key_file.is_file():
        raise ServerBackupError(
            f"the master key is not in {server.data_dir} (it comes from MASTER_ENCRYPTION_KEY, "
            "a systemd credential or a key service): back it up where it lives, and run "
            "this without --keys-out"
        )
    if keys_target is None and key_file.is_file():
        raise ServerBackupError(
            f"the master key is in {key_file}: give --keys-out FILE to export it, sealed, to a "
            "file of its own (a backup without it cannot be opened)"
        )
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=server.data_dir))
    try:
        files: list[tuple[str, Path]] = []
        registry = server.registry.db
        assert isinstance(registry, Database)  # embedded: the registry is a SQLCipher store
        registry_copy = work / REGISTRY_FILE
        registry.copy_to(registry_copy)
        files.append((REGISTRY_FILE, registry_copy))
        clinics = [c.id for c in server.registry.clinics()]
        for clinic_id in clinics:
            copy = work / "clinics" / clinic_id / DB_FILE_NAME
            copy.parent.mkdir(parents=True)
            server.replica(clinic_id).copy_to(copy)
            files.append((f"clinics/{clinic_id}/{DB_FILE_NAME}", copy))
        files += _other_files(server.data_dir)
        info = {"clinics": len(clinics)}
        manifest = {"format": DATA_FORMAT, "version": VERSION}
        _seal(target, "server", manifest, files, passphrase, info)
        if keys_target is not None:
            keys_manifest = {"format": KEYS_FORMAT, "version": VERSION}
            _seal(keys_target, "server-keys", keys_manifest, [(KEY_FILE_NAME, key_file)],
                  passphrase, {})  # fmt: skip
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ServerBackup(target, keys_target, len(clinics), len(files))


def _unseal_into(path: Path, kind: str, fmt: str, folder: Path, passphrase: str) -> None:
    where = f"backup {path}"
    try:
        with path.open("rb") as src:
            header = sealed_file.read_header(src, where)
            if header.kind != kind:
                raise ServerBackupError(f"{where} is a {header.kind} backup, not a {kind} one")
            key = sealed_file.unwrap(header, "operator", passphrase.encode("utf-8"), where)

            def check(manifest: dict[str, Any]) -> None:
                if manifest.get("format") != fmt or manifest.get("version") != VERSION:
                    raise BundleError(f"{where} holds {manifest.get('format')!r}, not {fmt}")

            unpacker = Unpacker(folder, check)
            try:
                with unpacker:
                    sealed_file.read_content(src, cast(BinaryIO, unpacker), key, header, where)
                    unpacker.finish()
            finally:
                sealed_file.wipe(key)
    except OSError as exc:
        raise ServerBackupError(f"cannot read {where}: {exc.strerror}") from None
    except (DecryptionError, BundleError) as exc:
        raise ServerBackupError(f"{exc}; nothing was restored") from None


def restore_server(
    path: Path,
    keys_path: Path | None,
    data_dir: Path,
    passphrase: str,
    check: Callable[[Path], object] | None = None,
) -> int:
    """Restore a server backup (and its master key file) into the new, empty ``data_dir``.
    ``check(folder)`` opens the restored server to prove the keys open it, before the folder
    is moved into place. Returns how many files were restored."""
    if data_dir.is_symlink():
        raise ServerBackupError(
            f"{data_dir} is a symbolic link: restore into a new folder (name the folder itself)"
        )
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise ServerBackupError(f"{data_dir} is not an empty folder: restore into a new one")
    if not data_dir.parent.is_dir():
        raise ServerBackupError(f"the folder {data_dir.parent} does not exist")
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restoring-", dir=data_dir.parent))
    try:
        _unseal_into(path, "server", DATA_FORMAT, staging, passphrase)
        if keys_path is not None:
            _unseal_into(keys_path, "server-keys", KEYS_FORMAT, staging, passphrase)
        if check is not None:
            check(staging)
        count = sum(1 for p in staging.rglob("*") if p.is_file())
        if data_dir.exists():
            data_dir.rmdir()
        os.replace(staging, data_dir)
        fsync_dir(data_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return count


def adopt_restored(folder: Path, settings: Mapping[str, Any]) -> dict[str, str]:
    """Open the server restored at ``folder`` with the keys ``settings`` name (proving they
    open every store) and give each clinic replica a new identity (module docstring),
    audited. Returns each clinic's new replica id."""
    server = ClinicServer(folder, provider_from_settings(settings, folder), settings=settings)
    renewed: dict[str, str] = {}
    try:
        for clinic in server.registry.clinics():
            db = server.replica(clinic.id)
            old = oplog.identity(db).replica_id
            fresh = oplog.random_identity()
            details = {"old_replica_id": old, "new_replica_id": fresh.replica_id}
            with db.write("server", "backup.restore", "clinic", clinic.id, details) as tx:
                oplog.take_identity(tx, fresh)
            renewed[clinic.id] = fresh.replica_id
    finally:
        server.close()
    return renewed
