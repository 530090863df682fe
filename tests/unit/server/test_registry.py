"""The registry's record of the certificates the clinic CA issued each device, and what it
revokes (core/server/registry.py), on the embedded SQLCipher registry.

The same code runs on PostgreSQL; tests/integration/test_server_revocation.py runs it on
both, through a live server and the admin commands.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from core.crypto import certs
from core.crypto.secure_memory import SecureMemory
from core.server.registry import (
    MAX_CODE_USES,
    REGISTRY_MIGRATIONS,
    AccountChecksSpentError,
    Registry,
    RegistryError,
    account_checks_allowed,
)
from core.store.database import Database
from core.store.migrations import Migrations


@dataclass
class Clinic:
    """A registry holding one clinic, and that clinic's CA."""

    registry: Registry
    clinic_id: str
    ca_key: ec.EllipticCurvePrivateKey
    ca_pem: str

    def certificate(self, device_id: str, replica_id: str | None = None) -> str:
        """A device certificate from the clinic CA, bound to ``replica_id`` if given."""
        binding = certs.ReplicaBinding(replica_id, 7) if replica_id else None
        csr = certs.make_csr(certs.new_private_key(), device_id, binding)
        return certs.sign_device(self.ca_key, self.ca_pem, csr, device_id)

    def enroll(self, device_id: str, replica_id: str | None = None) -> str:
        """Enroll a device (unbound, as Careline 0.1.0 did, unless ``replica_id``); returns
        its certificate."""
        code, _ = self.registry.issue_enroll_code(self.clinic_id, 10)
        certificate = self.certificate(device_id, replica_id)
        self.registry.redeem(code, device_id, certificate, device_id, replica_id)
        return certificate


def _open(path: Path, key: bytes, migrations: Migrations = REGISTRY_MIGRATIONS) -> Database:
    secret = SecureMemory.from_bytes(bytearray(key))
    if path.exists():
        return Database.open(path, secret, migrations=migrations)
    return Database.create(path, secret, migrations=migrations)


def _clinic(db: Database) -> Clinic:
    registry = Registry(db)
    ca_key, ca_pem = certs.create_ca("0123456789abcdef")
    registry.create_clinic("0123456789abcdef", "Harbour Clinic", ca_pem, b"wrapped")
    return Clinic(registry, "0123456789abcdef", ca_key, ca_pem)


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Clinic]:
    """A new registry (this release's schema) with one clinic."""
    db = _open(tmp_path / "registry.db", secrets.token_bytes(32))
    try:
        yield _clinic(db)
    finally:
        db.close()


def test_recertifying_keeps_the_certificate_replaced_and_revokes_it_from_then(
    clinic: Clinic,
) -> None:
    first = clinic.enroll("aaaa000000000001")
    other = clinic.enroll("aaaa000000000002")
    assert clinic.registry.revocations(clinic.clinic_id) == {}
    before = dt.datetime.now(dt.UTC)

    bound = clinic.certificate("aaaa000000000001", "r1")
    replaced = clinic.registry.certify("aaaa000000000001", bound, "r1")

    s0, s1 = certs.serial_of(first), certs.serial_of(bound)
    assert replaced == s0
    revoked = clinic.registry.revocations(clinic.clinic_id)
    assert set(revoked) == {s0}  # the device itself is not revoked: its new certificate works
    # Whole seconds, rounded up, as a revocation list holds them.
    assert before.replace(microsecond=0) <= revoked[s0] <= before + dt.timedelta(seconds=2)
    assert revoked[s0].microsecond == 0
    assert [(c.serial, c.current) for c in clinic.registry.issued_certificates(
        "aaaa000000000001")] == [(s0, False), (s1, True)]  # fmt: skip
    [(details,)] = clinic.registry.db.query(
        "SELECT details FROM audit_log WHERE action = 'device.certify'"
    )
    assert json.loads(details) == {"replica": "r1", "superseded_serial": str(s0)}

    clinic.registry.revoke("aaaa000000000001")
    assert clinic.registry.revoked_serials(clinic.clinic_id) == sorted([s0, s1])
    assert certs.serial_of(other) not in clinic.registry.revocations(clinic.clinic_id)


def test_a_refused_recertification_keeps_nothing(clinic: Clinic) -> None:
    clinic.enroll("aaaa000000000001", "r1")
    clinic.enroll("aaaa000000000002")
    with pytest.raises(RegistryError, match="already bound"):
        clinic.registry.certify(
            "aaaa000000000002", clinic.certificate("aaaa000000000002", "r1"), "r1"
        )
    clinic.registry.revoke("aaaa000000000002")
    with pytest.raises(RegistryError, match="no active device"):
        clinic.registry.certify(
            "aaaa000000000002", clinic.certificate("aaaa000000000002", "r2"), "r2"
        )
    assert [c.current for c in clinic.registry.issued_certificates("aaaa000000000002")] == [True]


def test_an_earlier_serial_found_elsewhere_is_recorded_once_and_never_another_devices(
    clinic: Clinic,
) -> None:
    mine = clinic.enroll("aaaa000000000001")
    theirs = clinic.enroll("aaaa000000000002")
    found = certs.serial_of(clinic.certificate("aaaa000000000001"))

    assert clinic.registry.record_earlier_serial("aaaa000000000001", found)
    assert not clinic.registry.record_earlier_serial("aaaa000000000001", found)
    assert found in clinic.registry.revocations(clinic.clinic_id)
    with pytest.raises(RegistryError, match="device aaaa000000000002's certificate"):
        clinic.registry.record_earlier_serial("aaaa000000000001", certs.serial_of(theirs))
    with pytest.raises(RegistryError, match="current certificate, not an earlier one"):
        clinic.registry.record_earlier_serial("aaaa000000000001", certs.serial_of(mine))
    with pytest.raises(RegistryError, match="earlier certificate of another device"):
        clinic.registry.record_earlier_serial("aaaa000000000002", found)
    with pytest.raises(RegistryError, match="not a certificate serial"):
        clinic.registry.record_earlier_serial("aaaa000000000001", 0)
    with pytest.raises(RegistryError, match="no device"):
        clinic.registry.record_earlier_serial("ffff000000000000", found)


def test_the_migration_names_devices_recertified_before_the_registry_kept_certificates(
    tmp_path: Path,
) -> None:
    # A registry at version 3, used as the code before version 4 used it: re-certification
    # overwrote the certificate (the statement that code ran, and its audit entry).
    path, key = tmp_path / "registry.db", secrets.token_bytes(32)
    db = _open(path, key, REGISTRY_MIGRATIONS[:3])
    old = _clinic(db)
    first = old.enroll("aaaa000000000001")
    old.enroll("aaaa000000000002")
    bound = old.certificate("aaaa000000000001", "r1")
    with db.write(
        "server", "device.certify", "device", "aaaa000000000001", {"replica": "r1"}
    ) as tx:
        tx.execute(
            "UPDATE devices SET certificate = ?, replica_id = ? WHERE id = ?",
            (bound, "r1", "aaaa000000000001"),
        )
    db.close()

    db = _open(path, key)
    try:
        registry = Registry(db)
        recertified = registry.issued_certificates("aaaa000000000001")
        assert [(c.serial, c.current) for c in recertified] == [
            (None, False), (certs.serial_of(bound), True)
        ]  # fmt: skip
        assert recertified[0].superseded_at is not None
        assert [c.current for c in registry.issued_certificates("aaaa000000000002")] == [True]
        # Nothing to revoke yet; what was lost stays lost until an admin records it.
        assert registry.revocations("0123456789abcdef") == {}
        assert registry.record_earlier_serial("aaaa000000000001", certs.serial_of(first))
        [serial] = [
            c.serial for c in registry.issued_certificates("aaaa000000000001") if not c.current
        ]
        assert serial == certs.serial_of(first)  # it took the unknown one's place
        revoked = registry.revocations("0123456789abcdef")
        assert set(revoked) == {certs.serial_of(first)}
        assert revoked[certs.serial_of(first)] >= dt.datetime.fromisoformat(
            str(recertified[0].superseded_at)
        )  # revoked from the re-certification
    finally:
        db.close()


def test_account_checks_are_counted_per_code_and_a_used_code_answers_none(
    clinic: Clinic,
) -> None:
    registry, clinic_id = clinic.registry, clinic.clinic_id
    # A code for three workstations: ten checks, and two for each further one.
    code, _ = registry.issue_enroll_code(clinic_id, 10, uses=3)
    allowed = account_checks_allowed(3)
    assert allowed == 10 + 2 * 2
    for _ in range(allowed):
        assert registry.take_account_check(code.lower()) == clinic_id
    audited = clinic.registry.db.query(
        "SELECT count(*) FROM audit_log WHERE action = 'enroll_code.account_check'"
    )
    assert audited == [(allowed,)]
    with pytest.raises(AccountChecksSpentError, match="too many account checks"):
        registry.take_account_check(code)
    assert registry.code_clinic(code) == clinic_id  # the code's uses are untouched
    assert account_checks_allowed(MAX_CODE_USES) == 2008  # not ten times the uses
    used, _ = registry.issue_enroll_code(clinic_id, 10)
    registry.redeem(used, "desk", clinic.certificate("aaaa000000000009"), "aaaa000000000009")
    with pytest.raises(RegistryError, match="enrollment code has already been used"):
        registry.take_account_check(used)


def test_codes_issued_before_the_count_was_kept_start_at_none_counted(tmp_path: Path) -> None:
    # A registry at version 4 (no count) with a live code, then opened by this release.
    path, key = tmp_path / "registry.db", secrets.token_bytes(32)
    db = _open(path, key, REGISTRY_MIGRATIONS[:4])
    code, _ = _clinic(db).registry.issue_enroll_code("0123456789abcdef", 10)
    db.close()
    db = _open(path, key)
    try:
        registry = Registry(db)
        for _ in range(account_checks_allowed(1)):
            assert registry.take_account_check(code) == "0123456789abcdef"
        with pytest.raises(AccountChecksSpentError):
            registry.take_account_check(code)
    finally:
        db.close()
