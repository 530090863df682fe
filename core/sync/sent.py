"""How many of this replica's own changes no other replica is known to hold.

The op log is the sync queue: this replica's own ops are numbered 1, 2, 3… under its
replica id, and another replica holds them up to the seq its version vector names for
that id. Each sync session is told that vector (in every pull and push reply), so at its
end this replica keeps the highest seq of its own that the other side held, in ``meta``
(key ``oplog_acknowledged``, audited as ``sync.acknowledged``, written only when it grows:
at most once a session). What waits to be sent is then the ops above it, counted from the
store, so the count survives a restart.

Not kept from sessions with a side that anchors this replica's audit log (the clinic
server): an entry written after the head it just recorded would cost each following
session a round trip to offer it again (README, "Performance: the one-edit sync"). LAN
sessions keep it; the desktop app counts what the server acknowledged while it runs.

Not known until the first session that worked since this was recorded: a replica
upgraded from an earlier release, or one that never synced with a LAN peer, has no such
entry (:func:`unsent` is None). The entry names the replica id it counts for: a replica
that took a new id (restored from a backup) starts afresh.
"""

from __future__ import annotations

import json

from core.store.database import Database
from core.store.oplog import identity, version_vector

META_KEY = "oplog_acknowledged"
ACTION = "sync.acknowledged"


def acknowledged(db: Database) -> int | None:
    """The highest seq of this replica's own ops another replica reported holding at the
    end of a sync session; None when none is recorded for this replica id."""
    rows = db.query("SELECT value FROM meta WHERE key = ?", (META_KEY,))
    if not rows:
        return None
    try:
        kept = json.loads(rows[0][0])
        origin, seq = kept["origin"], kept["seq"]
    except (ValueError, TypeError, KeyError):
        return None
    if origin != identity(db).replica_id or not isinstance(seq, int):
        return None
    return seq


def remember(db: Database, seq: int, actor: str) -> bool:
    """Keep ``seq`` as acknowledged if it is higher than what is kept; True if written."""
    kept = acknowledged(db)
    if kept is not None and seq <= kept:
        return False
    origin = identity(db).replica_id
    value = json.dumps({"origin": origin, "seq": seq})
    with db.write(actor, ACTION, "meta", META_KEY, {"seq": seq}) as tx:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (META_KEY, value),
        )
    return True


def own_seq(db: Database) -> int:
    """The seq of this replica's newest own op (0: none yet)."""
    return version_vector(db).get(identity(db).replica_id, 0)


def unsent(db: Database) -> int | None:
    """How many of this replica's own ops no other replica is known to hold (None: not
    known yet, see the module docstring)."""
    kept = acknowledged(db)
    return None if kept is None else max(own_seq(db) - kept, 0)
