"""Backing up a workstation, and restoring it as a new replica (README "Backup and restore").

What a backup holds: a consistent copy of the clinic database (:mod:`core.store.online_copy`,
taken while the app keeps writing) under a random key of its own, the workstation's
settings file, and every chart attachment whose encrypted file this workstation holds
(:func:`_held_attachments`): those waiting for upload, those added here in a clinic with
no server (held nowhere else but on LAN peers that fetched them), and those it fetched or
uploaded. They go in as the ciphertext the cache holds (still under the clinic attachment
key, which is in the database) and are sealed again with the rest, so the backup's chunk
authentication covers every byte of them. Files uploaded already are included too: the
server can be lost with the workstation (one machine in a small clinic), and a restored
workstation opens its files at once, offline. Not included, because this workstation does
not hold them: files it never fetched, or dropped from its cache (``attachment_cache_mb``);
they are on the server or the workstation that added them. The backup grows by the size of
the cache: up to ``attachment_cache_mb`` (2 GiB by default), plus files waiting for upload
(never dropped). Not the key file: a restored workstation gets a new one (new database key, a
password slot for the person restoring, a new recovery key). Not the sign-in delays nor
failed-sign-in notes: they belong to the lost machine.

Sealing (:mod:`core.crypto.sealed_file`): to the workstation's recovery key (shown at
``init`` or at joining), and, if one is given, to a backup passphrase too. A workstation
whose recovery key nobody holds (:func:`recovery_key_missing`: the demo clinic, whose making
shows none, or one with no recovery key) seals to the passphrase alone, which is then
required: a file sealed to a key nobody has could not be opened. The workstation
seals to its recovery key without anyone present: the key-encryption key that the recovery
slot wraps is in locked memory while the clinic is open, and a copy of the recovery slot
goes into the file's header. That key is never stored in the clear, so the backup is not
sealed with a key kept beside it: the backup file alone, or with the workstation's key file,
opens only with the recovery key (or a staff password slot on that workstation, which opens
the live database anyway). A recovery key replaced later (``careline keys recovery``) still
opens the backups made before: keep the old key as long as those backups.

Restoring never reuses the old identity. Other replicas hold ops numbered ``(old replica
id, seq)``, and the original may have made more after the backup (some of them synced): a
restored replica issuing seq N+1 under the old id again would collide with them. So a restore

- takes a new replica id and a new Yjs client id (new changes to a record document cannot
  collide with the old client's items either);
- drops the old device's credential and signing key (its certificate is bound to the old
  replica id) and the LAN identity; keeps the clinic CA, the revocation list and the device
  certificates of every origin, so ops can still be checked and passed on;
- keeps the op log: the old replica's ops in the backup are the old replica's own, signed by
  its device when they were made. Those others lack (made before the backup, never synced)
  are still sent at the next sync, as the old origin, and verified against the old device's
  certificate; the ones others hold are not sent twice (version vectors). Ops the old
  replica made after the backup arrive back from the server or peers. Revoking the lost
  device does not refuse them: revocation applies to ops timed after it;
- marks the workstation as needing to join again (``restored_identity`` in ``meta``, with
  the server's address and the certificate the old identity pinned for it, so rejoining that
  server needs no ``--ca-file``: :func:`restored_server_pin`): it
  enrolls with a new code or pairs again, which gives the new replica its own certificate,
  and then signs its new ops (those made meanwhile included) and syncs. A workstation that
  holds the clinic CA of a LAN-only clinic certifies its new identity itself at restore.

What Python cannot wipe, stated plainly: the copy's random database key travels inside the
sealed content as hex text in the manifest (a ``str``), and the passphrase and recovery key
arrive as ``str``; those copies linger until the allocator reuses their memory. The restored
database is re-keyed at once, so the copy's key opens nothing outside the backup file.

What cannot be recovered: ops the old replica made after the backup and never sent to
anyone. Own ops the old replica never signed (it had never joined a server or a LAN) cannot
be sent as ops any more (nothing may sign for the old identity now); their effect stays in
this replica's record states, which a workstation joining it later receives in its first
snapshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from core.config.settings import CONFIG_FILE_NAME
from core.crypto import sealed_file
from core.crypto.bundle import BundleError, Unpacker
from core.crypto.errors import DecryptionError
from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.crypto.secure_memory import SecureMemory
from core.errors import CarelineError
from core.keys.errors import KeyringUnavailableError
from core.keys.keychain import KEYSLOT_FILE_NAME, Keychain
from core.keys.recovery import normalize_recovery_key
from core.platform.files import fsync_dir
from core.records import authorize
from core.records.demo import is_demo_database
from core.records.workstation import Workstation
from core.store import oplog
from core.store.blobs.base import BLOB_ID_PATTERN
from core.store.database import DB_FILE_NAME, Database, utc_now
from core.store.migrations import LATEST_VERSION
from core.store.online_copy import export_copy
from core.sync.lan import identity as lan

CONTENT_FORMAT = "careline-workstation-backup"
# 2: the attachments' encrypted files are in the backup too. Version 1 (the database and
# settings only) still restores. A release that reads only 1 refuses a version 2 backup,
# naming both versions, before writing anything.
CONTENT_VERSION = 2
READABLE_VERSIONS = (1, 2)
ATTACHMENTS = "attachments"  # the cache's folder in a data folder, and in a backup
_BLOB_NAME = re.compile(r"attachments/([0-9a-f]{2})/(\1[0-9a-f]{62})")
RESTORED_KEY = "restored_identity"  # meta: the old identity, and that a join is needed
# meta rows that name or sign as the old identity (the clinic CA's own key stays).
_OLD_IDENTITY_KEYS = ("op_signer", "op_chain", "server_credential", "lan_identity",
                      "lan_pair_codes")  # fmt: skip


class BackupError(CarelineError):
    """A backup or restore failed; the message names the problem and what was left.
    ``field``: the argument it is about, when one is ("target", "passphrase", "path",
    "data_dir", "secret"): a form puts the keyboard there."""

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        self.field = field


@dataclass(frozen=True)
class BackupResult:
    """A backup written."""

    path: Path
    size: int
    created: str
    openers: list[str]
    attachments: int = 0  # encrypted attachment files included
    attachment_bytes: int = 0  # their size
    pending: int = 0  # of them, waiting for upload (they stay so when restored)
    not_held: int = 0  # files named in charts that this workstation does not hold


@dataclass(frozen=True)
class RestoreResult:
    """A workstation restored into a new folder."""

    data_dir: Path
    old_replica_id: str
    new_replica_id: str
    recovery_key: str  # the new workstation's recovery key, to be shown once
    backup_created: str
    needs_join: bool  # False only for the holder of a LAN clinic's CA (it certified itself)
    server_url: str | None  # the server the old identity was enrolled with
    recovery_slot_id: str = ""  # the slot ``recovery_key`` opens (withdraw_recovery_key)
    attachments: int = 0  # encrypted attachment files restored (0 from a version 1 backup)
    pending: int = 0  # of them, waiting for upload again


# ----- creating ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _HeldFiles:
    files: list[tuple[str, Path]]  # (name in the backup, a link to the blob in ``work``)
    size: int
    pending: list[str]  # blob ids waiting for upload
    not_held: int


def _link_or_copy(source: Path, link: Path) -> None:
    try:
        os.link(source, link)
    except FileNotFoundError:
        raise
    except OSError:  # a file system without hard links (FAT, some network shares)
        shutil.copyfile(source, link)


def _held_attachments(ws: Workstation, work: Path) -> _HeldFiles:
    """Every complete encrypted attachment file in the cache, hard-linked into ``work``
    (copied where the file system has no links) so that the cache may drop or add files
    while the backup streams them: they are immutable, content-addressed files, so a link
    is a consistent copy. Partial downloads and temporary files are left out (their names
    are not bare blob ids); a file dropped from the cache before it was linked is too.
    Taken after the database copy: a file is in the cache before any record names it, so
    every file the copied records name that was held here then is included."""
    cache = ws.data_dir / ATTACHMENTS
    files: list[tuple[str, Path]] = []
    size = 0
    for folder in sorted(cache.glob("[0-9a-f][0-9a-f]")) if cache.is_dir() else []:
        for blob in sorted(folder.iterdir()):
            name = f"{ATTACHMENTS}/{folder.name}/{blob.name}"
            if not _BLOB_NAME.fullmatch(name):
                continue
            link = work / name
            link.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                _link_or_copy(blob, link)
            except FileNotFoundError:
                continue  # dropped from the cache meanwhile (only files already uploaded are)
            files.append((name, link))
            size += link.stat().st_size
    included = {Path(name).name for name, _ in files}
    marks = cache / "pending"
    pending = sorted(
        p.name for p in (marks.iterdir() if marks.is_dir() else []) if p.name in included
    )
    named = {str(b) for (b,) in ws.database.query(
        "SELECT DISTINCT blob_id FROM attachments WHERE blob_id IS NOT NULL")}  # fmt: skip
    return _HeldFiles(files, size, pending, len(named - included))


def _os_reason(exc: OSError) -> str:
    """``No space left on device``: the system's words, without the errno."""
    return exc.strerror or str(exc)


# Audited actions after which someone has been shown the workstation's recovery key in force:
# a new key made (Settings → New recovery key…, ``careline keys recovery``) or a restore
# (which shows the restored workstation's key; one never confirmed as stored is withdrawn).
_RECOVERY_KEY_SHOWN = ("keys.recovery_replace", "backup.restore")


def recovery_key_missing(ws: Workstation) -> str | None:
    """Why nobody can open a backup of the open clinic in ``ws`` with its recovery key, as a
    sentence to show; None when someone was shown the key in force. The demo clinic's first
    key was made and never shown (core.records.demo), so it counts only once a new key was
    made (or a restore showed one)."""
    if ws.keychain().recovery_slot() is None:
        return (
            "This computer has no recovery key (the one made when it was restored was never "
            "confirmed as stored, or it joined the clinic with nobody present)"
        )
    db = ws.database
    if not is_demo_database(db):
        return None
    shown = db.query("SELECT 1 FROM audit_log WHERE action IN (?, ?) LIMIT 1", _RECOVERY_KEY_SHOWN)
    if shown:
        return None
    return (
        "Nobody was shown the demo clinic's recovery key (making the demo shows none, and no "
        "new one has been made in it)"
    )


def create_backup(
    ws: Workstation,
    target: Path,
    passphrase: str | None,
    actor: str,
    action: str = "backup.create",
) -> BackupResult:
    """Back up the open clinic in ``ws`` to the new file ``target`` (see the module
    docstring); audited as ``action`` ("backup.scheduled" for the workstation's own
    timer), which the permission matrix is asked about first. ``target`` appears only once
    complete."""
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new file name", field="target")
    if passphrase is not None:
        try:
            sealed_file.check_new_passphrase(passphrase)
        except ValueError as exc:
            raise BackupError(str(exc), field="passphrase") from None
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist", field="target")
    keys = ws.unlocked_keys
    chain = ws.keychain()
    missing = recovery_key_missing(ws)
    slot = chain.recovery_slot() if missing is None else None
    if missing is not None and passphrase is None:
        raise BackupError(
            f"{missing}: a backup of it would open only with a backup passphrase, and none "
            "was given",
            field="passphrase",
        )
    db = ws.database
    authorize.require(db, actor, action)
    old_id = str(db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0])
    created = utc_now()
    copy_key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    content_key = sealed_file.new_content_key()
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=ws.data_dir))
    try:
        copy = work / DB_FILE_NAME
        export_copy(ws.db_path, keys.db_key, copy, copy_key)
        files: list[tuple[str, Path]] = [(DB_FILE_NAME, copy)]
        config = ws.data_dir / CONFIG_FILE_NAME
        if config.is_file():
            files.append((CONFIG_FILE_NAME, config))
        held = _held_attachments(ws, work)
        files += held.files
        manifest = {"format": CONTENT_FORMAT, "version": CONTENT_VERSION,
                    "db_key": copy_key.hex(), "pending": held.pending}  # fmt: skip
        openers: list[sealed_file.Opener] = []
        if slot is not None:
            openers.append(
                sealed_file.recovery_opener(content_key, keys.kek.read(), slot, chain.db_id, 0)
            )
        if passphrase is not None:
            openers.append(sealed_file.passphrase_opener(content_key, passphrase, len(openers)))
        # Counts only (no names, no sizes of single files): what ``backup info`` shows.
        info = {"replica_id": old_id, "schema_version": LATEST_VERSION,
                "attachments": len(held.files), "attachments_not_held": held.not_held}  # fmt: skip
        header = sealed_file.Header("workstation", created, openers, info)
        try:
            sealed_file.write_bundle_file(target, header, content_key, manifest, files)
        except BundleError as exc:
            raise BackupError(f"cannot back up to {target}: {exc}", field="target") from None
        except OSError as exc:
            # A full or vanished backup disk: said as such, not as an unexpected error
            # (nothing of the backup is left behind: write_bundle_file removes its part).
            raise BackupError(
                f"cannot write the backup {target}: {_os_reason(exc)}", field="target"
            ) from None
    except OSError as exc:
        raise BackupError(
            f"cannot prepare the backup in {ws.data_dir}: {_os_reason(exc)}"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        copy_key.close()
        sealed_file.wipe(content_key)
    details = {"openers": [o.kind for o in openers], "file": target.name,
               "attachments": len(held.files)}  # fmt: skip
    with db.write(actor, action, "clinic", old_id, details):
        pass
    return BackupResult(target, target.stat().st_size, created, [o.kind for o in openers],
                        len(held.files), held.size, len(held.pending), held.not_held)  # fmt: skip


# ----- restoring --------------------------------------------------------------------------


def _check_manifest(data: dict[str, Any]) -> None:
    """Refuse a manifest this Careline does not read (BundleError): another format or
    version, files other than the database, settings and (version 2) attachment files
    under their own blob ids, or a pending mark for a file not in the backup."""
    version = data.get("version")
    if data.get("format") != CONTENT_FORMAT or version not in READABLE_VERSIONS:
        readable = " or ".join(str(v) for v in READABLE_VERSIONS)
        raise BundleError(
            f"the backup's content is {data.get('format')!r} version {version!r}; this "
            f"Careline reads {CONTENT_FORMAT} version {readable} (a newer release made it?)"
        )
    names = [str(f.get("name")) for f in data["files"]]
    if DB_FILE_NAME not in names:
        raise BundleError("the backup's manifest lists no clinic database")
    blobs: set[str] = set()
    for name in names:
        match = _BLOB_NAME.fullmatch(name) if version != 1 else None
        if match is not None:
            blobs.add(match[2])
        elif name not in (DB_FILE_NAME, CONFIG_FILE_NAME):
            raise BundleError(f"the backup's manifest lists an unexpected file: {name[:100]!r}")
    pending = data.get("pending", [])
    if not isinstance(pending, list) or any(
        not isinstance(b, str) or not BLOB_ID_PATTERN.fullmatch(b) or b not in blobs
        for b in pending
    ):
        raise BundleError("the backup's manifest marks for upload a file it does not hold")
    try:
        bytes.fromhex(str(data["db_key"]))
    except (KeyError, ValueError):
        raise BundleError("the backup's manifest holds no database key") from None


def _mark_pending(staging: Path, manifest: dict[str, Any]) -> None:
    """The files that were waiting for upload wait again: they upload once the restored
    workstation has joined (the cache's ``pending`` marks, as Attachments keeps them)."""
    pending = manifest.get("pending", [])
    if not pending:
        return
    marks = staging / ATTACHMENTS / "pending"
    marks.mkdir(mode=0o700, parents=True, exist_ok=True)
    for blob_id in pending:
        os.close(os.open(marks / blob_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def read_backup_header(path: Path) -> sealed_file.Header:
    """The readable header of a backup file (which secrets open it, when it was made)."""
    try:
        with path.open("rb") as src:
            return sealed_file.read_header(src, f"backup {path}")
    except OSError as exc:
        raise BackupError(f"cannot read backup {path}: {exc.strerror}", field="path") from None


def _content_key(header: sealed_file.Header, path: Path, kind: str, secret: str) -> bytearray:
    where = f"backup {path}"
    if kind == "recovery":
        try:
            raw = normalize_recovery_key(secret)
        except ValueError as exc:
            raise BackupError(f"{exc}", field="secret") from None
    else:
        raw = secret.encode("utf-8")
    return sealed_file.unwrap(header, kind, raw, where)


def _require_empty_target(data_dir: Path) -> None:
    if data_dir.is_symlink():
        raise BackupError(
            f"{data_dir} is a symbolic link: a backup is restored only into a new folder "
            "(name the folder itself)",
            field="data_dir",
        )
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(
            f"{data_dir} is not an empty folder: a backup is restored only into a new one",
            field="data_dir",
        )
    if not data_dir.parent.is_dir():
        raise BackupError(f"the folder {data_dir.parent} does not exist", field="data_dir")


SignIn = Callable[[Workstation], object]


def restore_backup(
    path: Path,
    data_dir: Path,
    secret_kind: str,
    secret: str,
    username: str,
    password: str,
    sign_in: SignIn,
    kdf_params: Argon2Params = DEFAULT_PARAMS,
    hold_recovery_key: bool = False,
) -> RestoreResult:
    """Restore the backup at ``path`` into the new folder ``data_dir`` with a new identity
    (module docstring). ``secret_kind`` is "recovery" or "passphrase". ``username`` and
    ``password`` make the new key file's first password slot; ``sign_in`` then signs that
    person in on the restored replica (their account must be in the backup, active, and an
    administrator's). Nothing appears at ``data_dir`` unless all of it succeeded.

    ``hold_recovery_key`` (the app): the new recovery key arrives staged, opening nothing
    until :func:`confirm_recovery_key` once the person confirmed storing it. An app that
    quits, or is killed, before then leaves no key in force that nobody saw: the restored
    computer's first open withdraws it, and it opens with the password."""
    _require_empty_target(data_dir)
    header = read_backup_header(path)
    if header.kind != "workstation":
        raise BackupError(
            f"backup {path} is a {header.kind} backup, not a workstation's", field="path"
        )
    content_key = _content_key(header, path, secret_kind, secret)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restoring-", dir=data_dir.parent))
    try:
        os.chmod(staging, 0o700)
        unpacker = Unpacker(staging, _check_manifest)
        try:
            with path.open("rb") as src, unpacker:
                sealed_file.read_header(src, f"backup {path}")
                sealed_file.read_content(
                    src, cast(BinaryIO, unpacker), content_key, header, f"backup {path}"
                )
                manifest = unpacker.finish()
        except (DecryptionError, BundleError) as exc:
            raise BackupError(f"{exc}{_where(unpacker)}; nothing was restored") from None
        finally:
            sealed_file.wipe(content_key)
        _mark_pending(staging, manifest)
        result = _adopt(staging, manifest, header, username, password, sign_in, kdf_params)
        if hold_recovery_key:
            # After _adopt's sign-in (an open withdraws a staged key), before the folder
            # appears under its name.
            Keychain.load(staging / KEYSLOT_FILE_NAME).hold_recovery_key(result[-1])
        if data_dir.exists():
            data_dir.rmdir()
        os.replace(staging, data_dir)
        fsync_dir(data_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    blobs = sum(1 for f in manifest["files"] if _BLOB_NAME.fullmatch(str(f["name"])))
    return RestoreResult(data_dir, *result, blobs, len(manifest.get("pending", [])))


def _where(unpacker: Unpacker) -> str:
    """Which part of the backup a failure lies in, as people read it."""
    name = unpacker.position()
    if name is None:
        return ""
    match = _BLOB_NAME.fullmatch(name)
    if match is not None:
        return f" (in the encrypted file of attachment {match[2]})"
    return f" (in {'the clinic database' if name == DB_FILE_NAME else name})"


def _adopt(
    staging: Path,
    manifest: dict[str, Any],
    header: sealed_file.Header,
    username: str,
    password: str,
    sign_in: SignIn,
    kdf_params: Argon2Params,
) -> tuple[str, str, str, str, bool, str | None, str]:
    """Give the unpacked database a key file of its own and a new identity."""
    copy_key = SecureMemory.from_bytes(bytearray(bytes.fromhex(manifest["db_key"])))
    try:
        db = Database.open(staging / DB_FILE_NAME, copy_key)
    finally:
        copy_key.close()
    chain, keys, recovery = Keychain.create(
        staging / KEYSLOT_FILE_NAME, username.strip().lower(), password, kdf_params
    )
    recovery_slot = chain.recovery_slot()
    assert recovery_slot is not None  # a new key file always has one
    try:
        db.rekey(keys.db_key)
        with contextlib.suppress(KeyringUnavailableError):  # as at joining: optional
            chain.add_keyring_slot(keys)
    finally:
        db.close()
        keys.close()
    ws = Workstation(staging, kdf_params)
    try:
        sign_in(ws)
        records = ws.require_admin("restore a backup")
        old, new, server_url = reset_identity(records.db, records.actor, header.created)
        certified = lan.has_ca_key(records.db)
        if certified:
            lan.recertify_ca_holder(records.db, records.actor)
    finally:
        ws.lock()
    return old, new, recovery, header.created, not certified, server_url, recovery_slot.slot_id


def withdraw_recovery_key(data_dir: Path, slot_id: str) -> bool:
    """Remove the recovery slot ``slot_id`` (staged or in force) from the workstation
    restored into ``data_dir``: its key was never shown, or nobody confirmed storing it
    (the app's restore, closed by a sign-out or quitting). The password of the person who
    restored it still opens it, and an administrator makes a new recovery key there.
    Returns False if that slot is gone already (withdrawn, or a new key made there since)."""
    chain = Keychain.load(data_dir / KEYSLOT_FILE_NAME)
    if chain.discard_recovery_key(slot_id):
        return True
    if not any(s.slot_id == slot_id and s.kind == "recovery" for s in chain.slots):
        return False
    chain.remove_slot(slot_id)
    return True


def confirm_recovery_key(data_dir: Path, slot_id: str) -> None:
    """The restored computer's staged recovery key ``slot_id`` goes in force: the person it
    was shown to confirmed storing it (``hold_recovery_key``). Nothing changes if it is in
    force already; NoSlotError if it was withdrawn meanwhile (the restored computer was
    opened before the confirmation)."""
    Keychain.load(data_dir / KEYSLOT_FILE_NAME).confirm_recovery_key(slot_id)


def reset_identity(db: Database, actor: str, backup_created: str) -> tuple[str, str, str | None]:
    """Give the replica in ``db`` a new replica id and Yjs client id, forget the old
    device's credential and signing key, and mark it as needing to join again (audited).
    Returns (old replica id, new replica id, the server URL the old identity used)."""
    meta: dict[str, str] = dict(db.query("SELECT key, value FROM meta"))
    old = str(meta["replica_id"])
    fresh = oplog.random_identity()
    new = fresh.replica_id
    credential = json.loads(str(meta["server_credential"])) if "server_credential" in meta else {}
    server_url = credential.get("server_url")
    marker = {
        "old_replica_id": old,
        "old_device_id": credential.get("device_id"),
        "server_url": server_url,
        # The server's certificate as the old identity pinned it at enrollment (public,
        # and inside the authenticated backup): rejoining the same server trusts it again.
        "server_ca_pem": credential.get("server_ca_pem"),
        "backup_created": backup_created,
        "restored_at": utc_now(),
    }
    details = {"old_replica_id": old, "new_replica_id": new, "backup_created": backup_created}
    with db.write(actor, "backup.restore", "clinic", new, details) as tx:
        for key in _OLD_IDENTITY_KEYS:
            tx.execute("DELETE FROM meta WHERE key = ?", (key,))
        oplog.take_identity(tx, fresh)
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (RESTORED_KEY, json.dumps(marker)),
        )
    return old, new, server_url


def restored_server_pin(db: Database, server_url: str) -> str | None:
    """The server certificate the old identity of a restored replica in ``db`` had pinned,
    when it joins ``server_url`` again, the server it was enrolled with; None otherwise
    (never restored, joined since, another server, or the system's CAs were trusted)."""
    restored = restored_identity(db)
    if restored is None or not restored.get("server_ca_pem"):
        return None
    same = str(restored.get("server_url") or "").rstrip("/") == server_url.strip().rstrip("/")
    return str(restored["server_ca_pem"]) if same else None


def restored_identity(db: Database) -> dict[str, Any] | None:
    """The old identity of a replica restored from a backup that has not joined since."""
    meta: dict[str, str] = dict(db.query("SELECT key, value FROM meta WHERE key IN (?, ?, ?)",
                         (RESTORED_KEY, "server_credential", "lan_identity")))  # fmt: skip
    if RESTORED_KEY not in meta or len(meta) > 1:
        return None  # never restored, or it has joined again since
    return dict(json.loads(str(meta[RESTORED_KEY])))
