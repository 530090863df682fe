"""FHIR import of bundles that would misfile or forge records: two entries sharing a
``fullUrl`` or a ``resourceType/id`` (one patient's allergy filed on another's chart), a
note's author that is terminal escapes or another system's user name, addenda past the
write path's checks or on an unsigned note. Each is refused whole, naming the entries and
element, with nothing written; the author is the importing person's. A bundle too large
to read safely is refused before it is read."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from core.records.fhir import reader
from core.records.fhir.common import FhirError
from core.records.fhir.importer import import_bundle
from core.records.notes import MAX_NOTE, Notes
from tests.unit.records.fhir.test_import import _clinic, _counts

pytestmark = pytest.mark.strict_authz

ADAMS = "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001"
BROWN = "urn:uuid:bbbbbbbb-0000-0000-0000-000000000001"


def bundle(*entries: tuple[str | None, dict[str, Any]]) -> str:
    """A collection bundle of (fullUrl, resource) entries."""
    listed = [{"resource": r, **({"fullUrl": url} if url else {})} for url, r in entries]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": listed})


def patient(rid: str, family: str, given: str, born: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": rid, "name": [{"family": family, "given": [given]}],
            "birthDate": born}  # fmt: skip


def peanut(rid: str, owner: str) -> dict[str, Any]:
    """A severe peanut anaphylaxis on ``owner``'s chart."""
    reaction = {"manifestation": [{"text": "anaphylaxis"}], "severity": "severe"}
    return {"resourceType": "AllergyIntolerance", "id": rid, "patient": {"reference": owner},
            "code": {"text": "peanut"}, "reaction": [reaction]}  # fmt: skip


def note(owner: str, *texts: str, status: str = "final", author: Any = None) -> dict[str, Any]:
    """A progress note: its text, then addenda."""

    def content(text: str, title: str | None) -> dict[str, Any]:
        data = base64.b64encode(text.encode()).decode()
        return {"attachment": {"contentType": "text/plain; charset=utf-8", "data": data,
                               **({"title": title} if title else {})}}  # fmt: skip

    return {
        "resourceType": "DocumentReference", "id": "n1", "status": "current",
        "docStatus": status,
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "subject": {"reference": owner}, "date": "2020-01-01T10:00:00Z",
        "content": [content(texts[0], None), *(content(t, "Addendum") for t in texts[1:])],
        **({"author": [author]} if author is not None else {}),
    }  # fmt: skip


def refused(data: str) -> str:
    """The FhirError import_bundle raises for ``data``; nothing written, as read_bundle."""
    target = _clinic("Target")
    before = _counts(target)
    with pytest.raises(FhirError) as raised:
        import_bundle(target, data)
    assert _counts(target) == before
    with pytest.raises(FhirError) as checked:  # the check before any write says the same
        reader.read_bundle(data)
    assert str(checked.value) == str(raised.value)
    return str(raised.value)


def test_two_patients_with_one_id_are_refused_naming_both() -> None:
    """The security review's bundle: Adams's allergy was written on Brown's chart and
    Adams not imported at all, reported as 'Created 2'."""
    message = refused(bundle(
        (ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")),
        ("urn:uuid:a2", peanut("a1", ADAMS)),
        (BROWN, patient("p1", "Brown", "Bob", "1990-09-09")),
    ))  # fmt: skip
    assert message.startswith(f"Bundle.entry[2]: Patient/p1, fullUrl {BROWN} has the same ")
    assert f"resourceType/id, 'Patient/p1', as Bundle.entry[0] (Patient/p1, fullUrl {ADAMS})" in (
        message
    )
    assert "nothing was imported" in message


def test_two_entries_with_one_full_url_are_refused_naming_both() -> None:
    message = refused(bundle(
        (ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")),
        ("urn:uuid:a2", peanut("a1", ADAMS)),
        (ADAMS, patient("p2", "Brown", "Bob", "1990-09-09")),
    ))  # fmt: skip
    assert message.startswith(
        f"Bundle.entry[2]: Patient/p2, fullUrl {ADAMS} has the same fullUrl, '{ADAMS}', "
        f"as Bundle.entry[0] (Patient/p1, fullUrl {ADAMS})"
    )


def test_a_repeated_id_of_any_resource_is_refused() -> None:
    """An allergy's ``AllergyIntolerance/a1`` twice: the second took the first's
    references (and a Provenance naming it would describe the other)."""
    message = refused(bundle(
        (ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")),
        (BROWN, patient("p2", "Brown", "Bob", "1990-09-09")),
        (None, peanut("a1", ADAMS)),
        (None, peanut("a1", BROWN)),
    ))  # fmt: skip
    assert "Bundle.entry[3]: AllergyIntolerance/a1 has the same resourceType/id" in message
    assert "as Bundle.entry[2] (AllergyIntolerance/a1)" in message


def test_the_same_patient_twice_by_identifier_is_refused() -> None:
    """Two entries for one person (the same MRN and birth date, as two exports
    concatenated give): the second would pass for the first, already imported."""
    mrn = {"system": "https://hospital.example/mrn", "value": "H-1"}
    first = {**patient("p1", "Adams", "Alice", "1950-05-05"), "identifier": [mrn]}
    second = {**patient("p2", "Adams", "Alice", "1950-05-05"), "identifier": [mrn]}
    message = refused(bundle((ADAMS, first), (BROWN, second)))
    assert "Patient/p1 and Patient/p2 are the same patient" in message
    assert "https://hospital.example/mrn|H-1" in message


def test_each_chart_gets_its_own_entries() -> None:
    """Charts are keyed by their entry: two patients without ids (named by position) and
    one with, each with an allergy, each on their own chart."""
    data = bundle(
        (ADAMS, {**patient("x", "Adams", "Alice", "1950-05-05"), "id": None}),
        (BROWN, {**patient("x", "Brown", "Bob", "1990-09-09"), "id": None}),
        ("urn:uuid:c", patient("c", "Carter", "Carol", "1960-06-06")),
        (None, peanut("a1", ADAMS)), (None, peanut("a2", BROWN)),
        (None, peanut("a3", "Patient/c")),
    )  # fmt: skip
    charts, skipped = reader.read_bundle(data)
    assert skipped == []
    assert [[e.name for e in c.entries] for c in charts] == [
        ["AllergyIntolerance/a1"],
        ["AllergyIntolerance/a2"],
        ["AllergyIntolerance/a3"],
    ]
    target = _clinic("Target")
    import_bundle(target, data)
    for family in ("Adams", "Brown", "Carter"):
        (p,) = target.search_patients(family)
        assert [a.substance for a in target.allergies(p.id)] == ["peanut"]


@pytest.mark.parametrize(
    ("author", "why"),
    [
        ({"display": "dr\x1b[2J\x1b[31m evil\x07"}, "contains control characters"),
        ({"display": "dr\u009b2J evil"}, "contains control or format characters"),
        ({"display": "dr \u202eevil"}, "contains control or format characters"),
    ],
    ids=["terminal-escapes", "c1-csi", "rtl-override"],
)
def test_a_note_author_with_control_characters_is_refused(author: Any, why: str) -> None:
    message = refused(bundle(
        (ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")),
        (None, note(ADAMS, "Seen today.", author=author)),
    ))  # fmt: skip
    assert message == f"DocumentReference/n1.author: {why}"


def test_an_imported_note_is_the_importers_the_sources_author_kept_as_text() -> None:
    """A bare user name from another system ('clin') showed as this clinic's clin's note.
    The note is now by the importing person; the source's author is in the report and
    the chart's fhir.import audit entry."""
    target = _clinic("Target")
    author = {"identifier": {"system": "urn:careline:username", "value": "clin"},
              "display": "clin"}  # fmt: skip
    report = import_bundle(target, bundle(
        (ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")),
        (None, note(ADAMS, "Seen today.", "Phoned: better.", author=author)),
    ))  # fmt: skip
    (created,) = [o for o in report.created if o.resource == "DocumentReference/n1"]
    assert created.reason == "written by 'clin' at the source; by admin here"
    (adams,) = target.search_patients("Adams")
    (imported,) = Notes(target).for_patient(adams.id)
    assert (imported.author, imported.signed_by) == ("admin", "admin")
    assert [a.body for a in imported.addenda] == ["Phoned: better."]
    (details,) = target.db.query(
        "SELECT details FROM audit_log WHERE action = 'fhir.import' AND entity = 'patient'"
    )
    assert json.loads(details[0])["note_authors"] == [[imported.id, "clin"]]


@pytest.mark.parametrize(
    ("texts", "why"),
    [
        (("Seen today.", "x" * (MAX_NOTE + 1)),
         f"its addendum 1 is longer than {MAX_NOTE} characters"),
        (("Seen today.", "Fine.", "   "), "its addendum 2 is blank"),
        (("x" * (MAX_NOTE + 1),), f"the note's text is longer than {MAX_NOTE} characters"),
        (("  \n",), "the note's text is blank"),
    ],
    ids=["long-addendum", "blank-addendum", "long-note", "blank-note"],
)  # fmt: skip
def test_a_note_and_its_addenda_pass_the_write_paths_checks(
    texts: tuple[str, ...], why: str
) -> None:
    message = refused(bundle(
        (ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")), (None, note(ADAMS, *texts)),
    ))  # fmt: skip
    assert message == f"DocumentReference/n1.content: {why}"


def test_an_addendum_on_an_unsigned_note_is_refused() -> None:
    """Notes.add_addendum refuses it ('the note is not signed yet'); the import wrote it."""
    message = refused(bundle(
        (ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")),
        (None, note(ADAMS, "draft note", "Later: fine.", status="preliminary")),
    ))  # fmt: skip
    assert message.startswith(
        "DocumentReference/n1.docStatus: the note is not signed (docStatus is not final or "
        "amended) but has 1 addendum: Careline adds addenda to signed notes only"
    )


def test_a_bundle_past_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading takes some 35 times the file's size in memory, and nothing limited it."""
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(reader.MAX_BUNDLE_BYTES + 1)  # sparse: no 64 MiB written

    def not_read(self: Path) -> bytes:
        raise AssertionError("read before its size was checked")

    monkeypatch.setattr(Path, "read_bytes", not_read)
    with pytest.raises(FhirError) as too_big:
        reader.read_file(huge)
    assert str(too_big.value).startswith(
        f"bundle: is {reader.MAX_BUNDLE_BYTES + 1:,} bytes, more than the "
        f"{reader.MAX_BUNDLE_BYTES:,} a bundle may be"
    )
    monkeypatch.undo()
    small = bundle((ADAMS, patient("p1", "Adams", "Alice", "1950-05-05")))
    monkeypatch.setattr(reader, "MAX_BUNDLE_BYTES", len(small) - 1)
    assert "more than the" in refused(small)  # data given whole (the app, scripts)


def test_a_bundle_nested_past_the_parsers_depth_is_named() -> None:
    """It ended as 'something went wrong that Careline did not expect'."""
    assert refused("[" * 200_000) == "bundle: is nested too deeply to be a FHIR bundle"
