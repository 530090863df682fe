"""The clinic server: tenants, their replicas, enrollment, device auth and sync.

Embedded default (no DATABASE_URL): each clinic's replica is a SQLCipher file under
``<data dir>/clinics/<clinic id>/clinic.db`` whose raw key is that clinic's "replica" data
key from the key provider; the registry is ``<data dir>/registry.db`` under the server's
"registry" data key. Wrapped keys are stored, plaintext keys never are.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.audit.verify import verify_audit_log
from core.crypto import aead, certs
from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.crypto.secure_memory import SecureMemory
from core.keys.files import replace_private
from core.records.clinic import ClinicRecords, new_id
from core.records.models import User
from core.server.registry import REGISTRY_MIGRATIONS, Clinic, Device, Registry, RegistryError
from core.store.database import DB_FILE_NAME, Database
from core.sync.responder import Responder

log = logging.getLogger(__name__)
SERVER_TENANT = "server"
REGISTRY_KEY_FILE = "registry.key.json"


class KeyProviderLike(Protocol):
    """The part of core.keys.providers.KeyProvider the server uses."""

    def generate_data_key(self, tenant: str, purpose: str) -> Any: ...

    def unwrap(self, tenant: str, purpose: str, wrapped: bytes, version: str) -> SecureMemory: ...

    def rotate(self) -> str: ...

    def rewrap(
        self, tenant: str, purpose: str, wrapped: bytes, version: str
    ) -> tuple[bytes, str]: ...


@dataclass(frozen=True)
class Enrollment:
    """What a newly enrolled device receives."""

    device_id: str
    clinic_id: str
    clinic_name: str
    token: str
    certificate: str
    ca_certificate: str


class ServerError(ValueError):
    """A request or admin command that cannot be carried out; the message says why."""


class ClinicServer:
    """All server state behind one object; thread-safe for the web workers."""

    def __init__(
        self,
        data_dir: Path,
        provider: KeyProviderLike,
        kdf_params: Argon2Params = DEFAULT_PARAMS,
    ) -> None:
        self.data_dir = data_dir
        self.provider = provider
        self.kdf_params = kdf_params
        self._lock = threading.RLock()
        self._replicas: dict[str, Database] = {}
        data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self._open_registry())

    # ----- keys -----------------------------------------------------------------------

    def _open_registry(self) -> Database:
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
            new = self.provider.generate_data_key(clinic_id, purpose)
            self.registry.store_data_key(clinic_id, purpose, new.wrapped, new.version)
            key: SecureMemory = new.key
            return key
        return self.provider.unwrap(clinic_id, purpose, stored[0], stored[1])

    def rotate_keys(self) -> dict[str, Any]:
        """New provider key version; every wrapped data key is re-wrapped under it."""
        with self._lock:
            version = self.provider.rotate()
            moved = 0
            for clinic_id, purpose, wrapped, old in self.registry.all_data_keys():
                if old == version:
                    continue
                new_wrapped, new_version = self.provider.rewrap(clinic_id, purpose, wrapped, old)
                self.registry.store_data_key(clinic_id, purpose, new_wrapped, new_version)
                moved += 1
            key_file = self.data_dir / REGISTRY_KEY_FILE
            info = json.loads(key_file.read_text())
            wrapped, new_version = self.provider.rewrap(
                SERVER_TENANT, "registry", bytes.fromhex(info["wrapped"]), info["version"]
            )
            replace_private(
                key_file, json.dumps({"wrapped": wrapped.hex(), "version": new_version}).encode()
            )
            return {"key_version": version, "rewrapped": moved + 1}

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
            records = ClinicRecords(self.replica(clinic.id), "server-admin", self.kdf_params)
            records.set_clinic_name(clinic.name)
            return clinic

    def replica(self, clinic_id: str) -> Database:
        """The clinic's replica database (opened once, then shared)."""
        with self._lock:
            db = self._replicas.get(clinic_id)
            if db is not None:
                return db
            self.registry.clinic(clinic_id)
            path = self.data_dir / "clinics" / clinic_id / DB_FILE_NAME
            key = self._data_key(clinic_id, "replica")
            db = Database.open(path, key, True) if path.exists() else Database.create(path, key)
            self._replicas[clinic_id] = db
            return db

    def add_user(
        self, clinic_ref: str, username: str, full_name: str, role: str, password: str
    ) -> User:
        """Create a staff account in the clinic; it reaches workstations with the next sync."""
        clinic = self.registry.clinic(clinic_ref)
        records = ClinicRecords(self.replica(clinic.id), "server-admin", self.kdf_params)
        return records.add_user(username, full_name, role, password)

    # ----- enrollment and devices -----------------------------------------------------

    def enroll(self, code: str, device_name: str, csr_pem: str) -> Enrollment:
        """Redeem a one-time code: sign the device's CSR and issue its bearer token."""
        name = device_name.strip()
        if not 1 <= len(name) <= 64 or not name.isprintable():
            raise ServerError("device_name must be 1-64 printable characters")
        with self._lock:
            try:
                clinic_id = self.registry.code_clinic(code)
            except RegistryError as exc:
                raise ServerError(str(exc)) from None
            clinic = self.registry.clinic(clinic_id)
            wrap_key = self._data_key(clinic_id, "ca")
            ca_pem = aead.decrypt(
                wrap_key.read(), self.registry.ca_key_wrapped(clinic_id), f"ca|{clinic_id}".encode()
            )
            device_id = new_id()
            try:
                cert = certs.sign_device(
                    certs.load_private_key(ca_pem), clinic.ca_cert, csr_pem, device_id
                )
            except certs.CertificateError as exc:
                raise ServerError(str(exc)) from None
            try:
                token = self.registry.redeem(code, name, cert, device_id)
            except RegistryError as exc:
                raise ServerError(str(exc)) from None
        log.info("device enrolled", extra={"device": device_id, "clinic": clinic_id})
        return Enrollment(device_id, clinic_id, clinic.name, token, cert, clinic.ca_cert)

    def authenticate(self, token: str) -> Device | None:
        """The active device holding ``token``."""
        return self.registry.authenticate(token)

    def sync(self, device: Device, request: bytes) -> bytes:
        """Serve one sync request for the device's own clinic only."""
        return Responder(self.replica(device.clinic_id), f"device:{device.id}").handle(request)

    def audit_report(self) -> dict[str, Any]:
        """Verify the registry's and every clinic replica's audit chain."""
        report: dict[str, Any] = {}
        registry = verify_audit_log(self.registry.db)
        report["registry"] = {"ok": registry.ok, "problems": list(registry.problems)}
        for clinic in self.registry.clinics():
            result = verify_audit_log(self.replica(clinic.id))
            report[clinic.id] = {"ok": result.ok, "problems": list(result.problems)}
        return report

    def close(self) -> None:
        """Close every database."""
        with self._lock:
            for db in self._replicas.values():
                db.close()
            self._replicas.clear()
            self.registry.db.close()
