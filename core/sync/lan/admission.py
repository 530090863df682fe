"""How many connections a LAN listener holds, and which one gives way to a newcomer.

A connection is *pending* from the moment it is accepted until its peer has proved who it
is (on the sync listener: a clinic device certificate, checked against the revoked
serials), and for its whole life on the pairing listener, where no one has credentials.
Anyone on the LAN can open pending connections, so they are bounded per source address and
in total. At either bound the **oldest pending connection gives way** (its socket is shut
down) instead of the newcomer being refused: a genuine TLS handshake takes milliseconds, so
the oldest is the stalled one, and a peer behind the same address as an attacker (NAT, or
127.0.0.1 in the tests) still gets in. Refusing newcomers would let a few idle sockets
per address lock everyone out of that address for as long as the attacker likes.

Authenticated *sessions* are counted apart, per device and in total: they belong to
enrolled devices, whose certificates can be revoked, and a burst of strangers must never
cut them. A session over its bound is refused (the device retries later).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

PENDING_PER_ADDRESS = 8
PENDING_TOTAL = 64
SESSIONS_PER_DEVICE = 4
SESSIONS_TOTAL = 32


@dataclass(eq=False)
class Ticket:
    """One admitted connection."""

    address: str
    sock: socket.socket
    device: str | None = None  # set once it is an authenticated session
    cut: bool = field(default=False)  # shut down to make room for a newer connection


class ConnectionGate:
    """Admission for one listener; thread-safe (the accept loop admits, connection threads
    promote and release)."""

    def __init__(
        self,
        pending_per_address: int = PENDING_PER_ADDRESS,
        pending_total: int = PENDING_TOTAL,
        sessions_per_device: int = SESSIONS_PER_DEVICE,
        sessions_total: int = SESSIONS_TOTAL,
    ) -> None:
        self.pending_per_address = pending_per_address
        self.pending_total = pending_total
        self.sessions_per_device = sessions_per_device
        self.sessions_total = sessions_total
        self._lock = threading.Lock()
        self._pending: OrderedDict[Ticket, None] = OrderedDict()  # oldest first
        self._by_address: dict[str, deque[Ticket]] = {}
        self._sessions: dict[str, set[Ticket]] = {}

    def admit(self, address: str, sock: socket.socket) -> tuple[Ticket, list[Ticket]]:
        """Admit a new pending connection; returns it and the connections cut for it."""
        ticket = Ticket(address, sock)
        cut: list[Ticket] = []
        with self._lock:
            mine = self._by_address.get(address)
            if mine is not None and len(mine) >= self.pending_per_address:
                cut.append(self._cut(mine[0]))
            elif len(self._pending) >= self.pending_total:
                cut.append(self._cut(next(iter(self._pending))))
            self._pending[ticket] = None
            self._by_address.setdefault(address, deque()).append(ticket)
        return ticket, cut

    def promote(self, ticket: Ticket, device: str) -> bool:
        """Make a pending connection an authenticated session of ``device``; False (and
        nothing counted) when that device or the listener already holds as many as allowed."""
        with self._lock:
            if ticket.cut:
                return False
            self._drop_pending(ticket)
            held = self._sessions.get(device, set())
            total = sum(len(s) for s in self._sessions.values())
            if len(held) >= self.sessions_per_device or total >= self.sessions_total:
                return False
            ticket.device = device
            self._sessions.setdefault(device, set()).add(ticket)
            return True

    def release(self, ticket: Ticket) -> None:
        """Forget a connection; call before closing its socket."""
        with self._lock:
            self._drop_pending(ticket)
            if ticket.device is not None:
                held = self._sessions.get(ticket.device, set())
                held.discard(ticket)
                if not held:
                    self._sessions.pop(ticket.device, None)

    def close_all(self) -> None:
        """Shut down every connection (the listener is stopping)."""
        with self._lock:
            for ticket in list(self._pending):
                self._cut(ticket)
            for held in self._sessions.values():
                for ticket in held:
                    _shut(ticket.sock)

    def counts(self) -> tuple[int, int]:
        """(pending connections, authenticated sessions) held now."""
        with self._lock:
            return len(self._pending), sum(len(s) for s in self._sessions.values())

    def _cut(self, ticket: Ticket) -> Ticket:
        # Under the lock, and a connection thread releases its ticket before it closes the
        # socket: so the descriptor shut down here is still this connection's.
        self._drop_pending(ticket)
        ticket.cut = True
        _shut(ticket.sock)
        return ticket

    def _drop_pending(self, ticket: Ticket) -> None:
        if ticket in self._pending:
            del self._pending[ticket]
            mine = self._by_address[ticket.address]
            mine.remove(ticket)
            if not mine:
                del self._by_address[ticket.address]


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown (not SSLSocket's, which also drops the TLS state another
    # thread may be using): the thread blocked reading this socket wakes up with EOF.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
