"""Following merged patients' pointers (the merge itself: ``merges.py``).

A duplicate merged into another patient keeps its record, with ``merged_into`` naming the
survivor. Nothing that references the duplicate is rewritten: its allergies, problems and
medications stay on its document and its notes, vitals, visits, appointments and
attachments keep its ``patient_id``; every read of a chart gathers the rows of all the
patients that resolve to it. Resolution reads only the derived ``patients`` table, so
replicas holding the same documents agree, whatever order the merges arrived in.

Rules: a pointer to a patient this replica does not hold (deleted, or not synced yet) is
ignored, so the duplicate stays visible; pointers chain (D into S, S into T: D's records
are T's); a loop (A into B and B into A, made concurrently on two workstations) is settled
by letting the lowest id in it survive.
"""

from __future__ import annotations

import json

from core.store.database import Database, Transaction

Reader = Database | Transaction


def pointers(db: Reader) -> dict[str, str]:
    """duplicate id -> survivor id, for every merge whose survivor this replica holds."""
    rows = db.query(
        "SELECT p.id, p.merged_into FROM patients p JOIN patients s ON s.id = p.merged_into "
        "WHERE p.merged_into != ''"
    )
    return {str(d): str(s) for d, s in rows}


def resolve(links: dict[str, str], patient_id: str) -> str:
    """The patient whose chart holds ``patient_id``'s records (itself when not merged)."""
    path = [patient_id]
    current = patient_id
    while current in links:
        following = links[current]
        if following in path:  # a loop: its lowest id survives
            return min(path[path.index(following) :])
        path.append(following)
        current = following
    return current


def loop_of(links: dict[str, str], patient_id: str) -> list[str]:
    """The patients of the loop ``patient_id`` is part of (none when it is in no loop)."""
    path = [patient_id]
    while path[-1] in links:
        following = links[path[-1]]
        if following == patient_id:
            return sorted(path)
        if following in path:
            return []  # a loop further on, which this patient only points into
        path.append(following)
    return []


def survivor(db: Reader, patient_id: str) -> str:
    """The chart ``patient_id`` now lives in (itself when not merged)."""
    return resolve(pointers(db), patient_id)


def chart_ids(db: Reader, patient_id: str) -> list[str]:
    """Every patient whose records belong to ``patient_id``'s chart: the survivor it
    resolves to and every duplicate merged (directly or through others) into that."""
    links = pointers(db)
    root = resolve(links, patient_id)
    return sorted({root, *(d for d in links if resolve(links, d) == root)})


def chart_ids_json(db: Reader, patient_id: str) -> str:
    """``chart_ids`` as a JSON array, for ``patient_id IN (SELECT value FROM json_each(?))``."""
    return json.dumps(chart_ids(db, patient_id))


# The SQL condition reads use with ``chart_ids_json``'s parameter.
IN_CHART = "patient_id IN (SELECT value FROM json_each(?))"


def hidden(db: Reader) -> list[str]:
    """Patients merged into another one (left out of lists and searches)."""
    links = pointers(db)
    return sorted(d for d in links if resolve(links, d) != d)


def survivors_json(db: Reader) -> str:
    """``{duplicate: survivor}`` of every hidden patient, as a JSON object (ids are hex, so
    ``json_extract(?, '$."' || id || '"')`` reads one)."""
    links = pointers(db)
    found = {d: resolve(links, d) for d in links}
    return json.dumps({d: s for d, s in found.items() if s != d})


def survivor_sql(column: str) -> str:
    """SQL for the survivor of the patient id in ``column`` (itself when not merged), with
    ``survivors_json``'s value as its one parameter: a join on it shows a merged
    duplicate's records under the chart that holds them now."""
    return f"coalesce(json_extract(?, '$.\"' || {column} || '\"'), {column})"


def hidden_json(db: Reader) -> str:
    """``hidden`` as a JSON array, for ``id NOT IN (SELECT value FROM json_each(?))``."""
    return json.dumps(hidden(db))
