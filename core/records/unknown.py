"""Records this version of Careline cannot fully show, kept for a newer one.

Clinics upgrade one workstation at a time, so a replica receives ops of record types, and
fields of known types, that only a newer release understands. They are stored and relayed
unchanged (``core.records.replication``) and listed in ``unknown_records`` with the parts
that were not understood. Once the replica runs a release that knows them, ``refresh``
derives their rows from the stored documents: nothing has to be synced again.
"""

from __future__ import annotations

from core.records.changes import loaded_from, store_records, stored_records
from core.records.materialize import UNKNOWN_KEY, understands
from core.records.types import RECORD_TYPES
from core.store import oplog
from core.store.database import Database

# Records re-derived per transaction: an upgrade of a large replica proceeds in steps that
# each commit, so an interrupted one resumes where it stopped.
REFRESH_BATCH = 500
RECHECK = "recheck"


def count(db: Database) -> int:
    """How many records hold something this version cannot show."""
    rows = db.query("SELECT count(*) FROM unknown_records WHERE parts != ?", (RECHECK,))
    return int(rows[0][0])


def by_type(db: Database) -> dict[str, int]:
    """``count`` by record type (a type this version does not know is named as sent)."""
    rows = db.query(
        "SELECT type, count(*) FROM unknown_records WHERE parts != ? GROUP BY type ORDER BY type",
        (RECHECK,),
    )
    return {str(r[0]): int(r[1]) for r in rows}


def notice(held: int) -> str | None:
    """What to tell a person when ``held`` records need a newer Careline (None: none do)."""
    if held <= 0:
        return None
    noun = "record" if held == 1 else "records"
    return f"Update Careline to see {held} newer {noun}: newer workstations made them"


def refresh(db: Database, actor: str = "upgrade") -> int:
    """Derive every listed record this version now understands, in committed steps;
    returns how many were re-derived. Cheap when nothing is listed (one query)."""
    done = 0
    after = ""
    known = tuple(RECORD_TYPES)
    marks = ", ".join("?" for _ in known)
    while True:
        rows = db.query(
            f"SELECT id, type, parts FROM unknown_records WHERE id > ? AND type IN ({marks}) "
            "ORDER BY id LIMIT ?",
            (after, *known, REFRESH_BATCH),
        )
        if not rows:
            return done
        after = str(rows[-1][0])
        # Only records of which this version now understands something more: the rest
        # would derive exactly as before.
        ids = [str(r[0]) for r in rows if _worth_deriving(str(r[1]), str(r[2]))]
        if not ids:
            continue
        details = {"records": len(ids)}
        with db.write(actor, "records.rederive", "record_states", ids[0], details) as tx:
            me = oplog.identity(tx)
            stored = stored_records(tx, ids)
            # Unlisted here; store_records lists again what is still not understood (its
            # digest of the unknown parts is forgotten below so it compares against none).
            tx.executemany("DELETE FROM unknown_records WHERE id = ?", [(i,) for i in ids])
            loaded = []
            for record_id, row in stored.items():
                # The other stored digests stay: a part this code derives differently from
                # the older code's (a new column, a value it now reads) has another digest
                # and is rewritten; the rest is left alone.
                item = loaded_from(record_id, str(row[0]), row, me.client_id)
                item.derived.pop(UNKNOWN_KEY, None)
                loaded.append((record_id, str(row[0]), item))
            store_records(tx, loaded)
        done += len(ids)


def _worth_deriving(type_name: str, parts: str) -> bool:
    """A record listed for a recheck, or one part of which this version now understands."""
    if parts == RECHECK:
        return True
    rtype = RECORD_TYPES[type_name]
    return any(understands(rtype, part) for part in parts.split(","))
