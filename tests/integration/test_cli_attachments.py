"""``careline attachment add|list|get|key`` as operators script them: real processes, real
SQLCipher, a workstation with no server (the file waits for upload, opens from the
encrypted cache)."""

from __future__ import annotations

from pathlib import Path

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
