"""Background sync with the clinic server, on its own thread, and the status it reports.

Sessions run on a dedicated QThread (``careline-sync``), never on the database worker, so a
slow or unreachable server never delays a search or a save. Core's ``Workstation`` does not
expose its database key, so this thread cannot open a second SQLCipher connection; it uses
the workstation's ``Database``, whose internal lock serialises each statement and batch.
Network round trips (most of a session's time) happen outside that lock, so the UI's
worker keeps running between batches.

When to sync: ``debounce_ms`` after a local change, every ``interval_ms``, on demand, right
after enrollment, and as soon as the operating system reports the network back (Qt's
QNetworkInformation: NetworkManager, GLib or ConnMan; where none is available, only the
retries below apply). An unreachable server (``TransportError``) is retried with
exponential backoff and jitter; a refused device (``DeviceRejectedError``) stops syncing
until the next enrollment. Locking stops everything: the session in progress breaks off at
its next round trip (what was applied stays applied, as core guarantees).

LAN peers: given :class:`~app.sync.lan_peer.LanOptions`, a workstation with a LAN identity (its
own, or the certificate its server enrollment issued) also serves peer sync, announces itself
over mDNS, and after each server session syncs with every trusted peer it finds. The status
bar shows how many peers were in reach, says so when peers refuse this workstation's
certificate (their TLS alert says so: revoked, most likely), and counts apart the clinic
peers that were only busy or did not answer (tried again).

Progress: core reports after every applied snapshot page or op batch (on the sync thread);
the runner re-emits a copy of the report as a signal, so the status bar updates on the GUI
thread. A first download (snapshot) and a large pull (at least ``LARGE_PULL_OPS`` ops
missing, per the server's version vector) get a determinate bar; small incremental syncs
show none.

Attachments: after each session the sync thread uploads files added here; after a session
that reached the clinic it also fetches files not cached here ahead of need, in short
slices between sessions (:mod:`app.sync.prefetching`, ``attachment_prefetch_percent``). A
session asked for pauses the prefetch (``_pause``), which resumes after it.

"Pending" counts this workstation's own ops no other replica is known to hold: this
replica's sequence number now, minus the highest of its own that the other side of a
session reported holding, as the store keeps it (core.sync.sent: the count survives a
restart), or what it was when the last successful session began, if that is higher (every
op up to that point was pushed and acknowledged by the end of the session).

A LAN-only workstation whose clinic peers in reach were all busy or did not answer (none
refused its certificate) is offline for now: it tries again with the same backoff as an
unreachable server, not only at the next periodic session.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtNetwork import QNetworkInformation

from app.messages import describe_error
from app.sync.lan_peer import LanNode, LanOptions, LanRound
from app.sync.prefetching import BackgroundPrefetch, Generation
from app.sync.transfers import UPLOAD, AttachmentSettings, AttachmentTransfers
from core.errors import for_log
from core.records import changeset, op_trust, unknown
from core.records.changeset import Changes
from core.records.demo import refuse_if_demo
from core.records.workstation import Workstation
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync import clock, sent
from core.sync.attachments import Attachments
from core.sync.backoff import backoff
from core.sync.ca_pin import ca_for_fingerprint
from core.sync.certify import ensure_bound
from core.sync.enroll import (
    EnrollmentError,
    ServerCredential,
    adopt_credential,
    enroll,
    load_credential,
)
from core.sync.http_transport import DeviceRejectedError
from core.sync.lan.identity import LanIdentity, load_identity, merge_revoked, ready_identity
from core.sync.server_connection import KeptTransport, TransportFactory, default_factory
from core.sync.session import SyncReport, sync
from core.sync.snapshot_image import ImageError
from core.sync.transport import ImageTransport, Transport, TransportError
from core.sync.trust_notice import quarantine_state

log = logging.getLogger(__name__)

DEBOUNCE_MS = 2_000
INTERVAL_MS = 60_000
BACKOFF_BASE_MS = 2_000
BACKOFF_CAP_MS = 5 * 60_000


# States shown in the status bar.
NOT_ENROLLED = "not_enrolled"
SYNCING = "syncing"
SYNCED = "synced"
PENDING = "pending"
OFFLINE = "offline"
ERROR = "error"
STOPPED = "stopped"


# Why nothing syncs when the only LAN peers in reach refuse this workstation's certificate
# (a TLS alert says so; "may": revoked is the likely reason, not the only one).
LAN_REFUSED = (
    "the clinic's workstations refuse this computer's certificate (it may have been "
    "revoked: ask the clinic's administrator)."
)

# Why nothing syncs when the clinic's LAN peers in reach are busy or do not answer.
LAN_UNREACHABLE = "the clinic's workstations in reach are busy or not answering"

# A pull of at least this many ops (two batches) shows a progress bar; fewer finish too
# quickly for one to help.
LARGE_PULL_OPS = 1_000

# What a progress bar counts.
RECORDS = "records"  # a first download: the clinic's records, from a snapshot
CHANGES = "changes"  # ops other workstations made, pulled in batches
IMAGE_BYTES = "image bytes"  # a first download as one file (snapshot image): its KiB
IMAGE_ROWS = "image rows"  # ... then its rows, copied into this workstation's file


@dataclass(frozen=True)
class SyncProgress:
    """How far a long download has come."""

    kind: str  # RECORDS, CHANGES, IMAGE_BYTES or IMAGE_ROWS
    done: int
    total: int | None  # None: the other side did not say (an older server)


def download_progress(report: SyncReport) -> SyncProgress | None:
    """The progress worth showing for a running session's ``report``: a snapshot download,
    or a pull of at least ``LARGE_PULL_OPS`` ops; None for a small incremental sync."""
    if report.image_rows is not None:
        return SyncProgress(IMAGE_ROWS, report.image_rows_done, report.image_rows)
    if report.image_bytes is not None:
        # In KiB: a progress bar's range is a 32-bit int, and a clinic network's file can
        # pass 2 GiB.
        return SyncProgress(IMAGE_BYTES, report.image_received >> 10, report.image_bytes >> 10)
    if report.expected_ops is not None and report.expected_ops >= LARGE_PULL_OPS:
        return SyncProgress(CHANGES, report.pulled, max(report.expected_ops, report.pulled))
    if report.snapshot_records or report.expected_records:
        total = report.expected_records
        # Records written during the download can make the count exceed the announced total.
        total = None if total is None else max(total, report.snapshot_records)
        return SyncProgress(RECORDS, report.snapshot_records, total)
    return None


@dataclass(frozen=True)
class SyncStatus:
    """What the status bar shows."""

    state: str = STOPPED
    last_sync: dt.datetime | None = None
    pending: int = 0
    retry_at: dt.datetime | None = None  # offline: when the next attempt is due
    message: str = ""  # error: the reason
    bootstrapping: bool = False  # the first download (snapshot) is running
    progress: SyncProgress | None = None  # a long download in this session, as it goes
    server: str = ""
    lan: bool = False  # this workstation syncs with LAN peers
    lan_peers: int = 0  # trusted LAN peers synced with in the last session
    # LAN peers, clinic devices by their certificates, that refused this workstation's
    # certificate with a TLS alert in the last session (revoked, most likely). With no
    # server and no peer synced with, the state is ERROR (LAN_REFUSED).
    lan_refused: int = 0
    # Clinic LAN peers that were busy or did not answer in the last session (closed
    # without answering, timed out): tried again. With no server, no peer synced with and
    # none refusing, the state is OFFLINE, retried with backoff.
    lan_unreachable: int = 0
    # When this workstation last synced with a LAN peer (also while the clinic server is
    # out of reach, when ``last_sync``, the server's, stands still).
    lan_synced_at: dt.datetime | None = None
    # The clinic server's record of this workstation's audit log contradicts the log here
    # (core.sync.audit_anchor): records still sync, but an administrator must look.
    audit_warning: str = ""
    # Records newer workstations made that this version cannot show (core.records.unknown),
    # and our changes an older clinic server cannot store yet (they wait for its update).
    newer_records: int = 0
    held_back: int = 0
    # Ops from elsewhere held aside here by signature checks (core.records.op_trust), with
    # the latest reason; and this workstation's ops another replica refused this session.
    quarantined: int = 0
    quarantine_reason: str = ""
    refused: tuple[tuple[str, int, str], ...] = ()
    # This computer's clock is far off the server's (or, with no server, every LAN peer's):
    # the sentence saying by how much (core.sync.clock). Changes still sync.
    clock_warning: str = ""


class _Stopped(TransportError):
    """The session was broken off because the workstation is locking."""


class _StoppableTransport:
    """Refuses the next request once ``stop`` is set, so a lock ends a session quickly."""

    def __init__(self, inner: Transport, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def request(self, message: bytes) -> bytes:
        if self._stop.is_set():
            raise _Stopped("sync stopped: the workstation is locking")
        return self._inner.request(message)

    def fetch_image(
        self,
        image_id: str,
        dest: Path,
        size: int,
        on_bytes: Callable[[int], object] | None = None,
    ) -> None:
        """The inner transport's snapshot image (the clinic server's), broken off between
        chunks once ``stop`` is set; a transport without images says so."""
        if not isinstance(self._inner, ImageTransport):
            raise ImageError("this connection offers no snapshot images")

        def arrived(received: int) -> None:
            if self._stop.is_set():
                raise _Stopped("sync stopped: the workstation is locking")
            if on_bytes is not None:
                on_bytes(received)

        self._inner.fetch_image(image_id, dest, size, arrived)


@dataclass(frozen=True)
class SessionOutcome:
    """What one session on the sync thread produced (sent back to the GUI thread)."""

    report: SyncReport | None = None
    acked_seq: int | None = None  # own seq acknowledged by the server
    current_seq: int | None = None  # own seq at the end (None: the session never began)
    stored_acked: int | None = None  # own seq another replica holds, as the store keeps it
    error: Exception | None = None
    enrolled: ServerCredential | None = None
    enrollment: bool = False  # the outcome of an enrollment (not of a session before it)
    not_enrolled: bool = False
    lan: bool = False
    lan_only: bool = False  # LAN peers only: no clinic server
    lan_peers: int = 0
    lan_refused: int = 0  # peers that refuse this workstation's certificate
    lan_unreachable: int = 0  # clinic peers busy or not answering
    lan_reports: tuple[SyncReport, ...] = ()
    # What other replicas changed here since the last session: this session's pulls and
    # snapshot, and what LAN peers pushed to this workstation meanwhile.
    changes: Changes = field(default_factory=Changes)
    newer_records: int = 0  # held here for a newer Careline (core.records.unknown)
    quarantined: int = 0  # held aside here by signature checks, and the latest reason
    quarantine_reason: str = ""
    refused: tuple[tuple[str, int, str], ...] = ()  # our ops refused by the other side
    clock_warning: str = ""  # this computer's clock is far off (core.sync.clock)


class _SyncRunner(QObject):
    """Lives on the sync thread."""

    started = Signal(bool)  # bootstrapping
    progressed = Signal(object)  # SyncReport (a copy) after each applied page or batch
    finished = Signal(object)  # SessionOutcome
    counted = Signal(int, bool, object)  # own seq now, enrolled, stored acked (int | None)

    def __init__(
        self,
        workstation: Workstation,
        transport_factory: TransportFactory,
        stop: threading.Event,
        lan: LanNode | None = None,
        transfers: AttachmentTransfers | None = None,
        pause: threading.Event | None = None,
        generation: Generation | None = None,
    ) -> None:
        super().__init__()
        self._ws = workstation
        # One transport (one kept-alive TLS connection) for every session while the server
        # settings stay the same; closed at sign-out (core.sync.server_connection).
        self._server = KeptTransport(transport_factory)
        self._stop = stop
        self._lan = lan
        self._transfers = transfers or AttachmentTransfers()
        self._remote_vv: dict[str, int] | None = None
        # Set by the GUI thread when it asks for a session: the prefetch yields to it.
        self._pause = pause or threading.Event()
        self.prefetch: BackgroundPrefetch | None = None
        if self._transfers.settings.prefetch_percent > 0:
            self.prefetch = BackgroundPrefetch(
                workstation, self._transfers, stop, self._pause, generation=generation
            )
            self.prefetch.setParent(self)  # moves to the sync thread with the runner

    def _own_seq(self) -> int:
        return sent.own_seq(self._ws.database)

    def _actor(self) -> str:
        try:
            return self._ws.records.actor
        except Exception:  # nobody signed in yet (a workstation just joining)
            return "sync"

    @Slot()
    def count(self) -> None:
        try:
            seq = self._own_seq()
            db = self._ws.database
            enrolled = load_credential(db) is not None or (
                self._lan is not None and load_identity(db) is not None
            )
            acked = sent.acknowledged(db)
        except Exception as exc:  # locked meanwhile: nothing to count
            log.info("pending count skipped: %s", exc)
            return
        self.counted.emit(seq, enrolled, acked)

    @Slot()
    def run_session(self) -> None:
        self._pause.clear()  # before the outcome goes out: a later request pauses again
        try:
            outcome = self._session()
        except BaseException as exc:
            # Not an Exception (``_session`` reports those): e.g. a library's panic. The
            # controller still hears that the session ended, so it does not wait on it for
            # ever; the exception goes on to the hook that logs it and tells the status bar
            # (app/background_errors).
            self.finished.emit(SessionOutcome(error=_unexpected(exc)))
            raise
        self.finished.emit(outcome)
        reached = outcome.error is None and outcome.acked_seq is not None
        if self.prefetch is not None and reached and not self._stop.is_set():
            self.prefetch.start()

    @Slot(object)
    def enroll(self, request: tuple[str, str, str | None, str, str | None]) -> None:
        url, code, ca_pem, device, fingerprint = request
        try:
            # Refused before the code is redeemed (a used code is gone for good).
            refuse_if_demo("enroll with a clinic server", self._ws.data_dir, self._ws.database)
            db = self._ws.database
            if ca_pem is None and fingerprint is not None:
                # The CA the server presents with that fingerprint, pinned (nothing sent).
                ca_pem = ca_for_fingerprint(
                    url, fingerprint, given_as="given",
                    otherwise="choose the server's CA certificate file instead",
                )  # fmt: skip
            credential = enroll(url, code, ca_pem, device, op_trust.binding_for(db))
            adopt_credential(db, credential, self._actor())
        except Exception as exc:
            self.finished.emit(SessionOutcome(error=exc, enrollment=True))
            return
        self.finished.emit(replace(self._session(), enrolled=credential, enrollment=True))

    @Slot()
    def release(self) -> None:
        """Close the connection to the server (signing out, closing): the next session
        makes a new one."""
        self._server.close()

    def _session(self) -> SessionOutcome:
        if self._stop.is_set():
            return SessionOutcome(error=_Stopped("sync stopped"))
        try:
            db = self._ws.database
            credential = load_credential(db)
            actor = self._actor()
            # ready_identity: the CA holder's certificate from before op signing is bound.
            identity = ready_identity(db, actor) if self._lan is not None else None
            if credential is None and identity is None:
                return SessionOutcome(not_enrolled=True)
            start_seq = self._own_seq()
            self.started.emit(not version_vector(db))
            report: SyncReport | None = None
            error: Exception | None = None
            if credential is not None:
                try:
                    # Enrolled before ops were signed: a bound certificate first.
                    credential = ensure_bound(db, credential, actor)
                    if identity is not None:
                        # The LAN identity may be that enrollment's: if the server just
                        # replaced its certificate (and revoked the old one), use the new.
                        identity = load_identity(db)
                    report = sync(
                        db,
                        _StoppableTransport(self._server.get(credential), self._stop),
                        actor,
                        on_revoked=lambda serials: merge_revoked(db, serials, actor),
                        on_progress=self._report_progress,
                        clock_reference=True,
                    )
                except Exception as exc:
                    error = exc
            if credential is not None and error is None and not self._stop.is_set():
                self._push_attachments(credential)
            lan = self._lan_round(db, identity, actor)
            held, why = quarantine_state(db)
            acked = None
            if (credential is not None and error is None) or (credential is None and lan.peers):
                acked = start_seq
            return SessionOutcome(
                report,
                acked,
                self._own_seq(),
                sent.acknowledged(db),
                error,
                lan=identity is not None,
                lan_only=credential is None,
                lan_peers=lan.peers,
                lan_refused=lan.refused,
                lan_unreachable=lan.unreachable,
                lan_reports=lan.reports,
                changes=self._changes(db, (report, *lan.reports)),
                newer_records=unknown.count(db),
                quarantined=held,
                quarantine_reason=why or "",
                refused=_refused((report, *lan.reports)),
                clock_warning=clock.session_notice(
                    report.clock_offset_ms if report is not None else None,
                    [r.clock_offset_ms for r in lan.reports],
                )
                or "",
            )
        except Exception as exc:  # every failure is reported as a status, never raised
            return SessionOutcome(error=exc)

    def _push_attachments(self, credential: ServerCredential) -> None:
        """Upload files added here since the last sync, each from where it stopped, and
        pass the clinic attachment key on to new devices (core.sync.attachments). Progress
        and each finished upload reach the chart as signals (``AttachmentTransfers``). A
        failure leaves them queued for the next session; the records synced all the same."""
        transfers = self._transfers
        try:
            records = self._ws.records  # the signed-in person's (refused while locked)
            Attachments(records, self._ws.data_dir, credential=credential).push_pending(
                progress_of=lambda blob_id: transfers.progress(blob_id, UPLOAD),
                uploaded=transfers.done,
            )
        except Exception as exc:  # logged; retried at the next session
            log.warning("attachments wait for the next sync: %s", for_log(exc))

    def _report_progress(self, report: SyncReport) -> None:
        # The session keeps mutating its report on this thread: send the GUI a copy.
        self.progressed.emit(replace(report))

    def _changes(self, db: Database, reports: tuple[SyncReport | None, ...]) -> Changes:
        # Peers push to this workstation's peer server too: besides what the sessions
        # report, take the ops other replicas contributed since the last session, whoever
        # carried them here (a snapshot's records have no ops: only its report names them).
        changes = Changes()
        for report in reports:
            if report is not None:
                changes |= report.changes
        before, self._remote_vv = self._remote_vv, changeset.mark(db)
        if before is not None:
            changes |= changeset.changes_since(db, before, others_only=True)
        return changes

    def _lan_round(self, db: Database, identity: LanIdentity | None, actor: str) -> LanRound:
        if self._lan is None or identity is None or self._stop.is_set():
            return LanRound()
        try:
            self._lan.ensure_serving(db, identity)
        except Exception as exc:  # e.g. an unusable certificate: peers are optional
            log.warning("cannot serve LAN peers: %s", exc)
        lan_round = self._lan.sync_peers(
            db, identity, actor, wrap=lambda t: _StoppableTransport(t, self._stop)
        )
        self._transfers.set_peers(lan_round.addresses)  # where the chart may fetch files
        return lan_round


def _unexpected(exc: BaseException) -> Exception:
    """What the status bar says of a session that ended on an exception that is not an
    Exception: its type only (its message may quote patient data)."""
    return RuntimeError(f"the sync session stopped on an unexpected {type(exc).__name__}")


def _refused(reports: Iterable[SyncReport | None]) -> tuple[tuple[str, int, str], ...]:
    """Our ops refused by the other sides of this round's sessions, each once."""
    seen: dict[tuple[str, int], tuple[str, int, str]] = {}
    for report in reports:
        for origin, seq, why in report.refused if report is not None else ():
            seen[(origin, seq)] = (origin, seq, why)
    return tuple(seen.values())


def _watch_network(
    on_change: Callable[[QNetworkInformation.Reachability], None],
) -> QNetworkInformation | None:
    """The OS's network reachability reports, or None where no backend is available."""
    if QNetworkInformation.instance() is None and not QNetworkInformation.loadDefaultBackend():
        log.info("no network information backend: offline retries follow the backoff only")
        return None
    info = QNetworkInformation.instance()
    if info is not None:
        info.reachabilityChanged.connect(on_change)
    return info


class SyncController(QObject):
    """Schedules sessions on the sync thread and publishes :class:`SyncStatus`."""

    status_changed = Signal(object)  # SyncStatus
    synced = Signal(object)  # SyncReport of a successful session
    remote_changes = Signal(object)  # Changes: records from elsewhere arrived (a session or a
    # peer's push)
    enroll_finished = Signal(object)  # None on success, else the error message (str)
    # Just before a refused enrollment's enroll_finished: the field typed that it is about
    # (EnrollmentError.field: "server_url", "enroll_code", "ca_path", "device_name").
    enroll_refused_at = Signal(str)
    _run = Signal()
    _count = Signal()
    _enroll = Signal(object)
    _release = Signal()

    def __init__(
        self,
        workstation: Workstation,
        transport_factory: TransportFactory = default_factory,
        debounce_ms: int = DEBOUNCE_MS,
        interval_ms: int = INTERVAL_MS,
        backoff_base_ms: int = BACKOFF_BASE_MS,
        backoff_cap_ms: int = BACKOFF_CAP_MS,
        lan: LanOptions | None = None,
        attachments: AttachmentSettings | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        # Without options (tests of the server alone), the app is no LAN peer.
        self.lan: LanNode | None = LanNode(lan) if lan is not None and lan.enabled else None
        self._backoff = (backoff_base_ms, backoff_cap_ms)
        self._rng = random.Random()  # noqa: S311 (retry jitter, not a secret)
        self._stop = threading.Event()
        self._pause = threading.Event()  # a session is wanted: the prefetch yields
        # Bumped at each stop, so a prefetch slice begun before a sign-out never carries
        # on after a quick sign-in (which clears _stop again).
        self._generation = Generation()
        self._thread = QThread()
        self._thread.setObjectName("careline-sync")
        # Attachment uploads' progress, and the LAN peers a fetch may ask, for the chart.
        self.transfers = AttachmentTransfers(
            self, peer_timeout=lan.peer_timeout if lan is not None else 10.0,
            settings=attachments,
        )  # fmt: skip
        self._runner = _SyncRunner(
            workstation, transport_factory, self._stop, self.lan, self.transfers, self._pause,
            self._generation,
        )  # fmt: skip
        self._runner.moveToThread(self._thread)
        self._run.connect(self._runner.run_session)
        self._count.connect(self._runner.count)
        self._enroll.connect(self._runner.enroll)
        self._release.connect(self._runner.release)
        self._runner.started.connect(self._session_started)
        self._runner.progressed.connect(self._progressed)
        self._runner.finished.connect(self._session_finished)
        self._runner.counted.connect(self._counted)
        self._thread.start()

        self.status = SyncStatus()
        self._active = False
        self._busy = False
        self._again = False  # a session was asked for while one ran
        self._failures = 0
        self._acked_seq: int | None = None
        self._stored_acked: int | None = None  # core.sync.sent, read on the sync thread
        self._seq = 0
        self._enrolling = False
        self._before_enroll = self.status  # what a failed enrollment goes back to

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self.sync_now)
        self._periodic = QTimer(self)
        self._periodic.setInterval(interval_ms)
        self._periodic.timeout.connect(self.sync_now)
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.timeout.connect(self.sync_now)
        self.network = _watch_network(self.network_changed)

    # ----- control (GUI thread) ---------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a session or an enrollment runs on the sync thread."""
        return self._busy

    def start(self) -> None:
        """Begin syncing (the workstation was unlocked): a session now, then on schedule."""
        self._stop.clear()
        if self.lan is not None:
            self.lan.resume()
        self._active = True
        self._failures = 0
        self._periodic.start()
        self.sync_now()

    def stop(self) -> None:
        """Stop syncing (locking): no new sessions; the running one ends at its next request."""
        self._active = False
        self._stop.set()
        self._generation.bump()
        if self.lan is not None:
            self.lan.stop()  # in a background thread
        for timer in (self._debounce, self._periodic, self._retry):
            timer.stop()
        self._again = False
        # On the sync thread, after the session breaking off: it may still be using it.
        self._release.emit()
        self._publish(replace(SyncStatus(), last_sync=self.status.last_sync))

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Stop and end the thread (waits for the session in progress to break off)."""
        self.stop()
        self._thread.quit()
        if not self._thread.wait(timeout_ms):
            log.error("the sync thread did not stop within %d ms", timeout_ms)
        else:
            self._runner.release()  # the thread has ended: nothing else uses it now
        self.wait_lan_stopped()

    def wait_lan_stopped(self) -> None:
        """Block until the LAN server and announcement have stopped (not on the GUI thread,
        except when quitting)."""
        if self.lan is not None:
            self.lan.wait_stopped()

    def sync_now(self) -> None:
        """Start a session now (or right after the one running)."""
        if not self._active:
            return
        self._debounce.stop()
        self._retry.stop()
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._pause.set()  # a prefetch slice running on the sync thread ends at once
        self._run.emit()

    def local_change(self) -> None:
        """Something may have been written locally: recount, and sync once writes settle."""
        if self._active and not self._busy:
            self._count.emit()

    def enroll(
        self,
        url: str,
        code: str,
        ca_pem: str | None,
        device_name: str,
        ca_fingerprint: str | None = None,
    ) -> None:
        """Enroll, store the credential and run the first sync (result: enroll_finished).
        ``ca_fingerprint``: the server's CA given by its SHA-256 fingerprint instead of
        ``ca_pem`` (fetched and checked on the sync thread)."""
        self._stop.clear()
        self._active = True
        if not self._enrolling:
            self._before_enroll = self.status
        self._enrolling = True
        self._busy = True
        self._publish(replace(self.status, state=SYNCING, message="", server=url))
        self._enroll.emit((url, code, ca_pem, device_name, ca_fingerprint))

    # ----- results (GUI thread) ---------------------------------------------------------

    def _publish(self, status: SyncStatus) -> None:
        self.status = status
        self.status_changed.emit(status)

    def _pending(self) -> int:
        known = [a for a in (self._acked_seq, self._stored_acked) if a is not None]
        return max(self._seq - max(known), 0) if known else 0

    def _counted(self, seq: int, enrolled: bool, stored_acked: int | None) -> None:
        if not self._active or self._busy:
            return
        self._seq = seq
        self._stored_acked = stored_acked
        if not enrolled:
            self._publish(replace(self.status, state=NOT_ENROLLED))
            return
        if self._pending() > 0:
            if self.status.state in (SYNCED, PENDING):
                self._publish(replace(self.status, state=PENDING, pending=self._pending()))
            elif self.status.state == ERROR and self.status.lan_refused:
                # Refused by the peers: what is typed now waits too, and is counted.
                self._publish(replace(self.status, pending=self._pending()))
            elif self.status.state == OFFLINE:
                self._publish(replace(self.status, pending=self._pending()))
            if not self._retry.isActive():  # offline: the backoff decides, not each write
                self._debounce.start()

    def _session_started(self, bootstrapping: bool) -> None:
        if self._active:
            self._publish(
                replace(self.status, state=SYNCING, bootstrapping=bootstrapping, progress=None)
            )

    def _progressed(self, report: SyncReport) -> None:
        if not self._active or self.status.state != SYNCING:
            return
        progress = download_progress(report)
        if progress is not None and progress != self.status.progress:
            self._publish(replace(self.status, progress=progress))

    def _session_finished(self, outcome: SessionOutcome) -> None:
        self._busy = False
        # A session that was running when Connect was chosen ends first: its outcome is not
        # the enrollment's (it was taken for it: "connected", or a sync's error).
        enrolling = self._enrolling and outcome.enrollment
        if enrolling:
            self._enrolling = False
        if enrolling and outcome.enrolled is None and outcome.error is not None:
            # The enrollment dialog shows why; nothing about syncing changed, so the status
            # bar goes back to what it said before the attempt (not a lasting red error).
            message = describe_error(outcome.error)
            # "Sync now" pressed while it ran asked for a sync of a server not connected.
            self._again = False
            self._publish(self._before_enroll)
            field = getattr(outcome.error, "field", None)
            if isinstance(outcome.error, EnrollmentError) and field is not None:
                self.enroll_refused_at.emit(field)
            self.enroll_finished.emit(message)
            return
        if enrolling:
            self._failures = 0
            if self._active and not self._periodic.isActive():
                self._periodic.start()
        if not self._active:
            if enrolling:
                # Enrolled, the person signed out meanwhile (which broke off the first
                # sync): connected all the same, and the window tells them so. This used to
                # return first, so only a failed connection was ever told.
                self.enroll_finished.emit(None)
            return
        if outcome.changes:
            self.remote_changes.emit(outcome.changes)
        for lan_report in outcome.lan_reports:
            self.synced.emit(lan_report)
        lan, peers, refused = outcome.lan, outcome.lan_peers, outcome.lan_refused
        unreachable = outcome.lan_unreachable
        lan_synced_at = dt.datetime.now().astimezone() if peers else self.status.lan_synced_at
        if outcome.current_seq is not None:  # what the store says waits, as of now
            self._seq, self._stored_acked = outcome.current_seq, outcome.stored_acked
        if outcome.not_enrolled:
            self._publish(replace(SyncStatus(), state=NOT_ENROLLED))
        elif outcome.error is not None:
            self.status = replace(
                self.status, lan=lan, lan_peers=peers, lan_refused=refused,
                lan_unreachable=unreachable, lan_synced_at=lan_synced_at,
            )  # fmt: skip
            self._failed(outcome.error)
        elif outcome.acked_seq is None and refused:
            # LAN only, and the peers in reach shut this workstation out: nothing made here
            # leaves it, so say so (red, with Sync now) for as long as they refuse, and
            # count what waits; the periodic sessions keep trying.
            self._publish(
                replace(
                    SyncStatus(),
                    state=ERROR,
                    message=LAN_REFUSED,
                    last_sync=self.status.last_sync,
                    pending=self._pending(),
                    lan=lan,
                    lan_refused=refused,
                    lan_unreachable=unreachable,
                    newer_records=outcome.newer_records,
                    quarantined=outcome.quarantined,
                    quarantine_reason=outcome.quarantine_reason,
                )
            )
        elif outcome.acked_seq is None and unreachable:
            # LAN only, and the clinic peers in reach were busy or did not answer: tried
            # again with backoff, as an unreachable server is.
            self._retry_later(
                replace(
                    SyncStatus(),
                    last_sync=self.status.last_sync,
                    pending=self._pending(),
                    lan=lan,
                    lan_unreachable=unreachable,
                    newer_records=outcome.newer_records,
                    quarantined=outcome.quarantined,
                    quarantine_reason=outcome.quarantine_reason,
                ),
                LAN_UNREACHABLE,
            )
        elif outcome.acked_seq is None:  # LAN only, and no peer in reach
            self._publish(replace(SyncStatus(), state=NOT_ENROLLED, lan=lan))
        else:
            self._failures = 0
            self._acked_seq = outcome.acked_seq
            pending = self._pending()
            self._publish(
                SyncStatus(
                    state=PENDING if pending else SYNCED,
                    last_sync=dt.datetime.now().astimezone(),
                    pending=pending,
                    server=self.status.server,
                    lan=lan,
                    lan_peers=peers,
                    lan_refused=refused,
                    lan_unreachable=unreachable,
                    lan_synced_at=lan_synced_at,
                    audit_warning=(outcome.report.audit_problem or "") if outcome.report else "",
                    newer_records=outcome.newer_records,
                    held_back=outcome.report.held_back if outcome.report else 0,
                    quarantined=outcome.quarantined,
                    quarantine_reason=outcome.quarantine_reason,
                    refused=outcome.refused,
                    clock_warning=outcome.clock_warning,
                )
            )
            if outcome.report is not None:
                self.synced.emit(outcome.report)
            if pending:
                self._debounce.start()
        if enrolling:
            self.enroll_finished.emit(
                None if outcome.error is None else describe_error(outcome.error)
            )
        if self._again and self._active:
            self._again = False
            self.sync_now()

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, _Stopped):
            return
        base = replace(self.status, bootstrapping=False, progress=None, pending=self._pending())
        if isinstance(exc, DeviceRejectedError):
            # Retrying cannot help: only a new enrollment can.
            self._periodic.stop()
            self._again = False
            self._publish(replace(base, state=ERROR, message=describe_error(exc)))
        elif isinstance(exc, TransportError):
            self._retry_later(base, str(exc))
        else:
            log.warning("sync failed: %s", for_log(exc))  # the person sees the details
            self._publish(replace(base, state=ERROR, message=describe_error(exc)))

    def _retry_later(self, base: SyncStatus, message: str) -> None:
        """Offline: the next attempt after the backoff's delay (doubling, with jitter)."""
        self._failures += 1
        delay = int(backoff(self._failures, *self._backoff, self._rng))
        self._retry.start(delay)
        retry_at = dt.datetime.now().astimezone() + dt.timedelta(milliseconds=delay)
        self._publish(replace(base, state=OFFLINE, retry_at=retry_at, message=message))

    @Slot(QNetworkInformation.Reachability)
    def network_changed(self, reachability: QNetworkInformation.Reachability) -> None:
        """The network came back: while offline, retry now instead of at the backoff's
        next attempt (which can be minutes away)."""
        back = reachability in (
            QNetworkInformation.Reachability.Online,
            QNetworkInformation.Reachability.Site,
            QNetworkInformation.Reachability.Local,
        )
        if not back:
            self._pause.set()  # the prefetch stops now; the next session that works resumes it
        if back and self._active and self._retry.isActive():
            log.info("network back (%s): syncing now", reachability.name)
            self._failures = 0
            self.sync_now()

    # For tests and the status bar.
    @property
    def prefetch(self) -> BackgroundPrefetch | None:
        """The background prefetch of attachments (None when the setting turns it off)."""
        return self._runner.prefetch

    def retry_in_ms(self) -> int:
        """Milliseconds until the next retry (0 when none is scheduled)."""
        return self._retry.remainingTime() if self._retry.isActive() else 0
