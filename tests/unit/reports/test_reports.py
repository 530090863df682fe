"""The printed reports, read back from the PDF as a person would read the paper."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.records.allergy_status import AllergyRecords
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotFoundError, ValidationError
from core.records.medications import Medications
from core.records.problems import Problems
from core.records.schedule import STATUS_LABELS
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation
from core.reports import data, pdf
from tests.unit.reports.sample import DAY, sample_chart


def pdf_text(document: bytes) -> list[str]:
    """The text of each page."""
    return [page.extract_text() for page in PdfReader(io.BytesIO(document)).pages]


def audit_actions(ws: Workstation) -> list[tuple[str, str, str]]:
    rows = ws.records.db.query("SELECT action, entity, entity_id FROM audit_log ORDER BY seq")
    return [(str(a), str(e), str(i)) for a, e, i in rows]


def test_summary_holds_demographics_allergies_active_problems_medications_latest_vitals(
    workstation: Workstation,
) -> None:
    chart = sample_chart(workstation.records)
    (text,) = pdf_text(pdf.summary_pdf(data.summary_report(workstation.records, chart.patient_id)))
    for expected in (
        "Riverside Clinic",
        "ÑÚÑEZ-ØDEGÅRD, Zoë",  # accents survive the embedded font and the text layer
        "1984-03-02",
        "RC-1001",
        "Penicillin",
        "hives",
        "Severe",  # as the chart shows it, not the stored code
        "Type 2 diabetes mellitus",
        "E11.9",
        "Metformin",
        "500 mg, oral, twice daily",
        "Weight",
        "154 lb",  # as typed, not the stored 69.853 kg
        "Temperature",
        "102 °F ▲",  # as typed, flagged high for an adult
        "Blood pressure",
        "128/82 mmHg",
        "Lisinopril",
        "10 mg, 1 tablet, oral, once daily",
        "Printed ",
        "by Ada Admin (admin)",
        "Page 1 of 1",
        "Confidential",
    ):
        assert expected in text, expected
    assert "Sprained ankle" not in text  # resolved
    assert "Ibuprofen" not in text  # stopped
    assert "80.0 kg" not in text and "80 kg" not in text  # older: only the latest prints
    for stored in ("69.853", "38.89", "Cel", "mm[Hg]", "[lb_av]", "[degF]"):
        assert stored not in text, stored  # stored codes and converted values never print


def test_a_bmi_with_a_zero_decimal_prints_as_the_chart_shows_it(workstation: Workstation) -> None:
    # The tester's chart: 106.4 kg and 177 cm (an older height) are a BMI of 34.0, which
    # the chart shows as 34.0 and the paper printed as "34 kg/m² ▲".
    records = workstation.records
    p = records.add_patient("Adeyemi", "Siobhán", "1980-05-01")
    vitals = VitalSigns(records)
    vitals.record(
        p.id,
        {"weight": "106.7", "height": "177"},
        {"weight": "kg", "height": "cm"},
        "2024-03-30T14:35",
    )
    visit = ClinicalEntries(records).add("encounter", p.id, {"started_at": f"{DAY}T22:00"})
    vitals.record(p.id, {"weight": "106.4"}, {"weight": "kg"}, f"{DAY}T22:14", visit)
    assert [str(s.bmi) for s in vitals.sets(p.id)] == ["34.0", "34.1"]  # as the chart shows
    (summary,) = pdf_text(pdf.summary_pdf(data.summary_report(records, p.id)))
    (visit_note,) = pdf_text(pdf.visit_pdf(data.visit_report(records, visit)))
    for text in (summary, visit_note):
        assert "34.0 kg/m² ▲" in text
        assert "34 kg/m²" not in text


def test_printing_a_summary_is_audited_naming_the_patient(workstation: Workstation) -> None:
    chart = sample_chart(workstation.records)
    data.summary_report(workstation.records, chart.patient_id)
    assert audit_actions(workstation)[-1] == ("print.summary", "patient", chart.patient_id)


def test_unknown_patient_or_visit_is_named_and_leaves_no_audit_entry(
    workstation: Workstation,
) -> None:
    before = audit_actions(workstation)
    with pytest.raises(NotFoundError, match="nope"):
        data.summary_report(workstation.records, "nope")
    with pytest.raises(NotFoundError, match="no visit with id 'v1'"):
        data.visit_report(workstation.records, "v1")
    assert audit_actions(workstation) == before


def test_visit_note_holds_the_signed_note_its_addendum_and_the_visit_vitals(
    workstation: Workstation,
) -> None:
    chart = sample_chart(workstation.records)
    report = data.visit_report(workstation.records, chart.visit_id)
    (text,) = pdf_text(pdf.visit_pdf(report))
    for expected in (
        "Visit note",
        "ÑÚÑEZ-ØDEGÅRD, Zoë",
        "Diabetes review",
        "Ada Admin",
        "2026-11-30 09:05",
        "P: continue metformin.",
        "Signed by Ada Admin on",
        "Addendum by Ada Admin on",
        "HbA1c came back at 6.8 %.",
        "Temperature",
        "102 °F ▲",
        "Weight",
        "154 lb",
        "Blood pressure",
        "128/82 mmHg",
        "Diagnoses",
        "Essential (primary) hypertension",
        "I10",
        "Medication changes",
        "Lisinopril",
        "10 mg, 1 tablet, oral, once daily",
    ):
        assert expected in text, expected
    for stored in ("69.853", "38.89", "Cel", "mm[Hg]", "[lb_av]", "[degF]"):
        assert stored not in text, stored
    assert "An unrelated note" not in text  # not written in this visit
    assert "80 kg" not in text  # measured outside this visit
    # Diagnoses and medications recorded outside the visit are not its changes.
    assert "Type 2 diabetes" not in text and "Metformin" not in text
    assert [(d.description, d.code) for d in report.diagnoses] == [
        ("Essential (primary) hypertension", "I10")
    ]
    assert [m.name for m in report.medications] == ["Lisinopril"]
    assert audit_actions(workstation)[-1] == ("print.visit", "patient", chart.patient_id)


def test_visit_note_names_who_recorded_each_set_of_vitals(workstation: Workstation) -> None:
    """The note named who wrote and signed each note, but not who took the vitals: each
    row now names who recorded its set, by full name as the notes do."""
    records = workstation.records
    chart = sample_chart(records)
    records.add_user("lucie", "Nurse Lucie Moreau", "nurse", "lucie's own long password")
    VitalSigns(ClinicRecords(records.db, "lucie")).record(
        chart.patient_id, {"pulse": "72"}, None, f"{DAY}T09:20", chart.visit_id
    )
    report = data.visit_report(records, chart.visit_id)
    (text,) = pdf_text(pdf.visit_pdf(report))
    rows = [" ".join(line.split()) for line in text.splitlines()]
    assert "Measurement Value Measured Recorded by" in rows
    assert f"Pulse 72/min {DAY} 09:20 Nurse Lucie Moreau" in rows
    assert f"Weight 154 lb {DAY} 09:10 Ada Admin" in rows  # the admin's set
    assert "lucie" not in text  # a person, not a login name


def test_a_note_signed_by_someone_else_prints_who_wrote_it(workstation: Workstation) -> None:
    """The chart's list says "Signed … by Dr Doug Lee · written by Nora Nurse"; the printed
    visit said only who signed. It names both when they differ, and only the signer when
    the author signed."""
    chart = sample_chart(workstation.records)
    report = data.visit_report(workstation.records, chart.visit_id)
    (own,) = report.notes
    assert own.signed_at is not None and own.author == own.signed_by == "Ada Admin"
    nurses = dataclasses.replace(own, body="Obs taken.", author="Nora Nurse", addenda=())
    both = dataclasses.replace(report, notes=(own, nurses))
    (text,) = pdf_text(pdf.visit_pdf(both))
    flat = " ".join(text.split())
    assert f"Signed by Ada Admin on {own.signed_at}; written by Nora Nurse" in flat
    assert flat.count("written by") == 1  # Ada's own note names her once


def test_visit_note_carries_the_patients_allergies_most_severe_first(
    workstation: Workstation,
) -> None:
    """A visit note goes to a pharmacy or a referral with its prescriptions: it carries the
    allergies the chart's banner shows, with reaction and severity, above the visit's
    vitals and medication changes."""
    records = workstation.records
    chart = sample_chart(records)
    records.add_allergy(chart.patient_id, "Latex", "rash", "mild")
    (text,) = pdf_text(pdf.visit_pdf(data.visit_report(records, chart.visit_id)))
    lines = text.splitlines()
    allergies = lines.index("Allergies")
    assert lines[allergies + 1 : allergies + 4] == [
        "Substance Reaction Severity",
        "Penicillin hives Severe",
        "Latex rash Mild",
    ]
    assert allergies < lines.index("Vital signs") < lines.index("Medication changes")


def test_visit_note_and_summary_say_no_known_allergies_or_not_recorded_as_the_banner_does(
    workstation: Workstation,
) -> None:
    """No known allergies (asked and recorded) and "not recorded" (nobody asked) are
    different answers on paper as on screen."""
    records = workstation.records
    asked = records.add_patient("Kim", "Min", "1985-01-01")
    AllergyRecords(records).record_no_known_allergies(asked.id)
    never = records.add_patient("Bello", "Ade", "1990-05-05")
    for patient, said, not_said in (
        (asked.id, "No known allergies", "Allergies not recorded"),
        (never.id, "Allergies not recorded: ask the patient.", "No known allergies"),
    ):
        visit = Visits(records).start(patient, "Cough")
        for document in (
            pdf.visit_pdf(data.visit_report(records, visit.id)),
            pdf.summary_pdf(data.summary_report(records, patient)),
        ):
            (text,) = pdf_text(document)
            lines = text.splitlines()
            assert lines[lines.index("Allergies") + 1] == said
            assert not_said not in text


def test_visit_without_diagnoses_or_medication_changes_says_so(
    workstation: Workstation,
) -> None:
    records = workstation.records
    chart = sample_chart(records)

    empty = Visits(records).start(chart.patient_id, "Blood pressure check")
    (text,) = pdf_text(pdf.visit_pdf(data.visit_report(records, empty.id)))
    assert "No diagnoses recorded in this visit." in text
    assert "No medications started, changed or stopped in this visit." in text
    assert "No vital signs recorded in this visit." in text


def test_visit_note_lists_a_medication_stopped_and_a_problem_resolved_in_the_visit(
    workstation: Workstation,
) -> None:
    """Stopped in the visit, it was on no paper of the visit: the note read as if nothing
    had changed. Both were recorded before the visit, in none."""
    records = workstation.records
    patient = records.add_patient("Okafor", "Chi", "1960-04-04").id
    aspirin = Medications(records).start(
        patient, {"name": "Aspirin", "strength": "75 mg", "frequency": "once daily",
                  "start": "2024-01-05"},
    )  # fmt: skip
    cough = Problems(records).add(patient, uncoded="Cough", onset="2026-11")
    visit = Visits(records).start(patient, "Bleeding gums")
    Medications(records).stop(aspirin.id, "2026-12-06", visit.id)
    Problems(records).resolve(cough.id, "2026-12-06", visit.id)
    report = data.visit_report(records, visit.id)
    assert report.medications == (
        data.MedicationChangeLine("Aspirin", "75 mg, once daily", "2024-01-05", "2026-12-06"),
    )
    assert report.diagnoses == (data.DiagnosisLine("Cough", None, "Resolved", "2026-12-06"),)
    (text,) = pdf_text(pdf.visit_pdf(report))
    lines = text.splitlines()
    assert "Aspirin 75 mg, once daily 2024-01-05 2026-12-06" in lines
    assert "Cough uncoded Resolved 2026-12-06" in lines
    assert "No medications started, changed or stopped" not in text


def test_day_list_holds_the_days_patients_in_time_order(workstation: Workstation) -> None:
    sample_chart(workstation.records)
    report = data.day_report(workstation.records, DAY)
    (text,) = pdf_text(pdf.day_pdf(report))
    names = ["ПЕТРОВ, Иван", "ÑÚÑEZ-ØDEGÅRD, Zoë", "O'BRIEN, Seán"]
    positions = [text.index(n) for n in names]
    assert positions == sorted(positions)
    assert "1 cancelled appointment(s) not listed." in text
    assert [a.starts for a in report.appointments] == ["08:30", "09:00", "11:00"]
    assert audit_actions(workstation)[-1] == ("print.day", "schedule", DAY)


def test_day_is_read_strictly(workstation: Workstation) -> None:
    with pytest.raises(ValidationError, match="02/03/2026"):
        data.day_report(workstation.records, "02/03/2026")
    empty = data.day_report(workstation.records, "2030-01-01")
    assert "No appointments on this day." in pdf_text(pdf.day_pdf(empty))[0]


def test_every_page_carries_clinic_patient_and_page_numbers(workstation: Workstation) -> None:
    records = workstation.records
    chart = sample_chart(records)
    from core.records.notes import Notes

    long_body = "\n".join(f"Line {i}: observation recorded in detail." for i in range(150))
    Notes(records).create(chart.patient_id, long_body, chart.visit_id)
    pages = pdf_text(pdf.visit_pdf(data.visit_report(records, chart.visit_id)))
    assert len(pages) >= 3
    for number, text in enumerate(pages, 1):
        assert "Riverside Clinic" in text
        assert "ÑÚÑEZ-ØDEGÅRD, Zoë" in text and "born 1984-03-02" in text
        assert f"Page {number} of {len(pages)}" in text
        assert "Confidential" in text


def test_missing_font_is_named(
    workstation: Workstation, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    chart = sample_chart(workstation.records)
    report = data.summary_report(workstation.records, chart.patient_id)
    monkeypatch.setattr(pdf, "FONT_DIR", pdf.FONT_DIR / "missing")
    with pytest.raises(pdf.MissingFontError, match=r"DejaVuSans\.ttf is missing"):
        pdf.summary_pdf(report)


def test_day_list_names_clinicians_once_appointments_have_them() -> None:
    context = data.PrintContext("Riverside Clinic", "2026-11-30 07:50", "Ada Admin (admin)")
    line = data.AppointmentLine(
        "09:00", "09:20", "KIM, Min", "1985-01-01", None, "Cough", "booked", "Dr Bello"
    )
    text = pdf_text(pdf.day_pdf(data.DayReport(context, DAY, (line,), 0)))[0]
    assert "Clinician" in text and "Dr Bello" in text
    without = data.DayReport(context, DAY, (dataclasses.replace(line, clinician=None),), 0)
    assert "Clinician" not in pdf_text(pdf.day_pdf(without))[0]


def test_day_list_prints_each_status_as_the_schedule_shows_it(workstation: Workstation) -> None:
    sample_chart(workstation.records)
    report = data.day_report(workstation.records, DAY)
    assert [a.status for a in report.appointments] == ["Booked", "Arrived", "Booked"]
    (text,) = pdf_text(pdf.day_pdf(report))
    assert "Arrived" in text and "Booked" in text
    assert "arrived" not in text and "booked" not in text  # never the stored code


def test_day_list_never_breaks_a_date_a_time_or_a_status_over_two_lines() -> None:
    """Long names, reasons and clinicians take their lines; the birth date, the time, the MRN
    and the status each stay whole on one line, whatever the status."""
    context = data.PrintContext("Riverside Clinic", "2026-11-30 07:50", "Ada Admin (admin)")
    lines = tuple(
        data.AppointmentLine(
            f"{9 + i:02d}:00",
            f"{9 + i:02d}:15",
            "ÑÚÑEZ-ØDEGÅRD-WILLIAMSON, Zoë Alexandra Maria",
            f"198{i}-06-14",
            f"MRN-00{i}2345",
            "Review of blood pressure readings and the new medication's side effects",
            label,
            "Dr Samantha Lee-Montgomery",
        )
        for i, label in enumerate(STATUS_LABELS.values())
    )
    (text,) = pdf_text(pdf.day_pdf(data.DayReport(context, DAY, lines, 0)))
    for line in lines:
        for whole in (f"{line.starts}–{line.ends}", line.birth_date, str(line.mrn), line.status):
            assert whole in text, f"{whole!r} is broken over two lines"
    assert "No-show" in text and "no_show" not in text


def test_summary_and_visit_note_word_coded_choices_as_the_chart_does(
    workstation: Workstation,
) -> None:
    chart = sample_chart(workstation.records)
    (summary,) = pdf_text(
        pdf.summary_pdf(data.summary_report(workstation.records, chart.patient_id))
    )
    assert "Female" in summary and "female" not in summary
    assert "Severe" in summary and "severe" not in summary
    (visit,) = pdf_text(pdf.visit_pdf(data.visit_report(workstation.records, chart.visit_id)))
    assert "Active" in visit and "active" not in visit


def test_saving_over_a_0644_file_leaves_a_0600_file_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "summary.pdf"
    target.write_bytes(b"an older report")
    target.chmod(0o644)
    pdf.save(target, b"%PDF- the new report")
    assert target.read_bytes() == b"%PDF- the new report"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["summary.pdf"]


def test_saving_onto_a_symlink_replaces_the_link_and_leaves_its_target_alone(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"not a report")
    elsewhere.chmod(0o644)
    target = tmp_path / "summary.pdf"
    target.symlink_to(elsewhere)
    pdf.save(target, b"%PDF- the report")
    assert not target.is_symlink()
    assert target.read_bytes() == b"%PDF- the report"
    assert target.stat().st_mode & 0o777 == 0o600
    assert elsewhere.read_bytes() == b"not a report"
    assert elsewhere.stat().st_mode & 0o777 == 0o644


def _day_with(name: str) -> bytes:
    context = data.PrintContext("Riverside Clinic", "2026-11-30 07:50", "Ada Admin (admin)")
    line = data.AppointmentLine("09:00", "09:20", name, "1985-01-01", None, "Cough", "Booked", None)
    return pdf.day_pdf(data.DayReport(context, DAY, (line,), 0))


def test_a_character_no_font_here_has_prints_as_a_box_and_the_page_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(pdf.FALLBACK_FONTS_VARIABLE, "")  # a computer with no CJK font
    (text,) = pdf_text(_day_with("NGUYỄN, Văn 李明"))
    # Never a name with characters silently missing: the boxes show where they were.
    assert f"NGUYỄN, Văn {pdf.MISSING_MARK}{pdf.MISSING_MARK}" in text
    assert " ".join(pdf.MISSING_NOTE.split()) in " ".join(text.split())
    (plain,) = pdf_text(_day_with("NGUYỄN, Văn"))
    assert pdf.MISSING_MARK not in plain and "could not be printed" not in plain


FALLBACK = Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf")


def test_a_name_in_chinese_prints_with_a_fallback_font_the_computer_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not FALLBACK.is_file():
        if os.environ.get("CARELINE_REQUIRE_CJK_FONT"):
            pytest.fail(f"{FALLBACK} is missing (Debian's fonts-droid-fallback)")
        pytest.skip(f"{FALLBACK} is not installed (Debian's fonts-droid-fallback)")
    monkeypatch.setenv(pdf.FALLBACK_FONTS_VARIABLE, str(FALLBACK))
    (text,) = pdf_text(_day_with("LI, 李明"))
    assert "LI, 李明" in text
    assert pdf.MISSING_MARK not in text and "could not be printed" not in text
