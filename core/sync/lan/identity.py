"""A workstation's LAN identity and the clinic CA, kept in the encrypted database.

Everything lives in the ``meta`` table of the SQLCipher database (never in a plain file):

- ``lan_identity``: this device's id, certificate, private key and the clinic CA certificate;
- ``lan_ca_key``: the clinic CA's private key, only on the workstation that created the CA
  (the first workstation of a clinic with no server);
- ``lan_revoked``: serial numbers of revoked device certificates;
- ``lan_pair_codes``: pairing codes, stored as hashes with their expiry.

``meta`` is local to this replica: it is never synced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from core.crypto import certs
from core.crypto.kdf import Argon2Params, derive_key
from core.errors import CarelineError
from core.records.demo import refuse_if_demo
from core.store.database import Database, Transaction

IDENTITY_KEY = "lan_identity"
CA_KEY_KEY = "lan_ca_key"
REVOKED_KEY = "lan_revoked"
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
    """Keep a device identity received at pairing (audited)."""
    refuse_if_demo("pair with a LAN workstation", db=db)
    with db.write(actor, "lan.identity.save", "device", identity.device_id) as tx:
        _put(tx, IDENTITY_KEY, asdict(identity))


def has_ca_key(db: Database) -> bool:
    """True if this workstation holds the clinic CA's private key (it can pair devices)."""
    return _get(db, CA_KEY_KEY) is not None


def ensure_identity(db: Database, actor: str) -> LanIdentity:
    """The LAN identity, creating a clinic CA and this device's certificate if there is none."""
    refuse_if_demo("pair with a LAN workstation", db=db)
    existing = load_identity(db)
    if existing is not None:
        return existing
    ca_key, ca_pem = certs.create_ca(secrets.token_hex(8))
    device_id = secrets.token_hex(8)
    key = certs.new_private_key()
    cert = certs.sign_device(ca_key, ca_pem, certs.make_csr(key, device_id), device_id)
    identity = LanIdentity(
        device_id=device_id,
        certificate=cert,
        private_key_pem=certs.private_key_pem(key).decode("ascii"),
        ca_certificate=ca_pem,
    )
    with db.write(actor, "lan.ca.create", "device", device_id) as tx:
        _put(tx, CA_KEY_KEY, {"private_key_pem": certs.private_key_pem(ca_key).decode("ascii")})
        _put(tx, IDENTITY_KEY, asdict(identity))
    return identity


def revoked_serials(db: Database) -> set[int]:
    """Serials of revoked device certificates."""
    return {int(s) for s in _get(db, REVOKED_KEY) or []}


def revoke(db: Database, serial: int, actor: str) -> None:
    """Refuse this device certificate from now on (audited)."""
    with db.write(actor, "lan.device.revoke", "device", str(serial)) as tx:
        current = {str(s) for s in _get(tx, REVOKED_KEY) or []}
        current.add(str(serial))
        _put(tx, REVOKED_KEY, sorted(current))


def merge_revoked(db: Database, serials: list[int], actor: str) -> int:
    """Add serials revoked by the clinic server to this workstation's LAN refusal list.

    Returns how many were new; writes (and audits) only when something changed.
    """
    known = revoked_serials(db)
    new = {int(s) for s in serials} - known
    if not new:
        return 0
    with db.write(actor, "lan.device.revoke", "device", "from-server", {"count": len(new)}) as tx:
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


def issue_device(db: Database, csr_pem: str, actor: str) -> tuple[str, str, str]:
    """Sign a joining device's CSR with the clinic CA: (device id, certificate, CA PEM)."""
    ca = _get(db, CA_KEY_KEY)
    identity = load_identity(db)
    if ca is None or identity is None:
        raise LanIdentityError("this workstation does not hold the clinic CA")
    ca_key = certs.load_private_key(ca["private_key_pem"].encode("ascii"))
    device_id = secrets.token_hex(8)
    cert = certs.sign_device(ca_key, identity.ca_certificate, csr_pem, device_id)
    details = {"serial": str(certs.serial_of(cert))}
    with db.write(actor, "lan.device.issue", "device", device_id, details):
        pass
    return device_id, cert, identity.ca_certificate
