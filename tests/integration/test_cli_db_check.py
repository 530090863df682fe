"""``careline db check`` notices derived tables edited directly under the documents."""

from __future__ import annotations

import json
from pathlib import Path

import sqlcipher3

from core.keys.keychain import Keychain
from core.store.search import register_sql_functions
from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.integration.test_cli_keys import new_clinic


def edit_directly(data: Path, *statements: tuple[str, tuple[str, ...]]) -> None:
    """Run SQL on the encrypted file with its key, as someone holding the key could,
    bypassing Careline (no document change, no op, no audit entry)."""
    keys = Keychain.load(data / "keyslots.json").unlock_with_password("admin", PASSWORD)
    try:
        conn = sqlcipher3.connect(str(data / "clinic.db"), isolation_level=None)
        conn.execute(f"PRAGMA key = \"x'{keys.db_key.hex()}'\"")
        # The search index's triggers call Careline's SQL functions: an editor of the
        # patients table needs them (or fails with "no such function").
        register_sql_functions(conn)
        for sql, params in statements:
            conn.execute(sql, params)
        conn.close()
    finally:
        keys.close()


def check(data: Path) -> tuple[int, dict[str, object]]:
    result = careline(data, "--json", "--password-stdin", "db", "check", stdin=PASSWORD + "\n")
    return result.returncode, json.loads(result.stdout)


def add(data: Path, family: str) -> str:
    patient = as_admin(data, "patient", "add", "--family", family, "--given", "Ann",
                       "--birth-date", "1980-02-03")  # fmt: skip
    return str(patient["id"])


def test_db_check_names_a_patient_row_edited_under_its_document(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    kept, edited = add(data, "Rowe"), add(data, "Kerr")
    assert add(data, "Lund")
    code, doc = check(data)
    assert (code, doc["ok"]) == (0, True), doc

    edit_directly(data, ("UPDATE patients SET family = 'Forged' WHERE id = ?", (edited,)))
    code, doc = check(data)
    assert code == 4 and doc["ok"] is False
    problems = doc["problems"]
    assert isinstance(problems, list) and len(problems) == 1, problems
    assert f"patient {edited}: its patients row" in problems[0]
    assert kept not in problems[0]


def test_db_check_names_rows_removed_or_added_and_a_stale_search_index(tmp_path: Path) -> None:
    data = tmp_path / "d"
    new_clinic(data)
    removed = add(data, "Rowe")
    edit_directly(
        data,
        ("DELETE FROM patients WHERE id = ?", (removed,)),
        (
            "INSERT INTO patients_fts (rowid, family, given, mrn, birth_date, names) "
            "VALUES (999, 'Ghost', 'Gus', NULL, '1970-01-01', 'ghost gus')",
            (),
        ),
    )
    code, doc = check(data)
    assert code == 4
    text = "\n".join(map(str, doc["problems"]))  # type: ignore[call-overload]
    assert f"patient {removed}: its patients row" in text
    assert "search index" in text
