"""Readiness for systemd (``Type=notify``): the sd_notify datagram, without libsystemd.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service and treats it as started once the service sends ``READY=1`` there.
The protocol is one datagram of newline-separated ``KEY=VALUE`` lines, so a socket send
does it: no dependency. :class:`NotifyingServer` sends ``READY=1`` once uvicorn listens,
i.e. once ``/health`` would answer, and ``STOPPING=1`` when it begins to shut down.
Without ``NOTIFY_SOCKET`` (not under systemd, or another service type) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence

import uvicorn

log = logging.getLogger("careline.server")


def notify_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The socket address systemd gave (``@`` turned into the abstract namespace's NUL),
    or None when there is none."""
    value = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value[0] not in "/@":
        raise ValueError(f"NOTIFY_SOCKET={value!r} is neither a path nor an @abstract name")
    return "\0" + value[1:] if value[0] == "@" else value


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd; False when not asked to (no
    NOTIFY_SOCKET). A failed send is logged, not raised: the service keeps serving, and
    systemd's start timeout reports the missing readiness. So is an address this cannot
    use (e.g. systemd 254's ``vsock:``): this runs once the server already listens."""
    try:
        address = notify_address(environ)
    except ValueError as exc:
        log.warning("could not notify systemd (%s): %s", state.split("\n")[0], exc)
        return False
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", state.split("\n")[0], exc)
        return False
    return True


class NotifyingServer(uvicorn.Server):
    """uvicorn's server, telling systemd when it listens and when it stops."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Bind and listen as uvicorn does; then READY=1 (unless start-up failed)."""
        await super().startup(sockets)
        if not self.should_exit:
            config = self.config
            notify(f"READY=1\nSTATUS=serving https://{config.host}:{config.port}")

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        """uvicorn's "running on" line, with the scheme it serves: https. careline-server's
        TLS is started by the PROXY protocol wrapper (``core.server.proxy_protocol``), so
        uvicorn's config holds no TLS context and its own line would say http."""
        config = self.config
        host = "0.0.0.0" if config.host is None else config.host  # noqa: S104 (uvicorn's)
        port = config.port or listeners[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        logging.getLogger("uvicorn.error").info(
            "Uvicorn running on https://%s:%d (Press CTRL+C to quit)", shown, port
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """STOPPING=1, then uvicorn's graceful shutdown, idle connections dropped first."""
        notify("STOPPING=1")
        drop_idle_connections(self)
        await super().shutdown(sockets)


def drop_idle_connections(server: uvicorn.Server) -> int:
    """Close every connection with no request under way at once; returns how many.

    Workstations keep their connection open between sync sessions (core.sync.http_transport,
    KEEPALIVE_S). uvicorn's graceful close of an idle TLS connection sends TLS's close_notify
    and waits for the workstation's, which a workstation between sessions is not reading:
    asyncio waits up to 30 s for it, and the shutdown waits on that. An idle connection
    holds nothing to finish, so it is cut instead; the workstation's next session opens a
    new one. A request under way still runs to its end (uvicorn's graceful shutdown)."""
    dropped = 0
    for connection in list(server.server_state.connections):
        cycle = getattr(connection, "cycle", None)
        transport = getattr(connection, "transport", None)
        if transport is not None and (cycle is None or cycle.response_complete):
            transport.abort()
            dropped += 1
    return dropped
