"""Where the clinic's LAN CA holder last saw each workstation it let join, and when.

Kept in its audit log, like the certificates it issued (``lan.device.issue``), so nothing
new is stored and no schema changes: an entry ``lan.device.seen`` (entity ``device``, the
device id) with the address the device was seen at, written when a device's certificate
was verified on a sync connection either way (it connected to this workstation's peer
server, or this workstation synced with it). The pairing itself is the first sighting: the
``lan.device.issue`` entry of a device paired over the network names the address it paired
from (since this release; earlier pairings did not record it).

Each sync connection would be an entry otherwise, so a device gets at most one entry in
``SAME_ADDRESS_SECONDS`` while its address stays the same, and one in ``MIN_SECONDS``
whatever it does: the time shown is the last sighting to within ``SAME_ADDRESS_SECONDS``.
Only devices that proved their clinic certificate are recorded, and only the CA holder
issued those, so strangers cannot grow the log.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from core.store.database import Database, Transaction

SEEN_ACTION = "lan.device.seen"
ISSUE_ACTION = "lan.device.issue"
SAME_ADDRESS_SECONDS = 600.0
MIN_SECONDS = 60.0


@dataclass(frozen=True)
class Sighting:
    """An address a device was seen at (an IP address, no port) and when (UTC, ISO);
    ``pairing``: it is where the device paired from, not a later sync."""

    address: str
    at: str
    pairing: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {"address": self.address, "at": self.at, "pairing": self.pairing}


def host_of(address: str) -> str:
    """``HOST:PORT`` (or ``[v6]:PORT``) -> the host, which is what identifies a computer."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address
    return host.strip("[]")


def _address_in(details: str) -> str | None:
    try:
        value = json.loads(details).get("address")
    except (ValueError, TypeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _latest(db: Database | Transaction, device_id: str) -> Sighting | None:
    """The latest ``lan.device.seen`` entry for ``device_id`` (audit_log_by_entity)."""
    rows = db.query(
        "SELECT ts, details FROM audit_log WHERE entity_id = ? AND action = ? "
        "AND entity = 'device' ORDER BY seq DESC LIMIT 1",
        (device_id, SEEN_ACTION),
    )
    if not rows:
        return None
    address = _address_in(str(rows[0][1]))
    return Sighting(address, str(rows[0][0])) if address is not None else None


def paired_from(db: Database | Transaction, device_id: str) -> Sighting | None:
    """Where ``device_id`` paired from (its first certificate's entry), if recorded."""
    rows = db.query(
        "SELECT ts, details FROM audit_log WHERE entity_id = ? AND action = ? "
        "AND entity = 'device' ORDER BY seq LIMIT 1",
        (device_id, ISSUE_ACTION),
    )
    if not rows:
        return None
    address = _address_in(str(rows[0][1]))
    return Sighting(address, str(rows[0][0]), pairing=True) if address is not None else None


def last_seen(db: Database | Transaction, device_id: str) -> Sighting | None:
    """The latest address ``device_id`` was seen at: its last recorded sync connection,
    else where it paired from; None when neither is recorded."""
    return _latest(db, device_id) or paired_from(db, device_id)


def note_seen(db: Database, device_id: str, address: str, now: dt.datetime | None = None) -> bool:
    """Record that ``device_id`` (its certificate verified) was seen at ``address`` (an IP
    address or ``HOST:PORT``), unless it was recorded there lately; True if written."""
    host = host_of(address)
    now = now or dt.datetime.now(dt.UTC)
    latest = _latest(db, device_id)
    if latest is not None:
        age = (now - dt.datetime.fromisoformat(latest.at)).total_seconds()
        wait = SAME_ADDRESS_SECONDS if latest.address == host else MIN_SECONDS
        if 0 <= age < wait:
            return False
    with db.write("lan-peer", SEEN_ACTION, "device", device_id, {"address": host}):
        pass
    return True
