"""A clinic's replica on PostgreSQL: sealed op log and record states, serving sync.

The server never shows records, so it keeps no derived tables or search index: only what
sync needs (version vector, op log, one CRDT state per record) and the audit log. Every op
and record state is sealed (:mod:`.columns`) before it reaches PostgreSQL; records are
found by the blind index of their id. Batches are checked exactly as on a workstation
(:func:`core.records.replication.check_batch`) and validated by deriving each record's
rows, so content a workstation would refuse is refused here too.

Admin writes made on the server (a new staff account, the clinic's name) come from the
clinic server's own origin: the records they touch are loaded into a throwaway in-memory
replica with that origin's identity, the write runs through the ordinary write path, and
the resulting ops are applied here like any device's, in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import psycopg

from core.audit.verify import AuditReport, verify_chain
from core.crypto import certs
from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.crypto.secure_memory import SecureMemory
from core.records import authorize, crdt, op_trust, remote_authz, remote_grants
from core.records.changes import AUTHZ_TOKEN_KEY, Loaded, RecordTypeMismatchError
from core.records.clinic import ClinicRecords
from core.records.materialize import MalformedRecordError, derive
from core.records.replication import (
    ApplyError,
    ApplyResult,
    RecordState,
    SnapshotPage,
    SnapshotRequiredError,
    apply_snapshot_page,
    check_batch,
)
from core.records.types import AUTHZ_HISTORY, RECORD_TYPES
from core.server import vouching
from core.server.postgres.columns import ColumnCipher
from core.server.postgres.connection import PgStore
from core.store import audit_chain, op_signer, oplog
from core.store.database import Database, utc_now
from core.sync import audit_anchor
from core.sync.stores import ANCHOR_META_PREFIX

OPS = "replica_ops"
RECORDS = "replica_records"
QUARANTINE = "replica_quarantine"
DEVICE_AUDIT = "replica_device_audit"
_CRL_KEY = "clinic_crl"
_LEARNT_CERT = "device_cert:"  # meta prefix: a bound certificate learnt from a push
_ORIGIN_KEY = "server_origin"
_CLIENT_KEY = "server_client_id"
_HLC_KEY = "hlc"
# Record types an admin write on the server may need to read (accounts, the clinic itself).
_ADMIN_TYPES = ("user", "clinic")
T = TypeVar("T")
Cursor = psycopg.Cursor[Any]


def pack(*parts: bytes) -> bytes:
    """Length-prefixed concatenation (the sealed plaintext of a row)."""
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def unpack(data: bytes, count: int | None) -> list[bytes]:
    """Inverse of :func:`pack`; ValueError if ``data`` does not hold ``count`` parts (any
    number when ``count`` is None)."""
    parts: list[bytes] = []
    at = 0
    while (count is None and at < len(data)) or (count is not None and len(parts) < count):
        if at + 4 > len(data):
            raise ValueError("sealed row is truncated")
        (size,) = struct.unpack_from(">I", data, at)
        at += 4
        if at + size > len(data):
            raise ValueError("sealed row is truncated")
        parts.append(data[at : at + size])
        at += size
    if at != len(data):
        raise ValueError("sealed row has trailing bytes")
    return parts


class ClinicAuthority(Protocol):
    """What the registry (the truth about a clinic's devices) tells its replica."""

    def ca_certificate(self) -> str:
        """The clinic CA certificate."""
        ...

    def ca_signer(self) -> op_signer.Signer:
        """The clinic CA's key, as the signer of the server's own ops."""
        ...

    def ca_key_pem(self) -> str:
        """The clinic CA's private key (PEM), for the admin writes' scratch replica."""
        ...

    def bound_certificates(self) -> list[tuple[str, str]]:
        """(replica id, certificate) of every device bound to a replica."""
        ...

    def revocations(self) -> dict[int, dt.datetime]:
        """Revoked certificate serial -> when."""
        ...


class PgReplica:
    """One clinic's replica in the shared PostgreSQL database (tenant = clinic id)."""

    def __init__(
        self,
        store: PgStore,
        tenant: str,
        cipher: Callable[[bool], ColumnCipher],
        authority: ClinicAuthority,
    ) -> None:
        """``cipher(fresh)`` returns the clinic's column keys; ``fresh`` reloads them (a row
        sealed under a generation another server process added was met). ``authority``:
        the registry's word on the clinic's CA, devices and revocations."""
        self.store = store
        self.tenant = tenant
        self._keys = cipher
        self.authority = authority
        # Parsed device certificates by PEM, and user accounts by their sealed state:
        # verification needs both at every push, and both rarely change.
        self._device_keys: dict[str, op_trust.DeviceKey | None] = {}
        self._users: dict[str, tuple[bytes, str, bool]] = {}

    def _cipher(self) -> ColumnCipher:
        return self._keys(False)

    def _open(self, c: ColumnCipher, table: str, row: str, gen: int, sealed: bytes) -> bytes:
        if gen not in c.generations:
            c = self._keys(True)
        return c.open(table, row, gen, bytes(sealed))

    # ----- sealing ----------------------------------------------------------------------

    @staticmethod
    def _op_plain(op: oplog.Op) -> bytes:
        """All of an op, signature included (the quarantine keeps ops this way)."""
        return pack(op.record_id.encode(), op.record_type.encode(), op.update, op.deps,
                    op.hlc.encode(), op.author.encode(), op.prev, op.sig,
                    op.signer.encode())  # fmt: skip

    @staticmethod
    def _op_content(op: oplog.Op) -> bytes:
        """What ``replica_ops.sealed`` holds: the six parts release 0.1.0 reads too (its
        processes serve the same table during a rolling upgrade); the signature lives in
        the ``prev``/``sig``/``signer`` columns beside it (nothing secret: it is checked
        against public keys, and reveals no content)."""
        return pack(op.record_id.encode(), op.record_type.encode(), op.update, op.deps,
                    op.hlc.encode(), op.author.encode())  # fmt: skip

    @staticmethod
    def _op_of(origin: str, seq: int, plain: bytes) -> oplog.Op:
        """An op from its sealed plaintext: 9 parts, or 6 (sealed before ops were signed,
        by release 0.1.0: unsigned)."""
        parts = unpack(plain, None)
        if len(parts) not in (6, 9):
            raise ValueError("sealed op has an unknown number of parts")
        rid, rtype, update, deps, hlc, author = parts[:6]
        prev, sig, signer = parts[6:] if len(parts) == 9 else (b"", b"", b"")
        return oplog.Op(origin, seq, rid.decode(), rtype.decode(), update, deps, hlc.decode(),
                        author.decode(), prev, sig, signer.decode())  # fmt: skip

    def _seal_op(self, c: ColumnCipher, op: oplog.Op) -> tuple[int, bytes]:
        return c.seal(OPS, f"{op.origin}:{op.seq}", self._op_content(op))

    def _open_op(
        self,
        c: ColumnCipher,
        origin: str,
        seq: int,
        gen: int,
        sealed: bytes,
        signature: tuple[Any, Any, Any] = (None, None, None),
    ) -> oplog.Op:
        """An op from its sealed row and its ``(prev, sig, signer)`` columns (NULL:
        stored unsigned)."""
        plain = self._open(c, OPS, f"{origin}:{seq}", gen, sealed)
        op = self._op_of(origin, seq, plain)
        prev, sig, signer = signature
        if signer is None or op.signer:
            return op
        return dataclasses.replace(
            op, prev=bytes(prev or b""), sig=bytes(sig or b""), signer=str(signer)
        )

    def _open_record(self, c: ColumnCipher, ix: str, gen: int, sealed: bytes) -> RecordState:
        rid, rtype, state = unpack(self._open(c, RECORDS, ix, gen, sealed), 3)
        return RecordState(rid.decode(), rtype.decode(), state)

    # ----- reads --------------------------------------------------------------------------

    @staticmethod
    def _vector(cur: Cursor) -> dict[str, int]:
        return {str(o): int(s) for o, s in cur.execute("SELECT origin, seq FROM replica_vectors")}

    def version_vector(self) -> dict[str, int]:
        """``{origin: highest contiguous seq}`` held for this clinic."""
        with self.store.tenant(self.tenant) as cur:
            return self._vector(cur)

    def ops_for(self, remote_vv: dict[str, int], limit: int) -> list[oplog.Op]:
        """Ops the holder of ``remote_vv`` lacks, oldest arrival first (one consistent read)."""
        return self.pull(remote_vv, limit)[0]

    def pull(self, remote_vv: dict[str, int], limit: int) -> tuple[list[oplog.Op], dict[str, int]]:
        """:meth:`ops_for` and the vector they were read at, from one snapshot. Ops stored
        unsigned (by release 0.1.0 code) are vouched for first (:meth:`vouch_pending`)."""
        self.vouch_pending()
        c = self._cipher()
        with self.store.tenant(self.tenant, snapshot=True) as cur:
            rows = cur.execute("SELECT origin, seq, floor FROM replica_vectors").fetchall()
            for origin, _, floor in rows:
                if floor and remote_vv.get(origin, 0) < floor:
                    raise SnapshotRequiredError(
                        f"ops of {origin} up to {floor} are only held as a snapshot here"
                    )
            picked: list[tuple[int, oplog.Op]] = []
            for origin, seq, _ in rows:
                since = remote_vv.get(origin, 0)
                if seq <= since:
                    continue
                for o, s, pos, gen, sealed, *signature in cur.execute(
                    "SELECT origin, seq, pos, key_gen, sealed, prev, sig, signer FROM "
                    "replica_ops WHERE origin = %s AND seq > %s AND seq <= %s ORDER BY seq "
                    "LIMIT %s",
                    (origin, since, seq, limit),
                ):
                    op = self._open_op(c, str(o), int(s), int(gen), sealed, tuple(signature))
                    picked.append((int(pos), op))
        picked.sort(key=lambda item: item[0])
        vector = {str(o): int(s) for o, s, _ in rows}
        return [op for _, op in picked[:limit]], vector

    def push(
        self,
        ops: list[oplog.Op],
        session_actor: str,
        certificates: Sequence[str] = (),
        source: str = "",
    ) -> tuple[ApplyResult, dict[str, int]]:
        """:meth:`apply_ops` and the vector after it, in the same transaction. Each op is
        verified (core.records.op_trust) against the registry's devices and revocations
        and the clinic's active accounts; refused ops are quarantined, never applied."""
        c = self._cipher()
        devices = self._registry_devices()
        try:
            with self.store.tenant(self.tenant, write=True) as cur:
                token = self._meta(cur, AUTHZ_TOKEN_KEY)  # before the push stores anything
                trust = self._trust(cur, c, devices)
                learnt = trust.learn_certificates(certificates)
                self._keep_learnt(cur, learnt)
                result = self._apply(cur, c, ops, session_actor, trust=trust,
                                     source=source or session_actor)  # fmt: skip
                vector = self._vector(cur)
                kept = self._history_to_keep(cur, trust, token)
            if kept is not None:  # committed: the next push starts from it
                remote_authz.keep_history(*kept)
            return result, vector
        except (oplog.GapError, RecordTypeMismatchError, MalformedRecordError) as exc:
            raise ApplyError(str(exc)) from exc

    def snapshot_page(
        self, after: str | None, limit: int, forms: frozenset[str] = frozenset()
    ) -> SnapshotPage:
        """Record states in blind-index order after the cursor ``after``, plain (``forms``
        is not used: states are kept sealed here, not in SQLCipher's stored forms)."""
        c = self._cipher()
        with self.store.tenant(self.tenant, snapshot=True) as cur:
            vector = self._vector(cur)
            rows = cur.execute(
                "SELECT record_ix, key_gen, sealed FROM replica_records WHERE record_ix > %s "
                "ORDER BY record_ix LIMIT %s",
                (after or "", limit),
            ).fetchall()
        records = tuple(self._open_record(c, str(ix), int(g), s) for ix, g, s in rows)
        next_after = str(rows[-1][0]) if len(rows) == limit else None
        return SnapshotPage(vector, records, next_after)

    def anchor_audit(
        self, device: str, head: audit_chain.Head | None, proof: Sequence[bytes] | None = None
    ) -> audit_anchor.Anchoring:
        """The audit head recorded for ``device``; then records ``head`` unless it is None,
        if it is the first or ``proof`` shows that it extends the recorded one
        (core.sync.audit_anchor). Heads are a number and a hash: not sealed.

        Moving is one compare-and-swap upsert, atomic without the tenant's write lock
        (which every push of the clinic waits on): a head another session moved meanwhile
        is not overwritten. A refusal is logged and audited."""
        key = f"{ANCHOR_META_PREFIX}{device}"
        with self.store.tenant(self.tenant) as cur:
            recorded = audit_chain.Head.parse(self._meta(cur, key))
            if head is None or recorded == head:
                return audit_anchor.Anchoring(recorded, head is not None)
            if audit_anchor.advance(recorded, head, proof):
                moved = cur.execute(
                    "INSERT INTO replica_meta (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value "
                    "WHERE replica_meta.value = %s RETURNING key",
                    (key, str(head), str(recorded)),
                ).fetchone()
                if moved is not None:  # kept for the clinic's admins (README "Audit review")
                    self._keep_device_audit(
                        cur, device, audit_anchor.proven_entries(recorded, proof)
                    )
                return audit_anchor.Anchoring(recorded, moved is not None)
        assert recorded is not None  # advance() refuses only when a head is recorded
        audit_anchor.log_refused(device, head, recorded, proof is not None)
        with self.store.tenant(self.tenant, write=True) as cur:
            self._audit(cur, "sync", "audit.anchor_refused", "device", device,
                        {"offered": head.seq, "recorded": recorded.seq})  # fmt: skip
        return audit_anchor.Anchoring(recorded, False)

    def snapshot_size(self) -> int:
        """How many records a full snapshot holds."""
        with self.store.tenant(self.tenant) as cur:
            row = cur.execute("SELECT count(*) FROM replica_records").fetchone()
        return int(row[0]) if row else 0

    def holds_types_beyond(self, types: frozenset[str]) -> bool:
        """Whether any record held is of a type not in ``types`` (an older peer's)."""
        c = self._cipher()
        known = [c.blind_index(f"type:{t}") for t in sorted(types)]
        with self.store.tenant(self.tenant) as cur:
            row = cur.execute(
                "SELECT 1 FROM replica_records WHERE NOT (type_ix = ANY(%s)) LIMIT 1", (known,)
            ).fetchone()
        return row is not None

    # ----- writes -------------------------------------------------------------------------

    def apply_ops(
        self,
        ops: list[oplog.Op],
        session_actor: str,
        certificates: Sequence[str] = (),
        source: str = "",
    ) -> ApplyResult:
        """Apply a device's batch idempotently, all or nothing (serialised per clinic)."""
        return self.push(ops, session_actor, certificates, source)[0]

    def _apply(
        self,
        cur: Cursor,
        c: ColumnCipher,
        ops: list[oplog.Op],
        actor: str,
        local: bool = False,
        *,
        trust: op_trust.Trust,
        source: str = "",
    ) -> ApplyResult:
        held = self._vector(cur)
        meta: dict[str, str] = {
            str(k): str(v)
            for k, v in cur.execute(
                "SELECT key, value FROM replica_meta WHERE key = ANY(%s)",
                ([_ORIGIN_KEY, _HLC_KEY, audit_chain.HEAD_META_KEY],),
            )
        }
        own = meta.get(_ORIGIN_KEY)

        def load(record_id: str, type_name: str) -> Loaded:
            ix = c.blind_index(record_id)
            row = cur.execute(
                "SELECT key_gen, sealed FROM replica_records WHERE record_ix = %s", (ix,)
            ).fetchone()
            if row is None:
                return Loaded(crdt.load(None, 1), {})
            state = self._open_record(c, ix, int(row[0]), row[1])
            if state.record_type != type_name:
                raise RecordTypeMismatchError(
                    f"record {record_id!r} is a {state.record_type}, not a {type_name}"
                )
            return Loaded(crdt.load(state.state, 1), {})

        def same_as_held(op: oplog.Op) -> None:
            row = cur.execute(
                "SELECT key_gen, sealed FROM replica_ops WHERE origin = %s AND seq = %s",
                (op.origin, op.seq),
            ).fetchone()
            if row is None:
                return
            mine = self._open_op(c, op.origin, op.seq, int(row[0]), row[1])
            if mine.update != op.update or mine.record_id != op.record_id:
                raise ApplyError(
                    f"op {op.origin}:{op.seq} differs from the op this replica already holds "
                    "under that origin and sequence number; refusing it"
                )

        # Ops of the server's own origin are made here (admin writes), never by devices.
        checked = check_batch(ops, held, None if local else own, load, same_as_held, trust)
        self._quarantine(cur, c, checked.quarantined, source or actor)
        if not checked.fresh:
            return ApplyResult(0, checked.duplicates, (), checked.refusals())
        if any(type_name in AUTHZ_HISTORY for type_name, _ in checked.docs.values()):
            # The permission history changes with them (remote_authz.cached_history).
            self._set_meta(cur, AUTHZ_TOKEN_KEY, secrets.token_hex(16))
        for record_id, (type_name, loaded) in checked.docs.items():
            ix = c.blind_index(record_id)
            update = _checked_state(record_id, type_name, loaded.doc)
            state = pack(record_id.encode(), type_name.encode(), update)
            gen, sealed = c.seal(RECORDS, ix, state)
            cur.execute(
                "INSERT INTO replica_records (record_ix, type_ix, key_gen, sealed) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (tenant, record_ix) DO UPDATE SET "
                "key_gen = excluded.key_gen, sealed = excluded.sealed",
                (ix, c.blind_index(f"type:{type_name}"), gen, sealed),
            )
        rows = []
        for op in checked.fresh:
            gen, sealed = self._seal_op(c, op)
            rows.append((op.origin, op.seq, c.blind_index(op.record_id), gen, sealed,
                         op.prev, op.sig, op.signer or None))  # fmt: skip
        cur.executemany(
            "INSERT INTO replica_ops (origin, seq, record_ix, key_gen, sealed, prev, sig, "
            "signer) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
        cur.executemany(  # ops that now passed leave the quarantine
            "DELETE FROM replica_quarantine WHERE origin = %s AND seq = %s",
            [(op.origin, op.seq) for op in checked.fresh],
        )
        top: dict[str, int] = {}
        for op in checked.fresh:
            top[op.origin] = max(top.get(op.origin, 0), op.seq)
        cur.executemany(
            "INSERT INTO replica_vectors (origin, seq) VALUES (%s, %s) "
            "ON CONFLICT (tenant, origin) DO UPDATE SET seq = excluded.seq",
            list(top.items()),
        )
        newest = max(op.hlc for op in checked.fresh)
        origins = sorted(top)
        head = self._audit(cur, actor, "sync.apply", "oplog", ",".join(origins),
                           {"ops": len(checked.fresh), "origins": origins},
                           meta.get(audit_chain.HEAD_META_KEY), write_head=False)  # fmt: skip
        heads = [(audit_chain.HEAD_META_KEY, head)]
        if newest > meta.get(_HLC_KEY, ""):
            heads.append((_HLC_KEY, newest))
        cur.executemany(
            "INSERT INTO replica_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
            heads,
        )
        return ApplyResult(len(checked.fresh), checked.duplicates, tuple(sorted(checked.docs)),
                           checked.refusals())  # fmt: skip

    def run_admin(
        self,
        actor: str,
        work: Callable[[ClinicRecords], T],
        kdf_params: Argon2Params = DEFAULT_PARAMS,
    ) -> T:
        """Run an admin write (``work`` on a ClinicRecords) as the clinic server's origin."""
        c = self._cipher()
        devices = self._registry_devices()
        ca_cert, ca_key = self.authority.ca_certificate(), self.authority.ca_key_pem()
        with self.store.tenant(self.tenant, write=True) as cur:
            origin, client_id = self._server_identity(cur)
            held = self._vector(cur).get(origin, 0)
            scratch = Database.in_memory(SecureMemory.from_bytes(secrets.token_bytes(32)))
            scratch.operator = True  # the server's admin CLI is the operator's: not gated
            try:
                with scratch.write(actor, "server.identity", "meta", origin) as tx:
                    # The server's own ops are signed with the clinic CA's key.
                    op_trust.join_clinic(tx, ca_cert)
                    op_signer.install(tx, "clinic-ca", ca_key, ca_cert)
                    tx.execute("UPDATE meta SET value = ? WHERE key = 'replica_id'", (origin,))
                    tx.execute(
                        "UPDATE meta SET value = ? WHERE key = 'yjs_client_id'", (str(client_id),)
                    )
                    if held:
                        oplog.raise_floor(tx, origin, held)
                    hlc = self._meta(cur, _HLC_KEY)
                    if hlc:
                        oplog.observe(tx, hlc, origin)
                states = self._records_of_types(cur, c, _ADMIN_TYPES)
                apply_snapshot_page(scratch, SnapshotPage({}, tuple(states), None), actor)
                result = work(ClinicRecords(scratch, actor, kdf_params))
                made = [o for o in oplog.ops_after(scratch, {origin: held}, 10_000)
                        if o.origin == origin]  # fmt: skip
                if made:
                    trust = self._trust(cur, c, devices)
                    applied = self._apply(cur, c, made, actor, local=True, trust=trust)
                    if applied.quarantined:  # never: the CA signs them; but never store it
                        raise ApplyError(f"the server's own ops were refused: {applied}")
            finally:
                scratch.close()
        return result

    def read_admin(self, work: Callable[[ClinicRecords], T], actor: str = "server") -> T:
        """Run a read on the clinic's staff and clinic records (``work`` on a scratch
        replica of them), without the tenant's write lock that :meth:`run_admin` takes:
        nothing ``work`` could write is kept, and every other writer goes on meanwhile."""
        c = self._cipher()
        with self.store.tenant(self.tenant) as cur:
            states = self._records_of_types(cur, c, _ADMIN_TYPES)
        scratch = Database.in_memory(SecureMemory.from_bytes(secrets.token_bytes(32)))
        scratch.operator = True
        try:
            apply_snapshot_page(scratch, SnapshotPage({}, tuple(states), None), actor)
            return work(ClinicRecords(scratch, actor))
        finally:
            scratch.close()

    def _records_of_types(
        self, cur: Cursor, c: ColumnCipher, types: Iterable[str]
    ) -> list[RecordState]:
        marks = [c.blind_index(f"type:{t}") for t in types]
        rows = cur.execute(
            "SELECT record_ix, key_gen, sealed FROM replica_records WHERE type_ix = ANY(%s)",
            (marks,),
        ).fetchall()
        return [self._open_record(c, str(ix), int(g), s) for ix, g, s in rows]

    def take_new_identity(self) -> None:
        """After the database was restored from a dump: forget the server's own origin and
        Yjs client id, so its next admin write draws new ones.

        The lost server may have numbered ops ``(old origin, seq)`` after the dump that
        workstations already hold; numbering new ones under the old origin would clash.
        Ops already stored under the old origin stay, and are still served.
        """
        with self.store.tenant(self.tenant, write=True) as cur:
            cur.execute(
                "DELETE FROM replica_meta WHERE key = ANY(%s)", ([_ORIGIN_KEY, _CLIENT_KEY],)
            )
            self._audit(cur, "server", "server.new_identity", "meta", self.tenant, {})

    def _server_identity(self, cur: Cursor) -> tuple[str, int]:
        origin = self._meta(cur, _ORIGIN_KEY)
        client = self._meta(cur, _CLIENT_KEY)
        if origin is None or client is None:
            origin, client = secrets.token_hex(8), str(secrets.randbits(52))
            self._set_meta(cur, _ORIGIN_KEY, origin)
            self._set_meta(cur, _CLIENT_KEY, client)
        return origin, int(client)

    # ----- verification: trust, quarantine, vouching ---------------------------------------

    def _registry_devices(self) -> dict[str, op_trust.DeviceKey]:
        """The registry's bound devices (read before the tenant transaction: the registry
        has its own connection), parsed once per certificate."""
        ca = self.authority.ca_certificate()
        devices: dict[str, op_trust.DeviceKey] = {}
        for replica_id, pem in self.authority.bound_certificates():
            if pem not in self._device_keys:
                self._device_keys[pem] = op_trust.device_key(pem, ca)
            device = self._device_keys[pem]
            if device is not None and device.replica_id == replica_id:
                devices[replica_id] = device
        return devices

    def _trust(
        self, cur: Cursor, c: ColumnCipher, registry: dict[str, op_trust.DeviceKey]
    ) -> op_trust.Trust:
        """What this clinic's ops are verified against: the registry's CA, devices and
        revocations (the truth), certificates learnt from pushes (LAN-paired devices the
        registry does not know; the CA's signature on each was checked), and the active
        accounts among the user records held here."""
        ca = self.authority.ca_certificate()
        devices: dict[str, op_trust.DeviceKey] = {}
        for key, pem in cur.execute(
            "SELECT key, value FROM replica_meta WHERE key LIKE %s", (f"{_LEARNT_CERT}%",)
        ):
            device = op_trust.device_key(str(pem), ca)
            if device is not None and f"{_LEARNT_CERT}{device.replica_id}" == key:
                devices[device.replica_id] = device
        devices.update(registry)
        active = self._active_users(cur, c)
        return op_trust.Trust(
            ca, devices, self.authority.revocations(), active.__contains__,
            permissions=self._permissions(cur, c),
        )  # fmt: skip

    def _permissions(self, cur: Cursor, c: ColumnCipher) -> remote_authz.RemotePermissions | None:
        """Remote-apply permissions from the user and tuple records held here. The server
        keeps no ``authz_writes`` history: only the values live in each document count, so a
        value superseded before it reached the server is not known (README, "Authorization
        at remote apply")."""
        if not authorize.ENFORCING:
            return None
        # Kept from the last push while no user or tuple record was stored since (a random
        # token in the clinic's meta, replaced by every push storing one, whichever server
        # process made it): reading and decoding every one of them for every push grows
        # with the care-team tuples.
        token = self._meta(cur, AUTHZ_TOKEN_KEY)
        kept = None if token is None else remote_authz.kept_history(token)
        grants = remote_grants.Grants(self._grants(cur, c))
        if kept is not None:
            return remote_authz.RemotePermissions(kept, grants)
        history = remote_authz.History()
        for kind in AUTHZ_HISTORY:
            rows = cur.execute(
                "SELECT record_ix, key_gen, sealed FROM replica_records WHERE type_ix = %s",
                (c.blind_index(f"type:{kind}"),),
            ).fetchall()
            for ix, gen, sealed in rows:
                state = self._open_record(c, str(ix), int(gen), bytes(sealed))
                history.add_doc(state.record_id, kind, crdt.load(state.state, 1), False)
        return remote_authz.RemotePermissions(history, grants)

    def _grants(self, cur: Cursor, c: ColumnCipher) -> remote_grants.Stored:
        """The break-glass grants held here, by chart and person: every grant record is
        opened when remote apply first asks (only for an op its tuples alone refuse)."""
        held: list[tuple[str, crdt.RecordDoc]] | None = None

        def stored(patient_id: str, username: str) -> list[tuple[str, crdt.RecordDoc]]:
            nonlocal held
            if held is None:
                rows = cur.execute(
                    "SELECT record_ix, key_gen, sealed FROM replica_records WHERE type_ix = %s",
                    (c.blind_index(f"type:{remote_authz.BREAK_GLASS}"),),
                ).fetchall()
                held = []
                for ix, gen, sealed in rows:
                    state = self._open_record(c, str(ix), int(gen), bytes(sealed))
                    held.append((state.record_id, crdt.load(state.state, 1)))
            return [
                (rid, doc)
                for rid, doc in held
                if _register(doc, "patient_id") == patient_id
                and _register(doc, "username") == username
            ]

        return stored

    def _history_to_keep(
        self, cur: Cursor, trust: op_trust.Trust, before: str | None
    ) -> tuple[str, remote_authz.History] | None:
        """The permission history a push leaves, and the token to keep it under once the
        push commits, given the token ``before`` it (see ``remote_authz.token_to_keep``):
        None with permissions off, or when the push stored a user or tuple record (the
        next push reads them all again, as every push did before histories were kept)."""
        if trust.permissions is None:
            return None
        token = self._meta(cur, AUTHZ_TOKEN_KEY)
        if token is None:
            token = secrets.token_hex(16)
            self._set_meta(cur, AUTHZ_TOKEN_KEY, token)
        elif token != before:
            return None
        return token, trust.permissions.history

    def _active_users(self, cur: Cursor, c: ColumnCipher) -> set[str]:
        """Usernames of the active accounts held here. The server keeps no derived tables:
        each user record's state is opened and read (cached by its sealed bytes)."""
        rows = cur.execute(
            "SELECT record_ix, key_gen, sealed FROM replica_records WHERE type_ix = %s",
            (c.blind_index("type:user"),),
        ).fetchall()
        active: set[str] = set()
        for ix, gen, sealed in rows:
            sealed = bytes(sealed)
            cached = self._users.get(str(ix))
            if cached is None or cached[0] != sealed:
                state = self._open_record(c, str(ix), int(gen), sealed)
                doc = crdt.load(state.state, 1)
                name, on = crdt.winner(doc, "username"), crdt.winner(doc, "active")
                username = name.value if name is not None and isinstance(name.value, str) else ""
                cached = (sealed, username, on is None or on.value is not False)
                self._users[str(ix)] = cached
            if cached[1] and cached[2]:
                active.add(cached[1])
        return active

    def _keep_learnt(self, cur: Cursor, devices: Iterable[op_trust.DeviceKey]) -> None:
        """Remember bound certificates learnt from a push, to send with their ops."""
        cur.executemany(
            "INSERT INTO replica_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
            [(f"{_LEARNT_CERT}{d.replica_id}", d.certificate) for d in devices],
        )

    def _quarantine(
        self, cur: Cursor, c: ColumnCipher, held: Sequence[tuple[oplog.Op, str]], source: str
    ) -> None:
        """Keep refused ops aside, sealed like ops, with why (the reason names the author,
        so it is sealed too)."""
        now = utc_now()
        rows = []
        for op, reason in held:
            gen, sealed = c.seal(QUARANTINE, f"{op.origin}:{op.seq}",
                                 pack(self._op_plain(op), reason.encode()))  # fmt: skip
            rows.append((op.origin, op.seq, gen, sealed, source, now, now))
        cur.executemany(
            "INSERT INTO replica_quarantine (origin, seq, key_gen, sealed, received_from, "
            "first_seen, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant, origin, seq) DO UPDATE SET key_gen = excluded.key_gen, "
            "sealed = excluded.sealed, received_from = excluded.received_from, "
            "last_seen = excluded.last_seen",
            rows,
        )

    def quarantined(self, origin: str | None = None) -> list[op_trust.Quarantined]:
        """Ops held aside (of ``origin``, or all), oldest first."""
        c = self._cipher()
        with self.store.tenant(self.tenant) as cur:
            rows = cur.execute(
                "SELECT origin, seq, key_gen, sealed, received_from, first_seen, last_seen "
                "FROM replica_quarantine WHERE %s::text IS NULL OR origin = %s "
                "ORDER BY first_seen, origin, seq",
                (origin, origin),
            ).fetchall()
        held = []
        for o, seq, gen, sealed, source, first, last in rows:
            plain = self._open(c, QUARANTINE, f"{o}:{seq}", int(gen), sealed)
            op_plain, reason = unpack(plain, 2)
            op = self._op_of(str(o), int(seq), op_plain)
            held.append(op_trust.Quarantined(
                op.origin, op.seq, op.record_id, op.record_type, op.author, op.hlc,
                reason.decode(), str(source), str(first), str(last),
            ))  # fmt: skip
        return held

    def refusals_of(self, origin: str) -> list[tuple[str, int, str]]:
        """Ops of ``origin`` quarantined here: (origin, seq, why)."""
        return [(q.origin, q.seq, q.reason) for q in self.quarantined(origin)]

    def trust_material(self, origins: Sequence[str]) -> tuple[list[str], str | None]:
        """Certificates of ``origins`` (registry and learnt) and the clinic's revocation
        list, to send with their ops."""
        wanted = set(origins)
        pems = [d.certificate for rid, d in self._registry_devices().items() if rid in wanted]
        found = {d.replica_id for rid, d in self._registry_devices().items() if rid in wanted}
        keys = [f"{_LEARNT_CERT}{o}" for o in sorted(wanted - found)]
        with self.store.tenant(self.tenant) as cur:
            if keys:
                pems += [str(v) for (v,) in cur.execute(
                    "SELECT value FROM replica_meta WHERE key = ANY(%s)", (keys,))]  # fmt: skip
            crl = self._meta(cur, _CRL_KEY)
        return pems, crl

    def keep_crl(self, crl_pem: str) -> None:
        """Keep the clinic CA's revocation list if newer than the one held (CertificateError
        if it is not the CA's). The server issues them itself (on ``admin device revoke``);
        one a workstation relays back is checked and kept only if newer."""
        ca = self.authority.ca_certificate()
        number = certs.read_crl(crl_pem, ca).number
        with self.store.tenant(self.tenant, write=True) as cur:
            held = self._meta(cur, _CRL_KEY)
            if held is not None and certs.read_crl(held, ca).number >= number:
                return
            self._set_meta(cur, _CRL_KEY, crl_pem)
            self._audit(cur, "server", "device.revocations", "crl", str(number))

    def vouch_pending(self) -> int:
        """Sign, as the clinic CA, every op stored unsigned (held before ops were signed,
        or stored by a release 0.1.0 process during a rolling upgrade); audited. Returns
        how many. Cheap when there are none (a partial index finds them)."""
        with self.store.tenant(self.tenant) as cur:
            found = cur.execute("SELECT 1 FROM replica_ops WHERE signer IS NULL LIMIT 1")
            if found.fetchone() is None:
                return 0
        c = self._cipher()
        signer = self.authority.ca_signer()
        with self.store.tenant(self.tenant, write=True) as cur:
            rows = cur.execute(
                "SELECT origin, seq, key_gen, sealed FROM replica_ops WHERE signer IS NULL "
                "ORDER BY origin, seq"
            ).fetchall()
            if not rows:
                return 0  # another process vouched for them meanwhile
            ops = [self._open_op(c, str(o), int(q), int(g), sealed) for o, q, g, sealed in rows]
            signed = vouching.vouch(signer, ops)
            cur.executemany(
                "UPDATE replica_ops SET prev = %s, sig = %s, signer = %s "
                "WHERE origin = %s AND seq = %s",
                [(op.prev, op.sig, op.signer, op.origin, op.seq) for op in signed],
            )
            origins = sorted({op.origin for op in signed})
            details = {"signer": "clinic-ca", "ops": len(signed), "origins": origins}
            self._audit(cur, "server", "oplog.sign", "oplog", "clinic-ca", details)
        return len(signed)

    # ----- meta and audit -----------------------------------------------------------------

    @staticmethod
    def _meta(cur: Cursor, key: str) -> str | None:
        row = cur.execute("SELECT value FROM replica_meta WHERE key = %s", (key,)).fetchone()
        return str(row[0]) if row else None

    @staticmethod
    def _set_meta(cur: Cursor, key: str, value: str) -> None:
        cur.execute(
            "INSERT INTO replica_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _audit(
        self,
        cur: Cursor,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None = None,
        head: str | None = None,
        *,
        write_head: bool = True,
    ) -> str:
        """Append an entry after ``head`` (read here when not given); returns the new head
        (stored here unless ``write_head`` is false: the caller stores it with other meta)."""
        if head is None:
            head = self._meta(cur, audit_chain.HEAD_META_KEY)
        link = audit_chain.next_link(head, utc_now(), actor, action, entity, entity_id, details)
        e = link.entry
        cur.execute(
            "INSERT INTO replica_audit (seq, ts, actor, action, entity, entity_id, details, "
            "prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (e.seq, e.ts, e.actor, e.action, e.entity, e.entity_id, e.details, link.prev_hash,
             link.hash),
        )  # fmt: skip
        if write_head:
            self._set_meta(cur, audit_chain.HEAD_META_KEY, link.head)
        return link.head

    def audit(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the clinic's audit chain (e.g. an attachment download)."""
        with self.store.tenant(self.tenant, write=True) as cur:
            self._audit(cur, actor, action, entity, entity_id, details)

    def audit_entries(self) -> list[tuple[Any, ...]]:
        """Every audit entry: (seq, ts, actor, action, entity, entity_id, details)."""
        with self.store.tenant(self.tenant) as cur:
            return list(cur.execute(
                "SELECT seq, ts, actor, action, entity, entity_id, details FROM replica_audit "
                "ORDER BY seq"
            ).fetchall())  # fmt: skip

    def _keep_device_audit(
        self, cur: Cursor, device: str, entries: Sequence[audit_chain.AuditEntry]
    ) -> None:
        """Keep a device's proved audit entries, each sealed (its canonical bytes)."""
        if not entries:
            return
        c, now = self._cipher(), utc_now()
        rows = []
        for e in entries:
            gen, sealed = c.seal(DEVICE_AUDIT, f"{device}:{e.seq}", e.canonical())
            rows.append((device, e.seq, gen, sealed, now))
        cur.executemany(
            "INSERT INTO replica_device_audit (device, seq, key_gen, sealed, received_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant, device, seq) DO NOTHING",
            rows,
        )

    def device_audit_entries(self) -> list[tuple[Any, ...]]:
        """Workstation audit entries kept: (device, seq, ts, actor, action, entity,
        entity_id, details), oldest first."""
        c = self._cipher()
        with self.store.tenant(self.tenant) as cur:
            rows = cur.execute(
                "SELECT device, seq, key_gen, sealed FROM replica_device_audit "
                "ORDER BY received_at, device, seq"
            ).fetchall()
        out: list[tuple[Any, ...]] = []
        for device, seq, gen, sealed in rows:
            plain = self._open(c, DEVICE_AUDIT, f"{device}:{seq}", int(gen), sealed)
            [e] = audit_anchor.proven_entries(audit_chain.Head(0, ""), [plain])
            out.append((str(device), e.seq, e.ts, e.actor, e.action, e.entity, e.entity_id,
                        e.details))  # fmt: skip
        return sorted(out, key=lambda r: (r[2], r[0], r[1]))

    def audit_report(self) -> AuditReport:
        """Verify the clinic's audit chain."""
        with self.store.tenant(self.tenant, snapshot=True) as cur:
            rows = cur.execute(
                "SELECT seq, ts, actor, action, entity, entity_id, details, prev_hash, hash "
                "FROM replica_audit ORDER BY rowid"
            ).fetchall()
            head = self._meta(cur, audit_chain.HEAD_META_KEY)
        return verify_chain(rows, head)

    # ----- re-encryption ------------------------------------------------------------------

    def reseal(self, batch: int = 500, max_batches: int | None = None) -> int:
        """Re-seal rows of older key generations under the current one, a batch per
        transaction: resumable, and it never holds the clinic's write lock for long.
        ``max_batches`` stops early (the rest stays readable under its old generation)."""
        moved, batches = 0, 0
        for table, key_col in (
            (OPS, "origin, seq"),
            (RECORDS, "record_ix"),
            (DEVICE_AUDIT, "device || ':' || seq"),
        ):
            while max_batches is None or batches < max_batches:
                batches += 1
                c = self._cipher()
                with self.store.tenant(self.tenant, write=True) as cur:
                    rows = cur.execute(
                        f"SELECT {key_col}, key_gen, sealed FROM {table} "  # fixed names
                        "WHERE key_gen < %s LIMIT %s",
                        (c.current, batch),
                    ).fetchall()
                    for row in rows:
                        moved += 1
                        if table == OPS:
                            origin, seq, gen, sealed = row
                            op = self._open_op(c, str(origin), int(seq), int(gen), sealed)
                            new_gen, new = self._seal_op(c, op)
                            cur.execute(
                                "UPDATE replica_ops SET key_gen = %s, sealed = %s "
                                "WHERE origin = %s AND seq = %s",
                                (new_gen, new, origin, seq),
                            )
                        elif table == DEVICE_AUDIT:
                            row_id, gen, sealed = row
                            plain = self._open(c, DEVICE_AUDIT, str(row_id), int(gen), sealed)
                            new_gen, new = c.seal(DEVICE_AUDIT, str(row_id), plain)
                            device, _, seq = str(row_id).rpartition(":")
                            cur.execute(
                                "UPDATE replica_device_audit SET key_gen = %s, sealed = %s "
                                "WHERE device = %s AND seq = %s",
                                (new_gen, new, device, int(seq)),
                            )
                        else:
                            ix, gen, sealed = row
                            plain = self._open(c, RECORDS, str(ix), int(gen), sealed)
                            new_gen, new = c.seal(RECORDS, str(ix), plain)
                            cur.execute(
                                "UPDATE replica_records SET key_gen = %s, sealed = %s "
                                "WHERE record_ix = %s",
                                (new_gen, new, ix),
                            )
                if len(rows) < batch:
                    break
        return moved

    def generations_in_use(self) -> set[int]:
        """Key generations some row of this clinic is still sealed under."""
        with self.store.tenant(self.tenant) as cur:
            rows = cur.execute(
                "SELECT DISTINCT key_gen FROM replica_ops UNION "
                "SELECT DISTINCT key_gen FROM replica_records UNION "
                "SELECT DISTINCT key_gen FROM replica_device_audit"
            ).fetchall()
        return {int(r[0]) for r in rows}


def _checked_state(record_id: str, type_name: str, doc: crdt.RecordDoc) -> bytes:
    """The encoded state of a record a batch changed, once its rows derive (a malformed
    entry is refused, naming the record; a newer version's type is kept as it came). pycrdt
    panics on some documents a malformed update leaves, reading or encoding them: that is
    refused too, never raised as the BaseException it is (changes.store_records)."""
    try:
        if type_name in RECORD_TYPES:
            derive(record_id, RECORD_TYPES[type_name], doc)
        state: bytes = doc.get_update()
    except MalformedRecordError as exc:
        raise MalformedRecordError(f"record {record_id}: {exc}") from exc
    except BaseException as exc:
        if not crdt.is_panic(exc):
            raise
        raise MalformedRecordError(
            f"record {record_id}: {crdt.invalid_update(crdt.STATE, exc)}"
        ) from None
    return state


def _register(doc: crdt.RecordDoc, name: str) -> object:
    """The displayed value of register ``name`` (None if unset)."""
    found = crdt.winner(doc, name)
    return None if found is None else found.value
