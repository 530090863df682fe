"""A workstation's LAN identity and the clinic CA, kept in the encrypted database.

Everything lives in the ``meta`` table of the SQLCipher database (never in a plain file):

- ``lan_identity``: this device's id, certificate, private key and the clinic CA certificate;
- ``lan_ca_key``: the clinic CA's private key, only on the workstation that created the CA
  (the first workstation of a clinic with no server);
- ``lan_revoked``: serial numbers of revoked device certificates (and, on the CA holder,
  ``lan_crl``: when each was revoked and the number of the last signed revocation list);
- ``lan_bindings``: on the CA holder, which device each replica id (and Yjs client) is
  bound to: one device per replica and one replica per device, so no device can be issued a
  certificate to sign ops under another workstation's origin;
- ``lan_pair_codes``: pairing codes, stored as hashes with their expiry.

``meta`` is local to this replica: it is never synced.

The certificates the CA holder issued are listed by its audit log (``lan.device.issue``,
with the device id and the serial, since the first LAN release): revoking a device revokes
every one of them (:func:`revoke`), not only the serial named.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509

from core.crypto import certs
from core.crypto.kdf import Argon2Params, derive_key
from core.errors import CarelineError
from core.records import op_trust
from core.records.demo import refuse_if_demo
from core.store import op_signer
from core.store.database import Database, Transaction
from core.sync.lan import sightings

IDENTITY_KEY = "lan_identity"
CA_KEY_KEY = "lan_ca_key"
REVOKED_KEY = "lan_revoked"
CRL_STATE_KEY = "lan_crl"
BINDINGS_KEY = "lan_bindings"
CODES_KEY = "lan_pair_codes"
CODE_TTL_MINUTES = 10
MAX_FAILED_ATTEMPTS = 5
# No 0/O/1/I/L: codes are read aloud and typed.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 10


class LanIdentityError(CarelineError):
    """This workstation has no LAN identity, or cannot do what was asked with it."""


@dataclass(frozen=True)
class LanIdentity:
    """What this device presents to LAN peers, and the CA it trusts."""

    device_id: str
    certificate: str
    private_key_pem: str
    ca_certificate: str


def _put(tx: Transaction, key: str, value: Any) -> None:
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def _get(db: Database | Transaction, key: str) -> Any:
    rows = db.query("SELECT value FROM meta WHERE key = ?", (key,))
    return json.loads(rows[0][0]) if rows else None


def load_identity(db: Database) -> LanIdentity | None:
    """This device's LAN identity, if it has one (its own, or the server enrollment's)."""
    value = _get(db, IDENTITY_KEY)
    if value is not None:
        return LanIdentity(**value)
    server = _get(db, "server_credential")
    if server is not None:
        # A workstation enrolled with the clinic server already holds a clinic-CA device cert.
        return LanIdentity(
            device_id=server["device_id"],
            certificate=server["certificate"],
            private_key_pem=server["private_key_pem"],
            ca_certificate=server["ca_certificate"],
        )
    return None


def save_identity(db: Database, identity: LanIdentity, actor: str) -> None:
    """Keep a device identity received at pairing (audited), and sign this replica's ops
    with its key when the certificate is bound to this replica (ops made before are signed
    now)."""
    refuse_if_demo("pair with a LAN workstation", db=db)
    with db.write(actor, "lan.identity.save", "device", identity.device_id) as tx:
        _put(tx, IDENTITY_KEY, asdict(identity))
    _install(db, identity, actor)


def _install(db: Database, identity: LanIdentity, actor: str) -> None:
    op_trust.install_device(
        db, identity.certificate, identity.private_key_pem, identity.ca_certificate, actor
    )


def is_bound(identity: LanIdentity) -> bool:
    """True if the identity's certificate names the replica whose ops it signs (issued by
    Careline 0.2.0 or later); False for an older certificate."""
    return certs.binding_of(certs.load_certificate(identity.certificate)) is not None


def has_ca_key(db: Database) -> bool:
    """True if this workstation holds the clinic CA's private key (it can pair devices)."""
    return _get(db, CA_KEY_KEY) is not None


def ensure_identity(db: Database, actor: str) -> LanIdentity:
    """The LAN identity, creating a clinic CA and this device's certificate (bound to this
    replica, so its ops are signed) if there is none; an existing one is made ready as
    :func:`ready_identity` says."""
    refuse_if_demo("pair with a LAN workstation", db=db)
    existing = ready_identity(db, actor)
    if existing is not None:
        return existing
    ca_key, ca_pem = certs.create_ca(secrets.token_hex(8))
    device_id = secrets.token_hex(8)
    key = certs.new_private_key()
    binding = op_trust.binding_for(db)
    cert = certs.sign_device(ca_key, ca_pem, certs.make_csr(key, device_id, binding), device_id)
    identity = LanIdentity(
        device_id=device_id,
        certificate=cert,
        private_key_pem=certs.private_key_pem(key).decode("ascii"),
        ca_certificate=ca_pem,
    )
    details = {"serial": str(certs.serial_of(cert))}
    with db.write(actor, "lan.ca.create", "device", device_id, details) as tx:
        _put(tx, CA_KEY_KEY, {"private_key_pem": certs.private_key_pem(ca_key).decode("ascii")})
        _put(tx, IDENTITY_KEY, asdict(identity))
        _claim(tx, binding, device_id, cert)
    _install(db, identity, actor)
    return identity


def recertify_ca_holder(db: Database, actor: str) -> LanIdentity:
    """A new device identity for the holder of the clinic CA, after a restore gave its
    replica a new id (core.sync.backup): a new key and device id, certified by the CA it
    holds and bound to the new replica, which then signs its ops."""
    ca = _get(db, CA_KEY_KEY)
    ca_pem = op_trust.clinic_ca(db)
    if ca is None or ca_pem is None:
        raise LanIdentityError("this workstation does not hold the clinic CA")
    ca_key = certs.load_private_key(ca["private_key_pem"].encode("ascii"))
    device_id = secrets.token_hex(8)
    key = certs.new_private_key()
    binding = op_trust.binding_for(db)
    cert = certs.sign_device(ca_key, ca_pem, certs.make_csr(key, device_id, binding), device_id)
    identity = LanIdentity(device_id, cert, certs.private_key_pem(key).decode("ascii"), ca_pem)
    details = {"serial": str(certs.serial_of(cert)), "bound": True}
    with db.write(actor, "lan.device.issue", "device", device_id, details) as tx:
        _claim(tx, binding, device_id, cert)
        _put(tx, IDENTITY_KEY, asdict(identity))
    _install(db, identity, actor)
    return identity


def ready_identity(db: Database, actor: str) -> LanIdentity | None:
    """This device's LAN identity, ready to sign ops (None: it has none).

    On the CA holder, a certificate from before op signing (Careline 0.1.0) is re-issued
    bound to this replica, with the same key and device id, and the replica starts signing
    (its unsigned ops are signed now). A paired workstation cannot do that itself: it asks
    the CA holder at its next LAN sync (:mod:`core.sync.lan.certify`). A workstation whose
    LAN identity is its server enrollment is left to the server.
    """
    identity = load_identity(db)
    if identity is None or _get(db, IDENTITY_KEY) is None:
        return identity
    if not is_bound(identity):
        if not has_ca_key(db):
            return identity
        key = certs.load_private_key(identity.private_key_pem.encode("ascii"))
        csr = certs.make_csr(key, identity.device_id, op_trust.binding_for(db))
        _, cert, _ = issue_device(db, csr, actor, device_id=identity.device_id)
        identity = LanIdentity(
            identity.device_id, cert, identity.private_key_pem, identity.ca_certificate
        )
        with db.write(actor, "lan.identity.bind", "device", identity.device_id) as tx:
            _put(tx, IDENTITY_KEY, asdict(identity))
        _install(db, identity, actor)
    elif op_signer.current(db) is None:
        _install(db, identity, actor)  # kept before this replica could sign
    return identity


def revoked_serials(db: Database) -> set[int]:
    """Serials of revoked device certificates: revoked here, learnt from the clinic server,
    or listed in the clinic CA's signed revocation list this replica holds (which travels
    with every sync), so every peer refuses a revoked device, not only the one that
    revoked it."""
    serials = {int(s) for s in _get(db, REVOKED_KEY) or []}
    crl, ca = op_trust.crl_of(db), op_trust.clinic_ca(db)
    if crl is not None and ca is not None:
        # A list not signed by our CA adds nothing (op_trust reports it where it reads it).
        with contextlib.suppress(certs.CertificateError):
            serials |= set(certs.read_crl(crl, ca).revoked)
    return serials


def issued_serials(db: Database, device_id: str) -> set[int]:
    """Serials of every certificate this workstation (the clinic CA holder) issued to
    ``device_id``, from its audit log; empty on a workstation that issued none."""
    rows = db.query(
        "SELECT details FROM audit_log WHERE action IN (?, ?) AND entity = 'device' "
        "AND entity_id = ?",
        (*_ISSUE_ACTIONS, device_id),
    )
    return {serial for (details,) in rows if (serial := _serial_in(details)) is not None}


def issued_to(db: Database, serial: int) -> str | None:
    """The device this workstation (the clinic CA holder) issued certificate ``serial``
    to, from its audit log; None if it issued no such certificate."""
    rows = db.query(
        "SELECT entity_id, details FROM audit_log WHERE action IN (?, ?) AND entity = 'device'",
        _ISSUE_ACTIONS,
    )
    for device_id, details in rows:
        if _serial_in(details) == serial:
            return str(device_id)
    return None


# The audit actions that record a certificate issued by the CA holder (with its serial).
_ISSUE_ACTIONS = ("lan.device.issue", "lan.ca.create")


@dataclass(frozen=True)
class IssuedDevice:
    """A device the clinic's LAN CA holder issued certificates to, as its audit log and
    revocation list tell: ``serials`` oldest first, ``first_issued`` the first one's time
    (UTC, ISO), ``replica`` the replica it is bound to (None for a 0.1.0 certificate),
    ``revoked`` true once every serial is, ``this_device`` for the CA holder itself,
    ``revoked_at`` when it was revoked (UTC, ISO: its latest serial's time on the CA
    holder's revocation list; None while it is not revoked, or where the list keeps no
    time, as for serials merged from the clinic server); ``last_seen`` where and when this
    workstation last saw it (:mod:`core.sync.lan.sightings`: a sync connection, else its
    pairing; None when neither is recorded, and for this workstation itself)."""

    device_id: str
    serials: tuple[int, ...]
    first_issued: str
    replica: str | None
    revoked: bool
    this_device: bool
    revoked_at: str | None = None
    last_seen: sightings.Sighting | None = None


def issued_devices(db: Database) -> list[IssuedDevice]:
    """Every device this workstation (the clinic's LAN CA holder) issued a certificate to,
    in the order they were first issued; empty on a workstation that holds no CA."""
    if not has_ca_key(db):
        return []
    rows = db.query(
        "SELECT ts, entity_id, details FROM audit_log WHERE action IN (?, ?) "
        "AND entity = 'device' ORDER BY seq",
        _ISSUE_ACTIONS,
    )
    found: dict[str, tuple[str, list[int]]] = {}
    for ts, device_id, details in rows:
        serial = _serial_in(details)
        if serial is None:
            continue
        found.setdefault(str(device_id), (str(ts), []))[1].append(serial)
    revoked = revoked_serials(db)
    # The CA holder's revocation list keeps when each serial was revoked.
    when: dict[str, str] = dict((_get(db, CRL_STATE_KEY) or {}).get("revoked") or {})
    identity = load_identity(db)
    mine = identity.device_id if identity is not None else None
    devices = []
    for device_id, (first, serials) in found.items():
        is_revoked = set(serials) <= revoked
        stamps = [str(when[str(s)]) for s in serials if str(s) in when]
        at = max(stamps) if is_revoked and stamps else None
        itself = device_id == mine
        devices.append(
            IssuedDevice(
                device_id,
                tuple(serials),
                first,
                bound_replica(db, device_id),
                is_revoked,
                itself,
                at,
                None if itself else sightings.last_seen(db, device_id),
            )
        )
    return devices


def _serial_in(details: str) -> int | None:
    try:
        value = json.loads(details).get("serial")
        return int(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def revoke(db: Database, serial: int, actor: str) -> set[int]:
    """Refuse this device certificate from now on, and on the CA holder every other
    certificate it issued to the same device (audited); returns the serials revoked.

    Revocation is per device: a device re-certified after an upgrade from 0.1.0 holds an
    older certificate with the same key, which must not outlive the revocation.

    Every workstation refuses them on TLS connections. On the CA holder the revocation is
    also signed into a new revocation list (CRL), kept like one received, so it travels
    with every sync: every replica then quarantines the device's ops made from now on.
    Elsewhere only TLS refusal applies here; revoke on the CA holder for the clinic.
    """
    device_id = issued_to(db, serial) if has_ca_key(db) else None
    serials = {serial} | (issued_serials(db, device_id) if device_id is not None else set())
    _revoke(db, serials, actor, str(serial), device_id)
    return serials


def revoke_device(db: Database, device_id: str, actor: str) -> set[int]:
    """Revoke every certificate this workstation (the clinic CA holder) issued to
    ``device_id``, as :func:`revoke` does; returns their serials. LanIdentityError if it
    issued that device none."""
    serials = issued_serials(db, device_id) if has_ca_key(db) else set()
    if not serials:
        raise LanIdentityError(
            f"this workstation issued no certificate to device {device_id}; revoke it on "
            "the workstation that holds the clinic's LAN CA ('careline pair devices' there "
            "lists the devices it certified)"
        )
    identity = load_identity(db)
    if identity is not None and identity.device_id == device_id:
        raise LanIdentityError(
            f"device {device_id} is this workstation, the clinic's LAN CA holder: it cannot "
            "revoke itself"
        )
    _revoke(db, serials, actor, device_id, device_id)
    return serials


def _revoke(
    db: Database, serials: set[int], actor: str, entity_id: str, device_id: str | None
) -> None:
    ca = _get(db, CA_KEY_KEY)
    identity = load_identity(db)
    details: dict[str, Any] = {"serials": sorted(str(s) for s in serials)}
    if device_id is not None:
        details["device"] = device_id
    with db.write(actor, "lan.device.revoke", "device", entity_id, details) as tx:
        current = {str(s) for s in _get(tx, REVOKED_KEY) or []}
        current |= {str(s) for s in serials}
        _put(tx, REVOKED_KEY, sorted(current))
        if ca is None or identity is None:
            return
        state = _get(tx, CRL_STATE_KEY) or {"number": 0, "revoked": {}}
        when = dict(state["revoked"])
        now = dt.datetime.now(dt.UTC).isoformat()
        for serial in serials:
            when.setdefault(str(serial), now)
        number = int(state["number"]) + 1
        crl = certs.make_crl(
            certs.load_private_key(ca["private_key_pem"].encode("ascii")),
            identity.ca_certificate,
            {int(s): dt.datetime.fromisoformat(t) for s, t in when.items()},
            number,
        )
        _put(tx, CRL_STATE_KEY, {"number": number, "revoked": when})
        op_trust.keep_crl(tx, crl, identity.ca_certificate)


def merge_revoked(db: Database, serials: list[int], actor: str) -> int:
    """Add serials revoked by the clinic server to this workstation's LAN refusal list.

    Returns how many were new; writes (and audits) only when something changed.
    """
    known = revoked_serials(db)
    new = {int(s) for s in serials} - known
    if not new:
        return 0
    # Bookkeeping by whoever is signed in when sync brings the list (a nurse, say), so
    # not ``lan.device.revoke``, which only an administrator may do.
    with db.write(actor, "lan.revocations.learn", "device", "from-server",
                  {"count": len(new)}) as tx:  # fmt: skip
        current = {str(s) for s in _get(tx, REVOKED_KEY) or []}
        current |= {str(s) for s in new}
        _put(tx, REVOKED_KEY, sorted(current))
    return len(new)


# ----- pairing codes --------------------------------------------------------------------


def normalize_code(code: str) -> str:
    """Upper case, no spaces or dashes."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


# Argon2id, not a plain hash: a rogue listener that captures one proof must not be able to
# try every ~50-bit code offline within the code's lifetime. The salt is fixed because the
# codes are random, single-use and short-lived.
_CODE_KDF = Argon2Params(iterations=2, lanes=1, memory_kib=32 * 1024)


def code_secret(code: str) -> bytes:
    """What is stored and keys the proofs: a memory-hard hash of the code, never the code."""
    return derive_key(normalize_code(code).encode(), b"careline-pair-code-v1", _CODE_KDF)


def client_proof(secret: bytes, server_fingerprint: str, csr_pem: str) -> str:
    """The joiner's proof: the code bound to the TLS server certificate it sees and its CSR.

    A man in the middle terminates TLS with a different certificate, so the proof it relays
    does not match the real server's fingerprint; without the code it cannot make a new one.
    """
    msg = b"client|" + server_fingerprint.encode() + b"|" + csr_pem.encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def server_proof(secret: bytes, server_fingerprint: str, certificate: str, ca_pem: str) -> str:
    """The peer's proof that it knew the code too (the joiner checks it before trusting the CA)."""
    msg = (
        b"server|"
        + server_fingerprint.encode()
        + b"|"
        + certificate.encode()
        + b"|"
        + ca_pem.encode()
    )
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def new_pair_code(db: Database, actor: str, ttl_minutes: float = CODE_TTL_MINUTES) -> str:
    """A one-time pairing code; only its hash and expiry are stored."""
    refuse_if_demo("pair with a LAN workstation", db=db)
    if not has_ca_key(db):
        raise LanIdentityError(
            "this workstation does not hold the clinic CA, so it cannot pair devices; "
            "show the code on the workstation that created the clinic's LAN CA"
        )
    code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=ttl_minutes)
    with db.write(actor, "lan.pair.code", "device", "pairing") as tx:
        state = _get(tx, CODES_KEY) or {"codes": [], "failed": 0}
        now = dt.datetime.now(dt.UTC).isoformat()
        state["codes"] = [c for c in state["codes"] if c["expires"] > now]
        state["codes"].append({"hash": code_secret(code).hex(), "expires": expires.isoformat()})
        state["failed"] = 0
        _put(tx, CODES_KEY, state)
    return f"{code[:5]}-{code[5:]}"


def redeem(
    db: Database, proof: str, server_fingerprint: str, csr_pem: str, peer: str
) -> bytes | None:
    """Consume the unexpired code this proof was made with; returns its secret, or None.

    After MAX_FAILED_ATTEMPTS wrong proofs every outstanding code is burnt (no guessing).
    """
    with db.write("lan-peer", "lan.pair.redeem", "device", peer) as tx:
        state = _get(tx, CODES_KEY) or {"codes": [], "failed": 0}
        now = dt.datetime.now(dt.UTC).isoformat()
        live = [c for c in state["codes"] if c["expires"] > now]
        found: bytes | None = None
        for entry in live:
            secret = bytes.fromhex(entry["hash"])
            expected = client_proof(secret, server_fingerprint, csr_pem)
            if hmac.compare_digest(expected, proof):
                found = secret
                live.remove(entry)
                break
        if found is None:
            state["failed"] = int(state.get("failed", 0)) + 1
            if state["failed"] >= MAX_FAILED_ATTEMPTS:
                live = []
        state["codes"] = live
        _put(tx, CODES_KEY, state)
    return found


def issue_device(
    db: Database,
    csr_pem: str,
    actor: str,
    device_id: str | None = None,
    *,
    unbound_only: bool = False,
    address: str | None = None,
) -> tuple[str, str, str]:
    """Sign a device's CSR with the clinic CA: (device id, certificate, CA PEM).
    ``address``: where a device pairing over the network asked from (HOST:PORT), kept in
    the audit entry as the first place it was seen (:mod:`core.sync.lan.sightings`).

    A new device gets a new id; ``device_id`` re-issues an existing device's certificate
    (bound to its replica). A request bound to a replica id or Yjs client already bound to
    another device, or for a device already bound to another replica, is refused
    (LanIdentityError): no device may sign as another's origin, nor speak for two
    replicas.

    ``unbound_only`` (a device asking over the network): a device is certified for its
    replica once. Asking again for the same replica with the same key gets the very
    certificate issued then (its reply may have been lost), never a new serial: a spare
    certificate would outlive a revocation by serial. Anything else from a device bound
    already is refused.
    """
    ca = _get(db, CA_KEY_KEY)
    identity = load_identity(db)
    if ca is None or identity is None:
        raise LanIdentityError("this workstation does not hold the clinic CA")
    ca_key = certs.load_private_key(ca["private_key_pem"].encode("ascii"))
    binding = certs.csr_binding(csr_pem)
    device_id = device_id or secrets.token_hex(8)
    if unbound_only:
        earlier = _issued_before(db, device_id, binding, csr_pem)
        if earlier is not None:
            return device_id, earlier, identity.ca_certificate
    cert = certs.sign_device(ca_key, identity.ca_certificate, csr_pem, device_id)
    details: dict[str, Any] = {"serial": str(certs.serial_of(cert)), "bound": binding is not None}
    if address is not None:
        details["address"] = sightings.host_of(address)
    with db.write(actor, "lan.device.issue", "device", device_id, details) as tx:
        if unbound_only:
            held = bound_replica(tx, device_id)
            if held is not None:
                raise LanIdentityError(_already_bound(device_id, held))
        if binding is not None:
            _claim(tx, binding, device_id, cert)  # raises: the write and its audit roll back
    return device_id, cert, identity.ca_certificate


def bound_replica(db: Database | Transaction, device_id: str) -> str | None:
    """The replica this workstation (the clinic CA holder) bound ``device_id`` to, if any."""
    bound = _get(db, BINDINGS_KEY) or {}
    return next((r for r, entry in bound.items() if entry["device"] == device_id), None)


def _already_bound(device_id: str, replica_id: str) -> str:
    return (
        f"device {device_id} is already bound to replica {replica_id}; a device is "
        "certified for its replica once and speaks for one replica only (pair another "
        "replica as a new device)"
    )


def _issued_before(
    db: Database, device_id: str, binding: certs.ReplicaBinding | None, csr_pem: str
) -> str | None:
    """The bound certificate issued to ``device_id`` before, if the request asks for the
    very same (replica, Yjs client and key); None if the device is not bound yet;
    LanIdentityError if it is bound and asks for anything else."""
    held = bound_replica(db, device_id)
    if held is None:
        return None
    entry = (_get(db, BINDINGS_KEY) or {})[held]
    kept = entry.get("certificate")
    if binding is not None and binding.replica_id == held and isinstance(kept, str):
        cert = certs.load_certificate(kept)
        asked = x509.load_pem_x509_csr(csr_pem.encode("ascii")).public_key()
        if certs.binding_of(cert) == binding and cert.public_key() == asked:
            return kept
    raise LanIdentityError(_already_bound(device_id, held))


def _claim(
    tx: Transaction, binding: certs.ReplicaBinding, device_id: str, certificate: str
) -> None:
    """Record that ``device_id`` signs for this replica with ``certificate``; refuse if
    another device does, or if this device signs for another replica."""
    bound = _get(tx, BINDINGS_KEY) or {}
    held = bound.get(binding.replica_id)
    if held is not None and held["device"] != device_id:
        raise LanIdentityError(
            f"replica {binding.replica_id} is already bound to device {held['device']}; "
            "a certificate for it cannot be issued to another device"
        )
    own = bound_replica(tx, device_id)
    if own is not None and own != binding.replica_id:
        raise LanIdentityError(_already_bound(device_id, own))
    for replica, entry in bound.items():
        if replica != binding.replica_id and int(entry["yjs"]) == binding.yjs_client:
            raise LanIdentityError(
                f"Yjs client {binding.yjs_client} is already bound to replica {replica}; "
                "a certificate for it cannot be issued to another replica"
            )
    bound[binding.replica_id] = {
        "device": device_id,
        "yjs": binding.yjs_client,
        "certificate": certificate,
    }
    _put(tx, BINDINGS_KEY, bound)
