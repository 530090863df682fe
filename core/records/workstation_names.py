"""The names people gave the clinic's workstations, by the replica each speaks for, so that
a conflict or a note's draft says "on Front desk 2 (device 56572a7b)" rather than "on
workstation 4a5d1b37": the name staff gave it, and the start of the device id IT sees in
``careline-server admin device list`` (a replica id is neither).

The clinic server knows every device's name (given when it enrolled), its id and the replica
its certificate is bound to, and sends the list with each sync reply; a workstation keeps
the last list it received in its own ``meta`` table (never replicated: each replica keeps
its own copy, and one that syncs only over the LAN has none until it reaches the server).
Nothing here is trusted for anything but display: an op's origin is proved by its
signature, never by a name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from core.store.database import Database, Transaction

_META_KEY = "workstation_names"


def workstation_names(db: Database | Transaction) -> dict[str, str]:
    """Replica id -> how to name its workstation: ``Front desk 2 (device 56572a7b)``
    (empty: none received)."""
    rows = db.query("SELECT value FROM meta WHERE key = ?", (_META_KEY,))
    if not rows:
        return {}
    kept = json.loads(str(rows[0][0]))
    if not isinstance(kept, dict):
        return {}
    return {
        str(replica): f"{entry[0]} (device {str(entry[1])[:8]})"
        for replica, entry in kept.items()
        if isinstance(entry, list) and len(entry) == 2
    }


def keep_workstation_names(db: Database, names: Mapping[str, tuple[str, str]], actor: str) -> bool:
    """Keep the list the server sent ((name, device id) by replica) in place of the one
    held; written (and audited) only when it changed. True if it did."""
    wanted = {replica: list(entry) for replica, entry in sorted(names.items())}
    rows = db.query("SELECT value FROM meta WHERE key = ?", (_META_KEY,))
    if rows and json.loads(str(rows[0][0])) == wanted:
        return False
    with db.write(actor, "device.names", "meta", _META_KEY) as tx:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_META_KEY, json.dumps(wanted)),
        )
    return True


def describe_workstation(replica: str, here: str, names: Mapping[str, str]) -> str:
    """``this workstation``; ``Front desk 2 (device 56572a7b)`` when the server has named
    it (``names``: :func:`workstation_names`); else ``workstation 4a5d1b37`` (its replica
    id's start)."""
    if replica == here:
        return "this workstation"
    return names.get(replica) or f"workstation {replica[:8]}"
