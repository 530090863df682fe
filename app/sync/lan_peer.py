"""The running app as a LAN peer: serve peer sync, announce over mDNS, sync with peers found.

Everything here runs off the GUI thread: :class:`LanNode` is driven by the sync thread
(starting to serve, browsing, peer sessions) and stopped from a plain background thread
when the workstation locks, so neither a slow mDNS goodbye nor a listener shutdown ever
blocks the window. A peer found over mDNS is only a hint: each session checks the peer's
certificate against the clinic CA and the revoked serials (``LanTransport``).

Anyone on the LAN can announce services, so a round of peer sessions is bounded whatever is
announced: addresses where a clinic device was verified before are tried first, before
mDNS is even asked (announced or not); the announced names are resolved together within a
small budget of their own (names that do not resolve are skipped and wait, doubling, as
failed addresses do; ``discovery.PeerBrowser``); at most a few addresses never verified are
tried a round, in random order, each given a few seconds to connect and finish the TLS
handshake; such an address that failed is not tried again for a while (doubling); and no
new peer is started once the round's deadline has passed, so the app's sync session, the
next server sync included, never waits on a flood of fake announcements.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from core.store.database import Database
from core.sync.backoff import backoff
from core.sync.lan import discovery, sightings
from core.sync.lan import identity as lan_id
from core.sync.lan.certify import certify_if_unbound
from core.sync.lan.identity import LanIdentity
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import (
    LanTransport,
    PeerRejectedError,
    RefusedByPeerError,
    ReplyTooLargeError,
)
from core.sync.session import SyncReport, sync
from core.sync.transport import Transport, TransportError

log = logging.getLogger(__name__)

# ``careline serve``'s default sync port (pairing listens on PORT+1). Core keeps it only as
# the CLI's argparse default, not as an importable constant, so it is repeated here.
DEFAULT_LAN_PORT = 47390
# Failed addresses remembered at most (each is a few dozen bytes; announcing is free).
_MAX_FAILED_TRACKED = 4096
# A verified address is tried every round, announced or not (before browsing); one that
# failed this many rounds in a row, unreachable each time, is forgotten (the device moved
# or is gone; announced again, it is found as a new address).
_FORGET_VERIFIED_AFTER = 20
# A clinic device that did not even answer (no TLS handshake: switched off, its
# ``careline serve`` stopped) this many rounds in a row has gone away for now: it is still
# tried, but no longer counted as ``unreachable``. Counted on, the status bar said "1 other
# workstation is busy or not answering" for as long as the address was remembered, which
# reads as a fault. One that answers and is busy is counted every time: it is there.
_REPORT_GONE_AFTER = 3


@dataclass(frozen=True)
class LanOptions:
    """Where to serve and announce. Tests use 127.0.0.1 and free ports."""

    enabled: bool = True
    host: str = "0.0.0.0"  # noqa: S104 (a LAN peer listens on the LAN)
    port: int = DEFAULT_LAN_PORT
    pairing_port: int | None = None  # default: PORT+1
    announce_address: str | None = None  # default: the LAN route's source address
    interfaces: list[str] | None = field(default=None)  # mDNS interfaces (default: all)
    browse_seconds: float = 1.5
    # All announced names not yet resolved get this long together, a round (bare
    # announcements that never resolve must not eat the round).
    resolve_seconds: float = discovery.RESOLVE_SECONDS
    peer_timeout: float = 10.0  # a silent peer, once connected
    handshake_timeout: float = 3.0  # to connect, and for the TLS handshake
    round_seconds: float = 30.0  # no new peer is started after this (browsing included)
    new_peers_per_round: int = 3  # addresses never verified tried in one round
    # An address never verified that failed waits this long before it is tried again,
    # doubling up to the cap (with jitter: between half and all of it).
    retry_seconds: float = 120.0
    retry_cap_seconds: float = 1800.0


@dataclass(frozen=True)
class LanRound:
    """What one round of peer sessions did."""

    peers: int = 0  # trusted peers synced with
    reports: tuple[SyncReport, ...] = ()
    addresses: tuple[str, ...] = ()  # theirs (host:port), where attachments can be fetched
    # Clinic devices that proved who they are, then refused this workstation's certificate
    # with a TLS alert (revoked, most likely: RefusedByPeerError).
    refused: int = 0
    # Clinic devices (verified there now or before) whose session failed for a reason that
    # passes: closed without answering (busy: PeerClosedError), no answer in time, the
    # connection refused or cut. Tried again at the next round; one that has not answered
    # at all for ``_REPORT_GONE_AFTER`` rounds is gone for now and no longer counted.
    unreachable: int = 0


def _passing(exc: Exception) -> bool:
    """A failure that waiting may mend: the connection (closed without an answer, timed
    out, refused), not the peer's certificate nor what it sent."""
    return isinstance(exc, TransportError) and not isinstance(
        exc, RefusedByPeerError | PeerRejectedError | ReplyTooLargeError
    )


class LanNode:
    """Serves this workstation to LAN peers and syncs with the peers it finds."""

    def __init__(self, options: LanOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: PeerServer | None = None
        self._advertiser: discovery.Advertiser | None = None
        self._browser: discovery.PeerBrowser | None = None
        self._stopper: threading.Thread | None = None
        # Peer bookkeeping, touched by the sync thread only: address -> when it last synced
        # (a clinic device verified there; 0.0: verified, never synced), address ->
        # (failures in a row, not before), and this workstation's own addresses.
        self._verified: dict[str, float] = {}
        self._failed: dict[str, tuple[int, float]] = {}
        self._own: set[str] = set()
        self._rng = random.Random()  # noqa: S311 (order and jitter, not a secret)

    @property
    def serving(self) -> bool:
        """True while the peer server listens."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The sync port being served (0 when not serving)."""
        server = self._server
        return server.port if server is not None else 0

    @property
    def pairing_port(self) -> int | None:
        """The pairing listener's port (only on the workstation holding the clinic CA)."""
        server = self._server
        return server.pairing_port if server is not None else None

    def resume(self) -> None:
        """Allow serving again (after an unlock). Does not block: :meth:`ensure_serving`,
        on the sync thread, first waits for a stop still in progress."""
        self._stopping.clear()

    def ensure_serving(self, db: Database, identity: LanIdentity) -> None:
        """Start the peer server and the mDNS announcement if they are not running; a
        running server presents ``identity`` from now on (this device may have been
        re-certified since it started, its old certificate revoked)."""
        if not self.options.enabled:
            return
        self.wait_stopped()
        with self._lock:
            if self._server is not None:
                self._server.use_identity(identity)
                # A revocation made or received since: refused in the handshake now.
                self._server.refresh_revocations()
                return
            if self._stopping.is_set():
                return
            opts = self.options
            server = PeerServer(db, identity, opts.host, opts.port, opts.pairing_port)
            try:
                server.start()
            except OSError as exc:
                log.warning("cannot serve LAN peers on port %d: %s", opts.port, exc)
                return
            self._server = server
            announce = opts.announce_address
            if announce is None and opts.host not in ("0.0.0.0", ""):  # noqa: S104
                announce = opts.host
            try:
                self._advertiser = discovery.Advertiser(server.port, announce, opts.interfaces)
                # Browse continuously on the announcing instance: a short-lived second
                # instance on port 5353 may never see the unicast answers to its first
                # questions (the kernel hands them to one of the sockets sharing the port).
                self._browser = discovery.PeerBrowser(self._advertiser.zeroconf)
            except OSError as exc:
                log.warning("mDNS announcement unavailable: %s", exc)
            log.info("serving LAN peers on port %d", server.port)

    def sync_peers(
        self,
        db: Database,
        identity: LanIdentity,
        actor: str,
        wrap: Callable[[LanTransport], Transport] | None = None,
    ) -> LanRound:
        """Browse for peers and sync with each trusted one; failures are logged, not raised.

        Bounded whatever is announced: verified addresses first (before browsing), then at
        most ``new_peers_per_round`` others in random order (those that failed wait before
        they are tried again); none is started after the round's deadline (a session
        under way, with a verified clinic device, finishes)."""
        if not self.options.enabled or self._stopping.is_set():
            return LanRound()
        opts = self.options
        deadline = time.monotonic() + opts.round_seconds
        candidates = self._candidates(deadline)
        revoked = lan_id.revoked_serials(db)
        ca_holder = lan_id.has_ca_key(db)
        peers = 0
        reports: list[SyncReport] = []
        addresses: list[str] = []
        refused = unreachable = 0
        new_tried = 0
        for address in candidates:
            if self._stopping.is_set():
                break
            if time.monotonic() >= deadline:
                log.info("LAN round deadline passed; %s and later peers wait", address)
                break
            if address not in self._verified:
                if new_tried >= opts.new_peers_per_round:
                    continue
                new_tried += 1
            transport = LanTransport(
                address,
                identity,
                revoked,
                timeout=opts.peer_timeout,
                handshake_timeout=opts.handshake_timeout,
            )
            try:
                # A certificate from before op signing is bound first (by the CA holder).
                certify_if_unbound(db, transport, actor)
                target: Transport = wrap(transport) if wrap is not None else transport
                report = sync(db, target, actor)
            except Exception as exc:  # an untrusted or unreachable peer is skipped
                log.info("LAN peer %s skipped: %s", address, exc)
                device = transport.peer_device
                if isinstance(exc, RefusedByPeerError):
                    refused += 1
                elif (
                    _passing(exc)
                    and device != identity.device_id
                    and (device is not None or self._lately_verified(address))
                ):
                    unreachable += 1  # a clinic device, busy or not answering this time
                if ca_holder and device is not None:
                    self._saw(db, device, address, identity)
                self._note_failure(address, verified=device is not None)
                continue
            finally:
                transport.close()
            self._failed.pop(address, None)
            if transport.peer_device == identity.device_id:
                self._own.add(address)  # ourselves, announced on another address
                continue
            if ca_holder and transport.peer_device is not None:
                self._saw(db, transport.peer_device, address, identity)
            self._verified[address] = time.monotonic()
            peers += 1
            reports.append(report)
            addresses.append(address)
        return LanRound(peers, tuple(reports), tuple(addresses), refused, unreachable)

    @staticmethod
    def _saw(db: Database, device: str, address: str, identity: LanIdentity) -> None:
        """On the clinic's LAN CA holder: note where a verified device was found (for
        Settings → Paired workstations…); never fails the round."""
        if device == identity.device_id:
            return
        try:
            sightings.note_seen(db, device, address)
        except Exception as exc:
            log.info("could not note where device %s was seen: %s", device, exc)

    def _candidates(self, deadline: float) -> Iterator[str]:
        """The addresses worth trying this round, in the order to try them: verified ones,
        announced now or not (those whose last attempt worked first, the least recently
        synced first), then, browsed only once those were tried, the others announced and
        not waiting after a failure, in random order."""
        verified = sorted(
            (a for a in self._verified if a not in self._own),
            key=lambda a: (a in self._failed, self._verified[a]),
        )
        yield from verified
        if self._stopping.is_set() or time.monotonic() >= deadline:
            return
        own = self._advertiser.instance if self._advertiser is not None else None
        now = time.monotonic()
        others = sorted(
            {
                p.address
                for p in self._seen(deadline)
                if p.instance != own
                and p.address not in self._own
                and p.address not in self._verified
                and self._failed.get(p.address, (0, 0.0))[1] <= now
            }
        )
        self._rng.shuffle(others)
        yield from others

    def _lately_verified(self, address: str) -> bool:
        """A clinic device was verified at ``address`` and it has not failed to answer
        ``_REPORT_GONE_AFTER`` rounds in a row since (counted before this round's)."""
        failures = self._failed.get(address, (0, 0.0))[0]
        return address in self._verified and failures < _REPORT_GONE_AFTER

    def _note_failure(self, address: str, verified: bool) -> None:
        """Count a failed attempt at ``address``; ``verified``: its certificate proved a
        clinic device this time (the session failed after). An address never verified
        waits before it is tried again (doubling); one where a clinic device was verified
        does not (a workstation signing in again must not wait minutes for its peers),
        but goes after those whose last attempt worked: only a clinic certificate makes
        an address verified, so a flood cannot add to them."""
        if verified:
            self._verified.setdefault(address, 0.0)
        failures = self._failed.pop(address, (0, 0.0))[0] + 1
        if not verified and failures >= _FORGET_VERIFIED_AFTER and address in self._verified:
            del self._verified[address]
            return
        if len(self._failed) >= _MAX_FAILED_TRACKED:  # a flood of addresses: forget the oldest
            del self._failed[next(iter(self._failed))]
        wait = 0.0
        if address not in self._verified:
            opts = self.options
            wait = backoff(failures, opts.retry_seconds, opts.retry_cap_seconds, self._rng)
        self._failed[address] = (failures, time.monotonic() + wait)

    def announced(self) -> list[discovery.SeenPeer]:
        """The peers announced over mDNS right now, unauthenticated, as a round finds them
        (none while not serving: a round then browses anew)."""
        browser = self._browser
        return browser.peers(time.monotonic() + 1.0) if browser is not None else []

    def _seen(self, deadline: float) -> list[discovery.SeenPeer]:
        advertiser = self._advertiser
        opts = self.options
        if advertiser is None:
            try:
                return discovery.browse(
                    opts.browse_seconds, opts.interfaces, deadline, self._stopping
                )
            except OSError as exc:
                log.info("mDNS browse failed: %s", exc)
                return []
        browser = self._browser
        if browser is None:
            return []
        return browser.peers(deadline, opts.resolve_seconds, self._stopping)

    def stop(self) -> None:
        """Stop serving and announcing, in a background thread (see :meth:`wait_stopped`)."""
        self._stopping.set()
        if self._stopper is not None and self._stopper.is_alive():
            return
        self._stopper = threading.Thread(target=self._stop_now, name="lan-stop", daemon=True)
        self._stopper.start()

    def wait_stopped(self, timeout: float = 15.0) -> None:
        """Block until a stop in progress has finished (never on the GUI thread)."""
        stopper = self._stopper
        if stopper is not None:
            stopper.join(timeout)

    def _stop_now(self) -> None:
        with self._lock:
            advertiser, self._advertiser = self._advertiser, None
            browser, self._browser = self._browser, None
            if browser is not None:
                try:
                    browser.cancel()
                except Exception as exc:
                    log.info("mDNS browser did not stop cleanly: %s", exc)
            server, self._server = self._server, None
            if advertiser is not None:
                try:
                    advertiser.close()
                except Exception as exc:
                    log.info("mDNS withdrawal failed: %s", exc)
            if server is not None:
                server.stop()
