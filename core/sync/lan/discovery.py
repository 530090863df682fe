"""mDNS (zeroconf) discovery of LAN peers: a hint only, never trust.

The service is ``_careline._tcp.local.``; the instance name and TXT record carry only a
protocol version and a random instance id: no clinic, user or patient names.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

from zeroconf import ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from core.sync.backoff import backoff

log = logging.getLogger(__name__)

SERVICE_TYPE = "_careline._tcp.local."
PROTOCOL_VERSION = "1"


@dataclass(frozen=True)
class SeenPeer:
    """A peer advertised over mDNS (unauthenticated)."""

    instance: str
    host: str
    port: int
    version: str

    @property
    def address(self) -> str:
        """HOST:PORT."""
        return f"{self.host}:{self.port}"


class Advertiser:
    """Announces a peer server until closed."""

    def __init__(self, port: int, address: str | None = None, interfaces: list[str] | None = None):
        self.instance = secrets.token_hex(8)
        address = address or lan_address()
        self._zc = _zeroconf(interfaces)
        self.info = ServiceInfo(
            SERVICE_TYPE,
            f"{self.instance}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties={"v": PROTOCOL_VERSION, "id": self.instance},
            server=f"careline-{self.instance}.local.",
        )
        self._zc.register_service(self.info)

    @property
    def zeroconf(self) -> Zeroconf:
        """The announcing mDNS instance. Browse on it rather than on a second instance: two
        listeners in one process share port 5353 and one of them can miss unicast answers."""
        return self._zc

    def close(self) -> None:
        """Withdraw the announcement."""
        try:
            self._zc.unregister_service(self.info)
        finally:
            self._zc.close()


# Announced names held at most: a clinic has a few dozen workstations, and each name is
# anyone's to announce (one packet can carry hundreds; nothing else bounds them).
MAX_NAMES = 256
# Seconds all the names not in the cache get, together, to resolve in one call of
# :meth:`PeerBrowser.peers` (an honest peer answers in milliseconds; a name announced
# with no records behind it never does).
RESOLVE_SECONDS = 2.0
# A name that did not resolve is not asked for again for this long, doubling up to the cap
# (with jitter), so bare announcements cost one resolution budget, not one per round.
RETRY_SECONDS = 120.0
RETRY_CAP_SECONDS = 1800.0
# Unresolved names remembered at most (the oldest forgotten first).
_MAX_FAILED_NAMES = 4096


class _Collector(ServiceListener):
    """The announced names, at most :data:`MAX_NAMES`; called on zeroconf's thread."""

    def __init__(self, waiting: Callable[[str], bool]) -> None:
        self.names: set[str] = set()
        self._waiting = waiting  # name -> True while it waits after failing to resolve
        self._lock = threading.Lock()
        self._full_logged = False

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._add(name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._add(name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self._lock:
            self.names.discard(name)

    def snapshot(self) -> list[str]:
        """The names held now."""
        with self._lock:
            return list(self.names)

    def _add(self, name: str) -> None:
        with self._lock:
            if name in self.names:
                return
            if len(self.names) >= MAX_NAMES:
                # Full: a name that failed to resolve makes room (it is still remembered
                # as failed), so a flood of bare names cannot keep a real peer out.
                stale = next((n for n in self.names if self._waiting(n)), None)
                if stale is None:
                    if not self._full_logged:
                        self._full_logged = True
                        log.warning(
                            "more than %d LAN peers announced over mDNS; the others are ignored",
                            MAX_NAMES,
                        )
                    return
                self.names.discard(stale)
            self.names.add(name)


class PeerBrowser:
    """Keeps track of announced peers on an mDNS instance until cancelled."""

    def __init__(self, zc: Zeroconf) -> None:
        self._zc = zc
        # name -> (failed resolutions in a row, not asked for again before: monotonic);
        # read on zeroconf's thread too (by the collector), hence the lock.
        self._failed: dict[str, tuple[int, float]] = {}
        self._failed_lock = threading.Lock()
        self._rng = random.Random()  # noqa: S311 (order and jitter, not a secret)
        self._collector = _Collector(self._waiting)
        self._browser = ServiceBrowser(zc, SERVICE_TYPE, self._collector)

    def peers(
        self,
        deadline: float | None = None,
        budget: float = RESOLVE_SECONDS,
        stop: threading.Event | None = None,
    ) -> list[SeenPeer]:
        """The peers announced right now, resolved to address and port, in random order
        (announced names are anyone's choice: their order must not decide who is asked
        first). Names whose records are cached resolve at once; the others are asked for
        over mDNS all at once, for ``budget`` seconds in all (no later than ``deadline``,
        ``time.monotonic()``, nor once ``stop`` is set). A name that did not resolve is
        skipped, and not asked for again for a while (doubling)."""
        names = self._collector.snapshot()
        self._rng.shuffle(names)
        found: list[SeenPeer] = []
        unresolved: list[str] = []
        now = time.monotonic()
        for name in names:
            info = ServiceInfo(SERVICE_TYPE, name)
            if info.load_from_cache(self._zc):
                self._forget_failure(name)
                found += _seen(name, info)
            elif not self._waiting(name):
                unresolved.append(name)
        if deadline is not None:
            budget = min(budget, deadline - now)
        if not unresolved or budget <= 0 or (stop is not None and stop.is_set()):
            return found
        resolved = self._resolve(unresolved, budget, stop)
        if stop is not None and stop.is_set():
            return found  # cut short: the names not resolved were not given their time
        for name in unresolved:
            answered = resolved.get(name)
            if answered is not None:
                self._forget_failure(name)
                found += _seen(name, answered)
            else:
                self._note_failure(name)
        return found

    def _resolve(
        self, names: list[str], budget: float, stop: threading.Event | None
    ) -> dict[str, ServiceInfo]:
        """Ask for ``names`` over mDNS together, for up to ``budget`` seconds (less if
        ``stop`` is set); those that answered in time."""
        loop = self._zc.loop
        if loop is None:  # closed
            return {}
        infos = {name: ServiceInfo(SERVICE_TYPE, name) for name in names}
        done: dict[str, ServiceInfo] = {}

        async def ask(name: str, info: ServiceInfo) -> None:
            if await info.async_request(self._zc, budget * 1000):
                done[name] = info

        async def ask_all() -> None:
            await asyncio.gather(*(ask(n, i) for n, i in infos.items()))

        pending = asyncio.run_coroutine_threadsafe(ask_all(), loop)
        end = time.monotonic() + budget + 0.5  # async_request stops itself at budget
        while not pending.done():
            left = end - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                break
            futures.wait([pending], timeout=min(left, 0.1))
        pending.cancel()
        return dict(done)

    def _waiting(self, name: str) -> bool:
        """True while ``name`` waits after failing to resolve."""
        with self._failed_lock:
            entry = self._failed.get(name)
        return entry is not None and entry[1] > time.monotonic()

    def _note_failure(self, name: str) -> None:
        with self._failed_lock:
            failures = self._failed.pop(name, (0, 0.0))[0] + 1
            if len(self._failed) >= _MAX_FAILED_NAMES:  # forget the oldest
                del self._failed[next(iter(self._failed))]
            wait = backoff(failures, RETRY_SECONDS, RETRY_CAP_SECONDS, self._rng)
            self._failed[name] = (failures, time.monotonic() + wait)

    def _forget_failure(self, name: str) -> None:
        with self._failed_lock:
            self._failed.pop(name, None)

    def cancel(self) -> None:
        """Stop browsing."""
        self._browser.cancel()


def _seen(name: str, info: ServiceInfo) -> list[SeenPeer]:
    """The announced peer, if its records say where it is."""
    if not info.parsed_addresses() or not info.port:
        return []
    props = {k.decode(): (v or b"").decode(errors="replace") for k, v in info.properties.items()}
    return [
        SeenPeer(
            instance=props.get("id", name.split(".", 1)[0]),
            host=info.parsed_addresses()[0],
            port=int(info.port),
            version=props.get("v", "?"),
        )
    ]


def _zeroconf(interfaces: list[str] | None) -> Zeroconf:
    return Zeroconf(interfaces=interfaces) if interfaces else Zeroconf()


def lan_address() -> str:
    """This host's address on the LAN (the route's source address; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def browse(
    seconds: float = 2.0,
    interfaces: list[str] | None = None,
    deadline: float | None = None,
    stop: threading.Event | None = None,
) -> list[SeenPeer]:
    """Peers announced within ``seconds`` (on ``interfaces``, default: all), resolved as
    :meth:`PeerBrowser.peers` does (until ``deadline``, ``time.monotonic()``, at the
    latest, and not once ``stop`` is set)."""
    zc = _zeroconf(interfaces)
    try:
        browser = PeerBrowser(zc)
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)
        browser.cancel()
        return browser.peers(deadline, stop=stop)
    finally:
        zc.close()


def txt_record(info: ServiceInfo) -> dict[bytes, bytes | None]:
    """The TXT record as announced (for checks)."""
    return dict(info.properties)
