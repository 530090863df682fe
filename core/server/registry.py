"""The server's own records: clinics (tenants), devices, enrollment codes, wrapped keys.

Kept in an encrypted SQLCipher file (``registry.db``) whose key is a data key from the
configured key provider. Every change is audited in the registry's hash-chained log (the
server's security audit trail). Secrets are never stored: device tokens and enrollment
codes are kept as SHA-256 digests (they are 256-bit and 160-bit random values, so a plain
hash is enough) and compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.crypto import certs
from core.errors import CarelineError
from core.store.database import SqlStore, utc_now
from core.store.migrations import Migrations

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    entity TEXT NOT NULL, entity_id TEXT NOT NULL, details TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE clinics (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    ca_cert TEXT NOT NULL,
    ca_key_wrapped BLOB NOT NULL
);
-- Wrapped data keys per clinic and purpose; key_version names the provider key that wraps it.
CREATE TABLE data_keys (
    clinic_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    key_version TEXT NOT NULL,
    PRIMARY KEY (clinic_id, purpose)
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics (id),
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    certificate TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX devices_by_clinic ON devices (clinic_id);
CREATE TABLE enroll_codes (
    code_sha256 TEXT PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics (id),
    expires_at TEXT NOT NULL,
    used_at TEXT
);
"""

# Device-signed ops: the replica a device's certificate is bound to (NULL: enrolled by
# Careline 0.1.0, before certificates named one). One device per replica in a clinic.
_V2_BINDINGS = """
ALTER TABLE devices ADD COLUMN replica_id TEXT;
CREATE UNIQUE INDEX devices_by_replica ON devices (clinic_id, replica_id)
    WHERE replica_id IS NOT NULL;
"""

# Multi-use enrollment codes (issue #15, mass enrollment): ``max_uses`` (NULL: one, as every
# code issued before), ``uses`` counts redemptions; ``used_at`` is set when the last use
# goes, so code that predates this reads a used-up code as used. PostgreSQL: schema 6.
_V3_CODE_USES = """
ALTER TABLE enroll_codes ADD COLUMN max_uses INTEGER;
ALTER TABLE enroll_codes ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
"""


# Every certificate the clinic CA issued to a device stays revocable (README "Device
# certificates and revocation"): re-certification replaces ``devices.certificate``, and the
# one it replaces is kept here, revoked from ``superseded_at``. ``serial`` is the decimal
# serial number (159 bits: too large for an INTEGER column).
# Registries written before this table existed kept no earlier certificate: a device
# re-certified then (its ``device.certify`` audit entry says so) gets a row whose serial and
# certificate are NULL, "issued, replaced, not known", so that revoking it can say what
# cannot be revoked (``admin device revoke --earlier-serial`` adds one found elsewhere).
# Release 0.1.0 had no re-certification: a registry it wrote has no such device.
def earlier_certificates_ddl(key_type: str) -> str:
    """The migration that adds ``earlier_certificates``: the embedded registry's version 4
    and PostgreSQL's schema 7 (core/server/postgres/schema.py) run the same statements.

    ``key_type``: the dialect's type for the row id, numbered by the database (SQLite
    ``INTEGER``, PostgreSQL ``BIGSERIAL``); every other column is the same in both."""
    return f"""
CREATE TABLE earlier_certificates (
    id {key_type} PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id),
    serial TEXT,
    certificate TEXT,
    superseded_at TEXT NOT NULL
);
CREATE INDEX earlier_certificates_by_device ON earlier_certificates (device_id);
INSERT INTO earlier_certificates (device_id, serial, certificate, superseded_at)
    SELECT entity_id, NULL, NULL, ts FROM audit_log
    WHERE action = 'device.certify' AND entity = 'device'
        AND entity_id IN (SELECT id FROM devices)
    ORDER BY seq;
"""


_V4_EARLIER_CERTIFICATES = earlier_certificates_ddl("INTEGER")

# Account checks before enrolling (``POST /v1/enroll/account``) counted per code in the
# registry, so that a restart, or another server process behind a balancer, does not start
# a fresh count. PostgreSQL: schema 8. Additive: older code never reads it.
ACCOUNT_CHECKS_DDL = """
ALTER TABLE enroll_codes ADD COLUMN account_checks INTEGER NOT NULL DEFAULT 0;
"""

REGISTRY_MIGRATIONS: Migrations = (
    (1, _SCHEMA),
    (2, _V2_BINDINGS),
    (3, _V3_CODE_USES),
    (4, _V4_EARLIER_CERTIFICATES),
    (5, ACCOUNT_CHECKS_DDL),
)
MAX_CODE_USES = 1000  # a code for a whole clinic's workstations, not an open door
# Account checks a code answers before enrolling: a person may retry their own mistyped
# name or password a few times, not walk the clinic's staff list. A code for several
# workstations answers a few more for each further one (a shared budget: most people type
# it right the first time), not ten times as many: at most 2,008 for a 1,000-use code.
ACCOUNT_CHECKS_PER_CODE = 10
ACCOUNT_CHECKS_PER_FURTHER_USE = 2


def account_checks_allowed(uses: int) -> int:
    """How many account checks a code issued for ``uses`` workstations answers."""
    return ACCOUNT_CHECKS_PER_CODE + ACCOUNT_CHECKS_PER_FURTHER_USE * (uses - 1)


MAX_CODE_TTL_MINUTES = 7 * 24 * 60
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .,'&()-]{0,79}$")
# A clinic id: 16 lowercase hex digits (core.records.clinic.new_id). A name that looks like
# one (in any case) is refused, so that a reference is an id or a name, never both.
CLINIC_ID = re.compile(r"^[0-9a-f]{16}$")
_ID_LIKE = re.compile(r"^[0-9a-f]{16}$", re.IGNORECASE)


class RegistryError(CarelineError, ValueError):
    """A registry operation was refused; the message says why."""


class AccountChecksSpentError(RegistryError):
    """A code has answered all the account checks it may (:meth:`Registry.take_account_check`)."""


class _AlreadyStored(Exception):
    """Rolls back an insert that lost the race to another process."""

    def __init__(self, stored: tuple[bytes, str]) -> None:
        super().__init__("data key already stored")
        self.stored = stored


@dataclass(frozen=True)
class Clinic:
    """A tenant."""

    id: str
    name: str
    created_at: str
    ca_cert: str


@dataclass(frozen=True)
class Device:
    """An enrolled workstation."""

    id: str
    clinic_id: str
    name: str
    enrolled_at: str
    revoked_at: str | None
    # The replica its certificate is bound to (None: enrolled by Careline 0.1.0, not yet
    # re-certified; the server vouches for what such a device pushes, see service.sync).
    replica_id: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate the clinic CA issued to a device: its current one, or one it held
    before (replaced at re-certification, revoked since then)."""

    serial: int | None  # None: replaced before the registry kept earlier certificates
    current: bool
    superseded_at: str | None = None

    def to_dict(self) -> dict[str, object]:
        """As ``--json`` prints it (the serial as a decimal string: it has 159 bits)."""
        serial = None if self.serial is None else str(self.serial)
        return {"serial": serial, "current": self.current, "superseded_at": self.superseded_at}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_enroll_code() -> str:
    """160 random bits as 8 groups of 4 base32 characters (easy to read out and type)."""
    text = base64.b32encode(secrets.token_bytes(20)).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, 32, 4))


def normalize_code(code: str) -> str:
    """Tolerate case, spaces and dashes in a typed code."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


_CODE_ROW = (
    "SELECT clinic_id, expires_at, used_at, max_uses, uses FROM enroll_codes WHERE code_sha256 = ?"
)


def _usable_code(rows: list[Any]) -> str:
    """The clinic of a code row that still has a use and has not expired; otherwise a
    RegistryError the workstation shows as it is (it says what to do)."""
    if not rows:
        raise RegistryError("the enrollment code is not valid")
    clinic_id, expires_at, used_at, max_uses, uses = rows[0]
    allowed = 1 if max_uses is None else int(max_uses)
    if used_at is not None or int(uses) >= allowed:
        used = "already been used" if allowed == 1 else f"been used all {allowed} times"
        raise RegistryError(f"the enrollment code has {used}; ask IT for a new one")
    if _utc(str(expires_at)) < datetime.now(UTC):
        raise RegistryError(f"the enrollment code expired at {expires_at}; ask IT for a new one")
    return str(clinic_id)


def _utc(stamp: str) -> datetime:
    when = datetime.fromisoformat(stamp)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _ceil_second(when: datetime) -> datetime:
    whole = when.replace(microsecond=0)
    return whole if whole == when else whole + timedelta(seconds=1)


def _refuse_bound_elsewhere(tx: Any, clinic_id: str, replica_id: str, device_id: str) -> None:
    rows = tx.query(
        "SELECT id FROM devices WHERE clinic_id = ? AND replica_id = ? AND id != ?",
        (clinic_id, replica_id, device_id),
    )
    if rows:
        raise RegistryError(
            f"replica {replica_id} is already bound to device {rows[0][0]} of this clinic; "
            "a replica speaks through one device only (a copied data folder must be set up "
            "as a new workstation)"
        )


class Registry:
    """Operations on the registry database."""

    def __init__(self, db: SqlStore, actor: str = "server") -> None:
        self.db = db
        self.actor = actor

    # ----- clinics --------------------------------------------------------------------

    def check_new_clinic_name(self, name: str) -> str:
        """The cleaned name, if it is acceptable and not taken."""
        cleaned = name.strip()
        if not _NAME.match(cleaned):
            raise RegistryError(
                f"clinic name {name!r} must be 1-80 letters, digits, spaces or .,'&()-"
            )
        if _ID_LIKE.match(cleaned):
            raise RegistryError(
                f"clinic name {cleaned!r} looks like a clinic id (16 hex digits); choose a "
                "name with other characters, so that names and ids cannot be confused"
            )
        if self.db.query("SELECT 1 FROM clinics WHERE name = ?", (cleaned,)):
            raise RegistryError(f"a clinic named {cleaned!r} already exists")
        return cleaned

    def create_clinic(
        self, clinic_id: str, name: str, ca_cert: str, ca_key_wrapped: bytes
    ) -> Clinic:
        """Register a clinic with its CA (the CA key arrives wrapped)."""
        clinic = Clinic(clinic_id, self.check_new_clinic_name(name), utc_now(), ca_cert)
        with self.db.write(self.actor, "clinic.create", "clinic", clinic.id) as tx:
            tx.execute(
                "INSERT INTO clinics (id, name, created_at, ca_cert, ca_key_wrapped) "
                "VALUES (?, ?, ?, ?, ?)",
                (clinic.id, clinic.name, clinic.created_at, ca_cert, ca_key_wrapped),
            )
        return clinic

    def clinic(self, ref: str) -> Clinic:
        """A clinic by id (16 hex digits) or else by exact name: never one for the other
        (names that look like ids are refused; an older one is reached by its id)."""
        column = "id" if CLINIC_ID.match(ref) else "name"
        rows = self.db.query(
            f"SELECT id, name, created_at, ca_cert FROM clinics WHERE {column} = ?", (ref,)
        )
        if not rows:
            kind = "with id" if column == "id" else "named"
            raise RegistryError(f"no clinic {kind} {ref!r}")
        return Clinic(*rows[0])

    def clinics(self) -> list[Clinic]:
        """All clinics."""
        rows = self.db.query("SELECT id, name, created_at, ca_cert FROM clinics ORDER BY name")
        return [Clinic(*r) for r in rows]

    def ca_key_wrapped(self, clinic_id: str) -> bytes:
        """The clinic CA's private key, wrapped."""
        return bytes(
            self.db.query("SELECT ca_key_wrapped FROM clinics WHERE id = ?", (clinic_id,))[0][0]
        )

    # ----- wrapped data keys ----------------------------------------------------------

    def data_key(self, clinic_id: str, purpose: str) -> tuple[bytes, str] | None:
        """(wrapped key, provider key version) or None."""
        rows = self.db.query(
            "SELECT wrapped, key_version FROM data_keys WHERE clinic_id = ? AND purpose = ?",
            (clinic_id, purpose),
        )
        return (bytes(rows[0][0]), str(rows[0][1])) if rows else None

    def all_data_keys(self) -> list[tuple[str, str, bytes, str]]:
        """Every wrapped key: (clinic, purpose, wrapped, version)."""
        rows = self.db.query("SELECT clinic_id, purpose, wrapped, key_version FROM data_keys")
        return [(str(r[0]), str(r[1]), bytes(r[2]), str(r[3])) for r in rows]

    def store_data_key(self, clinic_id: str, purpose: str, wrapped: bytes, version: str) -> None:
        """Save (or replace, after a rewrap) a wrapped data key."""
        details = {"purpose": purpose, "key_version": version}
        with self.db.write(self.actor, "key.store", "clinic", clinic_id, details) as tx:
            tx.execute(
                "INSERT INTO data_keys (clinic_id, purpose, wrapped, key_version) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (clinic_id, purpose) DO UPDATE SET "
                "wrapped = excluded.wrapped, key_version = excluded.key_version",
                (clinic_id, purpose, wrapped, version),
            )

    def promote_data_key(self, clinic_id: str, staged: str, current: str) -> None:
        """Make the key staged under ``staged`` the ``current`` one, in one transaction."""
        details = {"from": staged, "to": current}
        with self.db.write(self.actor, "key.promote", "clinic", clinic_id, details) as tx:
            rows = tx.query(
                "SELECT wrapped, key_version FROM data_keys WHERE clinic_id = ? AND purpose = ?",
                (clinic_id, staged),
            )
            if not rows:
                raise RegistryError(f"clinic {clinic_id} has no staged {staged!r} key")
            tx.execute(
                "UPDATE data_keys SET wrapped = ?, key_version = ? "
                "WHERE clinic_id = ? AND purpose = ?",
                (rows[0][0], rows[0][1], clinic_id, current),
            )
            tx.execute(
                "DELETE FROM data_keys WHERE clinic_id = ? AND purpose = ?", (clinic_id, staged)
            )

    def add_data_key(
        self, clinic_id: str, purpose: str, wrapped: bytes, version: str
    ) -> tuple[bytes, str]:
        """Store a new wrapped key unless the clinic already has one for ``purpose``.

        Returns the key that is stored: this one, or the one another server process sharing
        the registry stored first (check and insert run in one write transaction).
        """
        details = {"purpose": purpose, "key_version": version}
        try:
            with self.db.write(self.actor, "key.store", "clinic", clinic_id, details) as tx:
                rows = tx.query(
                    "SELECT wrapped, key_version FROM data_keys "
                    "WHERE clinic_id = ? AND purpose = ?",
                    (clinic_id, purpose),
                )
                if rows:
                    raise _AlreadyStored((bytes(rows[0][0]), str(rows[0][1])))
                tx.execute(
                    "INSERT INTO data_keys (clinic_id, purpose, wrapped, key_version) "
                    "VALUES (?, ?, ?, ?)",
                    (clinic_id, purpose, wrapped, version),
                )
        except _AlreadyStored as first:
            return first.stored
        return wrapped, version

    # ----- enrollment -----------------------------------------------------------------

    def issue_enroll_code(self, clinic_id: str, ttl_minutes: int, uses: int = 1) -> tuple[str, str]:
        """A code that enrolls up to ``uses`` devices until it expires; returns it and its
        expiry. Only its digest is stored."""
        if not 1 <= ttl_minutes <= MAX_CODE_TTL_MINUTES:
            raise RegistryError("--ttl must be between 1 minute and 7 days")
        if not 1 <= uses <= MAX_CODE_USES:
            raise RegistryError(f"--uses must be between 1 and {MAX_CODE_USES}")
        code = new_enroll_code()
        expires = (datetime.now(UTC) + timedelta(minutes=ttl_minutes)).isoformat(timespec="seconds")
        with self.db.write(
            self.actor, "enroll_code.issue", "clinic", clinic_id, {"uses": uses}
        ) as tx:
            tx.execute(
                "INSERT INTO enroll_codes (code_sha256, clinic_id, expires_at, max_uses) "
                "VALUES (?, ?, ?, ?)",
                (_digest(normalize_code(code)), clinic_id, expires, uses),
            )
        return code, expires

    def redeem(
        self,
        code: str,
        device_name: str,
        certificate: str,
        device_id: str,
        replica_id: str | None = None,
    ) -> str:
        """Use one of a code's uses: registers the device (bound to ``replica_id``, if its
        certificate names one) and returns its bearer token. A replica already bound to
        another device of the clinic is refused (RegistryError), and the use stays unused.

        The use is taken by one conditional UPDATE inside the registry's write transaction
        (serialised across server processes): of two devices racing for a code's last use,
        exactly one enrolls."""
        digest = _digest(normalize_code(code))
        token = f"{device_id}.{secrets.token_urlsafe(32)}"
        now = utc_now()
        with self.db.write(self.actor, "device.enroll", "device", device_id) as tx:
            clinic_id = _usable_code(tx.query(_CODE_ROW, (digest,)))
            if replica_id is not None:
                _refuse_bound_elsewhere(tx, clinic_id, replica_id, device_id)
            taken = tx.execute(
                "UPDATE enroll_codes SET uses = uses + 1, used_at = CASE "
                "WHEN uses + 1 >= COALESCE(max_uses, 1) THEN ? ELSE used_at END "
                "WHERE code_sha256 = ? AND used_at IS NULL AND uses < COALESCE(max_uses, 1)",
                (now, digest),
            )
            if taken.rowcount != 1:  # another redemption took the last use meanwhile
                _usable_code(tx.query(_CODE_ROW, (digest,)))
                raise RegistryError("the enrollment code has no use left")
            tx.execute(
                "INSERT INTO devices (id, clinic_id, name, token_sha256, certificate, "
                "enrolled_at, replica_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (device_id, clinic_id, device_name, _digest(token), certificate, now, replica_id),
            )
        return token

    def certify(self, device_id: str, certificate: str, replica_id: str) -> int:
        """Replace an active device's certificate by one bound to ``replica_id`` (a device
        enrolled before op signing, re-certified). Refused (RegistryError) if another
        device of the clinic is bound to that replica, or this one to another replica.

        The certificate replaced is kept (``earlier_certificates``) and revoked from now
        on: the device made a new key for the new one and no longer holds the old one's
        (core.sync.certify), so whoever still presents it is not that device. Returns the
        serial of the certificate replaced."""
        held = self.db.query("SELECT certificate FROM devices WHERE id = ?", (device_id,))
        earlier = str(held[0][0]) if held else ""
        serial = certs.serial_of(earlier) if earlier else None
        # The audit entry names the certificate replaced (and so revoked) as well.
        details = {"replica": replica_id, "superseded_serial": str(serial)}
        with self.db.write(self.actor, "device.certify", "device", device_id, details) as tx:
            rows = tx.query(
                "SELECT clinic_id, revoked_at, replica_id, certificate FROM devices WHERE id = ?",
                (device_id,),
            )
            if not rows or rows[0][1] is not None:
                raise RegistryError(f"no active device {device_id!r}")
            if str(rows[0][3]) != earlier:  # another server process re-certified it just now
                raise RegistryError(f"device {device_id!r} was re-certified meanwhile")
            if rows[0][2] is not None and rows[0][2] != replica_id:
                raise RegistryError(
                    f"device {device_id!r} is already bound to replica {rows[0][2]}; a device "
                    "speaks for one replica only (enroll the other replica as a new device)"
                )
            _refuse_bound_elsewhere(tx, str(rows[0][0]), replica_id, device_id)
            tx.execute(
                "INSERT INTO earlier_certificates (device_id, serial, certificate, "
                "superseded_at) VALUES (?, ?, ?, ?)",
                (device_id, str(serial), earlier, utc_now()),
            )
            tx.execute(
                "UPDATE devices SET certificate = ?, replica_id = ? WHERE id = ?",
                (certificate, replica_id, device_id),
            )
        return certs.serial_of(earlier)

    def device_binding(self, device_id: str) -> str | None:
        """The replica a device's certificate is bound to (None: enrolled before op
        signing, by Careline 0.1.0)."""
        rows = self.db.query("SELECT replica_id FROM devices WHERE id = ?", (device_id,))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def bound_certificates(self, clinic_id: str) -> list[tuple[str, str]]:
        """(replica id, certificate) of every device of the clinic bound to a replica,
        revoked ones included (their ops made before the revocation stay valid)."""
        rows = self.db.query(
            "SELECT replica_id, certificate FROM devices WHERE clinic_id = ? "
            "AND replica_id IS NOT NULL ORDER BY enrolled_at, id",
            (clinic_id,),
        )
        return [(str(r), str(c)) for r, c in rows]

    def active_certificates(self, clinic_id: str) -> list[tuple[str, str]]:
        """(device id, certificate) of the clinic's devices not revoked."""
        rows = self.db.query(
            "SELECT id, certificate FROM devices WHERE clinic_id = ? AND revoked_at IS NULL "
            "ORDER BY enrolled_at, id",
            (clinic_id,),
        )
        return [(str(d), str(c)) for d, c in rows]

    def revocations(self, clinic_id: str) -> dict[int, datetime]:
        """Certificate serial -> when it was revoked, for every certificate of the clinic
        that is revoked: each revoked device's current one, from the revocation, and every
        certificate a device held before re-certification, from the re-certification (the
        device no longer holds its key). Times are rounded up to the whole second: a
        revocation list (X.509) holds whole seconds, and an op made in the second before
        the revocation must not be refused for it (one made within that second after it is
        accepted: the device's token was refused at once, so only a relay could bring such
        an op). An earlier certificate whose serial is not known (see
        :meth:`issued_certificates`) cannot be listed."""
        rows = self.db.query(
            "SELECT certificate, revoked_at FROM devices WHERE clinic_id = ? "
            "AND revoked_at IS NOT NULL",
            (clinic_id,),
        )
        revoked = {certs.serial_of(str(c)): _ceil_second(_utc(str(at))) for c, at in rows}
        earlier = self.db.query(
            "SELECT e.serial, e.superseded_at FROM earlier_certificates e "
            "JOIN devices d ON d.id = e.device_id "
            "WHERE d.clinic_id = ? AND e.serial IS NOT NULL",
            (clinic_id,),
        )
        for serial, at in earlier:
            when = _ceil_second(_utc(str(at)))
            revoked[int(serial)] = min(when, revoked.get(int(serial), when))
        return revoked

    def issued_certificates(self, device_id: str) -> list[IssuedCertificate]:
        """Every certificate issued to a device, earliest first, its current one last.

        An earlier one with no serial was replaced before the registry kept earlier
        certificates (a registry of 0.2.0 development builds, before schema 4): it was
        issued at enrollment, is valid for 825 days from then at LAN peers, and cannot be
        revoked until its serial is recorded (:meth:`record_earlier_serial`)."""
        earlier = self.db.query(
            "SELECT serial, superseded_at FROM earlier_certificates WHERE device_id = ? "
            "ORDER BY superseded_at, id",
            (device_id,),
        )
        current = self.db.query("SELECT certificate FROM devices WHERE id = ?", (device_id,))
        if not current:
            raise RegistryError(f"no device {device_id!r}")
        return [
            IssuedCertificate(None if s is None else int(s), False, str(at)) for s, at in earlier
        ] + [IssuedCertificate(certs.serial_of(str(current[0][0])), True)]

    def record_earlier_serial(self, device_id: str, serial: int) -> bool:
        """Record ``serial`` as a certificate the device held before its current one (found
        in a registry backup from before its re-certification), so that it is revoked like
        every earlier certificate. It takes the place of the device's oldest earlier
        certificate not known, and its time; without one, it is revoked from now. Returns
        False if the serial was already recorded for this device. Refused (RegistryError)
        for a serial of another device's, or this device's current, certificate."""
        if not 0 < serial < 2**160:
            raise RegistryError(f"{serial} is not a certificate serial number")
        issued = self.issued_certificates(device_id)
        if serial == issued[-1].serial:
            raise RegistryError(
                f"{serial} is device {device_id}'s current certificate, not an earlier one"
            )
        if serial in {c.serial for c in issued}:
            return False
        for other, pem in self.db.query("SELECT id, certificate FROM devices WHERE id != ?",
                                        (device_id,)):  # fmt: skip
            if certs.serial_of(str(pem)) == serial:
                raise RegistryError(f"{serial} is device {other}'s certificate")
        if self.db.query(
            "SELECT 1 FROM earlier_certificates WHERE serial = ? AND device_id != ?",
            (str(serial), device_id),
        ):
            raise RegistryError(f"{serial} is an earlier certificate of another device")
        details = {"serial": str(serial)}
        with self.db.write(self.actor, "device.earlier_serial", "device", device_id,
                           details) as tx:  # fmt: skip
            unknown = tx.query(
                "SELECT id FROM earlier_certificates WHERE device_id = ? AND serial IS NULL "
                "ORDER BY superseded_at, id LIMIT 1",
                (device_id,),
            )
            if unknown:
                tx.execute(
                    "UPDATE earlier_certificates SET serial = ? WHERE id = ?",
                    (str(serial), unknown[0][0]),
                )
            else:
                tx.execute(
                    "INSERT INTO earlier_certificates (device_id, serial, certificate, "
                    "superseded_at) VALUES (?, ?, NULL, ?)",
                    (device_id, str(serial), utc_now()),
                )
        return True

    def code_known(self, code: str) -> bool:
        """Whether ``code`` was ever issued (used up, expired or not): one indexed lookup
        of its SHA-256 digest, whatever the code's length (at most 64 characters reach
        here: EnrollRequest). Codes are never compared as text, so there is nothing for
        hmac.compare_digest to do: the database's index compares digests, not in constant
        time, but how long that takes tells at most how many leading digest bytes matched,
        and using that would take a SHA-256 preimage. (Python guarantees no constant-time
        code anywhere; compare_digest only avoids stopping at the first difference.)"""
        return bool(self.db.query(_CODE_ROW, (_digest(normalize_code(code)),)))

    def code_clinic(self, code: str) -> str:
        """The clinic a still-usable code belongs to (to sign the device certificate)."""
        return _usable_code(self.db.query(_CODE_ROW, (_digest(normalize_code(code)),)))

    def take_account_check(self, code: str) -> str:
        """Count one account check against a still-usable ``code`` and return its clinic:
        at most :func:`account_checks_allowed` for the uses it was issued with, over the
        code's life (at most :data:`MAX_CODE_TTL_MINUTES`), shared by everyone using it.
        Refused with RegistryError for a code that is not usable, and with
        AccountChecksSpentError once its checks are spent; neither counts anything.

        Counted in the registry (one audited write, serialised across server processes)
        so that neither a restart nor a second process behind a balancer resets it."""
        digest = _digest(normalize_code(code))
        clinic_id = _usable_code(self.db.query(_CODE_ROW, (digest,)))
        with self.db.write(self.actor, "enroll_code.account_check", "clinic", clinic_id) as tx:
            taken = tx.execute(
                "UPDATE enroll_codes SET account_checks = account_checks + 1 "
                "WHERE code_sha256 = ? AND used_at IS NULL "
                "AND account_checks < ? + ? * (COALESCE(max_uses, 1) - 1)",
                (digest, ACCOUNT_CHECKS_PER_CODE, ACCOUNT_CHECKS_PER_FURTHER_USE),
            )
            if taken.rowcount != 1:
                _usable_code(tx.query(_CODE_ROW, (digest,)))  # used up meanwhile: say so
                raise AccountChecksSpentError(
                    "too many account checks with this enrollment code; ask IT for a new code"
                )
        return clinic_id

    # ----- devices --------------------------------------------------------------------

    def authenticate(self, token: str) -> Device | None:
        """The active device a bearer token belongs to, or None."""
        device_id = token.split(".", 1)[0]
        rows = self.db.query(
            "SELECT id, clinic_id, name, enrolled_at, revoked_at, replica_id, token_sha256 "
            "FROM devices WHERE id = ?",
            (device_id,),
        )
        if not rows or not hmac.compare_digest(str(rows[0][6]), _digest(token)):
            return None
        device = Device(*rows[0][:6])
        return device if device.active else None

    def devices(self, clinic_id: str | None = None) -> list[Device]:
        """Enrolled devices (of one clinic, or all)."""
        sql = "SELECT id, clinic_id, name, enrolled_at, revoked_at, replica_id FROM devices"
        params: tuple[str, ...] = ()
        if clinic_id is not None:
            sql += " WHERE clinic_id = ?"
            params = (clinic_id,)
        return [Device(*r) for r in self.db.query(sql + " ORDER BY enrolled_at, id", params)]

    def device_names(self, clinic_id: str) -> dict[str, dict[str, str]]:
        """The clinic's devices by the replica each is bound to: the name it enrolled with
        and its device id (revoked ones too: their changes still show in conflicts), for
        workstations to say which desk a value came from in words IT can look up (``admin
        device list``). A device not bound to a replica is left out; the most recently
        enrolled 10,000 at most."""
        rows = self.db.query(
            "SELECT replica_id, name, id FROM devices WHERE clinic_id = ? "
            "AND replica_id IS NOT NULL ORDER BY enrolled_at DESC LIMIT 10000",
            (clinic_id,),
        )
        return {str(r[0]): {"name": str(r[1]), "device": str(r[2])} for r in reversed(rows)}

    def revoke(self, device_id: str) -> Device:
        """Revoke a device: its token stops working at once, and every certificate it was
        issued is revoked (:meth:`revocations`; the audit entry names their serials)."""
        rows = self.db.query("SELECT revoked_at FROM devices WHERE id = ?", (device_id,))
        if not rows:
            raise RegistryError(f"no device {device_id!r}")
        if rows[0][0] is not None:
            raise RegistryError(f"device {device_id!r} is already revoked")
        issued = self.issued_certificates(device_id)
        details = {
            "serials": [str(c.serial) for c in issued if c.serial is not None],
            "serials_not_known": sum(c.serial is None for c in issued),
        }
        with self.db.write(self.actor, "device.revoke", "device", device_id, details) as tx:
            tx.execute(
                "UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_now(), device_id),
            )
        return next(d for d in self.devices() if d.id == device_id)

    def revoked_serials(self, clinic_id: str) -> list[int]:
        """Serial numbers of the clinic's revoked certificates, as :meth:`revocations` lists
        them (sent to workstations, which refuse those certificates on the LAN too)."""
        return sorted(self.revocations(clinic_id))
