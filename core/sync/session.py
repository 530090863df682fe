"""The client side of a sync session: pull what we lack, push what they lack.

1. A replica with no history at all bootstraps from a snapshot (record states + version
   vector), page by page, then continues incrementally; so does one whose peer no longer
   holds the old ops it would need.
2. Pull: send our version vector, apply the ops we lack in bounded batches.
3. Push: send the ops the other side lacks (from the vector it reported), in batches.

Each batch is applied atomically and idempotently, so a session can stop at any point
(lost connection, killed process) and the next one resumes from the version vectors.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.crypto.certs import CertificateError
from core.errors import CarelineError
from core.records import changeset, op_trust, replication, unknown
from core.records.changeset import Changes
from core.records.workstation_names import keep_workstation_names
from core.store import clinic_time
from core.store.audit_chain import Head
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync import audit_anchor, clock, sent, snapshot_image
from core.sync import protocol as p
from core.sync.stores import keep_crl
from core.sync.transport import ImageTransport, Transport

log = logging.getLogger(__name__)
DEFAULT_BATCH = 500
MAX_ROUNDS = 100_000  # a session always ends, even against a misbehaving peer
# A snapshot download names the records it brought in its report up to this many; past it,
# it counts them per type (Changes.unlisted): a clinic network's million ids, kept to the
# end of the session and described then, were what grew a first download's memory with
# the clinic (README, Performance: a clinic network).
LIST_SNAPSHOT_RECORDS = 10_000


class SyncError(CarelineError):
    """The session stopped; what was applied before stays applied."""

    plain_template = "sync stopped: {detail}"


@dataclass
class SyncReport:
    """What one session did."""

    pulled: int = 0
    pushed: int = 0
    duplicates: int = 0
    snapshot_records: int = 0
    # True when the snapshot came as one image file (core.sync.snapshot_image), not pages.
    snapshot_image: bool = False
    # While a snapshot image is fetched: its bytes and how many have arrived; then while
    # it is copied in: the rows in all and how many are copied (None: no image under way).
    image_bytes: int | None = None
    image_received: int = 0
    image_rows: int | None = None
    image_rows_done: int = 0
    rounds: int = 0
    # What the other side says is coming, for progress bars (None: not known or not said).
    # expected_records: records of the snapshot being downloaded (from its total_records);
    # expected_ops: ops this session pulls in all (``pulled`` so far plus, per origin, how
    # far the other side's version vector is ahead of what we held when we last asked).
    expected_records: int | None = None
    expected_ops: int | None = None
    # Set when this replica's audit log contradicts the head the clinic server recorded for
    # it at an earlier sync: the log was altered (core.sync.audit_anchor). Sync goes on.
    audit_problem: str | None = None
    # The sync protocol version agreed with the other side, and how many of our ops wait
    # because it runs an older Careline that cannot store their record types.
    protocol: int = p.VERSION
    held_back: int = 0
    # Ops the other side sent that failed verification, kept aside here (core.records.
    # op_trust); and ops of ours the other side refused (it says why).
    quarantined: int = 0
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    # The records this session changed here (pulled ops and snapshot pages), by type; set
    # when the session ends (a large snapshot's as counts per type: Changes.unlisted).
    changes: Changes = field(default_factory=Changes)
    # How far this computer's clock is ahead of the other side's (negative: behind), from
    # the clock its replies carry (core.sync.clock); None when it sends none (older).
    clock_offset_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (changed records as counts per type, not ids)."""
        return {
            "pulled": self.pulled,
            "pushed": self.pushed,
            "duplicates": self.duplicates,
            "snapshot_records": self.snapshot_records,
            "snapshot_image": self.snapshot_image,
            "rounds": self.rounds,
            "expected_records": self.expected_records,
            "expected_ops": self.expected_ops,
            "audit_problem": self.audit_problem,
            "protocol": self.protocol,
            "held_back": self.held_back,
            "quarantined": self.quarantined,
            "refused": [{"origin": o, "seq": s, "reason": r} for o, s, r in self.refused],
            "changed": self.changes.counts(),
            "clock_offset_ms": self.clock_offset_ms,
        }


class SyncSession:
    """Synchronise one local replica with one remote through a transport."""

    def __init__(
        self,
        db: Database,
        transport: Transport,
        actor: str = "sync",
        batch: int = DEFAULT_BATCH,
        on_revoked: Callable[[list[int]], object] | None = None,
        on_progress: Callable[[SyncReport], object] | None = None,
        peer: str = "the other side",
        clock_reference: bool = False,
    ) -> None:
        self.db = db
        self.transport = transport
        self.actor = actor
        self.peer = peer  # who the other side is, as quarantine and refusal notes name it
        self._skip: set[str] = set()  # origins quarantined here this session
        self.batch = max(1, min(batch, p.MAX_OPS_PER_MESSAGE))
        self.report = SyncReport()
        self._remote_vv: dict[str, int] = {}
        # The highest seq of our own ops the other side last reported holding (core.sync.
        # sent): kept at the end of the session, so what waits is counted after a restart;
        # not where the other side anchors our audit log (see _remember_acknowledged).
        self._acknowledged: int | None = None
        self._anchoring = False
        self._on_revoked = on_revoked
        # Called after every applied page or batch, e.g. to fill a first-download progress bar.
        self._on_progress = on_progress
        self._bootstrapped = False
        # Audit anchoring: ask for the head the other side keeps, check it, and only then
        # offer ours, so a log found altered never replaces the last good anchor.
        self._anchor_checked = False
        self._offer_head = False
        self._head_sent = False
        self._anchor: Head | None = None  # the head the other side recorded, once checked
        # The other side takes the head on a push (it said so: ``audit_on_push``), so a
        # session that pushes offers it there instead of in a pull of its own.
        self._offer_on_push = False
        self._pushing = True
        self._touched: set[str] = set()  # records of pulled ops (and of small snapshots)
        # Records of snapshot pages per type, and their ids until there are too many.
        self._snapshot_types: dict[str, int] = {}
        self._snapshot_ids: set[str] | None = set()
        # The other side is the clinic server: keep the offset measured against its clock,
        # so this replica stamps its changes in clinic time (core.store.clinic_time).
        self._clock_reference = clock_reference
        self._meter = clock.OffsetMeter()

    def _ask(self, message: dict[str, Any], expect: tuple[str, ...]) -> dict[str, Any]:
        self.report.rounds += 1
        if self.report.rounds > MAX_ROUNDS:
            raise SyncError("the session did not converge; stopping")
        request = p.encode(message, self.report.protocol)
        self._meter.start()
        reply = p.decode(self.transport.request(request), (*expect, "error"))
        self._meter.reply(p.now_from_wire(reply.get("now_ms")))
        if self._meter.best is not None:
            self.report.clock_offset_ms = self._meter.best.offset_ms
        if reply["type"] == "error" and reply.get("code") == "version":
            common = p.common_version(reply)
            if common is not None and common < self.report.protocol:
                # An older Careline on the other side: speak its version from now on.
                log.info("the other side speaks sync protocol %s; falling back to it", common)
                self.report.protocol = common
                return self._ask(message, expect)
            raise SyncError(_version_problem(reply))
        if reply["type"] == "error":
            # The person is told the other side's reason; the log only its code: a peer of
            # an older release may quote the content it refused, and its words are its own.
            raise SyncError(
                f"the other side refused: {reply.get('message', 'no reason given')}",
                log_text=f"the other side refused (code {str(reply.get('code'))[:40]!r})",
            )
        return reply

    def run(self, push: bool = True) -> SyncReport:
        """Pull then push until both sides hold the same ops (``push=False``: only bring
        the other side's changes here, as a read-only replica would)."""
        try:
            self._pushing = push
            if not version_vector(self.db):
                self._bootstrap()
            self._pull()
            if push:
                try:
                    self._push()
                except SyncError:
                    # A refused push does not hold the anchor back; but the refusal is what
                    # the person is told, not a failure of this extra pull.
                    with contextlib.suppress(CarelineError, p.ProtocolError):
                        self._head_in_pull()
                    raise
                self._head_in_pull()
        except p.ProtocolError as exc:
            raise SyncError(f"the other side sent an invalid message: {exc}") from exc
        except replication.ApplyError as exc:
            raise SyncError(f"refused a batch from the other side: {exc}") from exc
        if self._snapshot_ids is not None:
            self.report.changes = changeset.describe(self.db, self._touched | self._snapshot_ids)
        else:
            self.report.changes = changeset.describe(self.db, self._touched, self._snapshot_types)
        if self._clock_reference and self.report.clock_offset_ms is not None:
            clock.remember_server_offset(self.db, self.report.clock_offset_ms, self.actor)
        self._remember_acknowledged()
        return self.report

    def _remember_acknowledged(self) -> None:
        """Keep how far the other side holds our own ops (core.sync.sent). Not with a side
        that anchors our audit log (the clinic server): the entry written here would come
        after the head it just recorded, and each following session would spend a round
        trip offering it again; the app counts server sessions itself while it runs."""
        if self._acknowledged is not None and not self._anchoring:
            sent.remember(self.db, self._acknowledged, self.actor)

    def _note_acknowledged(self, remote_vv: dict[str, int]) -> None:
        """The other side reported its version vector: how far it holds our own ops."""
        self._acknowledged = remote_vv.get(replication.replica_id(self.db), 0)

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.report)

    def _snapshot_request(
        self, pool: ThreadPoolExecutor, after: str | None
    ) -> Future[dict[str, Any]]:
        """Ask for the snapshot page after ``after`` on the prefetch thread."""
        message: dict[str, Any] = {
            "type": "snapshot",
            "after": after,
            "max_records": p.MAX_RECORDS_PER_PAGE,
        }
        if self.report.protocol >= 2:
            # States may come as the other side holds them (deflated): neither side then
            # inflates and deflates them again, and the pages are smaller.
            message["state_forms"] = list(p.STATE_FORMS)
        if after is None and isinstance(self.transport, ImageTransport):
            # A clinic server may offer the whole download as one file (older ones, and
            # LAN peers, ignore the field and send pages).
            wanted = snapshot_image.wants_image(self.db)
            if wanted is not None:
                message["image"] = wanted
        return pool.submit(self._ask, message, ("snapshot_page",))

    def _image_received(self, received: int) -> None:
        self.report.image_received = received
        self._progress()

    def _image_rows_copied(self, done: int, total: int) -> None:
        self.report.image_rows_done, self.report.image_rows = done, total
        self._progress()

    def _use_image(self, reply: dict[str, Any], already: int) -> bool:
        """Download and store the offered snapshot image; False (logged) when it cannot
        be used, and the download goes on by pages as if none had been offered."""
        if not isinstance(self.transport, ImageTransport) or "image" not in reply:
            return False
        try:
            offer = snapshot_image.ImageOffer.from_wire(reply["image"])
        except p.ProtocolError as exc:
            log.warning("the snapshot image offered is unusable (%s); downloading pages", exc)
            return False
        part = snapshot_image.part_path(self.db, offer)
        try:
            self.report.expected_records = already + offer.records
            self.report.image_bytes = offer.size
            snapshot_image.discard_leftovers(self.db)
            snapshot_image.room_for(self.db, offer)
            self.transport.fetch_image(offer.id, part, offer.size, self._image_received)
            types = snapshot_image.import_image(
                self.db, part, offer, self.actor, self._image_rows_copied
            )
        except (snapshot_image.ImageError, OSError) as exc:
            # A lost connection (TransportError) is not caught: the session ends as any
            # would, with nothing stored, and the next one asks for the image again.
            log.warning("the snapshot image could not be used (%s); downloading pages", exc)
            self.report.image_bytes = self.report.image_rows = None
            self.report.image_received = self.report.image_rows_done = 0
            return False
        finally:
            snapshot_image.discard(part)
        # An image from a release that knew fewer record types or fields (same schema) kept
        # them aside as unknown: this release derives what it understands of them now.
        unknown.refresh(self.db, self.actor)
        self.report.snapshot_records += offer.records
        self.report.snapshot_image = True
        self.report.image_bytes = self.report.image_rows = None  # done: records from here
        for record_type, count in types.items():
            self._snapshot_types[record_type] = self._snapshot_types.get(record_type, 0) + count
        if offer.records > LIST_SNAPSHOT_RECORDS:
            self._snapshot_ids = None
        elif self._snapshot_ids is not None:
            ids = self.db.query("SELECT id FROM record_states")
            self._snapshot_ids.update(str(r[0]) for r in ids)
        self._progress()
        return True

    def _bootstrap(self) -> None:
        self._bootstrapped = True
        # A session may bootstrap twice (the peer asks again): count this download on top.
        already = self.report.snapshot_records
        # The next page is asked for as soon as this one has arrived, so the other side
        # reads and sends it (and TLS and JSON decode it) while this page is stored: only
        # the prefetch thread uses the transport, only this one the database. Pages are
        # still applied one after another, in order.
        with ThreadPoolExecutor(1, thread_name_prefix="careline-snapshot") as pool:
            self._download(pool, already)

    def _download(self, pool: ThreadPoolExecutor, already: int) -> None:
        after: str | None = None
        vector: dict[str, int] | None = None
        pending = self._snapshot_request(pool, after)
        try:
            while True:
                reply = pending.result()
                if after is None and self._use_image(reply, already):
                    return
                page_vv = p.vv_from_wire(reply.get("vv"))
                vector = page_vv if vector is None else vector
                records = p.records_from_wire(reply.get("records"))
                forms = p.page_forms_from_wire(reply.get("state_forms"), frozenset(p.STATE_FORMS))
                total = p.total_from_wire(reply.get("total_records"))
                nxt = p.after_from_wire(reply.get("next_after"), "next_after")
                if nxt is not None and after is not None and nxt <= after:
                    raise p.ProtocolError("malformed", "snapshot paging did not advance")
                if nxt is not None:
                    pending = self._snapshot_request(pool, nxt)
                if total is not None:
                    self.report.expected_records = already + total
                page = replication.SnapshotPage(vector, tuple(records), None, forms)
                self.report.snapshot_records += replication.apply_snapshot_page(
                    self.db, page, self.actor
                )
                self._note_snapshot(records)
                self._progress()
                if nxt is None:
                    break
                after = nxt
        finally:
            # A page refused or a session stopped: the request in flight only reads.
            pending.cancel()
        replication.finish_snapshot(self.db, vector or {}, self.actor)

    def _note_snapshot(self, records: list[replication.RecordState]) -> None:
        """Count a stored page's records for the report; list them while they are few."""
        for r in records:
            self._snapshot_types[r.record_type] = self._snapshot_types.get(r.record_type, 0) + 1
        if self._snapshot_ids is not None:
            self._snapshot_ids.update(r.record_id for r in records)
            if len(self._snapshot_ids) > LIST_SNAPSHOT_RECORDS:
                self._snapshot_ids = None  # counted per type from here on

    def _pull(self) -> None:
        while True:
            held = version_vector(self.db)
            request: dict[str, Any] = {
                "type": "pull",
                "vv": p.vv_to_wire(held),
                "max_ops": self.batch,
                "replica": replication.replica_id(self.db),
            }
            if self._skip:
                request["skip"] = sorted(self._skip)
            head = None
            if not self._anchor_checked:
                request["audit_query"] = True
            elif not self._offer_on_push:
                head = self._add_head(request)
            reply = self._ask(request, ("ops", "snapshot_required"))
            if reply["type"] == "ops":  # a snapshot_required reply skipped the anchoring
                self._check_anchor(reply, offered=head is not None)
            if reply["type"] == "snapshot_required":
                log.info("peer asks for a snapshot: %s", reply.get("reason"))
                self._bootstrap()
                continue
            ops = p.ops_from_wire(reply.get("ops"))
            remote_vv = p.vv_from_wire(reply.get("vv"))
            if self._on_revoked is not None and "revoked_serials" in reply:
                self._on_revoked(p.serials_from_wire(reply["revoked_serials"]))
            if self._clock_reference and "device_names" in reply:
                # Only the clinic server names the clinic's workstations: a LAN peer could
                # otherwise relabel every desk. Display only, so a bad entry is dropped
                # (and logged), never a reason to stop syncing.
                names = p.device_names_from_wire(reply["device_names"])
                keep_workstation_names(self.db, names, self.actor)
            self._keep_trust(reply)
            self._note_refused(reply)
            # Everything the other side holds beyond what we held when asking is on its way
            # (this batch included); our own unpushed ops do not count against it.
            self.report.expected_ops = self.report.pulled + sum(
                max(seq - held.get(origin, 0), 0) for origin, seq in remote_vv.items()
            )
            result = replication.apply_ops(
                self.db, ops, self.actor, p.certificates_from_wire(reply.get("certificates")),
                self.peer,
                # The clinic server running 0.1.0 signs nothing (see op_trust.Trust).
                unsigned_ok=self._clock_reference and self.report.protocol < 2,
            )  # fmt: skip
            self.report.pulled += result.applied
            self.report.duplicates += result.duplicates
            self._touched.update(result.records)
            self._remote_vv = remote_vv
            self._note_acknowledged(remote_vv)
            self._progress()
            if result.quarantined:
                self.report.quarantined += len(result.quarantined)
                refused = {origin for origin, _, _ in result.quarantined}
                new = refused - self._skip
                self._skip.update(refused)
                for origin, seq, why in result.quarantined:
                    log.warning("quarantined op %s:%s from %s: %s", origin, seq, self.peer, why)
                if new or result.applied:
                    continue  # ask again without those origins: the others may have more
                # The other side sends the refused ops again whatever we ask (Careline 0.1.0
                # ignores ``skip``, and so may a hostile peer): asking again would loop.
                return
            if not self._offer_on_push and self._head_pending() is not None:
                continue  # one more (small) pull, carrying our checked head
            if not reply.get("more") or not ops:
                return

    def _head_in_pull(self) -> None:
        """After the push: the checked head, if no push carried it (nothing to push, or
        the push refused), goes in a small pull of its own."""
        if self._offer_on_push and self._head_pending() is not None:
            self._offer_on_push = False
            self._pull()

    def _head_pending(self) -> Head | None:
        """Our checked audit head if it is still to be offered; None when there is
        nothing to offer (none checked yet, already sent, an empty log, or the very head
        the other side recorded: it holds that already, so no round trip is spent on it)."""
        if not self._offer_head or self._head_sent:
            return None
        head = audit_anchor.local_head(self.db)
        if head is None or head == self._anchor:
            self._head_sent = True
            return None
        return head

    def _add_head(self, request: dict[str, Any]) -> Head | None:
        """Put our checked audit head (and its proof) into ``request`` if it is still to be
        offered (:meth:`_head_pending`); the head offered, or None."""
        head = self._head_pending()
        if head is None:
            return None
        if self._anchor is not None:
            # Prove that our log extends the recorded head (so far as fits).
            head, entries = audit_anchor.proof(self.db, self._anchor, head)
            request["audit_proof"] = p.proof_to_wire(entries)
        request["audit_head"] = p.head_to_wire(head)
        return head

    def _check_anchor(self, reply: dict[str, Any], offered: bool) -> None:
        anchoring = reply.get("audit_anchoring") is True
        self._anchoring = self._anchoring or anchoring
        anchor = p.head_from_wire(reply.get("audit_anchor"), "audit_anchor")
        if offered:
            self._head_sent = True
            if anchor is not None and reply.get("audit_anchor_moved") is False:
                # The server found our entries do not lead on from the head it recorded.
                self.report.audit_problem = audit_anchor.refusal(anchor)
                log.error("audit log check failed: %s", self.report.audit_problem)
        if self._anchor_checked or not anchoring:
            self._anchor_checked = True
            return
        self._anchor_checked = True
        self._anchor = anchor
        problem = None if anchor is None else audit_anchor.anchor_problem(self.db, anchor)
        self.report.audit_problem = problem
        if problem is not None:
            log.error("audit log check failed: %s", problem)
        # Offered only when it checks out: the anchor stays at the last good head, so an
        # altered log is reported at every sync until someone looks.
        self._offer_head = problem is None
        # A server that takes the head on a push says so (releases before leave it out):
        # a session with ops to push offers it there, one round trip fewer.
        self._offer_on_push = self._pushing and reply.get("audit_on_push") is True

    def _note_held_back(self, held: dict[str, int]) -> None:
        """Count the ops of origins held back from an older other side (those from the
        first it cannot store to the last we hold): they wait until it is updated."""
        if not held:
            return
        mine = version_vector(self.db)
        waiting = sum(max(mine.get(origin, 0) - first + 1, 0) for origin, first in held.items())
        self.report.held_back = max(self.report.held_back, waiting)

    def _push(self) -> None:
        remote = self._remote_vv
        while True:
            try:
                found, held = p.sendable(
                    lambda after: replication.ops_for(self.db, after, self.batch),
                    remote,
                    self.report.protocol,
                    clinic_time.now_ms(self.db),
                )
            except replication.SnapshotRequiredError:
                # The other side will ask us for a snapshot when it pulls from us.
                log.info("the other side lacks history we only hold as a snapshot")
                return
            self._note_held_back(held)
            ops = p.fit(found)
            if not ops:
                return
            message: dict[str, Any] = {"type": "push", "ops": [p.op_to_wire(o) for o in ops]}
            pems = op_trust.certificates_for(self.db, [o.origin for o in ops])
            if pems:
                message["certificates"] = pems
            crl = op_trust.crl_of(self.db)
            if crl is not None:
                message["crl"] = crl
            head = self._add_head(message) if self._offer_on_push else None
            reply = self._ask(message, ("ack",))
            if head is not None:
                self._check_anchor(reply, offered=True)
            self.report.pushed += _count(reply.get("applied"))
            new_remote = p.vv_from_wire(reply.get("vv"))
            self._note_acknowledged(new_remote)
            refused = self._note_refused(reply)
            for origin, _, _ in refused:
                # The rest of that origin's ops wait behind the refused one: not resent now.
                new_remote[origin] = max(new_remote.get(origin, 0), 2**62)
            if new_remote == remote:
                raise SyncError("the other side accepted none of our ops; stopping")
            remote = new_remote

    def _keep_trust(self, reply: dict[str, Any]) -> None:
        """Keep the clinic's revocation list the other side sent, if it is newer and the
        clinic CA's; a forged one is refused loudly."""
        crl = p.crl_from_wire(reply.get("crl"))
        if crl is None:
            return
        try:
            keep_crl(self.db, crl, self.actor)
        except CertificateError as exc:
            problem = f"the other side sent a revocation list that is not valid: {exc}"
            raise SyncError(problem) from None

    def _note_refused(self, reply: dict[str, Any]) -> list[tuple[str, int, str]]:
        """Refusals the other side reports; those of our own ops are kept and shown."""
        refused = p.refusals_from_wire(reply.get("quarantined"))
        if refused:
            op_trust.note_refused_elsewhere(self.db, refused, self.peer, self.actor)
            mine = replication.replica_id(self.db)
            for item in refused:
                if item[0] == mine and item not in self.report.refused:
                    self.report.refused.append(item)
        return refused


def held_back_notice(held_back: int) -> str | None:
    """What to tell a person when ``held_back`` of our changes wait because the other side
    runs an older Careline that cannot store them (None: none wait)."""
    if held_back <= 0:
        return None
    noun = "change waits" if held_back == 1 else "changes wait"
    return f"{held_back} {noun} until the other side's Careline is updated"


def _version_problem(reply: dict[str, Any]) -> str:
    """What to tell a person when the two sides share no sync protocol version."""
    theirs = reply.get("release")
    other = f"Careline {theirs}" if isinstance(theirs, str) and len(theirs) < 40 else "Careline"
    needs = reply.get("needs_release")
    if isinstance(needs, str) and _release_key(needs) > _release_key(p.RELEASE):
        return (
            f"the other side runs {other}, which no longer talks to Careline {p.RELEASE}: "
            f"update Careline on this computer to {needs} or newer"
        )
    if needs is not None:  # the other side's own words say what is needed, and where
        return f"the other side refused: {reply.get('message', 'no reason given')}"
    return (
        f"the other side runs an older {other} that cannot talk to Careline {p.RELEASE} "
        f"({reply.get('message', 'no reason given')}): update Careline there"
    )


def _release_key(release: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2)`` for comparing releases; nonsense sorts first."""
    try:
        return tuple(int(part) for part in release.split(".")[:4])
    except ValueError:
        return ()


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def sync(
    db: Database,
    transport: Transport,
    actor: str = "sync",
    on_revoked: Callable[[list[int]], object] | None = None,
    on_progress: Callable[[SyncReport], object] | None = None,
    clock_reference: bool = False,
) -> SyncReport:
    """Run one full session; ``on_revoked`` receives the server's revoked device serials,
    ``on_progress`` the running report after every applied batch or snapshot page.
    ``clock_reference``: the other side is the clinic server, whose clock this replica's
    changes are stamped by (core.sync.clock); a LAN peer is not."""
    return SyncSession(
        db,
        transport,
        actor,
        on_revoked=on_revoked,
        on_progress=on_progress,
        clock_reference=clock_reference,
    ).run()
