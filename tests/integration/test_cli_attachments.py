"""``careline attachment add|list|get|key`` as operators script them: real processes, real
SQLCipher, a workstation with no server (the file waits for upload, opens from the
encrypted cache)."""

from __future__ import annotations

import json
from pathlib import Path

from core.records.permissions import ACTIONS
from tests.integration.staff_clinic import make_staff_clinic, run_as
from tests.integration.test_cli import PASSWORD, as_admin, careline


def test_add_list_get_offline_and_refusals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    letter = tmp_path / "discharge letter.pdf"
    letter.write_bytes(b"%PDF-1.4 HARBOUR-MARKER " * 50_000)
    added = as_admin(
        data, "attachment", "add", pid, str(letter), "--title", "Discharge letter",
        "--date", "2026-11-28", "--category", "letter",
    )  # fmt: skip
    assert (added["title"], added["media_type"], added["size"]) == (
        "Discharge letter", "application/pdf", letter.stat().st_size,
    )  # fmt: skip
    assert added["availability"] == "waiting to upload"
    cached = [p for p in (data / "attachments").rglob("*") if p.is_file()]
    assert cached and all(b"HARBOUR-MARKER" not in p.read_bytes() for p in cached)

    [listed] = as_admin(data, "attachment", "list", pid)
    assert (listed["id"], listed["category"]) == (added["id"], "letter")
    out = tmp_path / "copy.pdf"
    got = as_admin(data, "attachment", "get", added["id"], "-o", str(out))
    assert got["output"] == str(out) and out.read_bytes() == letter.read_bytes()
    text = careline(data, "--password-stdin", "attachment", "list", pid, stdin=PASSWORD + "\n")
    assert "2026-11-28  Discharge letter [letter]  discharge letter.pdf" in text.stdout
    # No server is set: the text says the file stays here, not that it waits to upload
    # (the JSON keeps the state itself, above).
    assert "bytes, on this workstation (no server))" in text.stdout

    missing = careline(
        data, "--password-stdin", "attachment", "add", pid, str(tmp_path / "nope.pdf"),
        "--title", "X", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert missing.returncode != 0 and "no file" in missing.stderr
    future = careline(
        data, "--password-stdin", "attachment", "add", pid, str(letter), "--title", "X",
        "--date", "2999-01-01", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert future.returncode != 0 and "in the future" in future.stderr
    bad_key = careline(
        data, "--password-stdin", "attachment", "key", "import",
        stdin=PASSWORD + "\nnot a key\n",
    )  # fmt: skip
    assert bad_key.returncode != 0 and "not a clinic attachment key" in bad_key.stderr

    exported = as_admin(data, "attachment", "key", "export")["key"]
    other = tmp_path / "other"
    as_admin(other, "init", "--clinic", "Other", "--user", "admin")
    # One digit of the secret changed on the way: refused, named, and nothing kept.
    damaged = exported[:-1] + ("0" if exported[-1] != "0" else "1")
    refused = careline(
        other, "--password-stdin", "attachment", "key", "import",
        stdin=f"{PASSWORD}\n{damaged}\n",
    )  # fmt: skip
    assert refused.returncode != 0 and "does not match its id" in refused.stderr
    imported = careline(
        other, "--json", "--password-stdin", "attachment", "key", "import",
        stdin=f"{PASSWORD}\n{exported}\n",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert exported.split(":")[2] in imported.stdout


def test_attachment_get_is_in_the_charts_audit_list(tmp_path: Path) -> None:
    """``attachment get`` writes the decrypted file out: the chart's audit list says so
    (it said only attachment.create)."""
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    lab = tmp_path / "lab.pdf"
    lab.write_bytes(b"%PDF-1.4 LAB")
    added = as_admin(data, "attachment", "add", pid, str(lab), "--title", "Lab")
    as_admin(data, "attachment", "get", added["id"], "-o", str(tmp_path / "copy.pdf"))
    entries = as_admin(data, "audit", "list", "--patient", pid)["entries"]
    mine = [(e["action"], e["entity_id"]) for e in entries if e["entity"] == "attachment"]
    assert mine == [("attachment.save", added["id"]), ("attachment.create", added["id"])]
    assert entries[0]["patient"] == pid  # the entry names the chart it disclosed


def _clinic_with_letter(tmp_path: Path) -> tuple[Path, str, str]:
    """A clinic, a patient, and a letter in their chart: (data dir, patient, attachment)."""
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    letter = tmp_path / "someone else's letter.pdf"
    letter.write_bytes(b"%PDF-1.4 WRONG-CHART")
    added = as_admin(data, "attachment", "add", pid, str(letter), "--title", "Letter")
    return data, pid, added["id"]


def test_a_file_added_to_the_wrong_chart_is_removed_with_its_reason_and_kept(
    tmp_path: Path,
) -> None:
    data, pid, file_id = _clinic_with_letter(tmp_path)
    cached = sorted(p for p in (data / "attachments").rglob("*") if p.is_file())
    reason = "Added to the wrong chart"
    done = as_admin(data, "attachment", "remove", file_id, "--reason", reason)
    assert done == {"id": file_id, "removed": True, "reason": reason}
    assert as_admin(data, "attachment", "list", pid) == []  # off the chart
    [gone] = as_admin(data, "attachment", "list", pid, "--removed")
    assert (gone["id"], gone["removed_by"], gone["removed_reason"]) == (file_id, "admin", reason)
    text = careline(
        data, "--password-stdin", "attachment", "list", pid, "--removed", stdin=PASSWORD + "\n"
    )
    assert f"REMOVED by admin at {gone['removed_at'][:10]}" in text.stdout
    assert text.stdout.rstrip().endswith(f"UTC: {reason}")
    # Kept (legal hold): the encrypted file is still in the cache, still marked for upload.
    assert sorted(p for p in (data / "attachments").rglob("*") if p.is_file()) == cached
    entries = as_admin(data, "audit", "list", "--patient", pid)["entries"]
    mine = [e["action"] for e in entries if e["entity_id"] == file_id]
    # The chart's audit list still names the file's earlier entries (its row is gone).
    assert mine == ["attachment.delete", "attachment.create"]
    assert entries[0]["patient"] == pid and reason not in str(entries[0]["details"])

    again = careline(
        data, "--password-stdin", "attachment", "remove", file_id, "--reason", "twice",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert again.returncode != 0 and "already removed from the chart, by admin" in again.stderr
    blank = careline(
        data, "--password-stdin", "attachment", "edit", file_id, "--title", "New",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert blank.returncode != 0 and file_id in blank.stderr


def test_a_files_title_date_and_category_are_corrected(tmp_path: Path) -> None:
    data, pid, file_id = _clinic_with_letter(tmp_path)
    changed = as_admin(
        data, "attachment", "edit", file_id, "--title", "Discharge letter, Mercy Hospital",
        "--date", "2026-11-28", "--category", "letter",
    )  # fmt: skip
    assert (changed["title"], changed["date"], changed["category"]) == (
        "Discharge letter, Mercy Hospital", "2026-11-28", "letter",
    )  # fmt: skip
    [listed] = as_admin(data, "attachment", "list", pid)
    assert listed["title"] == "Discharge letter, Mercy Hospital"
    empty = careline(
        data, "--password-stdin", "attachment", "edit", file_id, "--title", " ",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert empty.returncode != 0 and "title" in empty.stderr.lower()
    assert as_admin(data, "attachment", "list", pid)[0]["title"] == listed["title"]
    entries = as_admin(data, "audit", "list", "--patient", pid)["entries"]
    assert entries[0]["action"] == "attachment.update"
    assert entries[0]["details"]["fields"] == ["category", "date", "title"]


def test_removing_a_file_is_refused_with_the_matrix_wording(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pid = make_staff_clinic(data)
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 LETTER")
    code, out, err = run_as(data, "doc", "attachment", "add", pid, str(letter), "--title", "L")
    assert code == 0, err
    file_id = json.loads(out)["id"]
    removing, changing = ACTIONS["attachment.delete"], ACTIONS["attachment.update"]
    assert removing is not None and changing is not None
    code, out, err = run_as(data, "adm", "attachment", "remove", file_id, "--reason", "wrong")
    assert code != 0 and out == ""
    assert removing.refusal() in err
    assert removing.refusal().endswith("can remove a file from a chart")
    code, out, err = run_as(data, "adm", "attachment", "edit", file_id, "--title", "X")
    assert code != 0 and changing.refusal() in err
    code, out, _err = run_as(data, "nina", "attachment", "list", pid)
    assert [a["id"] for a in json.loads(out)] == [file_id]  # still on the chart
    code, out, err = run_as(data, "nina", "attachment", "remove", file_id, "--reason", "Dup")
    assert code == 0, err


def test_empty_fake_and_oversized_files_are_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    empty = tmp_path / "scan.pdf"
    empty.write_bytes(b"")
    fake = tmp_path / "lab.pdf"
    fake.write_bytes(b"<html>Your session expired</html>")
    not_png = tmp_path / "rash.png"
    not_png.write_bytes(b"\xff\xd8\xff\xe0JFIF not a png")
    huge = tmp_path / "video.pdf"
    with huge.open("wb") as out:  # sparse: nothing is written but its size
        out.truncate(300 * 1024 * 1024)
    cases = [
        (empty, "scan.pdf is empty (0 bytes): there is nothing to add"),
        (fake, "lab.pdf is not a PDF: it does not start with %PDF-"),
        (not_png, "rash.png is not a PNG image: its content is a JPEG image (rename it to "
                  "rash.jpg if that is right)"),
        (huge, "video.pdf is 300 MB, larger than the 256 MB a file in a chart may be"),
    ]  # fmt: skip
    for path, message in cases:
        refused = careline(
            data, "--password-stdin", "attachment", "add", pid, str(path), "--title", "X",
            stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    assert as_admin(data, "attachment", "list", pid) == []
    folder = data / "attachments"
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]
