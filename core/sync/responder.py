"""The serving side of a sync session: one request in, one reply out.

The server's HTTP endpoint and a LAN peer's listener both wrap this; so does the
in-process transport used in tests. It never raises for bad input: every problem becomes
an ``error`` reply naming it, and nothing was changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core.crypto import certs
from core.records import crdt, replication
from core.store import clinic_time, oplog
from core.store.audit_chain import Head
from core.store.database import Database
from core.store.state_codec import unpack_state
from core.sync import protocol as p
from core.sync.audit_anchor import MAX_ENTRY_BYTES, MAX_PROOF_ENTRIES, Anchoring
from core.sync.snapshot_image import ImageOffer
from core.sync.stores import DatabaseStore, SyncStore

log = logging.getLogger(__name__)


class Responder:
    """Answers sync requests against one replica (a SQLCipher database or any SyncStore)."""

    def __init__(
        self,
        db: Database | SyncStore,
        actor: str = "sync",
        revoked_serials: Callable[[], list[int]] | None = None,
        audit_anchor: Callable[[Head | None, list[bytes] | None], Anchoring] | None = None,
        vouch: Callable[[list[oplog.Op]], list[oplog.Op]] | None = None,
        peer: str = "",
        images: Callable[[dict[str, int], int], ImageOffer | None] | None = None,
        device_names: Callable[[], dict[str, dict[str, str]]] | None = None,
    ) -> None:
        self.store: SyncStore = DatabaseStore(db) if isinstance(db, Database) else db
        # Replies carry this side's clock, so the requester can tell how far off its own is.
        # A workstation (a LAN peer) sends its clinic time: corrected by the offset it last
        # measured against the server, if its own clock is known to be wrong. The server's
        # clock is the reference: it sends its clock as it is.
        self._now_ms: Callable[[], int] = (
            (lambda: clinic_time.now_ms(db))
            if isinstance(db, Database)
            else (lambda: clinic_time.wall_ms())
        )
        self.actor = actor
        # The clinic server tells workstations which device certificates it revoked, so
        # they refuse those devices on the LAN as well.
        self._revoked_serials = revoked_serials
        # The server names the clinic's workstations (their enrolled names, by replica) so
        # that conflicts say which desk a value came from; older requesters ignore it.
        self._device_names = device_names
        # The clinic server keeps each device's audit head, an anchor outside the
        # workstation's database (core.sync.audit_anchor): it answers a query with the head
        # it holds, and records a head the device offers with proof that it extends it.
        self._audit_anchor = audit_anchor
        # The clinic server vouches (signs with the clinic CA) for the unsigned ops a
        # device running Careline 0.1.0 pushes over its authenticated connection; None:
        # unsigned ops are verified like any other, so they are quarantined.
        self._vouch = vouch
        self._peer = peer or actor  # where pushed ops came from, for the quarantine
        # The clinic server offers a replica downloading everything a snapshot image
        # (core.sync.snapshot_image) with the first page, when it has one fresh enough.
        self._images = images

    def handle(self, request: bytes) -> bytes:
        """Process one request; always returns a reply (possibly an error), written in the
        request's protocol version."""
        version = p.VERSION
        try:
            message = p.decode(request, p.REQUEST_TYPES)
            version = int(message["v"])
            reply = getattr(self, f"_on_{message['type']}")(message, version)
        except p.ProtocolError as exc:
            log.info("refused sync request: %s", exc)
            if exc.code == "version":
                reply, version = p.version_error_reply(exc)
            else:
                reply = {"type": "error", "code": exc.code, "message": str(exc)}
        except certs.CertificateError as exc:
            log.info("refused sync request: %s", exc)
            reply = {"type": "error", "code": "refused", "message": str(exc)}
        except replication.ApplyError as exc:
            # Names ops, records and the kind of problem, never the refused content
            # (replication.ApplyError): fit for this log and for the peer, which logs it too.
            log.info("refused sync batch: %s", exc)
            reply = {"type": "error", "code": "refused", "message": str(exc)}
        except (RecursionError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # Hostile input that slipped past validation (e.g. absurdly nested JSON inside a
            # record): refuse it like any other bad batch; the transaction was rolled back.
            # The traceback is logged without the exception's message, which may quote the
            # content (core.config.logs.withhold_exception_messages); so is the reply.
            log.warning("refused malformed sync content: %s", type(exc).__name__, exc_info=True)
            reply = {
                "type": "error",
                "code": "malformed",
                "message": f"the message's content could not be processed ({type(exc).__name__})",
            }
        except BaseException as exc:
            # pycrdt panicking where replication did not expect it (every place it does is
            # refused there, naming the record): pyo3's PanicException is a BaseException,
            # and its text is yrs's (core.records.crdt.InvalidUpdateError).
            if not crdt.is_panic(exc):
                raise
            log.warning("refused sync content pycrdt panicked on", exc_info=True)
            problem = crdt.invalid_update("a record's state", exc)
            reply = {
                "type": "error",
                "code": "malformed",
                "message": f"the message's content could not be processed ({problem})",
            }
        reply["now_ms"] = self._now_ms()
        return p.encode(reply, version)

    def _on_pull(self, message: dict[str, Any], version: int) -> dict[str, Any]:
        remote = p.vv_from_wire(message.get("vv"))
        limit = p.limit_from_wire(message.get("max_ops"), "max_ops", p.MAX_OPS_PER_MESSAGE)
        head = p.head_from_wire(message.get("audit_head"), "audit_head")
        query = message.get("audit_query") is True
        proof = p.proof_from_wire(message.get("audit_proof"), MAX_PROOF_ENTRIES, MAX_ENTRY_BYTES)
        requester = message.get("replica")
        # Origins the requester quarantined this session: their next ops would only wait
        # behind the refused one, and would crowd out every other origin's.
        skip = p.origins_from_wire(message.get("skip"), "skip")
        vectors: list[dict[str, int]] = []

        def fetch(after: dict[str, int]) -> list[oplog.Op]:
            ops, vector = self.store.pull(after, limit + 1)
            vectors.append(vector)
            return ops

        asked = dict(remote)
        for origin in skip:
            asked[origin] = 2**62
        try:
            ops, held_back = p.sendable(fetch, asked, version, self._now_ms())
        except replication.SnapshotRequiredError as exc:
            return {"type": "snapshot_required", "reason": str(exc)}
        if held_back:
            log.info(
                "a replica speaking sync protocol %s is not sent ops of newer record types "
                "or stamped ahead of its clock (from origins %s); it needs Careline %s or "
                "newer to receive them",
                version,
                ", ".join(sorted(held_back)),
                p.FIRST_RELEASE[2],
            )
        sent = p.fit(ops[:limit])
        reply: dict[str, Any] = {
            "type": "ops",
            "vv": p.vv_to_wire(vectors[0]),
            "ops": [p.op_to_wire(op) for op in sent],
            # Held-back origins may leave a short batch with more to come from the others.
            "more": len(ops) > len(sent) or bool(held_back and sent),
        }
        self._add_trust(reply, [op.origin for op in sent])
        if isinstance(requester, str):
            refusals = self.store.refusals_of(p.origins_from_wire([requester], "replica")[0])
            if refusals:
                reply["quarantined"] = p.refusals_to_wire(refusals[: p.MAX_OPS_PER_MESSAGE])
        if self._revoked_serials is not None:
            reply["revoked_serials"] = self._revoked_serials()
        if self._device_names is not None:
            reply["device_names"] = self._device_names()
        if self._audit_anchor is not None and (head is not None or query):
            self._anchor_reply(reply, head, proof)
            # This side also takes the head on a push: a session with ops to push offers
            # it there instead of in a pull of its own (older requesters ignore this).
            reply["audit_on_push"] = True
        return reply

    def _anchor_reply(
        self, reply: dict[str, Any], head: Head | None, proof: list[bytes] | None
    ) -> None:
        """Answer an audit query or offered head (``head`` None: a query) in ``reply``."""
        assert self._audit_anchor is not None
        reply["audit_anchoring"] = True
        anchoring = self._audit_anchor(head, proof)
        if anchoring.recorded is not None:
            reply["audit_anchor"] = p.head_to_wire(anchoring.recorded)
        if head is not None:
            reply["audit_anchor_moved"] = anchoring.moved

    def _add_trust(self, reply: dict[str, Any], origins: list[str]) -> None:
        """Certificates of the ops' origins and the clinic's revocation list, so the
        receiver can verify them (and relay them on) whoever it later meets."""
        pems, crl = self.store.trust_material(sorted(set(origins)))
        if pems:
            reply["certificates"] = pems
        if crl is not None:
            reply["crl"] = crl

    def _on_push(self, message: dict[str, Any], version: int) -> dict[str, Any]:
        ops = p.ops_from_wire(message.get("ops"))
        pems = p.certificates_from_wire(message.get("certificates"))
        crl = p.crl_from_wire(message.get("crl"))
        # An audit head offered with the ops (to a side that said it takes one: see
        # _on_pull), checked with the rest before anything is applied, recorded after.
        head = p.head_from_wire(message.get("audit_head"), "audit_head")
        proof = p.proof_from_wire(message.get("audit_proof"), MAX_PROOF_ENTRIES, MAX_ENTRY_BYTES)
        if crl is not None:
            self.store.keep_crl(crl)
        if self._vouch is not None and version < 2:
            ops = self._vouch(ops)
        result, vector = self.store.push(ops, self.actor, pems, self._peer)
        reply: dict[str, Any] = {
            "type": "ack",
            "vv": p.vv_to_wire(vector),
            "applied": result.applied,
            "duplicates": result.duplicates,
        }
        if result.quarantined:
            reply["quarantined"] = p.refusals_to_wire(result.quarantined)
        if self._audit_anchor is not None and head is not None:
            self._anchor_reply(reply, head, proof)
        return reply

    def _on_snapshot(self, message: dict[str, Any], version: int) -> dict[str, Any]:
        after = p.after_from_wire(message.get("after"), "after")
        limit = p.limit_from_wire(message.get("max_records"), "max_records", p.MAX_RECORDS_PER_PAGE)
        if version < 2 and after is None and self.store.holds_types_beyond(p.V1_RECORD_TYPES):
            raise _too_old_for_snapshot()
        # The stored forms of states the requester reads (version 2 on; 0.1.0 asks none):
        # states held in one of them go as held, without inflating them here.
        forms = p.forms_from_wire(message.get("state_forms")) if version >= 2 else frozenset()
        page = self.store.snapshot_page(after, limit, forms)
        if version < 2 and any(not p.carries(r.record_type, version) for r in page.records):
            raise _too_old_for_snapshot()  # a newer record arrived during the download
        sent = p.fit(page.records, p.BATCH_BYTES)
        if page.forms:
            # Fitted by what the states inflate to as well, as a plain page is: the receiver
            # holds a page's plain states in memory and refuses a page that inflates to
            # more than replication.MAX_PAGE_PLAIN_BYTES (twice this budget).
            sent = p.fit(sent, p.BATCH_BYTES, inflate=unpack_state)
        # A page cut short by size goes on after its last record, like a full one.
        next_after = sent[-1].record_id if len(sent) < len(page.records) else page.next_after
        reply: dict[str, Any] = {
            "type": "snapshot_page",
            "vv": p.vv_to_wire(page.vector),
            "records": [p.record_to_wire(r) for r in sent],
            "next_after": next_after,
        }
        if page.forms:
            reply["state_forms"] = sorted(page.forms)
        if after is None:
            # Counted once per download, on its first page, so a receiver can show how far
            # it has come; later pages would only repeat it at the cost of a table scan.
            reply["total_records"] = self.store.snapshot_size()
            asked = message.get("image")
            if self._images is not None and version >= 2 and isinstance(asked, dict):
                offer = self._images(page.vector, reply["total_records"])
                if offer is not None and asked.get("schema") == offer.schema:
                    reply["image"] = offer.to_wire()
        return reply


def _too_old_for_snapshot() -> p.ProtocolError:
    # Records left out of a snapshot would be lost to the receiver for good (its version
    # vector would say it holds them): refuse the whole download instead, before any page.
    return p.ProtocolError(
        "version",
        "this clinic holds records that Careline before "
        f"{p.FIRST_RELEASE[2]} cannot store; update Careline on this workstation to "
        f"{p.FIRST_RELEASE[2]} or newer to join it",
        requested=1,
        needs=p.FIRST_RELEASE[2],
    )
