"""The names people gave the clinic's workstations, by the replica each speaks for, so that
a conflict or a note's draft says "on Front desk 2" rather than "on workstation 4a5d1b37".

The clinic server knows every device's name (given when it enrolled) and the replica its
certificate is bound to, and sends the whole list with each sync reply; a workstation keeps
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
    """Replica id -> the name its device was enrolled with (empty: none received)."""
    rows = db.query("SELECT value FROM meta WHERE key = ?", (_META_KEY,))
    if not rows:
        return {}
    kept = json.loads(str(rows[0][0]))
    return {str(k): str(v) for k, v in kept.items()} if isinstance(kept, dict) else {}


def keep_workstation_names(db: Database, names: Mapping[str, str], actor: str) -> bool:
    """Keep the list the server sent in place of the one held; written (and audited) only
    when it changed. True if it did."""
    wanted = dict(sorted(names.items()))
    if wanted == workstation_names(db):
        return False
    with db.write(actor, "device.names", "meta", _META_KEY) as tx:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_META_KEY, json.dumps(wanted)),
        )
    return True


def describe_workstation(replica: str, here: str, names: Mapping[str, str]) -> str:
    """``this workstation``, ``Front desk 2 (workstation 4a5d1b37)`` when its name is known,
    else ``workstation 4a5d1b37``. The short id stays beside a name: two devices may share
    one (several computers named after the same host name)."""
    if replica == here:
        return "this workstation"
    short = f"workstation {replica[:8]}"
    name = names.get(replica)
    return f"{name} ({short})" if name else short
