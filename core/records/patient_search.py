"""The first page of a patient search that finds a large part of the clinic, without sorting
every match (issue #17: ``Fam`` at 1,000,000 patients took 335 ms, all for a page of 200).

A search's matches are sorted by name (``sort_key, id``) before a page is taken. That costs
the same whether the page is the first of 200 or the whole list, so a prefix every patient
matches grows with the clinic. When the query matches more than ``broad_at`` patients
(counted with a bound, so a narrow search pays almost nothing for the check), the patients
are walked in name order instead, along the ``patients_by_name`` index, a chunk at a time,
and each chunk is checked against the query by FTS5 itself: its rows go into a small
in-memory FTS5 table with the search index's tokenizer, filled from the same view
(``patients_search``) that feeds the index, and the query is run there. The walk stops once
the page is full. A merged duplicate's match counts for its survivor, as in the sorted query.

Checking a candidate costs about ``WALK_COST`` times what one match costs the sorted query,
so the walk goes on only while the share of candidates found so far says it will finish
cheaper than sorting every match (estimated as that share of the clinic); otherwise the
caller sorts as before. The order and the pages are the same either way (a test compares).
"""

from __future__ import annotations

import json

from core.records import merged
from core.store.database import Database, Transaction

# A query with more matches than this takes the walk (measured: README, Performance, scale).
BROAD_MATCHES = 20_000
# Walking and checking one candidate costs about as much as this many matches cost the
# sorted query (join, sort); measured with tests/bench/search_bench.py.
WALK_COST = 25
MIN_CHUNK = 32
MAX_CHUNK = 8_192

# Same columns and tokenizer as ``patients_fts`` (store migrations V2, V14; a test checks they
# agree), but contentless: it only answers MATCH for the rows put in it.
_PROBE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.patients_probe USING fts5 ("
    "family, given, mrn, birth_date, names, content = '', "
    "tokenize = 'unicode61 remove_diacritics 2', detail = column, columnsize = 0)"
)
PROBE_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"
_FILL = (
    "INSERT INTO temp.patients_probe (rowid, family, given, mrn, birth_date, names) "
    "SELECT row_id, family, given, mrn, birth_date, names FROM patients_search "
    "WHERE row_id IN (SELECT value FROM json_each(?))"
)
_FOUND = "SELECT rowid FROM temp.patients_probe WHERE patients_probe MATCH ?"
_CLEAR = "INSERT INTO temp.patients_probe (patients_probe) VALUES ('delete-all')"
_FIRST = "SELECT p.rowid, p.sort_key, p.id FROM patients p ORDER BY p.sort_key, p.id LIMIT ?"
_NEXT = (
    "SELECT p.rowid, p.sort_key, p.id FROM patients p WHERE (p.sort_key, p.id) > (?, ?) "
    "ORDER BY p.sort_key, p.id LIMIT ?"
)


def broad(db: Database, query: str, broad_at: int) -> bool:
    """Whether the FTS5 ``query`` matches more than ``broad_at`` patients (counting stops
    there)."""
    rows = db.query(
        "SELECT count(*) FROM (SELECT rowid FROM patients_fts WHERE patients_fts MATCH ? LIMIT ?)",
        (query, broad_at + 1),
    )
    return int(rows[0][0]) > broad_at


def _probe(tx: Transaction, query: str, rowids: list[int]) -> set[int]:
    """Which of ``rowids`` (patients) the FTS5 ``query`` matches."""
    tx.execute(_FILL, (json.dumps(rowids),))
    try:
        return {int(r[0]) for r in tx.query(_FOUND, (query,))}
    finally:
        tx.execute(_CLEAR)


def first_rowids(db: Database, query: str, need: int, broad_at: int) -> list[int] | None:
    """The rowids of the first ``need`` patients shown for the FTS5 ``query``, in name order
    (a merged duplicate's match finds its survivor; duplicates are not shown), or None when
    walking on would cost more than sorting every match."""
    links = merged.pointers(db)
    survivors = {d: s for d in links if (s := merged.resolve(links, d)) != d}
    with db.reading() as tx:
        tx.execute(_PROBE)
        tx.execute(_CLEAR)  # nothing left from a read that failed half-way
        via_duplicates: set[str] = set()
        if survivors:
            ids = tx.query(
                "SELECT id, rowid FROM patients WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(survivors)),),
            )
            found_rows = _probe(tx, query, [int(r[1]) for r in ids])
            via_duplicates = {survivors[str(i)] for i, r in ids if int(r) in found_rows}
        rows = tx.query("SELECT max(rowid) FROM patients")
        clinic = int(rows[0][0] or 0)
        found: list[int] = []
        walked = 0
        chunk = max(MIN_CHUNK, min(need, MAX_CHUNK))  # as if every patient matched
        after: tuple[str, str] | None = None
        while len(found) < need:
            batch = (
                tx.query(_FIRST, (chunk,)) if after is None else tx.query(_NEXT, (*after, chunk))
            )
            if not batch:
                break
            after = (str(batch[-1][1]), str(batch[-1][2]))
            shown = [(int(r[0]), str(r[2])) for r in batch if str(r[2]) not in survivors]
            hits = _probe(tx, query, [rowid for rowid, _ in shown]) if shown else set()
            found.extend(rowid for rowid, pid in shown if rowid in hits or pid in via_duplicates)
            walked += len(batch)
            if len(found) >= need or len(batch) < chunk:
                break
            # Go on only while finishing the walk looks cheaper than sorting every match;
            # the next chunk is what the share found so far says is left (and a little).
            share = max(len(found), 1) / walked
            to_walk = (need - len(found)) / share
            if to_walk * WALK_COST > max(broad_at, share * clinic):
                return None
            chunk = max(MIN_CHUNK, min(round(to_walk * 1.1) + MIN_CHUNK, MAX_CHUNK))
        return found[:need]
