"""Attachment transfers as the chart sees them: progress and completion as Qt signals, and
the LAN peers a file can be fetched from.

Uploads and the prefetch (:mod:`app.sync.prefetching`) run on the sync thread (after each
session) and fetches someone asked for on the database worker; all report here from their
own thread, and Qt queues the signals to the GUI thread, where the chart's Attachments tab
shows "uploading 45%" in its "Where" column and reads the list again once a transfer has
finished.

The sync thread records the trusted LAN peers it synced with in its last round; a fetch
tries the clinic server first and then those peers, over the same mutual TLS as peer sync
(``LanTransport`` checks the peer's certificate against the clinic CA and the revoked
serials each time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from core.store.database import Database
from core.sync.lan import identity as lan_id
from core.sync.lan.transport import LanTransport


@dataclass(frozen=True)
class AttachmentSettings:
    """The cache budget (``attachment_cache_mb``) and the share of it files fetched ahead
    of need may take (``attachment_prefetch_percent``; 0: no prefetch, as without the
    app's settings, e.g. in tests that build a window themselves)."""

    cache_mb: int = 2048
    prefetch_percent: int = 0


UPLOAD = "uploading"
DOWNLOAD = "downloading"
Progress = Callable[[int, int], None]


class AttachmentTransfers(QObject):
    """Where attachment transfers stand, for the chart; safe to call from any thread."""

    progressed = Signal(str, str, int)  # blob id, UPLOAD or DOWNLOAD, percent done
    finished = Signal(str)  # blob id: uploaded, or fetched into this workstation's cache

    def __init__(
        self,
        parent: QObject | None = None,
        peer_timeout: float = 10.0,
        settings: AttachmentSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._peers: tuple[str, ...] = ()
        self.peer_timeout = peer_timeout
        self.settings = settings or AttachmentSettings()

    def progress(self, blob_id: str, direction: str) -> Progress:
        """A progress sink for one transfer: emits when the whole percent changes."""
        last = [-1]

        def report(done: int, total: int) -> None:
            percent = min(100, done * 100 // total) if total > 0 else 0
            if percent != last[0]:
                last[0] = percent
                self.progressed.emit(blob_id, direction, percent)

        return report

    def done(self, blob_id: str) -> None:
        """The transfer of ``blob_id`` finished (from any thread)."""
        self.finished.emit(blob_id)

    def set_peers(self, addresses: Sequence[str]) -> None:
        """The trusted LAN peers (host:port) reached in the sync thread's last round."""
        with self._lock:
            self._peers = tuple(dict.fromkeys(addresses))

    def peer_addresses(self) -> tuple[str, ...]:
        """The LAN peers a fetch may ask."""
        with self._lock:
            return self._peers

    def peers_for(self, db: Database) -> list[LanTransport]:
        """Transports to the known LAN peers, with this workstation's LAN identity and the
        clinic's revoked serials; none without a LAN identity."""
        addresses = self.peer_addresses()
        identity = lan_id.load_identity(db) if addresses else None
        if identity is None:
            return []
        revoked = lan_id.revoked_serials(db)
        return [
            LanTransport(address, identity, revoked, timeout=self.peer_timeout)
            for address in addresses
        ]
