"""PROXY protocol version 2 in front of TLS, from trusted load balancers only.

A load balancer passing TLS through untouched (HAProxy ``mode tcp``) connects to the server
from its own address, so every client would look like the balancer: the enrollment limit
would count the whole clinic as one address, and the security log could not tell an
attacker from a workstation. With ``send-proxy-v2`` HAProxy first sends a short binary
header naming the client's address, then the client's bytes (TLS) untouched.

:class:`ProxyProtocolHttp` wraps uvicorn's HTTP protocol. A connection from an address in
``PROXY_PROTOCOL_FROM`` must begin with a valid version 2 header (else it is dropped): its
client address becomes the request's ``client``. A ``LOCAL`` header (HAProxy's own health
checks) or an address family other than TCP over IPv4/IPv6 keeps the balancer's address.
Any other peer speaks TLS at once, and a header from it is not believed: the connection's
first bytes are peeked at (not read), and a PROXY header there (version 2's signature or
version 1's ``PROXY ``) closes it, logged as an error once per address every few minutes
(a balancer in front of a server that does not list it: the usual mistake, which TLS alone
would only show as a handshake failure, and log nothing). A balancer's header is read with
buffers of exactly its size, so not one byte of the TLS stream after it is consumed; TLS then
starts on the same connection (``loop.start_tls``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
import struct
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("careline.server")

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_FIXED = struct.Struct("!12sBBH")  # signature, version|command, family|protocol, length
# Addresses, then TLVs Careline ignores; HAProxy sends none unless configured to.
MAX_BODY = 1024
HEADER_TIMEOUT = 5.0  # a balancer sends the header at once
V1_START = b"PROXY "
# A TLS client speaks first; one that has said nothing by then is dropped (as uvicorn's own
# TLS handshake timeout would).
FIRST_BYTES_TIMEOUT = 60.0
UNLISTED_LOG_EVERY_S = 300.0  # the unlisted-balancer error, per address
_unlisted_logged: dict[str, float] = {}
_TCP4, _TCP6 = 0x11, 0x21
_ADDRESSES = {_TCP4: struct.Struct("!4s4sHH"), _TCP6: struct.Struct("!16s16sHH")}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyHeaderError(ValueError):
    """The bytes are not a PROXY protocol version 2 header."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """The balancer addresses of ``PROXY_PROTOCOL_FROM``: addresses or networks, comma- or
    space-separated (ValueError naming the one that is neither)."""
    found = []
    for item in text.replace(",", " ").split():
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    if not found:
        raise ValueError("it names no address")
    return tuple(found)


def header_length(fixed: bytes) -> int:
    """From the first 16 bytes: how many more bytes the header has (ProxyHeaderError if
    they are not the start of a version 2 header, or announce more than MAX_BODY)."""
    signature, version_command, _, length = _FIXED.unpack(fixed)
    if signature != SIGNATURE or version_command >> 4 != 2:
        raise ProxyHeaderError("not a PROXY protocol version 2 header")
    if version_command & 0x0F not in (0, 1):
        raise ProxyHeaderError(f"unknown PROXY command {version_command & 0x0F}")
    if length > MAX_BODY:
        raise ProxyHeaderError(f"a {length}-byte PROXY header, more than {MAX_BODY}")
    return int(length)


def client_of(fixed: bytes, body: bytes) -> tuple[str, int] | None:
    """The client address and port a whole header names; None for ``LOCAL`` (the
    balancer's own connection) or an address family other than TCP over IPv4/IPv6."""
    _, version_command, family, _ = _FIXED.unpack(fixed)
    layout = _ADDRESSES.get(family)
    if version_command & 0x0F == 0 or layout is None:
        return None
    if len(body) < layout.size:
        raise ProxyHeaderError("the PROXY header is too short for its addresses")
    source, _, port, _ = layout.unpack_from(body)
    return str(ipaddress.ip_address(source)), int(port)


def proxy_protocol_http(
    inner: type[asyncio.Protocol], tls: ssl.SSLContext, trusted: Iterable[Network]
) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol class ``inner``, behind PROXY headers from ``trusted``
    and TLS with ``tls`` (run uvicorn itself without TLS: this class does it)."""
    return type(
        "ProxyProtocolHttp",
        (ProxyProtocolHttp,),
        {"inner": inner, "tls": tls, "trusted": tuple(trusted)},
    )


class ProxyProtocolHttp(asyncio.BufferedProtocol):
    """One connection: the PROXY header (from a trusted peer), then TLS, then HTTP by
    ``inner``. Configured by :func:`proxy_protocol_http`."""

    inner: type[asyncio.Protocol]
    tls: ssl.SSLContext
    trusted: tuple[Network, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        self._http: Any = self.inner(**kwargs)  # uvicorn's (config, server_state, ...)
        self._buffer = bytearray(_FIXED.size)
        self._got = 0
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._peek: socket.socket | None = None  # while the first bytes are awaited

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """From a balancer: wait for its header. From anyone else: TLS at once."""
        self._transport = cast_transport(transport)
        peer = transport.get_extra_info("peername")
        try:
            address = ipaddress.ip_address(peer[0]) if peer else None
        except ValueError:
            address = None
        loop = asyncio.get_running_loop()
        if address is not None and any(address in net for net in self.trusted):
            self._timer = loop.call_later(HEADER_TIMEOUT, self._drop, "no PROXY header in time")
        elif not self._watch_first_bytes(loop):
            self._start_tls(None)

    def _watch_first_bytes(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Wait, without reading, until the peer's first bytes arrive (then
        :meth:`_first_bytes`); False where the socket cannot be watched so (an event loop
        without ``add_reader``: then TLS starts at once, as before)."""
        assert self._transport is not None
        sock = self._transport.get_extra_info("socket")
        try:
            # A second descriptor of the same socket: the loop refuses to watch the one
            # the transport owns, and the transport's own reading is paused meanwhile.
            self._peek = socket.socket(fileno=os.dup(sock.fileno()))
        except (AttributeError, OSError):
            return False
        self._transport.pause_reading()
        try:
            loop.add_reader(self._peek.fileno(), self._first_bytes)
        except (NotImplementedError, RuntimeError, OSError):
            self._stop_peeking()
            return False
        self._timer = loop.call_later(FIRST_BYTES_TIMEOUT, self._quiet_peer)
        return True

    def _first_bytes(self) -> None:
        """The peer has sent something: a PROXY header is refused (and logged), anything
        else goes to TLS, unread."""
        assert self._transport is not None and self._peek is not None
        try:
            first = self._peek.recv(len(SIGNATURE), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        header = first.startswith(SIGNATURE) or first.startswith(V1_START)
        if first and not header and (SIGNATURE.startswith(first) or V1_START.startswith(first)):
            # The start of a header, not all of it yet (a level-triggered reader would
            # call again at once): look again shortly.
            self._pause_peeking()
            return
        self._stop_peeking()
        if not first:  # closed (or reset) before a byte: nothing to serve
            self._transport.abort()
        elif header:
            self._unlisted_header()
        else:
            self._start_tls(None)

    def _pause_peeking(self) -> None:
        assert self._peek is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._peek.fileno())
        loop.call_later(0.05, self._resume_peeking)

    def _resume_peeking(self) -> None:
        if self._peek is not None:
            asyncio.get_running_loop().add_reader(self._peek.fileno(), self._first_bytes)

    def _stop_peeking(self) -> None:
        if self._peek is not None:
            asyncio.get_running_loop().remove_reader(self._peek.fileno())
            self._peek.close()
            self._peek = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _quiet_peer(self) -> None:
        self._timer = None
        self._stop_peeking()
        assert self._transport is not None
        self._transport.abort()

    def _unlisted_header(self) -> None:
        """A PROXY header from an address PROXY_PROTOCOL_FROM does not list: closed, and
        said once per address every UNLISTED_LOG_EVERY_S (a balancer's health checks would
        otherwise fill the log)."""
        assert self._transport is not None
        peer = self._transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        now = time.monotonic()
        last = _unlisted_logged.get(address)
        if last is None or now - last >= UNLISTED_LOG_EVERY_S:
            if len(_unlisted_logged) > 1024:  # many senders: forget the old ones
                _unlisted_logged.clear()
            _unlisted_logged[address] = now
            log.error(
                "a PROXY protocol header arrived from %s, which is not in "
                "PROXY_PROTOCOL_FROM: add it (installers/README.md, Scale-out); its "
                "connections are closed until then",
                address,
            )
        self._transport.abort()

    def get_buffer(self, sizehint: int) -> memoryview:
        """Exactly the rest of the header: no byte of the TLS stream after it is read."""
        return memoryview(self._buffer)[self._got :]

    def buffer_updated(self, nbytes: int) -> None:
        """Count what arrived; once the header is whole, start TLS with its client."""
        self._got += nbytes
        if self._got < len(self._buffer):
            return
        try:
            if len(self._buffer) == _FIXED.size:
                more = header_length(bytes(self._buffer))
                if more:
                    self._buffer = self._buffer + bytearray(more)  # (a view pins the old)
                    return
            fixed, body = bytes(self._buffer[: _FIXED.size]), bytes(self._buffer[_FIXED.size :])
            client = client_of(fixed, body)
        except ProxyHeaderError as exc:
            self._drop(str(exc))
            return
        if self._timer is not None:
            self._timer.cancel()
        self._start_tls(client)

    def eof_received(self) -> bool:
        """The peer closed before TLS began: close."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Lost before TLS began (after, the TLS layer tells the HTTP protocol)."""
        self._stop_peeking()
        if self._timer is not None:
            self._timer.cancel()

    def _drop(self, reason: str) -> None:
        assert self._transport is not None
        peer = self._transport.get_extra_info("peername")
        log.warning("connection from balancer %s dropped: %s", peer[0] if peer else "?", reason)
        self._transport.abort()

    def _start_tls(self, client: tuple[str, int] | None) -> None:
        assert self._transport is not None
        self._transport.pause_reading()  # start_tls resumes reading under TLS
        asyncio.get_running_loop().create_task(self._handshake(self._transport, client))

    async def _handshake(self, raw: asyncio.Transport, client: tuple[str, int] | None) -> None:
        # The HTTP protocol may only see the connection once TLS is up; bytes decrypted in
        # between (a client sending its request with its last handshake message) wait in
        # the hand-off and reach it in order.
        handoff = _Handoff()
        try:
            secure = await asyncio.get_running_loop().start_tls(
                raw, handoff, self.tls, server_side=True
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            raw.abort()
            return
        if secure is None:  # the connection closed during the handshake
            raw.abort()
            return
        secure.set_protocol(self._http)
        self._http.connection_made(secure)
        if client is not None:
            self._http.client = client  # what the ASGI scope's "client" is made of
        handoff.hand_over(self._http)


class _Handoff(asyncio.Protocol):
    """The TLS connection's protocol until the HTTP protocol has it: keeps what arrives."""

    def __init__(self) -> None:
        self._events: list[tuple[str, Any]] = []

    def data_received(self, data: bytes) -> None:
        """Kept for the HTTP protocol."""
        self._events.append(("data", data))

    def eof_received(self) -> bool:
        """Kept for the HTTP protocol."""
        self._events.append(("eof", None))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """Kept for the HTTP protocol."""
        self._events.append(("lost", exc))

    def hand_over(self, http: Any) -> None:
        """Give ``http`` what arrived meanwhile, in order."""
        for kind, value in self._events:
            if kind == "data":
                http.data_received(value)
            elif kind == "eof":
                http.eof_received()
            else:
                http.connection_lost(value)


def cast_transport(transport: asyncio.BaseTransport) -> asyncio.Transport:
    """The accepted connection's transport (a stream transport: uvicorn listens on TCP)."""
    assert isinstance(transport, asyncio.Transport)
    return transport
