"""The ``careline`` command line as operators script it: real processes, real SQLCipher."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "correct horse battery"


def careline(
    data_dir: Path,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        # The real "no keyring here" backend, as on a headless Linux workstation.
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.entry", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def as_admin(data_dir: Path, *args: str) -> Any:
    result = careline(data_dir, "--json", "--password-stdin", *args, stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli") / "data"
    result = careline(
        data, "--json", "--password-stdin", "init", "--clinic", "Harbour Clinic", "--user",
        "admin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["user"] == "admin" and doc["keyring_slot"] is False
    assert len(doc["recovery_key"].split("-")) == 8
    return data


def test_init_shows_recovery_key_once_and_explains_missing_keyring(tmp_path: Path) -> None:
    data = tmp_path / "d"
    first = careline(
        data, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
    )
    assert first.returncode == 0, first.stderr
    assert "RECOVERY KEY" in first.stdout
    assert "No OS-keyring slot: no OS keyring is available" in first.stdout
    recovery = first.stdout.strip().splitlines()[-1].strip()
    for f in data.iterdir():
        assert recovery.encode() not in f.read_bytes()
    again = careline(
        data, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes (Windows: the folder's ACLs)")
def test_init_makes_the_data_folder_its_owners_alone(tmp_path: Path) -> None:
    """Every file in it is 0600; the folder itself was made 0755 under the usual umask, so
    other users of the computer could list which files exist and how large they are."""
    data = tmp_path / "new" / "careline"
    old_umask = os.umask(0o022)  # the usual default, which the folder must not take
    try:
        made = careline(
            data, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
        )
    finally:
        os.umask(old_umask)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [f for f in data.rglob("*") if f.is_file()]
    assert files and all(stat.S_IMODE(f.stat().st_mode) & 0o077 == 0 for f in files), files


def test_patient_round_trip(clinic: Path) -> None:
    added = as_admin(
        clinic, "patient", "add", "--family", "Marchetti", "--given", "Lucia",
        "--birth-date", "1972-04-18", "--mrn", "HC-7781", "--sex", "female",
    )  # fmt: skip
    found = as_admin(clinic, "patient", "search", "march luc")
    assert [p["id"] for p in found] == [added["id"]]
    assert as_admin(clinic, "patient", "search", "HC-7781")[0]["id"] == added["id"]
    # The birth date as the README says search takes it: 1984-03-02, 1984-3-2 or 19840302.
    for typed in ("1972-04-18", "1972-4-18", "19720418"):
        found = as_admin(clinic, "patient", "search", typed)
        assert [p["id"] for p in found] == [added["id"]], typed
    as_admin(clinic, "allergy", "add", added["id"], "Sulfonamides", "--severity", "moderate")
    updated = as_admin(clinic, "patient", "set", added["id"], "phone", "555-0199")
    assert updated["phone"] == "555-0199"
    chart = as_admin(clinic, "patient", "show", added["id"])
    assert chart["allergies"][0]["substance"] == "Sulfonamides"
    assert chart["family"] == "Marchetti"


def test_a_scripted_change_guarded_by_expect_never_replaces_a_newer_value(clinic: Path) -> None:
    added = as_admin(
        clinic, "patient", "add", "--family", "Okafor", "--given", "Bisi",
        "--birth-date", "1990-01-05",
    )  # fmt: skip
    pid = added["id"]
    # The phone was empty when the script read the chart: "" says so.
    assert (
        as_admin(clinic, "patient", "set", pid, "phone", "555-0101", "--expect", "")["phone"]
        == "555-0101"
    )

    # A guard that the field is still empty, when it is not, says so in words.
    def refused_phone(value: str, expect: str) -> subprocess.CompletedProcess[str]:
        """``patient set pid phone value --expect expect``, which must be refused."""
        done = careline(
            clinic, "--password-stdin", "patient", "set", pid, "phone", value,
            "--expect", expect, stdin=PASSWORD,
        )  # fmt: skip
        assert done.returncode == 1 and done.stdout == ""
        return done

    full = refused_phone("555-0909", "")
    assert "not changed: phone holds '555-0101', not empty as --expect said" in full.stderr
    # Someone saves another number meanwhile; the script's guard still names the old one.
    as_admin(clinic, "patient", "set", pid, "phone", "555-0202")
    stale = refused_phone("555-0303", "555-0101")
    assert "not changed: phone holds '555-0202', not '555-0101' as --expect said" in stale.stderr
    assert "(saved by admin at " in stale.stderr
    assert as_admin(clinic, "patient", "show", pid)["phone"] == "555-0202"
    # A guard naming what the field holds lets the change through; the date is compared
    # as stored, so the year-first form the person typed differently still matches.
    as_admin(clinic, "patient", "set", pid, "phone", "555-0303", "--expect", "555-0202")
    moved = as_admin(
        clinic, "patient", "set", pid, "birth_date", "1990-01-06", "--expect", "1990-1-5"
    )
    assert (moved["phone"], moved["birth_date"]) == ("555-0303", "1990-01-06")


def test_password_file_and_plain_output(clinic: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    result = careline(
        clinic, "patient", "add", "--family", "Osei", "--given", "Kwame",
        "--birth-date", "1999-12-31", env={"CARELINE_PASSWORD_FILE": str(pw)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "OSEI, Kwame" in result.stdout
    assert "warning" not in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes (Windows: the file's ACLs)")
def test_a_password_file_others_may_read_is_used_with_a_warning(
    clinic: Path, tmp_path: Path
) -> None:
    """The server's master-key file is refused when others may read it; a password file
    was read silently whatever its mode. It still works (a container's 0444 secret must
    not stop a scheduled job), and stderr names the file and the chmod to run."""
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o644)
    result = careline(clinic, "--json", "patient", "search", "Zzyzx",
                      env={"CARELINE_PASSWORD_FILE": str(pw)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert (
        f"careline: warning: CARELINE_PASSWORD_FILE: other users of this computer may read "
        f"{pw} (mode 0644); make it yours alone: chmod 600 {pw}"
    ) in result.stderr


def test_a_possible_duplicate_is_refused_unless_allowed(clinic: Path) -> None:
    first = as_admin(
        clinic, "patient", "add", "--family", "O'Connor", "--given", "Aoife",
        "--birth-date", "1984-02-02", "--mrn", "HC-2202",
    )  # fmt: skip
    again = ("patient", "add", "--family", "OCONNOR", "--given", "Aoife", "--birth-date",
             "1984-02-02")  # fmt: skip
    refused = careline(clinic, "--password-stdin", *again, stdin=PASSWORD)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith(
        "careline: error: not added: this patient may already be registered:\n"
        f"  O'CONNOR, Aoife, born 1984-02-02, MRN HC-2202 (id {first['id']})\n"
    )
    assert "--allow-duplicate" in refused.stderr

    as_json = careline(clinic, "--json", "--password-stdin", *again, stdin=PASSWORD)
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["added"] is None
    assert [m["id"] for m in doc["possible_duplicates"]] == [first["id"]]
    assert [p["id"] for p in as_admin(clinic, "patient", "search", "oconnor aoife")] == [
        first["id"]
    ]

    second = as_admin(clinic, *again, "--allow-duplicate")
    assert second["id"] != first["id"]
    found = as_admin(clinic, "patient", "search", "oconnor aoife")
    assert {p["id"] for p in found} == {first["id"], second["id"]}


def test_a_name_typed_without_its_stroked_letters_finds_and_matches_the_patient(
    clinic: Path,
) -> None:
    """The tester's: ``odegard`` found nobody beside ØDEGÅRD Åse, and ``patient add
    --family Odegard --given Aase`` of her birth date was added with no warning."""
    first = as_admin(
        clinic, "patient", "add", "--family", "ØDEGÅRD", "--given", "Åse",
        "--birth-date", "1931-02-28", "--mrn", "TST-001",
    )  # fmt: skip
    for typed in ("odegard", "Ødegård", "odegard ase"):
        assert [p["id"] for p in as_admin(clinic, "patient", "search", typed)] == [first["id"]]
    again = ("patient", "add", "--family", "Odegard", "--given", "Aase", "--birth-date",
             "1931-02-28")  # fmt: skip
    refused = careline(clinic, "--password-stdin", *again, stdin=PASSWORD)
    assert refused.returncode == 1, refused.stdout
    assert f"ØDEGÅRD, Åse, born 1931-02-28, MRN TST-001 (id {first['id']})" in refused.stderr


def test_an_mrn_in_another_letter_case_is_refused_and_one_patient_is_found(clinic: Path) -> None:
    """With TST-002 held, tst-002 was accepted; a search for it then found both."""
    first = as_admin(
        clinic, "patient", "add", "--family", "Kowalczyk", "--given", "Łukasz",
        "--birth-date", "1988-11-30", "--mrn", "TST-002",
    )  # fmt: skip
    refused = careline(
        clinic, "--password-stdin", "patient", "add", "--family", "Kowalski", "--given",
        "Søren", "--birth-date", "1975-03-09", "--mrn", "tst-002", stdin=PASSWORD,
    )  # fmt: skip
    assert refused.returncode == 1 and refused.stdout == ""
    assert "'tst-002' is already used by another patient (as 'TST-002')" in refused.stderr
    assert [p["id"] for p in as_admin(clinic, "patient", "search", "tst-002")] == [first["id"]]
    assert as_admin(clinic, "patient", "search", "soren") == []


def test_no_password_and_no_keyring_is_explained(clinic: Path) -> None:
    result = careline(clinic, "patient", "search", "a")
    assert result.returncode == 3
    assert "OS-keyring slot" in result.stderr and "--password-stdin" in result.stderr
    assert result.stdout == ""


def test_wrong_password(clinic: Path) -> None:
    result = careline(clinic, "--password-stdin", "patient", "search", "a", stdin="nope\n")
    assert result.returncode == 3
    assert "wrong user name or password" in result.stderr


def test_unknown_user(clinic: Path) -> None:
    result = careline(
        clinic, "--user", "ghost", "--password-stdin", "patient", "search", "a", stdin=PASSWORD
    )
    assert result.returncode == 3
    assert "'ghost' has not signed in on this workstation" in result.stderr


def test_a_phone_with_letters_is_not_registered(clinic: Path) -> None:
    result = careline(
        clinic, "--password-stdin", "patient", "add", "--family", "Abebe", "--given", "Tigist",
        "--birth-date", "1993-08-21", "--phone", "055-ABC-12!!", stdin=PASSWORD,
    )  # fmt: skip
    assert result.returncode == 1
    assert "phone: '055-ABC-12!!' is not a phone number: it holds 'ABC'" in result.stderr
    assert as_admin(clinic, "patient", "search", "abebe tigist") == []


def test_bad_input_names_the_field(clinic: Path) -> None:
    result = careline(
        clinic, "--password-stdin", "patient", "add", "--family", "X", "--given", "Y",
        "--birth-date", "31/12/1999", stdin=PASSWORD,
    )  # fmt: skip
    assert result.returncode == 1
    assert "birth_date: '31/12/1999' has the year last" in result.stderr
    assert "type the year first, e.g. 1984-03-02" in result.stderr


def test_bad_setting_is_named(clinic: Path) -> None:
    result = careline(
        clinic, "--password-stdin", "db", "check", stdin=PASSWORD,
        env={"CARELINE_AUTO_LOCK_MINUTES": "soon"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "CARELINE_AUTO_LOCK_MINUTES" in result.stderr


def test_checks_pass_and_files_hold_no_plaintext(clinic: Path) -> None:
    as_admin(
        clinic, "patient", "add", "--family", "Vanderplaats", "--given", "Hendrika",
        "--birth-date", "1941-06-06",
    )  # fmt: skip
    assert as_admin(clinic, "audit", "verify")["ok"] is True
    assert as_admin(clinic, "db", "check")["ok"] is True
    for f in clinic.iterdir():
        content = f.read_bytes()
        for word in (b"Vanderplaats", b"Hendrika", b"Harbour Clinic", b"Marchetti"):
            assert word not in content, (f.name, word)


def test_tampered_audit_log_fails_verify(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert (
        careline(
            data, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
        ).returncode
        == 0
    )
    as_admin(data, "patient", "add", "--family", "A", "--given", "B", "--birth-date", "2000-01-01")
    # Someone holding the key edits an entry directly.
    from core.crypto.kdf import FAST_PARAMS
    from core.records.workstation import Workstation

    ws = Workstation(data, kdf_params=FAST_PARAMS)
    ws.sign_in("admin", PASSWORD)
    ws.database._conn.execute("UPDATE audit_log SET action = 'nothing' WHERE seq = 2")
    ws.lock()
    result = careline(data, "--password-stdin", "audit", "verify", stdin=PASSWORD)
    assert result.returncode == 4
    assert "audit entry 2 was altered" in result.stdout


def test_damaged_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert (
        careline(
            data, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
        ).returncode
        == 0
    )
    db = data / "clinic.db"
    with db.open("r+b") as fh:
        fh.truncate(5000)
    before = db.read_bytes()
    result = careline(data, "--password-stdin", "--json", "db", "check", stdin=PASSWORD)
    assert result.returncode == 4  # the check found a problem
    [problem] = json.loads(result.stdout)["problems"]
    assert "is damaged" in problem and "clinic.db" in problem
    assert db.read_bytes() == before
    # What init made (the key file's lock file included); db check added nothing.
    assert sorted(p.name for p in data.iterdir()) == [
        "clinic.db",
        "keyslots.json",
        "keyslots.json.lock",
    ]


def test_a_damaged_page_inside_the_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    """Damage past the first page passes the open-time checks; every command still ends
    with a plain error, and ``db check`` reports it without writing anything first."""
    data = tmp_path / "d"
    assert (
        careline(
            data, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
        ).returncode
        == 0
    )
    db = data / "clinic.db"
    damaged = bytearray(db.read_bytes())
    damaged[2 * 4096 + 100] ^= 0xFF  # the third page: a table the commands below read
    db.write_bytes(bytes(damaged))
    check = careline(data, "--password-stdin", "--json", "db", "check", stdin=PASSWORD)
    assert check.returncode == 4
    report = json.loads(check.stdout)
    assert report["ok"] is False
    assert any("HMAC verification failed for page 3" in p for p in report["problems"])
    assert db.read_bytes() == bytes(damaged)  # the check wrote nothing, not even an audit entry
    search = careline(data, "--password-stdin", "patient", "search", "x", stdin=PASSWORD)
    assert search.returncode == 1
    assert "Traceback" not in search.stderr
    assert search.stderr.startswith("careline: error: the clinic database")
    assert "Run 'careline db check'" in search.stderr


def test_wrong_key_file_for_database(tmp_path: Path) -> None:
    """A key file from another clinic next to this database: named, nothing changed."""
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        assert (
            careline(
                d, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
            ).returncode
            == 0
        )
    (one / "keyslots.json").write_bytes((two / "keyslots.json").read_bytes())
    before = (one / "clinic.db").read_bytes()
    result = careline(one, "--password-stdin", "db", "check", stdin=PASSWORD)
    assert result.returncode == 3  # cannot unlock: not a damaged file
    assert "belongs to another clinic database" in result.stderr
    assert str(one / "keyslots.json") in result.stderr
    assert (one / "clinic.db").read_bytes() == before


def test_a_damaged_first_page_is_still_called_damaged(tmp_path: Path) -> None:
    """With this database's own key file, a first page that fails authentication is damage
    (the salt before it still matches), not a wrong key."""
    data = tmp_path / "d"
    assert (
        careline(
            data, "--password-stdin", "init", "--clinic", "C", "--user", "admin", stdin=PASSWORD
        ).returncode
        == 0
    )
    db = data / "clinic.db"
    damaged = bytearray(db.read_bytes())
    damaged[200] ^= 0xFF  # inside page 1, after the 16-byte salt
    db.write_bytes(bytes(damaged))
    result = careline(data, "--password-stdin", "--json", "db", "check", stdin=PASSWORD)
    assert result.returncode == 4
    [problem] = json.loads(result.stdout)["problems"]
    assert "first page fails authentication although the key is correct" in problem
    assert db.read_bytes() == bytes(damaged)


def test_no_clinic_yet(tmp_path: Path) -> None:
    """A --data-dir holding no clinic is bad configuration (exit 2), as the README's exit
    codes say and careline-server says of a folder holding no server."""
    result = careline(tmp_path / "empty", "patient", "search", "x")
    assert result.returncode == 2
    assert "run 'careline init' first" in result.stderr


def test_json_failures_leave_stdout_empty_but_a_refusal_naming_records(clinic: Path) -> None:
    """README, "Command line": with --json a failure prints nothing on stdout, its message
    on stderr; a refusal naming records a script may act on prints them as JSON too."""
    failing = [
        (("patient", "show", "no-such-patient"), 1),
        (("patient", "add", "--family", "Ng", "--given", "Al", "--birth-date", "1990-13-01"), 1),
        (("conflicts", "resolve", "no-such-conflict", "--value", "x"), 1),
        (("appointment", "add", "no-such-patient", "--start", "2026-12-07 25:00",
          "--minutes", "15", "--clinician", "admin"), 1),
    ]  # fmt: skip
    for args, code in failing:
        result = careline(clinic, "--json", "--password-stdin", *args, stdin=PASSWORD + "\n")
        assert (result.returncode, result.stdout) == (code, ""), (args, result.stderr)
        assert result.stderr.startswith("careline: error: "), args
    empty = careline(clinic.parent / "none", "--json", "patient", "search", "x")
    assert (empty.returncode, empty.stdout) == (2, "")
    wrong = careline(clinic, "--json", "--password-stdin", "patient", "search", "x", stdin="no\n")
    assert (wrong.returncode, wrong.stdout) == (3, "")

    born = ("--given", "Twice", "--birth-date", "1971-07-07")
    as_admin(clinic, "patient", "add", "--family", "Jsonrule", *born)
    again = careline(clinic, "--json", "--password-stdin", "patient", "add", "--family",
                     "Jsonrule", *born, stdin=PASSWORD + "\n")  # fmt: skip
    assert again.returncode == 1
    refused = json.loads(again.stdout)
    assert refused["added"] is None
    assert [m["family"] for m in refused["possible_duplicates"]] == ["Jsonrule"]
    assert again.stderr.startswith("careline: error: not added: this patient may already")


def test_unattended_unlock_with_os_keyring(tmp_path: Path, secret_service: dict[str, str]) -> None:
    data = tmp_path / "d"
    env = {**secret_service, "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring"}
    init = careline(
        data, "--password-stdin", "init", "--clinic", "C", "--user", "admin",
        stdin=PASSWORD, env=env,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    assert "An OS-keyring slot was added" in init.stdout
    added = careline(
        data, "--json", "patient", "add", "--family", "Keyring", "--given", "Only",
        "--birth-date", "1990-01-01", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["family"] == "Keyring"
    # Without the keyring, the same command needs a password.
    assert careline(data, "patient", "search", "keyring").returncode == 3


def _sync_data_dirs(client: Path, server: Path) -> None:
    """One in-process sync session between two workstations' databases."""
    from core.crypto.kdf import FAST_PARAMS
    from core.records.workstation import Workstation
    from core.sync.responder import Responder
    from core.sync.session import sync
    from core.sync.transport import LocalTransport
    from tests.clinic_identity import join_test_clinic

    a, b = Workstation(client, FAST_PARAMS), Workstation(server, FAST_PARAMS)
    a.unlock_with_password("admin", PASSWORD)
    b.unlock_with_password("admin", PASSWORD)
    # As paired workstations of one clinic: each signs its ops, each verifies the other's.
    join_test_clinic(a.database)
    join_test_clinic(b.database)
    try:
        sync(a.database, LocalTransport(Responder(b.database)), "admin")
    finally:
        a.lock()
        b.lock()


def test_conflicts_list_and_resolve(tmp_path: Path, no_keyring: None) -> None:
    from core.crypto.kdf import FAST_PARAMS
    from core.records.workstation import Workstation

    one, two = tmp_path / "one", tmp_path / "two"
    assert (
        careline(
            one, "--password-stdin", "init", "--clinic", "Shared", "--user", "admin", stdin=PASSWORD
        ).returncode
        == 0
    )
    joined = Workstation(two, FAST_PARAMS)
    joined.prepare_join("admin", PASSWORD)
    joined.lock()
    patient = as_admin(
        one, "patient", "add", "--family", "Abara", "--given", "Chioma", "--birth-date",
        "1988-08-08",
    )  # fmt: skip
    _sync_data_dirs(two, one)
    assert as_admin(two, "patient", "show", patient["id"])["family"] == "Abara"
    as_admin(one, "patient", "set", patient["id"], "given", "Chiamaka")
    as_admin(two, "patient", "set", patient["id"], "given", "Chioma Ada")
    _sync_data_dirs(two, one)

    listed = careline(one, "--password-stdin", "conflicts", "list", stdin=PASSWORD)
    assert "field given" in listed.stdout and "Chiamaka" in listed.stdout
    [conflict] = as_admin(one, "conflicts", "list")
    assert {c["value"] for c in conflict["candidates"]} == {"Chiamaka", "Chioma Ada"}
    assert {c["author"] for c in conflict["candidates"]} == {"admin"}
    assert len({c["replica"] for c in conflict["candidates"]}) == 2
    assert as_admin(two, "conflicts", "list")[0]["id"] == conflict["id"]

    bad = careline(
        one, "--password-stdin", "conflicts", "resolve", conflict["id"], "--choose", "nope",
        stdin=PASSWORD,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "'nope' is not one of the values" in bad.stderr
    as_admin(one, "conflicts", "resolve", conflict["id"], "--value", "Chioma")
    _sync_data_dirs(two, one)
    assert as_admin(one, "conflicts", "list") == as_admin(two, "conflicts", "list") == []
    assert as_admin(two, "patient", "show", patient["id"])["given"] == "Chioma"
    assert as_admin(two, "audit", "verify")["ok"] is True


def test_list_conflicts_are_listed_with_each_side_and_resolved_by_items(
    tmp_path: Path, no_keyring: None
) -> None:
    from core.crypto.kdf import FAST_PARAMS
    from core.records.workstation import Workstation

    one, two = tmp_path / "one", tmp_path / "two"
    init = careline(
        one, "--password-stdin", "init", "--clinic", "Shared", "--user", "admin", stdin=PASSWORD
    )
    assert init.returncode == 0, init.stderr
    joined = Workstation(two, FAST_PARAMS)
    joined.prepare_join("admin", PASSWORD)
    joined.lock()
    patient = as_admin(
        one, "patient", "add", "--family", "Osei", "--given", "Kofi", "--birth-date", "1970-07-07"
    )
    _sync_data_dirs(two, one)
    # The same allergy recorded at both desks before they synced: a duplicate to review.
    mine = as_admin(one, "allergy", "add", patient["id"], "Penicillin", "--severity", "severe")
    theirs = as_admin(two, "allergy", "add", patient["id"], "penicillin", "--reaction", "hives")
    _sync_data_dirs(two, one)

    [conflict] = as_admin(one, "conflicts", "list")
    assert (conflict["kind"], conflict["field"]) == ("set", "allergies")
    assert conflict["candidates"] == []
    assert set(conflict["merged"]) == {mine["id"], theirs["id"]}
    added = {s["id"]: [(a["item"], a["author"]) for a in s["added"]] for s in conflict["sides"]}
    assert sorted(added.values()) == sorted([[(mine["id"], "admin")], [(theirs["id"], "admin")]])
    assert all(s["removed"] == [] and s["added"][0]["time"] for s in conflict["sides"])
    assert as_admin(two, "conflicts", "list") == [conflict]

    text = careline(one, "--password-stdin", "conflicts", "list", stdin=PASSWORD).stdout
    assert "list allergies (same item changed twice)" in text
    assert f"added    {theirs['id']}  penicillin (hives)  by admin" in text
    [merged] = [line for line in text.splitlines() if "merged (shown now) keeps:" in line]
    assert "Penicillin (severe)" in merged and "penicillin (hives)" in merged

    bad = careline(
        one, "--password-stdin", "conflicts", "resolve", conflict["id"], "--value", "x",
        stdin=PASSWORD,
    )  # fmt: skip
    assert bad.returncode == 1 and "settled by 'merged'" in bad.stderr
    as_admin(one, "conflicts", "resolve", conflict["id"], "--keep", mine["id"])
    _sync_data_dirs(two, one)
    assert as_admin(one, "conflicts", "list") == as_admin(two, "conflicts", "list") == []
    shown = as_admin(two, "patient", "show", patient["id"])["allergies"]
    assert [(a["id"], a["severity"]) for a in shown] == [(mine["id"], "severe")]
