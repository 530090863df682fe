"""The remote-apply fast paths give exactly what the plain paths give.

Storing several records in one batch (``store_records``: SQL grouped into ``executemany``
calls, patients in multi-row INSERTs) must leave every table byte-for-byte as storing them
one by one does, rowids included, and the full-text index holding exactly the same entries;
the JSON and pycrdt shortcuts must read what the plain calls read.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from pycrdt import Doc, Map

from core.crypto.secure_memory import SecureMemory
from core.records import crdt, materialize
from core.records.changes import Loaded, load_record, store_record, store_records
from core.records.crdt import RecordDoc
from core.store.database import Database
from core.store.oplog import format_hlc
from tests.unit.sync.replicas import _fts_entries

AUTHOR = "tester"


def _hlc(n: int, replica: str = "a") -> str:
    return format_hlc(1_790_000_000_000 + n, 0, replica)


# The full-text index's segments and their directory: how they are laid out records how
# many statements wrote the index (a batch inserts its patients in multi-row statements,
# materialize._INDEXED, one record at a time takes one statement each), not what it holds.
_FTS_SEGMENTS = ("patients_fts_data", "patients_fts_idx")


def _dump(db: Database) -> dict[str, list[Any]]:
    """Every table, rowids included; the FTS index by every term of every column of every
    row it holds, after checking it against its content (its config table byte for byte)."""
    tables = [
        str(r[0])
        for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        # patients_fts reads the patients table; meta and the audit log hold each
        # database's own identity and times.
        if r[0] not in ("patients_fts", "meta", "audit_log", *_FTS_SEGMENTS)
    ]
    out: dict[str, list[Any]] = {}
    for table in tables:
        try:
            out[table] = db.query(f"SELECT rowid, * FROM {table} ORDER BY rowid")
        except Exception:  # WITHOUT ROWID shadow tables
            out[table] = db.query(f"SELECT * FROM {table} ORDER BY 1")
    out["patients_fts entries"] = _fts_entries(db, "patients_fts", "patients")
    return out


def _db() -> Database:
    return Database.in_memory(SecureMemory.from_bytes(bytearray(os.urandom(32))))


def _patient(doc: RecordDoc, n: int, family: str, allergies: tuple[str, ...] = ()) -> None:
    for field, value in (("family", family), ("given", "G"), ("birth_date", "1980-01-01")):
        crdt.write(doc, field, value, _hlc(n), AUTHOR)
    for i, substance in enumerate(allergies):
        crdt.add(doc, "allergies", {"substance": substance}, _hlc(n + i + 1), AUTHOR)


def _change(kind: str, n: int, doc: RecordDoc) -> None:
    if kind == "phone":
        crdt.write(doc, "phone", f"555-{n}", _hlc(n), AUTHOR)
    elif kind == "allergy":  # a list change only: the patient's own row stays as it was
        crdt.add(doc, "allergies", {"substance": f"S{n}"}, _hlc(n), AUTHOR)
    elif kind == "remove":
        for element in crdt.elements(doc, "allergies")[:1]:
            crdt.remove(doc, "allergies", element.element_id, _hlc(n), AUTHOR)
    elif kind == "delete":
        seen = [e.write_id for entries in crdt.all_live(doc).values() for e in entries]
        crdt.write(doc, "deleted", True, _hlc(n), AUTHOR, observe=seen)
    elif kind == "conflict":  # two concurrent values of one field
        other: RecordDoc = Doc(client_id=99)
        other.apply_update(doc.get_update())
        crdt.write(doc, "family", f"Mine{n}", _hlc(n), AUTHOR)
        crdt.write(other, "family", f"Theirs{n}", _hlc(n, "b"), AUTHOR)
        doc.apply_update(other.get_update())
    else:
        crdt.add(doc, "medications", {"name": f"M{n}"}, _hlc(n), AUTHOR)


# Per round, what happens to each record, so that in one batch child rows and record rows
# interleave: a deletion, then a list change alone (no record-row write in between), then
# the deletion of a patient who still has allergies (its allergy rows must go first); edits
# after a deletion (edit-vs-delete), concurrent values, medications.
PLAN = (
    ("phone", "allergy", "remove", "delete", "conflict", "medication") * 2,
    ("delete", "allergy", "delete", "allergy", "phone", "conflict",
     "remove", "medication", "delete", "phone", "allergy", "conflict"),
    ("phone", "delete", "phone", "remove", "allergy", "delete",
     "conflict", "allergy", "medication", "delete", "remove", "phone"),
)  # fmt: skip


def test_a_batch_writes_the_same_rows_as_one_record_at_a_time() -> None:
    one_by_one, batched = _db(), _db()
    masters: dict[str, RecordDoc] = {f"p{i:02d}": Doc(client_id=3) for i in range(12)}
    for round_ in range(len(PLAN) + 1):
        updates: list[tuple[str, bytes]] = []
        for i, (record_id, doc) in enumerate(masters.items()):
            before = doc.get_state()
            if round_ == 0:
                _patient(doc, i, f"Fam{i}", ("Latex", "Peanut", "Soy")[: 1 + i % 3])
            else:
                _change(PLAN[round_ - 1][i], 100 * round_ + i, doc)
            updates.append((record_id, doc.get_update(before)))
        for db, together in ((one_by_one, False), (batched, True)):
            with db.write("test", "test", "patient", "many") as tx:
                loaded: list[tuple[str, str, Loaded]] = []
                for record_id, update in updates:
                    current = load_record(tx, record_id, "patient", 7)
                    current.doc.apply_update(update)
                    loaded.append((record_id, "patient", current))
                if together:
                    store_records(tx, loaded)
                else:
                    for record_id, type_name, current in loaded:
                        store_record(tx, record_id, type_name, current)
        assert _dump(batched) == _dump(one_by_one), f"round {round_}"
    # The rounds did exercise what the batching has to keep in order.
    assert one_by_one.query("SELECT count(*) FROM conflicts")[0][0] > 0
    assert one_by_one.query("SELECT count(*) FROM allergies")[0][0] > 0
    assert one_by_one.query("SELECT count(*) FROM patients")[0][0] < len(masters)


@pytest.mark.parametrize(
    "raw",
    ['{"a":1}', ' {"a":1}', '{"a":1} ', '{"a":1}x', '{"a":', "\ufeff{}", "[1]", '"s"', "{}",
     '{"a":{"b":[1,2.5,null,true]},"c":"\\u00e9\\"q"}', b'{"a":1}', 5, None],
)  # fmt: skip
def test_parse_json_is_json_loads(raw: Any) -> None:
    def outcome(parse: Any) -> Any:
        try:
            return ("value", parse(raw))
        except Exception as exc:  # the very same error, message included
            return ("error", type(exc), str(exc))

    assert outcome(crdt.parse_json) == outcome(json.loads)


def test_a_root_with_content_is_listed_before_it_is_read() -> None:
    """``root_names`` lets derive skip list roots a document does not have: pycrdt must
    list a root holding content even before it is read with a type."""
    doc: RecordDoc = Doc()
    entry = json.dumps({"v": {"substance": "Latex"}, "h": _hlc(1), "a": AUTHOR})
    doc.get("r", type=Map)["family/x"] = json.dumps({"v": "Ames", "h": _hlc(1), "a": AUTHOR})
    doc.get("s", type=Map)["allergies/y"] = entry
    loaded = crdt.load(doc.get_update(), 5)
    names = crdt.root_names(loaded)
    assert {"r", "s"} <= names and "h" not in names
    plain = crdt.all_elements(crdt.load(doc.get_update(), 5))
    assert crdt.all_elements(loaded, roots=names) == plain and plain["allergies"]
    assert crdt.all_history(loaded, roots=names) == {}


def test_the_vector_read_with_the_load_is_the_documents() -> None:
    doc: RecordDoc = Doc(client_id=3)
    _patient(doc, 1, "Ames", ("Latex",))
    loaded, vector = crdt.load_with_vector(doc.get_update(), 5)
    assert vector == loaded.get_state() == doc.get_state()
    assert crdt.missing_dependencies(loaded, vector, vector) == {}
    assert crdt.load_with_vector(None, 5)[1] == Doc(client_id=5).get_state()


def test_batching_knows_every_foreign_key_and_trigger_of_the_schema() -> None:
    """``Writes`` reorders statements across tables only where no foreign key or trigger
    links them: a schema change adding one must be reviewed against it (and this list)."""
    db = _db()
    tables = [str(r[0]) for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    links = {
        (table, str(fk[2]))
        for table in tables
        for fk in db.query(f"PRAGMA foreign_key_list({table})")
    }
    assert links | {(b, a) for a, b in links} == set(materialize._LINKED)
    triggers = {
        (str(r[0]), str(r[1]))
        for r in db.query("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
    }
    # Only the patients table's own full-text index is written by triggers.
    assert triggers == {
        ("patients_fts_insert", "patients"),
        ("patients_fts_delete", "patients"),
        ("patients_fts_update", "patients"),
    }
