"""The running app as a LAN peer: serve peer sync, announce over mDNS, sync with peers found.

Everything here runs off the GUI thread: :class:`LanNode` is driven by the sync thread
(starting to serve, browsing, peer sessions) and stopped from a plain background thread
when the workstation locks, so neither a slow mDNS goodbye nor a listener shutdown ever
blocks the window. A peer found over mDNS is only a hint: each session checks the peer's
certificate against the clinic CA and the revoked serials (``LanTransport``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from core.store.database import Database
from core.sync.lan import discovery
from core.sync.lan import identity as lan_id
from core.sync.lan.certify import certify_if_unbound
from core.sync.lan.identity import LanIdentity
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.session import SyncReport, sync
from core.sync.transport import Transport

log = logging.getLogger(__name__)

# ``careline serve``'s default sync port (pairing listens on PORT+1). Core keeps it only as
# the CLI's argparse default, not as an importable constant, so it is repeated here.
DEFAULT_LAN_PORT = 47390


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
    peer_timeout: float = 10.0


@dataclass(frozen=True)
class LanRound:
    """What one round of peer sessions did."""

    peers: int = 0  # trusted peers synced with
    reports: tuple[SyncReport, ...] = ()
    addresses: tuple[str, ...] = ()  # theirs (host:port), where attachments can be fetched


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
        """Browse for peers and sync with each trusted one; failures are logged, not raised."""
        if not self.options.enabled or self._stopping.is_set():
            return LanRound()
        seen = self._seen()
        own = self._advertiser.instance if self._advertiser is not None else None
        revoked = lan_id.revoked_serials(db)
        peers = 0
        reports: list[SyncReport] = []
        addresses: list[str] = []
        for peer in seen:
            if peer.instance == own or self._stopping.is_set():
                continue
            transport = LanTransport(
                peer.address, identity, revoked, timeout=self.options.peer_timeout
            )
            try:
                # A certificate from before op signing is bound first (by the CA holder).
                certify_if_unbound(db, transport, actor)
                target: Transport = wrap(transport) if wrap is not None else transport
                report = sync(db, target, actor)
            except Exception as exc:  # an untrusted or unreachable peer is skipped
                log.info("LAN peer %s skipped: %s", peer.address, exc)
                continue
            finally:
                transport.close()
            if transport.peer_device == identity.device_id:
                continue  # ourselves, announced on another address
            peers += 1
            reports.append(report)
            addresses.append(peer.address)
        return LanRound(peers, tuple(reports), tuple(addresses))

    def _seen(self) -> list[discovery.SeenPeer]:
        advertiser = self._advertiser
        if advertiser is None:
            try:
                return discovery.browse(self.options.browse_seconds, self.options.interfaces)
            except OSError as exc:
                log.info("mDNS browse failed: %s", exc)
                return []
        if self._browser is None:
            return []
        return self._browser.peers()

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
