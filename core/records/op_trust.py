"""Verifying who made each op, before any replica applies or stores it.

An op is accepted only if all of these hold (else it is quarantined with the reason):

- it is signed (core.crypto.op_signature), by its origin's device key or by the clinic CA;
- its origin is a replica of this clinic: a device certificate issued by the clinic CA
  is bound to it (certificates travel with the ops they signed, so a relay cannot swap
  one in: the CA's signature binds key and replica);
- that device was not revoked before the op's time (the clinic CA's signed revocation
  list, core.crypto.certs.read_crl);
- the op changes the record document only as its origin's own Yjs client: an op copied
  from another replica and re-signed under a new origin carries the first replica's
  changes, and is refused;
- its author is an active staff account of the clinic (or, for the server's own ops, the
  server's admin).

Relays never vouch for what they pass on: the signature checked is the origin's (or the
clinic CA's), not the connection's. The clinic CA stands above every device (it issues
their certificates), so ops it signs are accepted from any origin: the server signs its
own ops with it, and vouches for ops that predate signing (README "Signed ops").
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycrdt
from cryptography.hazmat.primitives.asymmetric import ec

from core.crypto import certs, op_signature
from core.records import crdt
from core.store import op_signer
from core.store.database import Database, Transaction, utc_now
from core.store.oplog import Op, parse_hlc
from core.store.oplog import identity as oplog_identity

CA_KEY = "clinic_ca"  # meta: the clinic CA certificate this replica trusts
CRL_KEY = "clinic_crl"  # meta: the newest revocation list seen (PEM)
# The recovery-key path (Workstation.recover_password) writes only a person's password
# verifier (clearing their must-change-password flag), with nobody signed in: its ops pass
# the author check, and remote apply refuses one that changes anything else
# (remote_authz.RemotePermissions.problem).
RECOVERY_AUTHOR = "recovery-key"
# ``careline init`` writes the clinic record and then its first admin's account, both
# authored by that admin: accepted only on a replica that holds no account at all yet.
SETUP_TYPES = frozenset({"clinic", "user"})


@dataclass(frozen=True)
class DeviceKey:
    """A clinic device's bound certificate, parsed."""

    replica_id: str
    yjs_client: int
    serial: int
    key: ec.EllipticCurvePublicKey
    certificate: str


@dataclass
class Trust:
    """What one replica checks ops against (see the module docstring)."""

    ca_certificate: str
    devices: dict[str, DeviceKey]
    revoked: dict[int, dt.datetime]
    is_active_user: Callable[[str], bool]
    clinic: bytes = b""
    ca_key: ec.EllipticCurvePublicKey | None = None
    # Authors that may appear on ops signed by the clinic CA (the server's admin).
    server_authors: frozenset[str] = frozenset({"server-admin"})
    # False while the replica holds no staff account at all: the clinic's first account is
    # made by the person it is for (``careline init``), before any account exists.
    any_users: bool = True
    # Set only for ops pulled from the clinic server while it runs Careline 0.1.0 (sync
    # protocol 1), which can sign nothing: they are taken on the pinned, authenticated
    # connection to the clinic's own server, as before signing, and kept unsigned, so no
    # other replica accepts them from us until the upgraded server vouches for them.
    unsigned_ok: bool = False
    # Whether each op's author held the permission its change needs at the op's time
    # (core.records.remote_authz.RemotePermissions); None: not checked (enforcement off).
    permissions: Any = None
    _batch_users: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.clinic = op_signature.clinic_tag(self.ca_certificate)
        key = certs.load_certificate(self.ca_certificate).public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise certs.CertificateError("the clinic CA's key is not an elliptic-curve key")
        self.ca_key = key

    def learn_certificates(self, pems: Iterable[str]) -> list[DeviceKey]:
        """Add device certificates that chain to the clinic CA and are bound to a replica;
        returns the new ones (others are ignored: verification then names the origin)."""
        new: list[DeviceKey] = []
        for pem in pems:
            device = device_key(pem, self.ca_certificate)
            if device is None:
                continue
            held = self.devices.get(device.replica_id)
            if held is None or held.serial != device.serial:
                self.devices[device.replica_id] = device
                new.append(device)
        return new


def device_key(pem: str, ca_certificate: str) -> DeviceKey | None:
    """A bound device certificate issued by this CA, parsed; None for anything else."""
    checked = _checked_devices.get((pem, ca_certificate))
    if checked is not None:
        # Parsed and its signature checked before: only its expiry can have changed.
        device, expires = checked
        return device if dt.datetime.now(dt.UTC) <= expires else None
    try:
        certs.verify_device(pem, ca_certificate, set())
        cert = certs.load_certificate(pem)
        binding = certs.binding_of(cert)
    except certs.CertificateError:
        return None
    key = cert.public_key()
    if binding is None or not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    device = DeviceKey(binding.replica_id, binding.yjs_client, int(cert.serial_number), key, pem)
    if len(_checked_devices) >= _CHECKED_DEVICES_MAX:
        _checked_devices.clear()
    _checked_devices[(pem, ca_certificate)] = (device, cert.not_valid_after_utc)
    return device


# Device certificates that passed device_key, by (certificate, CA certificate): every batch
# of ops a replica applies builds its trust from every device certificate it holds, and
# parsing and checking each again was most of that work (README, "one-edit sync"). Only
# successes are kept (a certificate refused for its dates may pass once the clock is right),
# and their expiry is checked again at each use; a revocation is the CRL's, checked apart.
_checked_devices: dict[tuple[str, str], tuple[DeviceKey, dt.datetime]] = {}
_CHECKED_DEVICES_MAX = 4096


# ----- verification ----------------------------------------------------------------------


def _wall(hlc: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(parse_hlc(hlc)[0] / 1000, dt.UTC)


def _identity_problem(op: Op, trust: Trust) -> str | None:
    """Everything but the signature itself."""
    if op.signer == "clinic-ca":
        return None
    if op.signer != "device":
        if not op.signer:
            return "it carries no signature"
        return f"it names an unknown kind of signer {op.signer[:40]!r}"
    device = trust.devices.get(op.origin)
    if device is None:
        return f"its origin {op.origin} is not a device of this clinic (no certificate)"
    revoked_at = trust.revoked.get(device.serial)
    if revoked_at is not None and _wall(op.hlc) >= revoked_at:
        return f"its device was revoked on {revoked_at:%Y-%m-%d %H:%M} UTC, before the op"
    try:
        clients = crdt.decode_state_vector(pycrdt.get_state(op.update))
    except (ValueError, RuntimeError):
        return None  # malformed: check_batch refuses the whole batch, naming it
    others = sorted(c for c in clients if c != device.yjs_client)
    if others:
        return "it carries changes made by another replica (copied under a new origin)"
    return None


def _key_for(op: Op, trust: Trust) -> ec.EllipticCurvePublicKey | None:
    if op.signer == "clinic-ca":
        return trust.ca_key
    device = trust.devices.get(op.origin)
    return device.key if device is not None else None


def verify(ops: Sequence[Op], trust: Trust) -> dict[tuple[str, int], str]:
    """Why each op that fails verification fails (ops absent from the result pass).

    Signatures are checked one per run: consecutive ops of one origin and signer whose
    ``prev`` links up are proven by the signature on the run's last op (the chain value
    commits to every op before it). Where that fails, each op is checked on its own, so
    the first bad op is the one named.
    """
    refused: dict[tuple[str, int], str] = {}
    run: list[tuple[Op, bytes]] = []

    def settle() -> None:
        if not run:
            return
        last, value = run[-1]
        key = _key_for(last, trust)
        if key is not None and op_signature.verify(key, value, last.sig):
            run.clear()
            return
        for op, chain in run:  # find the bad ones
            if key is None or not op_signature.verify(key, chain, op.sig):
                refused[(op.origin, op.seq)] = (
                    "its signature does not verify (the op was altered after signing, "
                    "or signed with another key)"
                )
        run.clear()

    for op in ops:
        if not op.signer and trust.unsigned_ok:
            settle()
            continue
        problem = _identity_problem(op, trust)
        if problem is not None:
            settle()
            refused[(op.origin, op.seq)] = problem
            continue
        chain = op_signer.op_chain(trust.clinic, op, op.prev)
        if run:
            before, before_chain = run[-1]
            if not (
                before.origin == op.origin
                and before.signer == op.signer
                and before.seq + 1 == op.seq
                and op.prev == before_chain
            ):
                settle()
        run.append((op, chain))
    settle()
    return refused


def author_problem(op: Op, trust: Trust) -> str | None:
    """Why the op's author may not make it, or None."""
    if op.signer == "clinic-ca" and op.author in trust.server_authors:
        return None
    if op.record_type == "user" and op.author == RECOVERY_AUTHOR:
        return None
    if op.record_type in SETUP_TYPES and not trust.any_users and not trust._batch_users:
        return None  # a clinic's set-up, before its first account exists
    if op.author in trust._batch_users or trust.is_active_user(op.author):
        return None
    return f"its author {op.author[:64]!r} is not an active staff account of this clinic"


def permission_exempt(op: Op, trust: Trust) -> bool:
    """Ops not checked against the permission matrix: the server's own and those it vouched
    for (signed by the clinic CA: made before signing, hence before authorization), and a
    clinic's set-up on a replica that holds no account yet. The recovery-key path is
    checked (remote_authz: it may only set a password), as every other op is."""
    if op.signer == "clinic-ca":
        return True
    return op.record_type in SETUP_TYPES and not trust.any_users and not trust._batch_users


def note_batch_users(trust: Trust, usernames: Iterable[str]) -> None:
    """Accounts created earlier in the same batch count as existing for later ops."""
    trust._batch_users.update(usernames)


# ----- a SQLCipher replica's trust ------------------------------------------------------


def _meta(db: Database | Transaction, key: str) -> str | None:
    rows = db.query("SELECT value FROM meta WHERE key = ?", (key,))
    return str(rows[0][0]) if rows else None


def _put_meta(tx: Transaction, key: str, value: str) -> None:
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def replica_trust(db: Database | Transaction) -> Trust | None:
    """This replica's trust (None: it has joined no clinic, so it has nothing to verify
    against and refuses every remote op)."""
    ca = _meta(db, CA_KEY)
    if ca is None:
        return None
    ca = json.loads(ca)
    devices: dict[str, DeviceKey] = {}
    for rid, pem in db.query("SELECT replica_id, certificate FROM device_certs"):
        device = device_key(str(pem), ca)
        if device is not None and device.replica_id == rid:
            devices[str(rid)] = device
    revoked: dict[int, dt.datetime] = {}
    crl = _meta(db, CRL_KEY)
    if crl is not None:
        try:
            revoked = certs.read_crl(json.loads(crl), ca).revoked
        except certs.CertificateError:
            revoked = {}
    active = {str(u) for (u,) in db.query("SELECT username FROM users WHERE active = 1")}
    anyone = bool(db.query("SELECT 1 FROM users LIMIT 1"))
    from core.records import remote_authz  # it reads the records layer's types and engine

    return Trust(
        ca, devices, revoked, active.__contains__, any_users=anyone,
        permissions=remote_authz.for_replica(db),
    )  # fmt: skip


def clinic_ca(db: Database | Transaction) -> str | None:
    """The clinic CA certificate this replica trusts (None: it has joined no clinic)."""
    held = _meta(db, CA_KEY)
    return None if held is None else str(json.loads(held))


def join_clinic(tx: Transaction, ca_certificate: str) -> None:
    """Trust this clinic CA from now on (enrollment, pairing)."""
    _put_meta(tx, CA_KEY, json.dumps(ca_certificate))


def keep_certificates(tx: Transaction, devices: Iterable[DeviceKey]) -> None:
    """Remember device certificates learnt from the other side, to relay them on."""
    tx.executemany(
        "INSERT INTO device_certs (replica_id, yjs_client, serial, certificate) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (replica_id) DO UPDATE SET "
        "yjs_client = excluded.yjs_client, serial = excluded.serial, "
        "certificate = excluded.certificate",
        [(d.replica_id, d.yjs_client, str(d.serial), d.certificate) for d in devices],
    )


def certificates_for(db: Database | Transaction, origins: Iterable[str]) -> list[str]:
    """Certificates of these origins that this replica holds, to send with their ops."""
    wanted = sorted(set(origins))
    if not wanted:
        return []
    marks = ",".join("?" for _ in wanted)
    rows = db.query(
        f"SELECT certificate FROM device_certs WHERE replica_id IN ({marks})", tuple(wanted)
    )
    return [str(pem) for (pem,) in rows]


def keep_crl(tx: Transaction, crl_pem: str, ca_certificate: str) -> bool:
    """Keep a revocation list if it is the CA's and newer than ours; True if kept."""
    incoming = certs.read_crl(crl_pem, ca_certificate)
    held = _meta(tx, CRL_KEY)
    if held is not None:
        try:
            if certs.read_crl(json.loads(held), ca_certificate).number >= incoming.number:
                return False
        except certs.CertificateError:
            pass
    _put_meta(tx, CRL_KEY, json.dumps(crl_pem))
    return True


def crl_of(db: Database | Transaction) -> str | None:
    """The revocation list this replica holds, to pass on."""
    held = _meta(db, CRL_KEY)
    return None if held is None else str(json.loads(held))


# ----- quarantine ------------------------------------------------------------------------


@dataclass(frozen=True)
class Quarantined:
    """An op kept aside, never applied, with why."""

    origin: str
    seq: int
    record_id: str
    record_type: str
    author: str
    hlc: str
    reason: str
    received_from: str
    first_seen: str
    last_seen: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return dict(self.__dict__)


def quarantine(tx: Transaction, held: Iterable[tuple[Op, str]], received_from: str) -> None:
    """Keep refused ops aside with their reasons (updating the reason and time if seen
    before)."""
    now = utc_now()
    tx.executemany(
        "INSERT INTO quarantine (origin, seq, record_id, record_type, doc_update, deps, hlc, "
        "author, prev, sig, signer, reason, received_from, first_seen, last_seen) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin, seq) DO "
        "UPDATE SET reason = excluded.reason, received_from = excluded.received_from, "
        "last_seen = excluded.last_seen, doc_update = excluded.doc_update, "
        "sig = excluded.sig, signer = excluded.signer, prev = excluded.prev",
        [_quarantine_row(o, reason, received_from, now) for o, reason in held],
    )


def _quarantine_row(o: Op, reason: str, received_from: str, now: str) -> tuple[object, ...]:
    return (o.origin, o.seq, o.record_id, o.record_type, o.update, o.deps, o.hlc, o.author,
            o.prev, o.sig, o.signer, reason, received_from, now, now)  # fmt: skip


def release(tx: Transaction, applied: Iterable[Op]) -> None:
    """Ops that now passed leave the quarantine."""
    tx.executemany(
        "DELETE FROM quarantine WHERE origin = ? AND seq = ?",
        [(o.origin, o.seq) for o in applied],
    )


def quarantined(db: Database) -> list[Quarantined]:
    """Ops held aside on this replica, oldest first."""
    rows = db.query(
        "SELECT origin, seq, record_id, record_type, author, hlc, reason, received_from, "
        "first_seen, last_seen FROM quarantine ORDER BY first_seen, origin, seq"
    )
    return [
        Quarantined(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                    str(r[6]), str(r[7]), str(r[8]), str(r[9]))
        for r in rows
    ]  # fmt: skip


def note_refused_elsewhere(
    db: Database, refusals: Sequence[tuple[str, int, str]], refused_by: str, actor: str
) -> int:
    """Record that the other side refused some of this replica's ops (audited); returns
    how many were new, so a person is told once, not at every sync."""
    mine = str(db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0])
    own = [(o, s, r) for o, s, r in refusals if o == mine]
    if not own:
        return 0
    known = {
        (str(o), int(s), str(r))
        for o, s, r in db.query(
            "SELECT origin, seq, reason FROM refused_elsewhere WHERE refused_by = ?", (refused_by,)
        )
    }
    new = [item for item in own if item not in known]
    if not new:
        return 0
    details = {"ops": len(new), "by": refused_by}
    with db.write(actor, "sync.refused_elsewhere", "oplog", mine, details) as tx:
        tx.executemany(
            "INSERT INTO refused_elsewhere (origin, seq, refused_by, reason, seen_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin, seq, refused_by) DO UPDATE SET "
            "reason = excluded.reason, seen_at = excluded.seen_at",
            [(o, s, refused_by, r, utc_now()) for o, s, r in new],
        )
    return len(new)


def refused_elsewhere(db: Database) -> list[tuple[str, int, str, str, str]]:
    """This replica's ops other replicas refused: (origin, seq, refused by, why, when)."""
    return [
        (str(o), int(s), str(b), str(r), str(t))
        for o, s, b, r, t in db.query(
            "SELECT origin, seq, refused_by, reason, seen_at FROM refused_elsewhere "
            "ORDER BY seen_at, seq"
        )
    ]


def install_device(
    db: Database, certificate: str, private_key_pem: str, ca_certificate: str, actor: str
) -> int:
    """Make this replica a device of the clinic whose CA is ``ca_certificate``: trust that
    CA, and sign this replica's ops with ``private_key_pem`` when ``certificate`` is bound
    to this replica (else ops stay unsigned until a bound one is installed). Ops made
    before are signed now; returns how many (audited)."""
    me = oplog_identity(db)
    device = device_key(certificate, ca_certificate)
    bound = device is not None and device.replica_id == me.replica_id
    if bound and device is not None and device.yjs_client != me.client_id:
        raise certs.CertificateError(
            "the device certificate names another Yjs client than this replica's"
        )
    with db.write(actor, "device.signing", "device", me.replica_id, {"bound": bound}) as tx:
        join_clinic(tx, ca_certificate)
        if bound and device is not None:
            op_signer.install(tx, "device", private_key_pem, ca_certificate)
            keep_certificates(tx, [device])
    return op_signer.sign_pending(db, actor)


def binding_for(db: Database) -> certs.ReplicaBinding:
    """What this replica's device certificate must be bound to."""
    me = oplog_identity(db)
    return certs.ReplicaBinding(me.replica_id, me.client_id)
