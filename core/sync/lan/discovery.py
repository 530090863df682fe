"""mDNS (zeroconf) discovery of LAN peers: a hint only, never trust.

The service is ``_careline._tcp.local.``; the instance name and TXT record carry only a
protocol version and a random instance id: no clinic, user or patient names.
"""

from __future__ import annotations

import random
import secrets
import socket
import time
from dataclasses import dataclass

from zeroconf import ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

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


class _Collector(ServiceListener):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.discard(name)


class PeerBrowser:
    """Keeps track of announced peers on an mDNS instance until cancelled."""

    def __init__(self, zc: Zeroconf) -> None:
        self._zc = zc
        self._collector = _Collector()
        self._browser = ServiceBrowser(zc, SERVICE_TYPE, self._collector)

    def peers(self, deadline: float | None = None) -> list[SeenPeer]:
        """The peers announced right now, resolved to address and port, in random order
        (announced names are anyone's choice: their order must not decide who is asked
        first). Names whose records are cached resolve at once; the others are asked for
        over mDNS, each for up to a second, until ``deadline`` (``time.monotonic()``)."""
        names = list(self._collector.names)
        random.shuffle(names)
        found: list[SeenPeer] = []
        unresolved: list[str] = []
        for name in names:
            info = ServiceInfo(SERVICE_TYPE, name)
            if info.load_from_cache(self._zc):
                found += _seen(name, info)
            else:
                unresolved.append(name)
        for name in unresolved:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                break
            resolved = self._zc.get_service_info(SERVICE_TYPE, name, timeout=int(left * 1000))
            if resolved is not None:
                found += _seen(name, resolved)
        return found

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
    seconds: float = 2.0, interfaces: list[str] | None = None, deadline: float | None = None
) -> list[SeenPeer]:
    """Peers announced within ``seconds`` (on ``interfaces``, default: all), resolved
    until ``deadline`` (``time.monotonic()``) as :meth:`PeerBrowser.peers` does."""
    zc = _zeroconf(interfaces)
    try:
        browser = PeerBrowser(zc)
        time.sleep(seconds)
        browser.cancel()
        return browser.peers(deadline)
    finally:
        zc.close()


def txt_record(info: ServiceInfo) -> dict[bytes, bytes | None]:
    """The TXT record as announced (for checks)."""
    return dict(info.properties)
