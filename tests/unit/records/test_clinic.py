from __future__ import annotations

import pytest

from core.records.errors import NotFoundError, ValidationError
from core.records.workstation import Workstation


def test_add_and_open_chart(workstation: Workstation) -> None:
    records = workstation.records
    p = records.add_patient("Nguyen", "Thi Minh", "1985-07-14", sex="Female", mrn="MRN-0042")
    assert p.sex == "female" and p.mrn == "MRN-0042"
    records.add_allergy(p.id, "Penicillin", reaction="hives", severity="severe")
    chart = records.open_chart(p.id)
    # Recording the allergy also answered "any allergies?" (allergy_status, issue #10).
    assert chart.patient == records.get_patient(p.id)
    assert (chart.patient.id, chart.patient.allergy_status) == (p.id, "allergies")
    assert [a.substance for a in chart.allergies] == ["Penicillin"]
    assert chart.allergies[0].recorded_by == "admin"
    audit = workstation.database.query(
        "SELECT action, entity_id, actor FROM audit_log ORDER BY seq DESC LIMIT 1"
    )
    assert audit == [("chart.open", p.id, "admin")]


def test_search_by_prefix_mrn_and_birth_date(workstation: Workstation) -> None:
    r = workstation.records
    smith = r.add_patient("Smith", "Joanna", "1980-03-02", mrn="A-100")
    r.add_patient("Smithson", "Peter", "1990-11-30", mrn="B-200")
    r.add_patient("Jones", "Smitty", "1975-01-01")
    assert {p.family for p in r.search_patients("smi")} == {"Smith", "Smithson", "Jones"}
    assert [p.id for p in r.search_patients("smith jo")] == [smith.id]
    assert {p.given for p in r.search_patients("smi jo")} == {"Joanna", "Smitty"}
    assert [p.id for p in r.search_patients("A-100")] == [smith.id]
    assert [p.id for p in r.search_patients("1980-03-02")] == [smith.id]
    assert r.search_patients("zzz") == []
    # FTS operators typed by a person are plain text, not query syntax.
    assert r.search_patients('smi OR "jones" NEAR(') == []
    assert [p.family for p in r.search_patients("")] == ["Jones", "Smith", "Smithson"]


def test_update_keeps_index_current_and_audits_field_names(workstation: Workstation) -> None:
    r = workstation.records
    p = r.add_patient("Okafor", "Chidi", "2001-05-05")
    r.update_patient(p.id, {"family": "Okafor-Bello", "phone": "555 0101"})
    assert [x.id for x in r.search_patients("bello")] == [p.id]
    row = workstation.database.query(
        "SELECT action, details FROM audit_log ORDER BY seq DESC LIMIT 1"
    )[0]
    assert row[0] == "patient.update"
    assert "family" in row[1] and "Bello" not in row[1]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"birth_date": "14/07/1985"}, "birth_date"),
        ({"family": "  "}, "family"),
        ({"sex": "robot"}, "sex"),
        ({"mrn": "bad mrn!"}, "mrn"),
        ({"ssn": "x"}, "ssn"),
    ],
)
def test_invalid_changes_name_the_field(
    workstation: Workstation, changes: dict[str, str], field: str
) -> None:
    r = workstation.records
    p = r.add_patient("Valid", "Person", "1999-09-09")
    with pytest.raises(ValidationError) as info:
        r.update_patient(p.id, changes)
    assert info.value.field == field
    assert r.get_patient(p.id) == p


def test_duplicate_mrn_is_refused(workstation: Workstation) -> None:
    r = workstation.records
    r.add_patient("One", "A", "1990-01-01", mrn="X1")
    with pytest.raises(ValidationError, match="already used"):
        r.add_patient("Two", "B", "1990-01-01", mrn="X1")
    assert r.count_patients() == 1


def test_an_mrn_differing_only_in_letter_case_is_the_same_mrn(workstation: Workstation) -> None:
    """With TST-001 held, tst-001 was accepted, and a search for it then found both."""
    r = workstation.records
    held = r.add_patient("One", "A", "1990-01-01", mrn="TST-001")
    with pytest.raises(ValidationError, match="'tst-001' is already used by another patient"):
        r.add_patient("Two", "B", "1990-01-01", mrn="tst-001")
    other = r.add_patient("Two", "B", "1990-01-01", mrn="Tst-002")
    with pytest.raises(ValidationError) as caught:
        r.update_patient(other.id, {"mrn": "Tst-001"})
    assert str(caught.value) == "mrn: 'Tst-001' is already used by another patient (as 'TST-001')"
    # Kept as typed; its own MRN in another case is no clash.
    assert r.get_patient(other.id).mrn == "Tst-002"
    assert r.update_patient(held.id, {"mrn": "tst-001"}).mrn == "tst-001"
    assert [p.id for p in r.search_patients("TST-001")] == [held.id]


def test_remove_allergy_and_unknown_ids(workstation: Workstation) -> None:
    r = workstation.records
    p = r.add_patient("Ali", "Sara", "1960-02-29")
    a = r.add_allergy(p.id, "Latex")
    r.remove_allergy(a.id)
    assert r.allergies(p.id) == []
    with pytest.raises(NotFoundError, match="no allergy"):
        r.remove_allergy(a.id)
    with pytest.raises(NotFoundError, match="no patient"):
        r.open_chart("nope")
    with pytest.raises(NotFoundError, match="no patient"):
        r.add_allergy("nope", "Latex")


def test_paging_in_name_order(workstation: Workstation) -> None:
    r = workstation.records
    for i in range(25):
        r.add_patient(f"Family{i:02d}", "Given", "2000-01-01")
    first = r.list_patients(limit=10)
    second = r.list_patients(limit=10, offset=10)
    assert [p.family for p in first + second] == [f"Family{i:02d}" for i in range(20)]
