"""What the serving side of sync needs from a replica's storage.

A workstation or the embedded server serves from its SQLCipher :class:`Database`
(:class:`DatabaseStore`); the server on PostgreSQL serves from
:class:`core.server.postgres.replica.PgReplica`. Both check batches with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.crypto import certs
from core.records import op_trust, replication
from core.store import oplog
from core.store.audit_chain import Head
from core.store.database import Database, Transaction, utc_now
from core.sync import audit_anchor

# meta key prefix under which a serving replica keeps each device's audit head.
ANCHOR_META_PREFIX = "audit_anchor:"


class SyncStore(Protocol):
    """A replica as the responder sees it."""

    def version_vector(self) -> dict[str, int]:
        """``{origin: highest contiguous seq}``."""
        ...

    def ops_for(self, remote_vv: dict[str, int], limit: int) -> list[oplog.Op]:
        """Ops the holder of ``remote_vv`` lacks (SnapshotRequiredError if too old)."""
        ...

    def apply_ops(self, ops: list[oplog.Op], session_actor: str) -> replication.ApplyResult:
        """Apply a batch idempotently, all or nothing (ApplyError says why not)."""
        ...

    def snapshot_page(
        self, after: str | None, limit: int, forms: frozenset[str] = frozenset()
    ) -> replication.SnapshotPage:
        """A page of record states after the cursor ``after``; ``forms``: stored forms of
        states the receiver reads (a store may send states in them, saying so in the
        page's ``forms``, or send every state plain)."""
        ...

    def pull(self, remote_vv: dict[str, int], limit: int) -> tuple[list[oplog.Op], dict[str, int]]:
        """:meth:`ops_for` and the version vector to report with them."""
        ...

    def push(
        self,
        ops: list[oplog.Op],
        session_actor: str,
        certificates: Sequence[str] = (),
        source: str = "",
    ) -> tuple[replication.ApplyResult, dict[str, int]]:
        """:meth:`apply_ops` (verifying each op, with the device ``certificates`` sent along)
        and the version vector after it."""
        ...

    def trust_material(self, origins: Sequence[str]) -> tuple[list[str], str | None]:
        """Device certificates of ``origins`` held here, and the clinic's revocation list,
        to send with ops (relays pass them on; receivers check them against the CA)."""
        ...

    def keep_crl(self, crl_pem: str) -> None:
        """Keep the clinic CA's revocation list if newer than the one held (CertificateError
        if it is not the CA's)."""
        ...

    def refusals_of(self, origin: str) -> list[tuple[str, int, str]]:
        """Ops of ``origin`` this replica quarantined: (origin, seq, why)."""
        ...

    def snapshot_size(self) -> int:
        """How many records a full snapshot holds."""
        ...

    def holds_types_beyond(self, types: frozenset[str]) -> bool:
        """Whether any record held is of a type not in ``types`` (an older peer's)."""
        ...

    def anchor_audit(
        self, device: str, head: Head | None, proof: Sequence[bytes] | None = None
    ) -> audit_anchor.Anchoring:
        """The audit head recorded for ``device``; then (unless ``head`` is None, a query)
        record ``head`` instead if it is the first or ``proof`` shows that it extends the
        recorded one (core.sync.audit_anchor)."""
        ...


class DatabaseStore:
    """:class:`SyncStore` on a SQLCipher replica."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def version_vector(self) -> dict[str, int]:
        """``{origin: highest contiguous seq}``."""
        return oplog.version_vector(self.db)

    def ops_for(self, remote_vv: dict[str, int], limit: int) -> list[oplog.Op]:
        """Ops the holder of ``remote_vv`` lacks."""
        return replication.ops_for(self.db, remote_vv, limit)

    def apply_ops(
        self,
        ops: list[oplog.Op],
        session_actor: str,
        certificates: Sequence[str] = (),
        source: str = "",
    ) -> replication.ApplyResult:
        """Apply a batch idempotently, all or nothing, each op verified first."""
        return replication.apply_ops(self.db, ops, session_actor, certificates, source)

    def snapshot_page(
        self, after: str | None, limit: int, forms: frozenset[str] = frozenset()
    ) -> replication.SnapshotPage:
        """A page of record states in id order (held deflated: sent so if ``forms`` allows)."""
        return replication.snapshot_page(self.db, after, limit, forms)

    def snapshot_size(self) -> int:
        """How many records a full snapshot holds."""
        return replication.snapshot_size(self.db)

    def holds_types_beyond(self, types: frozenset[str]) -> bool:
        """Whether any record held is of a type not in ``types``."""
        return replication.holds_types_beyond(self.db, types)

    def pull(self, remote_vv: dict[str, int], limit: int) -> tuple[list[oplog.Op], dict[str, int]]:
        """:meth:`ops_for` and the version vector to report with them."""
        return self.ops_for(remote_vv, limit), self.version_vector()

    def push(
        self,
        ops: list[oplog.Op],
        session_actor: str,
        certificates: Sequence[str] = (),
        source: str = "",
    ) -> tuple[replication.ApplyResult, dict[str, int]]:
        """:meth:`apply_ops` and the version vector after it."""
        result = self.apply_ops(ops, session_actor, certificates, source)
        return result, self.version_vector()

    def trust_material(self, origins: Sequence[str]) -> tuple[list[str], str | None]:
        """Certificates of ``origins`` and the revocation list held here."""
        return op_trust.certificates_for(self.db, origins), op_trust.crl_of(self.db)

    def keep_crl(self, crl_pem: str) -> None:
        """Keep a newer revocation list of this replica's clinic CA (audited when kept)."""
        keep_crl(self.db, crl_pem, "sync")

    def refusals_of(self, origin: str) -> list[tuple[str, int, str]]:
        """Ops of ``origin`` quarantined here."""
        return [
            (q.origin, q.seq, q.reason) for q in op_trust.quarantined(self.db) if q.origin == origin
        ]

    def anchor_audit(
        self, device: str, head: Head | None, proof: Sequence[bytes] | None = None
    ) -> audit_anchor.Anchoring:
        """The head recorded for ``device`` in ``meta``; then records ``head`` (audited)
        if it is the first or ``proof`` shows it extends the recorded one; a refusal is
        logged and audited. A head moved by another session meanwhile is not overwritten."""
        key = f"{ANCHOR_META_PREFIX}{device}"
        recorded = self._recorded(key, self.db)
        if head is None or recorded == head:
            return audit_anchor.Anchoring(recorded, head is not None)
        if audit_anchor.advance(recorded, head, proof):
            details = {"seq": head.seq}
            try:
                with self.db.write("sync", "audit.anchor", "device", device, details) as tx:
                    if self._recorded(key, tx) != recorded:
                        raise _MovedMeanwhile  # rolls back: another session moved it
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, str(head)),
                    )
                    # The proved entries are kept for the clinic's admins (README "Audit
                    # review"): what the workstation's log says, checked against its chain.
                    now = utc_now()
                    for e in audit_anchor.proven_entries(recorded, proof):
                        tx.execute(
                            audit_anchor.KEEP_ENTRY_SQL,
                            (device, e.seq, e.ts, e.actor, e.action, e.entity, e.entity_id,
                             e.details, now),
                        )  # fmt: skip
                return audit_anchor.Anchoring(recorded, True)
            except _MovedMeanwhile:
                return audit_anchor.Anchoring(recorded, False)
        assert recorded is not None  # advance() refuses only when a head is recorded
        audit_anchor.log_refused(device, head, recorded, proof is not None)
        details = {"offered": head.seq, "recorded": recorded.seq}
        with self.db.write("sync", "audit.anchor_refused", "device", device, details):
            pass
        return audit_anchor.Anchoring(recorded, False)

    @staticmethod
    def _recorded(key: str, db: Database | Transaction) -> Head | None:
        rows = db.query("SELECT value FROM meta WHERE key = ?", (key,))
        return Head.parse(str(rows[0][0])) if rows else None


def keep_crl(db: Database, crl_pem: str, actor: str) -> bool:
    """Keep ``crl_pem`` if it is this replica's clinic CA's and newer than the one held
    (audited); CertificateError if it is not the CA's. True if kept."""
    trust_ca = op_trust.clinic_ca(db)
    if trust_ca is None:
        raise certs.CertificateError("this replica has joined no clinic")
    number = certs.read_crl(crl_pem, trust_ca).number
    held = op_trust.crl_of(db)
    if held is not None and certs.read_crl(held, trust_ca).number >= number:
        return False
    with db.write(actor, "device.revocations", "crl", str(number)) as tx:
        return op_trust.keep_crl(tx, crl_pem, trust_ca)


class _MovedMeanwhile(Exception):
    """The recorded head changed between reading it and moving it."""
