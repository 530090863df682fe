"""The clinic server: tenants, their replicas, enrollment, device auth and sync.

Embedded default (no DATABASE_URL): each clinic's replica is a SQLCipher file under
``<data dir>/clinics/<clinic id>/clinic.db`` whose raw key is that clinic's "replica" data
key from the key provider; the registry is ``<data dir>/registry.db`` under the server's
"registry" data key. Wrapped keys are stored, plaintext keys never are.

Attachments are envelope-encrypted here, before any byte reaches a blob store, and streamed
in chunks (:mod:`core.crypto.streaming`): the per-clinic "attachments" data key wraps each
file's own key, the AAD binds the clinic id and the purpose, and the blob id is keyed by a
separate per-clinic "attachment-ids" data key (content addressing: one clinic's equal files
share one blob, while two clinics' ids for the same file are unrelated). Each clinic has its
own namespace in the blob store (``<data dir>/blobs/<clinic id>/`` or
``s3://<bucket>/clinics/<clinic id>/attachments/``), so a device can only ever ask its own
clinic's namespace; another clinic's blob cannot even be found, let alone decrypted.
S3 server-side encryption is neither requested nor relied on.

With ``DATABASE_URL`` the registry and every clinic's replica live in PostgreSQL instead
(:mod:`core.server.postgres`): op payloads and record states sealed per column under the
clinic's "tde:<generation>" data keys, record ids replaced by blind indexes, and row-level
security on the tenant column. Several server processes may share that database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

import blake3

from core.audit.verify import verify_audit_log
from core.authz.tuples import RelationTuple
from core.config.settings import ConfigError
from core.crypto import aead, certs, op_signature
from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.crypto.secure_memory import SecureMemory
from core.crypto.streaming import content_id, iter_decrypt
from core.errors import CarelineError
from core.keys.data_keys import DataKeyCache
from core.keys.files import exclusive_lock, replace_private
from core.keys.providers import KeyProvider
from core.platform.file_lock import lock_fd, try_lock_fd
from core.records import op_trust, unknown
from core.records.break_glass_audit import worked_under
from core.records.clinic import ClinicRecords, new_id
from core.records.models import User
from core.records.permissions import CLINIC_OBJECT
from core.records.relations import Access
from core.records.staff import Staff
from core.server import security_log, vouching
from core.server.blob_uploads import BlobUploads, UploadState
from core.server.registry import (
    REGISTRY_MIGRATIONS,
    AccountChecksSpentError,
    Clinic,
    Device,
    Registry,
    RegistryError,
)
from core.store import op_signer
from core.store.audit_chain import AuditEntry, Head
from core.store.blobs import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
    FilesystemBlobStore,
    StoredAttachment,
    put_attachment,
    validate_blob_id,
)
from core.store.database import DB_FILE_NAME, Database
from core.store.errors import WrongKeyError
from core.store.oplog import Op
from core.sync import audit_anchor
from core.sync.enroll import device_name_problem
from core.sync.responder import Responder
from core.sync.snapshot_image import ImageKeeper, ImageStream
from core.sync.stores import DatabaseStore, SyncStore

if TYPE_CHECKING:
    from core.server.postgres.columns import ColumnCipher
    from core.server.postgres.connection import PgStore
    from core.server.postgres.replica import PgReplica

log = logging.getLogger(__name__)
SERVER_TENANT = "server"
REPLICA = "replica"
REPLICA_NEXT = "replica-next"  # registry row of a staged key during re-encryption
REGISTRY_KEY_FILE = "registry.key.json"
ATTACHMENT_KEY_PURPOSE = "attachments"  # per-clinic KEK wrapping each attachment's DEK
ATTACHMENT_ID_PURPOSE = "attachment-ids"  # per-clinic key naming blobs (content ids)
MAX_ATTACHMENT_BYTES = 512 * 1024 * 1024
MAX_KEY_GRANT_BYTES = 1024
DEFAULT_S3_THRESHOLD = 8 * 1024 * 1024
_CLINIC_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
ADMIN_ACTOR = "server-admin"
TDE_PREFIX = "tde"  # PostgreSQL column keys: purposes "tde:<generation>"
T = TypeVar("T")
KEY_MAX_AGE_S = 300.0  # unwrapped data keys are dropped (zeroed) after this long


@dataclass(frozen=True)
class Enrollment:
    """What a newly enrolled device receives."""

    device_id: str
    clinic_id: str
    clinic_name: str
    token: str
    certificate: str
    ca_certificate: str


@dataclass(frozen=True)
class AccountForEnrollment:
    """An account as a joining workstation checks it before enrolling: its password
    verifier (None: no account has the name) and whether it is active."""

    verifier: str | None = field(repr=False)
    active: bool


class ServerError(CarelineError, ValueError):
    """A request or admin command that cannot be carried out; the message says why."""


class AccountChecksSpent(ServerError):
    """A code has answered its account checks (``registry.account_checks_allowed``)."""


class ClinicBlobStores(Protocol):
    """Where encrypted attachments live: one separate namespace (BlobStore) per clinic."""

    def for_clinic(self, clinic_id: str) -> BlobStore: ...


def _namespace(clinic_id: str) -> str:
    if _CLINIC_ID.fullmatch(clinic_id) is None:  # registry ids always match; never a path
        raise ServerError(f"invalid clinic id {clinic_id[:80]!r}")
    return clinic_id


class FilesystemClinicBlobs:
    """Each clinic's blobs under ``root/<clinic id>/`` (atomic, fsync'd writes)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self._fsync = fsync

    def for_clinic(self, clinic_id: str) -> BlobStore:
        """The clinic's store (its folder is made on first use, mode 0700)."""
        return FilesystemBlobStore(self.root / _namespace(clinic_id), fsync=self._fsync)


class S3ClinicBlobs:
    """Each clinic's blobs under ``s3://<bucket>/<prefix><clinic id>/attachments/``.

    Ciphertext of ``multipart_threshold`` bytes or more goes up as a multipart upload in
    parts of that size (at least S3's 5 MiB minimum).
    """

    def __init__(
        self,
        bucket: str,
        client: Any,
        multipart_threshold: int = DEFAULT_S3_THRESHOLD,
        *,
        prefix: str = "clinics/",
        spool_dir: Path | None = None,
    ) -> None:
        from core.store.blobs.s3 import MAX_PART_SIZE, MIN_PART_SIZE

        self.bucket = bucket
        self.client = client
        self.multipart_threshold = multipart_threshold
        self.part_size = min(max(multipart_threshold, MIN_PART_SIZE), MAX_PART_SIZE)
        self.prefix = prefix
        self.spool_dir = spool_dir

    def for_clinic(self, clinic_id: str) -> BlobStore:
        """The clinic's store: the bucket seen through the clinic's key prefix."""
        from core.store.blobs.s3 import S3BlobStore

        return S3BlobStore(
            self.bucket,
            self.client,
            self.multipart_threshold,
            part_size=self.part_size,
            prefix=f"{self.prefix}{_namespace(clinic_id)}/attachments/",
            spool_dir=self.spool_dir,
        )


def blob_stores_from_settings(
    settings: Mapping[str, Any], data_dir: Path, *, session: Any = None
) -> ClinicBlobStores:
    """STORAGE_BACKEND=filesystem (default): ``<data dir>/blobs``; s3: S3_BUCKET at
    S3_ENDPOINT_URL (boto3; credentials from ``session`` or boto3's default chain), multipart
    at S3_ENCRYPTION_THRESHOLD bytes and above."""
    backend = settings.get("STORAGE_BACKEND") or "filesystem"
    if backend == "filesystem":
        return FilesystemClinicBlobs(data_dir / "blobs")
    if backend != "s3":
        raise ConfigError(f"STORAGE_BACKEND: unknown backend {backend!r} (filesystem or s3)")
    bucket = settings.get("S3_BUCKET")
    if not bucket:
        raise ConfigError("S3_BUCKET is required when STORAGE_BACKEND=s3")
    import boto3

    session = session if session is not None else boto3.session.Session()
    client = session.client(
        "s3", endpoint_url=settings.get("S3_ENDPOINT_URL"), region_name=settings.get("AWS_REGION")
    )
    threshold = int(settings.get("S3_ENCRYPTION_THRESHOLD") or DEFAULT_S3_THRESHOLD)
    return S3ClinicBlobs(bucket, client, threshold, spool_dir=data_dir / "spool")


def attachment_aad(clinic_id: str) -> bytes:
    """Associated data of a clinic's attachments: binds tenant and purpose."""
    return f"careline/attachment|{clinic_id}|{ATTACHMENT_KEY_PURPOSE}".encode()


def _contents(folder: Path) -> tuple[int, int]:
    """How many files ``folder`` holds (at any depth) and their bytes in all, for the log;
    a file gone meanwhile counts as nothing."""
    files = size = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                size += path.stat().st_size
                files += 1
    return files, size


class ClinicServer:
    """All server state behind one object; thread-safe for the web workers."""

    def __init__(
        self,
        data_dir: Path,
        provider: KeyProvider,
        kdf_params: Argon2Params = DEFAULT_PARAMS,
        *,
        settings: Mapping[str, Any] | None = None,
        blob_stores: ClinicBlobStores | None = None,
        max_attachment_bytes: int = MAX_ATTACHMENT_BYTES,
        wait_for_database: bool = True,
    ) -> None:
        """``blob_stores`` wins over ``settings`` (STORAGE_BACKEND, S3_*); with neither,
        attachments go to ``<data dir>/blobs``. ``wait_for_database``: a PostgreSQL server
        that does not answer yet is waited for (serving), or refused at once (an admin
        command)."""
        self.data_dir = data_dir
        self.provider = provider
        self.kdf_params = kdf_params
        self.settings: dict[str, Any] = dict(settings or {})
        self.max_attachment_bytes = max_attachment_bytes
        self._lock = threading.RLock()
        self._replicas: dict[str, Database] = {}
        self._pg_replicas: dict[str, PgReplica] = {}
        # Each clinic's snapshot image (core.sync.snapshot_image), made on demand.
        self._image_keepers: dict[str, ImageKeeper] = {}
        self._images_dir: Path | None = None
        self._images_owner = -1  # the locked descriptor holding _images_dir
        self._image_build_slot = threading.Semaphore(1)  # one clinic's image at a time
        self._ca_signers: dict[str, op_signer.Signer] = {}  # parsed clinic CA keys
        # PostgreSQL column keys per clinic, with when they were unwrapped: rebuilt after
        # KEY_MAX_AGE_S; a replaced one is zeroed one more period later (a request that
        # fetched it just before may still be using it).
        self._ciphers: dict[str, tuple[float, ColumnCipher]] = {}
        self._old_ciphers: list[tuple[float, ColumnCipher]] = []
        # Unwrapped data keys, bounded in age and count, so KMS or Vault is not asked on
        # every request, and no key stays in memory for longer than KEY_MAX_AGE_S unused.
        self.keys = DataKeyCache(provider, max_age_s=KEY_MAX_AGE_S)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # the service user's alone
        self.blob_stores = (
            blob_stores
            if blob_stores is not None
            else blob_stores_from_settings(settings or {}, data_dir)
        )
        self.pg: PgStore | None = None
        url = (settings or {}).get("DATABASE_URL")
        if url:
            from core.server.postgres.connection import PgStore
            from core.server.postgres.registry_db import PgRegistryDb

            self.pg = PgStore(
                url,
                (settings or {}).get("DATABASE_SSL_MODE") or "verify-full",
                wait=wait_for_database,
            )
            self.registry = Registry(PgRegistryDb(self.pg))
        else:
            self.registry = Registry(self._open_registry())

    # ----- keys -----------------------------------------------------------------------

    def _open_registry(self) -> Database:
        # Server processes sharing a data dir must not both create the registry (each with
        # its own key: the file would then never open again): one at a time.
        with exclusive_lock(self.data_dir / "registry.lock"):
            return self._open_or_create_registry()

    def _open_or_create_registry(self) -> Database:
        path = self.data_dir / "registry.db"
        key_file = self.data_dir / REGISTRY_KEY_FILE
        if key_file.exists():
            info = json.loads(key_file.read_text())
            key = self.provider.unwrap(
                SERVER_TENANT, "registry", bytes.fromhex(info["wrapped"]), info["version"]
            )
            return Database.open(path, key, migrations=REGISTRY_MIGRATIONS)
        if path.exists():
            raise ServerError(f"{path} exists but its key file {key_file} is missing")
        new = self.provider.generate_data_key(SERVER_TENANT, "registry")
        info = {"wrapped": new.wrapped.hex(), "version": new.version}
        replace_private(key_file, json.dumps(info).encode())
        return Database.create(path, new.key, migrations=REGISTRY_MIGRATIONS)

    def _data_key(self, clinic_id: str, purpose: str) -> SecureMemory:
        stored = self.registry.data_key(clinic_id, purpose)
        if stored is None:
            with self._lock:  # two first requests must not each create (and store) a key
                stored = self.registry.data_key(clinic_id, purpose)
                if stored is None:
                    new = self.provider.generate_data_key(clinic_id, purpose)
                    # Atomic in the registry: another server process may have stored one.
                    stored = self.registry.add_data_key(
                        clinic_id, purpose, new.wrapped, new.version
                    )
                    if stored == (new.wrapped, new.version):
                        key: SecureMemory = new.key
                        return key
                    new.close()
        return self.keys.key_for_decrypt(clinic_id, purpose, stored[0], stored[1])

    def rotate_keys(self) -> dict[str, Any]:
        """New provider key version; every wrapped data key is re-wrapped under it."""
        with self._lock:
            version = self.provider.rotate()
            moved = 0
            for clinic_id, purpose, wrapped, old in self.registry.all_data_keys():
                if old == version:
                    continue
                # A staged re-encryption key is bound to the purpose it will serve.
                binding = REPLICA if purpose == REPLICA_NEXT else purpose
                new_wrapped, new_version = self.provider.rewrap(clinic_id, binding, wrapped, old)
                self.registry.store_data_key(clinic_id, purpose, new_wrapped, new_version)
                moved += 1
            key_file = self.data_dir / REGISTRY_KEY_FILE
            if self.pg is None:  # on PostgreSQL the registry has no file key
                info = json.loads(key_file.read_text())
                wrapped, new_version = self.provider.rewrap(
                    SERVER_TENANT, "registry", bytes.fromhex(info["wrapped"]), info["version"]
                )
                replace_private(
                    key_file,
                    json.dumps({"wrapped": wrapped.hex(), "version": new_version}).encode(),
                )
                moved += 1
            return {"key_version": version, "rewrapped": moved}

    # ----- clinics and users ----------------------------------------------------------

    def create_clinic(self, name: str) -> Clinic:
        """A new tenant with its CA and an empty replica."""
        with self._lock:
            self.registry.check_new_clinic_name(name)
            clinic_id = new_id()
            ca_key, ca_cert = certs.create_ca(clinic_id)
            wrap_key = self._data_key(clinic_id, "ca")
            wrapped = aead.encrypt(
                wrap_key.read(), certs.private_key_pem(ca_key), f"ca|{clinic_id}".encode()
            )
            clinic = self.registry.create_clinic(clinic_id, name, ca_cert, wrapped)
            self._admin_write(clinic.id, lambda records: records.set_clinic_name(clinic.name))
            return clinic

    def _admin_write(self, clinic_id: str, work: Callable[[ClinicRecords], T]) -> T:
        """Run a write on the clinic's records as the server (both backends)."""
        if self.pg is not None:
            return self.pg_replica(clinic_id).run_admin(ADMIN_ACTOR, work, self.kdf_params)
        return work(ClinicRecords(self.replica(clinic_id), ADMIN_ACTOR, self.kdf_params))

    def sync_store(self, clinic_id: str) -> SyncStore:
        """The clinic's replica as the sync responder serves it."""
        if self.pg is not None:
            return self.pg_replica(clinic_id)
        return DatabaseStore(self.replica(clinic_id))

    def image_keeper(self, clinic_id: str) -> ImageKeeper:
        """The clinic's snapshot image keeper. Images live in a folder of this process's
        own under the spool (several server processes may share the data folder), under
        keys that only this process's memory holds."""
        with self._lock:
            keeper = self._image_keepers.get(clinic_id)
            if keeper is None:
                if self._images_dir is None:
                    self._images_dir = self._own_images_dir()
                self.registry.clinic(clinic_id)
                keeper = ImageKeeper(
                    functools.partial(self.sync_store, clinic_id),
                    self._images_dir / clinic_id,
                    build_slot=self._image_build_slot,
                )
                self._image_keepers[clinic_id] = keeper
            return keeper

    def _own_images_dir(self) -> Path:
        """This process's images folder, held by a lock on its ``.owner`` file for as long
        as the process lives; a folder whose lock is free was left by a process that died
        (its images' keys died with it): removed."""
        folder = Path(tempfile.mkdtemp(prefix="images-", dir=self._spool_dir()))
        owner = os.open(folder / ".owner", os.O_RDWR | os.O_CREAT, 0o600)
        lock_fd(owner)
        self._images_owner = owner
        for other in self._spool_dir().glob("images-*"):
            if other == folder:
                continue
            try:
                fd = os.open(other / ".owner", os.O_RDWR)
            except FileNotFoundError:
                fd = None  # made, never locked: its process died at once
            except OSError:
                continue
            try:
                if fd is None or try_lock_fd(fd):
                    files, size = _contents(other)
                    shutil.rmtree(other, ignore_errors=True)
                    log.info(
                        "removed %s, the snapshot images folder of a server process that "
                        "is no longer running (%d files, %d bytes; their keys died with it)",
                        other,
                        files,
                        size,
                    )
            finally:
                if fd is not None:
                    os.close(fd)
        return folder

    def _images_on(self) -> bool:
        return self.settings.get("SNAPSHOT_IMAGES") is not False

    def prepare_images(self) -> None:
        """Start building every large enough clinic's snapshot image in the background
        (at service start: the first workstation to join finds it ready)."""
        if not self._images_on():
            return
        for clinic in self.registry.clinics():
            try:
                self.image_keeper(clinic.id).prepare()
            except Exception as exc:  # a clinic that cannot be read now: pages for it
                log.warning("no snapshot image for clinic %s: %s", clinic.id, exc)

    def snapshot_image(self, device: Device, image_id: str) -> ImageStream:
        """The size and bytes of the snapshot image offered to the device's clinic
        (KeyError: not offered, or replaced by a newer one since)."""
        return self.image_keeper(device.clinic_id).stream(image_id)

    def take_new_identities(self) -> list[str]:
        """After ``pg_restore`` of this server's database: every clinic's server replica
        takes a new origin (see :meth:`PgReplica.take_new_identity`); returns the clinic ids.
        The embedded server's ``admin restore`` does this itself."""
        if self.pg is None:
            raise ServerError(
                "this server keeps its clinics in SQLCipher files: 'admin restore' already "
                "gives a restored server new identities"
            )
        clinics = [c.id for c in self.registry.clinics()]
        for clinic_id in clinics:
            self.pg_replica(clinic_id).take_new_identity()
        return clinics

    def pg_replica(self, clinic_id: str) -> PgReplica:
        """The clinic's replica in PostgreSQL (only with DATABASE_URL)."""
        from core.server.postgres.replica import PgReplica

        if self.pg is None:
            raise ServerError("this server keeps its clinics in SQLCipher files, not PostgreSQL")
        with self._lock:
            replica = self._pg_replicas.get(clinic_id)
            if replica is None:
                self.registry.clinic(clinic_id)
                replica = PgReplica(
                    self.pg,
                    clinic_id,
                    functools.partial(self._cipher, clinic_id),
                    _RegistryAuthority(self, clinic_id),
                )
                self._pg_replicas[clinic_id] = replica
            return replica

    def _cipher(self, clinic_id: str, fresh: bool = False) -> ColumnCipher:
        """The clinic's column keys: every generation the registry holds, and the index key.

        ``fresh`` reloads them (a generation made by another process was met)."""
        from core.server.postgres.columns import INDEX_PURPOSE, ColumnCipher, key_purpose

        with self._lock:
            now = time.monotonic()
            cached = self._ciphers.get(clinic_id)
            if cached is not None and not fresh and now - cached[0] < KEY_MAX_AGE_S:
                return cached[1]
            for retired in [c for c in self._old_ciphers if now - c[0] > KEY_MAX_AGE_S]:
                retired[1].close()
                self._old_ciphers.remove(retired)
            generations = sorted(
                int(purpose.split(":", 1)[1])
                for clinic, purpose, _, _ in self.registry.all_data_keys()
                if clinic == clinic_id and purpose.startswith(f"{TDE_PREFIX}:")
            ) or [1]
            keys = {g: self._data_key(clinic_id, key_purpose(g)) for g in generations}
            cipher = ColumnCipher(clinic_id, keys, self._data_key(clinic_id, INDEX_PURPOSE))
            if cached is not None:
                self._old_ciphers.append((now, cached[1]))
            self._ciphers[clinic_id] = (now, cipher)
            return cipher

    def _audit(
        self,
        clinic_id: str,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        if self.pg is not None:
            self.pg_replica(clinic_id).audit(actor, action, entity, entity_id, details)
            return
        with self.replica(clinic_id).write(actor, action, entity, entity_id, details):
            pass

    def replica(self, clinic_id: str) -> Database:
        """The clinic's embedded SQLCipher replica (opened once, then shared)."""
        if self.pg is not None:
            raise ServerError("this server keeps its clinics in PostgreSQL (see pg_replica)")
        with self._lock:
            db = self._replicas.get(clinic_id)
            if db is not None:
                return db
            self.registry.clinic(clinic_id)
            path = self.data_dir / "clinics" / clinic_id / DB_FILE_NAME
            key = self._data_key(clinic_id, REPLICA)
            if not path.exists():
                db = Database.create(path, key)
            elif self.registry.data_key(clinic_id, REPLICA_NEXT) is None:
                db = Database.open(path, key, True)
            else:
                db = self._open_mid_reencryption(clinic_id, path, key)
            db.operator = True  # the server's admin CLI is the operator's: not gated
            # After an upgrade: records kept for a newer version get their rows now.
            unknown.refresh(db, actor="server")
            self._keep_trust(clinic_id, db)
            self._replicas[clinic_id] = db
            return db

    def _staged_replica_key(self, clinic_id: str) -> SecureMemory | None:
        staged = self.registry.data_key(clinic_id, REPLICA_NEXT)
        if staged is None:
            return None
        # Staged keys are bound to the purpose they will serve ("replica").
        return self.provider.unwrap(clinic_id, REPLICA, staged[0], staged[1])

    def _open_mid_reencryption(self, clinic_id: str, path: Path, key: SecureMemory) -> Database:
        """A re-encryption was interrupted: the file is under the old key or the staged one."""
        try:
            return Database.open(path, key)
        except WrongKeyError:
            staged = self._staged_replica_key(clinic_id)
            assert staged is not None
            db = Database.open(path, staged, True)
            self.registry.promote_data_key(clinic_id, REPLICA_NEXT, REPLICA)
            return db

    def reencrypt_replicas(
        self, clinic_ref: str | None = None, *, batch: int = 500, max_batches: int | None = None
    ) -> dict[str, Any]:
        """Re-encrypt clinic replicas under fresh data keys (``PRAGMA rekey``), one at a time.

        Resumable: the next key is stored (wrapped) before the rekey and promoted after it;
        a crash in between is finished when the replica is next opened, or by running this
        again. The registry's audit log records every step.
        """
        if self.pg is not None:
            return self._reseal_pg(clinic_ref, batch, max_batches)
        with self._lock:
            clinics = [self.registry.clinic(clinic_ref)] if clinic_ref else self.registry.clinics()
            done = []
            for clinic in clinics:
                db = self.replica(clinic.id)  # finishes an interrupted run first
                staged = self._staged_replica_key(clinic.id)
                if staged is None:
                    new = self.provider.generate_data_key(clinic.id, REPLICA)
                    self.registry.store_data_key(clinic.id, REPLICA_NEXT, new.wrapped, new.version)
                    staged = new.key
                db.rekey(staged)
                self.registry.promote_data_key(clinic.id, REPLICA_NEXT, REPLICA)
                done.append(clinic.id)
            return {"reencrypted": done}

    def _reseal_pg(
        self, clinic_ref: str | None, batch: int, max_batches: int | None
    ) -> dict[str, Any]:
        """PostgreSQL: a new key generation per clinic, then every row re-sealed under it in
        batches. Resumable: a run that stops leaves rows under older generations, which stay
        readable; running again finishes them (a generation is only added when the newest
        one is already in use by every row)."""
        from core.server.postgres.columns import key_purpose

        clinics = [self.registry.clinic(clinic_ref)] if clinic_ref else self.registry.clinics()
        done, moved = [], 0
        for clinic in clinics:
            replica = self.pg_replica(clinic.id)
            cipher = self._cipher(clinic.id, fresh=True)
            if replica.generations_in_use() <= {cipher.current}:
                self._data_key(clinic.id, key_purpose(cipher.current + 1))
                self._cipher(clinic.id, fresh=True)
            moved += replica.reseal(batch, max_batches)
            done.append(clinic.id)
        return {"reencrypted": done, "rows": moved}

    def retire_key_version(self, version: str) -> dict[str, Any]:
        """Retire a provider key version once no stored key depends on it any more."""
        with self._lock:
            still = [
                f"{clinic}/{purpose}"
                for clinic, purpose, _, v in self.registry.all_data_keys()
                if v == version
            ]
            if self.pg is None:
                info = json.loads((self.data_dir / REGISTRY_KEY_FILE).read_text())
                if info["version"] == version:
                    still.append("server/registry")
            if still:
                raise ServerError(
                    f"key version {version} still wraps {len(still)} data keys "
                    f"({', '.join(still[:5])}); run 'admin keys rotate' first"
                )
            self.provider.retire(version)
            self.keys.clear()  # nothing unwrapped under the retired version stays cached
            return {"retired": version}

    def add_user(
        self,
        clinic_ref: str,
        username: str,
        full_name: str,
        role: str,
        password: str,
        must_change_password: bool | None = None,
    ) -> User:
        """Create a staff account in the clinic; it reaches workstations with the next sync.

        ``must_change_password`` (default): the person must change this first password at
        their first sign-in, except for the clinic's very first account, its founding
        admin, who chooses their own password as ``careline init`` does."""
        clinic = self.registry.clinic(clinic_ref)

        def add(records: ClinicRecords) -> User:
            founder = role == "admin" and not records.db.query("SELECT 1 FROM users LIMIT 1")
            forced = must_change_password
            if forced is None:
                forced = not founder and bool(records.users())
            user = records.add_user(username, full_name, role, password, forced)
            if founder:
                # The clinic's first admin is also a clinician, as with ``careline init``.
                Access(records).grant(RelationTuple(CLINIC_OBJECT, "clinician", user.id))
            return user

        return self._admin_write(clinic.id, add)

    def staff(self, clinic_ref: str, work: Callable[[Staff], T]) -> T:
        """Run staff management (core/records/staff.py) on the clinic as the server's
        operator, whose shell access to the server is the trust it needs; the changes
        reach workstations with their next sync."""
        clinic = self.registry.clinic(clinic_ref)
        return self._admin_write(clinic.id, lambda records: work(Staff(records, operator=True)))

    # ----- enrollment and devices -----------------------------------------------------

    def enroll(
        self, code: str, device_name: str, csr_pem: str, *, client: str | None = None
    ) -> Enrollment:
        """Redeem a one-time code: sign the device's CSR and issue its bearer token.

        Both outcomes are security events naming ``client`` (the address the request came
        from), never the code itself."""
        try:
            done = self._enroll(code, device_name, csr_pem)
        except ServerError as exc:
            security_log.event("enroll.refused", failed=True, reason=str(exc), client=client)
            raise
        security_log.event(
            "device.enrolled", device=done.device_id, clinic=done.clinic_id,
            device_name=device_name.strip(), client=client,
        )  # fmt: skip
        return done

    def account_for_enrollment(
        self, code: str, username: str, *, client: str | None = None
    ) -> AccountForEnrollment:
        """The account a person joining with ``code`` names, for their workstation to check
        their password against before it spends the code (a mistyped password then costs
        nothing: core.sync.join). Needs a still-usable code (ServerError otherwise) that
        has answered fewer than ``registry.account_checks_allowed`` checks, counted in
        the registry (AccountChecksSpent otherwise).

        The person's password never leaves their workstation: the server answers with the
        account's synced Argon2id verifier, which redeeming the code would send the
        workstation anyway (with every other account's). A security event names the client
        and whether an account was found; the name typed only when it is an account's (a
        password typed into the name box is never logged)."""
        try:
            clinic_id = self.registry.take_account_check(code)
        except AccountChecksSpentError as exc:
            raise AccountChecksSpent(str(exc)) from None
        except RegistryError as exc:
            security_log.event(
                "enroll.account_check_refused", failed=True, reason=str(exc), client=client
            )
            raise ServerError(str(exc)) from None
        name = username.strip().lower()

        def read(records: ClinicRecords) -> tuple[str, bool] | None:
            rows = records.db.query(
                "SELECT verifier, active FROM users WHERE username = ?", (name,)
            )
            if not rows or rows[0][0] is None:
                return None
            return str(rows[0][0]), bool(rows[0][1])

        if self.pg is not None:  # a read: none of the clinic's write lock
            found = self.pg_replica(clinic_id).read_admin(read)
        else:
            found = read(ClinicRecords(self.replica(clinic_id), ADMIN_ACTOR, self.kdf_params))
        security_log.event(
            "enroll.account_checked", clinic=clinic_id, client=client,
            found=found is not None, username=name if found is not None else None,
        )  # fmt: skip
        if found is None:
            return AccountForEnrollment(None, False)
        return AccountForEnrollment(*found)

    def code_known(self, code: str) -> bool:
        """Whether ``code`` was ever issued (see :meth:`Registry.code_known`)."""
        return self.registry.code_known(code)

    def _enroll(self, code: str, device_name: str, csr_pem: str) -> Enrollment:
        name = device_name.strip()
        if device_name_problem(name) is not None:  # the workstations' own check
            raise ServerError("device_name must be 1-64 printable characters")
        # No server-wide lock: redeeming is one registry transaction that refuses a used
        # code, so two devices racing with one code cannot both enroll.
        try:
            clinic_id = self.registry.code_clinic(code)
        except RegistryError as exc:
            raise ServerError(str(exc)) from None
        clinic = self.registry.clinic(clinic_id)
        device_id = new_id()
        cert, binding = self._issue(clinic_id, clinic.ca_cert, csr_pem, device_id)
        try:
            token = self.registry.redeem(
                code, name, cert, device_id, binding.replica_id if binding else None
            )
        except RegistryError as exc:
            raise ServerError(str(exc)) from None
        if binding is not None:
            self._refresh_trust(clinic_id)
        log.info("device enrolled", extra={"device": device_id, "clinic": clinic_id})
        return Enrollment(device_id, clinic_id, clinic.name, token, cert, clinic.ca_cert)

    def _issue(
        self, clinic_id: str, ca_cert: str, csr_pem: str, device_id: str
    ) -> tuple[str, certs.ReplicaBinding | None]:
        """A device certificate for ``csr_pem`` and the replica it is bound to. A binding
        to a replica another device of the clinic speaks for is refused before signing."""
        try:
            binding = certs.csr_binding(csr_pem)
            if binding is not None:
                for replica_id, _ in self.registry.bound_certificates(clinic_id):
                    if replica_id == binding.replica_id:
                        raise ServerError(
                            f"replica {replica_id} is already bound to another device of this "
                            "clinic; a replica speaks through one device only (a copied data "
                            "folder must be set up as a new workstation)"
                        )
            key = certs.load_private_key(self._ca_key_pem(clinic_id).encode("ascii"))
            return certs.sign_device(key, ca_cert, csr_pem, device_id), binding
        except certs.CertificateError as exc:
            raise ServerError(str(exc)) from None

    def certify(self, device: Device, csr_pem: str) -> Enrollment:
        """Re-certify a device enrolled before op signing (Careline 0.1.0): a certificate
        bound to the replica its CSR names (same refusal rules as enrollment). The token
        stays; the registry records the binding (audited, and a security event). The
        certificate replaced is revoked from now on (Registry.certify): the clinic CA's
        new revocation list names it, and so does every sync reply."""
        clinic = self.registry.clinic(device.clinic_id)
        try:
            binding = certs.csr_binding(csr_pem)
            if binding is None:
                raise ServerError(
                    "the certificate request names no replica (urn:careline:replica:...); "
                    "a certificate for signing ops must be bound to one"
                )
            cert, _ = self._issue(clinic.id, clinic.ca_cert, csr_pem, device.id)
            try:
                superseded = self.registry.certify(device.id, cert, binding.replica_id)
            except RegistryError as exc:
                raise ServerError(str(exc)) from None
        except (ServerError, certs.CertificateError) as exc:
            security_log.event("certify.refused", failed=True, device=device.id, reason=str(exc))
            raise ServerError(str(exc)) from None
        self._refresh_trust(clinic.id)
        security_log.event(
            "device.certified", device=device.id, clinic=clinic.id, replica=binding.replica_id,
            superseded_serial=str(superseded),
        )  # fmt: skip
        return Enrollment(device.id, clinic.id, clinic.name, "", cert, clinic.ca_cert)

    def revoke_device(self, device_id: str, earlier_serials: Sequence[int] = ()) -> Device:
        """Revoke a device: its token stops working at once, and the clinic CA's new
        revocation list, naming every certificate the device was ever issued, reaches every
        replica with the next sync (their verification refuses the device's ops made after
        now, and LAN peers refuse those certificates).

        ``earlier_serials``: certificates the device held before its current one that the
        registry does not know (replaced before it kept them; see
        Registry.issued_certificates), revoked too; with them, a device already revoked is
        not refused but has them added."""
        for serial in earlier_serials:
            self.registry.record_earlier_serial(device_id, serial)
        device = next((d for d in self.registry.devices() if d.id == device_id), None)
        if device is None or device.active or not earlier_serials:
            device = self.registry.revoke(device_id)
        self._refresh_trust(device.clinic_id)
        return device

    # ----- signed ops: the clinic CA as the server's signer --------------------------

    def _ca_key_pem(self, clinic_id: str) -> str:
        """The clinic CA's private key (PEM), unwrapped. Python cannot wipe the copy."""
        with self._data_key(clinic_id, "ca") as wrap_key:
            pem = aead.decrypt(
                wrap_key.read(),
                self.registry.ca_key_wrapped(clinic_id),
                f"ca|{clinic_id}".encode(),
            )
        return pem.decode("ascii")

    def _ca_signer(self, clinic_id: str) -> op_signer.Signer:
        with self._lock:
            found = self._ca_signers.get(clinic_id)
            if found is None:
                ca_cert = self.registry.clinic(clinic_id).ca_cert
                key = certs.load_private_key(self._ca_key_pem(clinic_id).encode("ascii"))
                found = op_signer.Signer("clinic-ca", key, op_signature.clinic_tag(ca_cert))
                self._ca_signers[clinic_id] = found
            return found

    def crl(self, clinic_id: str) -> str | None:
        """The clinic CA's revocation list of the registry's revoked devices (None: none
        revoked). Numbered by how many are revoked: revocations are never undone, so a
        later list always carries a higher number."""
        revoked = self.registry.revocations(clinic_id)
        if not revoked:
            return None
        ca_cert = self.registry.clinic(clinic_id).ca_cert
        return certs.make_crl(self._ca_signer(clinic_id).key, ca_cert, revoked, len(revoked))

    def _refresh_trust(self, clinic_id: str) -> None:
        """Keep the clinic replica's trust in step with the registry (the truth): device
        certificates and the revocation list."""
        if self.pg is not None:
            crl = self.crl(clinic_id)
            if crl is not None:
                self.pg_replica(clinic_id).keep_crl(crl)
            return
        with self._lock:
            db = self._replicas.get(clinic_id)
        if db is not None:  # else: done when it is opened
            self._keep_trust(clinic_id, db)

    def _keep_trust(self, clinic_id: str, db: Database) -> None:
        """Make the embedded replica verify as the registry says: trust the clinic CA, sign
        the server's own ops with its key, know every bound device certificate, hold the
        newest revocation list; then vouch (CA-sign, audited) for unsigned ops it holds:
        everything accepted before ops were signed (README "Signed ops")."""
        ca_cert = self.registry.clinic(clinic_id).ca_cert
        known = {(str(r), str(c)) for r, c in db.query(
            "SELECT replica_id, certificate FROM device_certs")}  # fmt: skip
        devices = [
            d for rid, pem in self.registry.bound_certificates(clinic_id)
            if (rid, pem) not in known and (d := op_trust.device_key(pem, ca_cert)) is not None
        ]  # fmt: skip
        crl = self.crl(clinic_id)
        signer = op_signer.current(db)
        fresh_crl = crl is not None and crl != op_trust.crl_of(db)
        trusted = op_trust.clinic_ca(db) == ca_cert and signer is not None
        if not trusted or devices or fresh_crl:
            details = {"devices": len(devices), "crl": fresh_crl}
            with db.write("server", "server.trust", "clinic", clinic_id, details) as tx:
                if not trusted:
                    op_trust.join_clinic(tx, ca_cert)
                    op_signer.install(tx, "clinic-ca", self._ca_key_pem(clinic_id), ca_cert)
                op_trust.keep_certificates(tx, devices)
                if fresh_crl and crl is not None:
                    op_trust.keep_crl(tx, crl, ca_cert)
        op_signer.sign_pending(db, "server")

    def _vouch(self, device: Device, ops: list[Op]) -> list[Op]:
        """CA-sign the unsigned ops a device running Careline 0.1.0 pushed over its
        authenticated connection (audited, naming the device). Ops of a replica bound to a
        device are never vouched for: only that device's own signature proves them."""
        bound = {rid for rid, _ in self.registry.bound_certificates(device.clinic_id)}
        mine = [op for op in ops if not op.signer and op.origin not in bound]
        if not mine:
            return ops
        signed = iter(vouching.vouch(self._ca_signer(device.clinic_id), mine))
        out = [next(signed) if not op.signer and op.origin not in bound else op for op in ops]
        details = {"ops": len(mine), "origins": sorted({op.origin for op in mine}),
                   "device": device.id}  # fmt: skip
        self._audit(device.clinic_id, f"device:{device.id}", "oplog.vouch", "device",
                    device.id, details)  # fmt: skip
        return out

    def authenticate(self, token: str) -> Device | None:
        """The active device holding ``token``."""
        return self.registry.authenticate(token)

    def sync(self, device: Device, request: bytes) -> bytes:
        """Serve one sync request for the device's own clinic only. A device whose
        certificate is bound to no replica (Careline 0.1.0) has the unsigned ops it pushes
        vouched for by the clinic CA (:meth:`_vouch`); a bound device never does."""
        store = self.sync_store(device.clinic_id)
        vouch = None if device.replica_id else functools.partial(self._vouch, device)
        return Responder(
            store,
            f"device:{device.id}",
            revoked_serials=lambda: self.registry.revoked_serials(device.clinic_id),
            device_names=lambda: self.registry.device_names(device.clinic_id),
            audit_anchor=lambda head, proof: self._anchor(store, device, head, proof),
            vouch=vouch,
            peer=f"device:{device.id}",
            images=self.image_keeper(device.clinic_id).offer if self._images_on() else None,
        ).handle(request)

    def quarantined(self, clinic_id: str) -> list[op_trust.Quarantined]:
        """Ops the clinic replica refused and keeps aside, oldest first."""
        if self.pg is not None:
            return self.pg_replica(clinic_id).quarantined()
        return op_trust.quarantined(self.replica(clinic_id))

    # ----- attachments ---------------------------------------------------------------

    def _attachment_keys(self, clinic_id: str) -> tuple[bytes, bytes]:
        """(KEK, id key) of the clinic's attachments. The ``bytes`` copies cannot be wiped."""
        with (
            self._data_key(clinic_id, ATTACHMENT_KEY_PURPOSE) as kek,
            self._data_key(clinic_id, ATTACHMENT_ID_PURPOSE) as id_key,
        ):
            return kek.read(), id_key.read()

    def _spool_dir(self) -> Path:
        # Ciphertext spool on the data disk, not /tmp (often RAM-backed).
        spool = self.data_dir / "spool"
        spool.mkdir(mode=0o700, exist_ok=True)
        return spool

    def put_attachment(self, device: Device, src: BinaryIO) -> StoredAttachment:
        """Encrypt ``src`` as it is read into the device's clinic's blob store.

        Only ciphertext touches the disk (an unnamed spool file); equal content in the same
        clinic is stored once (``deduplicated``). Errors from ``src`` propagate unchanged.
        """
        clinic_id = device.clinic_id
        store = self.blob_stores.for_clinic(clinic_id)
        kek, id_key = self._attachment_keys(clinic_id)
        stored = put_attachment(
            store,
            src,
            kek=kek,
            aad=attachment_aad(clinic_id),
            id_key=id_key,
            spool_dir=self._spool_dir(),
        )
        details = {"size": stored.plaintext_size, "deduplicated": stored.deduplicated}
        self._audit(
            clinic_id, f"device:{device.id}", "attachment.upload", "attachment", stored.blob_id,
            details,
        )  # fmt: skip
        return stored

    def open_attachment(self, device: Device, blob_id: str) -> Iterator[bytes]:
        """The decrypted attachment, chunk by chunk, from the device's own clinic only.

        Raises InvalidBlobIdError for a malformed id, BlobNotFoundError when the clinic has
        no such blob (whether or not another clinic has one), a DecryptionError when the
        header does not authenticate. The header is checked before this returns; a later
        chunk that fails, or content that does not match ``blob_id``, raises from the
        iterator, and whatever was sent of it must be discarded. Close the iterator if it is
        not run to the end.
        """
        validate_blob_id(blob_id)
        clinic_id = device.clinic_id
        stream = self.blob_stores.for_clinic(clinic_id).get(blob_id)
        try:
            kek, id_key = self._attachment_keys(clinic_id)
            chunks = _verified_chunks(stream, blob_id, kek, attachment_aad(clinic_id), id_key)
            first = next(chunks)  # the header authenticates (or not) here
        except BaseException:
            stream.close()
            raise
        try:
            self._audit(clinic_id, f"device:{device.id}", "attachment.read", "attachment", blob_id)
        except BaseException:
            chunks.close()
            raise
        return _prepend(first, chunks)

    def blob_uploads(self, device: Device) -> BlobUploads:
        """Resumable uploads of client-encrypted attachments for the device's clinic."""
        clinic_id = device.clinic_id
        return BlobUploads(
            self.data_dir / "uploads" / _namespace(clinic_id),
            self.blob_stores.for_clinic(clinic_id),
            self.max_attachment_bytes,
        )

    def append_blob(
        self, device: Device, blob_id: str, *, start: int, size: int, sha256: str, src: BinaryIO
    ) -> UploadState:
        """Take one piece of a client-encrypted upload (:class:`BlobUploads`), audited once
        the blob is stored."""
        state = self.blob_uploads(device).append(
            blob_id, start=start, size=size, sha256=sha256, src=src
        )
        if state.complete:
            self._audit(
                device.clinic_id, f"device:{device.id}", "attachment.upload", "attachment",
                blob_id, {"size": size, "client_encrypted": True},
            )  # fmt: skip
        return state

    # The clinic attachment key travels between workstations sealed for each device's
    # certificate key (core.crypto.key_grant); the server keeps the sealed grants, one
    # object per device in the clinic's blob store, and cannot open them.

    def _grants_id(self, device_id: str) -> str:
        return hashlib.sha256(f"careline/attachment-key-grants|{device_id}".encode()).hexdigest()

    def key_grants_of(self, clinic_id: str, device_id: str) -> dict[str, str]:
        """key id -> sealed grant (base64) held for one device."""
        store = self.blob_stores.for_clinic(clinic_id)
        try:
            with store.get(self._grants_id(device_id)) as src:
                value = json.loads(src.read(MAX_KEY_GRANT_BYTES * 64))
            return {str(k): str(v) for k, v in dict(value).items()}
        except BlobNotFoundError:
            return {}
        except (ValueError, TypeError):
            # Not grants (an object some device stored under this name): replaced by the
            # next grant, and meanwhile no grants rather than a failure.
            return {}

    def key_grant_devices(self, device: Device) -> list[tuple[str, str, list[str]]]:
        """(device id, certificate, key ids granted) of the clinic's active devices."""
        return [
            (d, cert, sorted(self.key_grants_of(device.clinic_id, d)))
            for d, cert in self.registry.active_certificates(device.clinic_id)
        ]

    def put_key_grant(self, device: Device, target: str, key_id: str, sealed: str) -> None:
        """Keep a grant ``device`` sealed for ``target`` (an active device of its clinic)."""
        if target not in {d for d, _ in self.registry.active_certificates(device.clinic_id)}:
            raise ServerError(f"no active device {target[:80]!r} in this clinic")
        if not re.fullmatch(r"[0-9a-f]{16}", key_id) or len(sealed) > MAX_KEY_GRANT_BYTES:
            raise ServerError("a key grant needs a 16-hex-digit key id and at most 1 KiB")
        grants = self.key_grants_of(device.clinic_id, target) | {key_id: sealed}
        self.blob_stores.for_clinic(device.clinic_id).put(
            self._grants_id(target), io.BytesIO(json.dumps(grants).encode())
        )
        self._audit(device.clinic_id, f"device:{device.id}", "attachment_key.grant",
                    "device", target, {"key_id": key_id})  # fmt: skip

    def drop_own_key_grant(self, device: Device, key_id: str) -> bool:
        """Remove a grant held for ``device`` itself, which it refused (its secret is not
        key ``key_id``'s): the clinic's devices then list it as lacking the key and seal the
        real one for it. Audited, naming the device, so a device that keeps sealing wrong
        secrets for others shows in the log beside its ``attachment_key.grant`` entries.
        False: there was no such grant."""
        if not re.fullmatch(r"[0-9a-f]{16}", key_id):
            raise ServerError("a key grant is named by a 16-hex-digit key id")
        grants = self.key_grants_of(device.clinic_id, device.id)
        if grants.pop(key_id, None) is None:
            return False
        self.blob_stores.for_clinic(device.clinic_id).put(
            self._grants_id(device.id), io.BytesIO(json.dumps(grants).encode())
        )
        self._audit(device.clinic_id, f"device:{device.id}", "attachment_key.grant_refused",
                    "device", device.id, {"key_id": key_id})  # fmt: skip
        return True

    def open_blob(self, device: Device, blob_id: str, start: int = 0) -> BinaryIO:
        """A client-encrypted blob's ciphertext from byte ``start`` (audited as a read)."""
        stream = self.blob_uploads(device).open(blob_id, start)
        if start == 0:
            self._audit(device.clinic_id, f"device:{device.id}", "attachment.read",
                        "attachment", blob_id)  # fmt: skip
        return stream

    def _anchor(
        self,
        store: SyncStore,
        device: Device,
        head: Head | None,
        proof: Sequence[bytes] | None,
    ) -> audit_anchor.Anchoring:
        """Record the device's audit head (the store keeps the entries it proved); work done
        under break-glass among them goes to the security event log too."""
        result = store.anchor_audit(device.id, head, proof)
        if result.moved:
            for entry in audit_anchor.proven_entries(result.recorded, proof):
                break_glass_event(device, entry)
        return result

    def device_audit_entries(self, clinic_id: str) -> list[tuple[Any, ...]]:
        """Workstation audit entries the server keeps for the clinic: (device, seq, ts,
        actor, action, entity, entity_id, details), oldest first."""
        if self.pg is not None:
            return self.pg_replica(clinic_id).device_audit_entries()
        return self.replica(clinic_id).query(
            "SELECT device, seq, ts, actor, action, entity, entity_id, details "
            "FROM device_audit ORDER BY ts, device, seq"
        )

    def audit_entries(self, clinic_id: str) -> list[tuple[Any, ...]]:
        """The clinic's audit log: (seq, ts, actor, action, entity, entity_id, details)."""
        if self.pg is not None:
            return self.pg_replica(clinic_id).audit_entries()
        return self.replica(clinic_id).query(
            "SELECT seq, ts, actor, action, entity, entity_id, details FROM audit_log ORDER BY seq"
        )

    def audit_report(self) -> dict[str, Any]:
        """Verify the registry's and every clinic replica's audit chain."""
        report: dict[str, Any] = {}
        registry = verify_audit_log(self.registry.db)
        report["registry"] = {"ok": registry.ok, "problems": list(registry.problems)}
        for clinic in self.registry.clinics():
            if self.pg is not None:
                result = self.pg_replica(clinic.id).audit_report()
            else:
                result = verify_audit_log(self.replica(clinic.id))
            report[clinic.id] = {"ok": result.ok, "problems": list(result.problems)}
        return report

    def close(self) -> None:
        """Close every database (and delete the snapshot images)."""
        for keeper in list(self._image_keepers.values()):
            keeper.close()
        self._image_keepers.clear()
        if self._images_dir is not None:
            shutil.rmtree(self._images_dir, ignore_errors=True)
            os.close(self._images_owner)
            self._images_dir = None
        with self._lock:
            for db in self._replicas.values():
                db.close()
            self._replicas.clear()
            self.registry.db.close()
            for _, cipher in [*self._ciphers.values(), *self._old_ciphers]:
                cipher.close()
            self.keys.close()
            self._ciphers.clear()
            self._old_ciphers.clear()
            self._pg_replicas.clear()
            if self.pg is not None:
                self.pg.close()


@dataclass(frozen=True)
class _RegistryAuthority:
    """A clinic's CA, devices and revocations as the registry holds them (the truth the
    PostgreSQL replica verifies against)."""

    server: ClinicServer
    clinic_id: str

    def ca_certificate(self) -> str:
        """The clinic CA certificate."""
        return self.server.registry.clinic(self.clinic_id).ca_cert

    def ca_signer(self) -> op_signer.Signer:
        """The clinic CA's key as a signer."""
        return self.server._ca_signer(self.clinic_id)

    def ca_key_pem(self) -> str:
        """The clinic CA's private key."""
        return self.server._ca_key_pem(self.clinic_id)

    def bound_certificates(self) -> list[tuple[str, str]]:
        """(replica id, certificate) of the clinic's bound devices."""
        return self.server.registry.bound_certificates(self.clinic_id)

    def revocations(self) -> dict[int, dt.datetime]:
        """Revoked serial -> when."""
        return self.server.registry.revocations(self.clinic_id)


def _verified_chunks(
    stream: BinaryIO, blob_id: str, kek: bytes, aad: bytes, id_key: bytes
) -> Generator[bytes, None, None]:
    """Decrypt ``stream`` chunk by chunk, then check the content really is ``blob_id``."""
    with stream:
        digest = blake3.blake3()
        for chunk in iter_decrypt(stream, kek, aad):
            digest.update(chunk)
            yield chunk
    actual = content_id(id_key, digest.digest(), aad)
    if not hmac.compare_digest(actual, blob_id):
        raise BlobIntegrityError(
            blob_id, "decrypted content does not match the blob id (object swapped or misfiled)"
        )


def break_glass_event(device: Device, entry: AuditEntry) -> None:
    """A security event for a workstation's break-glass opening, or for a view or change
    made under one (ids only: the reason stays in the synced record)."""
    try:
        details = json.loads(entry.details)
    except ValueError:
        return
    grant = worked_under(entry.action, details)  # a review is about a grant, not under it
    if not grant:
        return
    name = "break_glass.open" if entry.action == "break_glass.open" else "break_glass.access"
    security_log.event(
        name,
        clinic=device.clinic_id,
        device=device.id,
        user=entry.actor,
        action=entry.action,
        entity=entry.entity,
        entity_id=entry.entity_id,
        grant=str(grant),
        at=entry.ts,
        seq=entry.seq,
    )


def _prepend(first: bytes, rest: Generator[bytes, None, None]) -> Iterator[bytes]:
    try:
        yield first
        yield from rest
    finally:
        rest.close()
