"""The printed reports as PDF (fpdf2: pure Python, small; README says why).

Every page carries the clinic's name, the report's title, the patient's name and birth
date (a summary or visit note), the time it was printed and by whom, its page number of
the total and a confidentiality footer. The text is set in DejaVu Sans, shipped with
Careline (``fonts/``, its licence beside it) and embedded, so accented, Greek and Cyrillic
names print as typed. For the scripts DejaVu Sans lacks (Chinese, Japanese, Korean, ...)
the first font found among those a clinic's computer commonly has (``fallback_font_files``:
Debian's Droid Sans Fallback or WenQuanYi, Noto CJK, Windows' Microsoft YaHei, SimSun,
Malgun Gothic, MS Gothic, macOS's PingFang) is embedded as a fallback. A character no font
here can print is never dropped silently: it prints as a visible box (U+25A1) and that
page's footer says so, since a name printed without one of its characters would be
another person's name on paper.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TableHeadingsDisplay, XPos, YPos
from fpdf.fonts import FontFace, TTFFont

from core.errors import CarelineError
from core.records.allergy_status import AllergyState
from core.reports.data import (
    AllergyLine,
    DayReport,
    DiagnosisLine,
    MedicationChangeLine,
    PatientLine,
    PatientSummaryReport,
    PrintContext,
    VisitReport,
)

FONT_DIR = Path(__file__).with_name("fonts")
FONT = "DejaVuSans"
CONFIDENTIAL = (
    "Confidential: personal health information. Keep it secure; do not leave it unattended; "
    "shred it when no longer needed."
)
_LINE = 5.0  # mm, body line height
_GREY = (90, 90, 90)


# Fonts with the scripts DejaVu Sans lacks, as common systems install them (TrueType or
# TrueType collections, which fpdf2 embeds); CARELINE_REPORT_FALLBACK_FONTS (paths separated
# by the system's path separator; empty: none) replaces the list.
_FALLBACK_CANDIDATES = (
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "C:\\Windows\\Fonts\\msyh.ttc",
    "C:\\Windows\\Fonts\\simsun.ttc",
    "C:\\Windows\\Fonts\\malgun.ttf",
    "C:\\Windows\\Fonts\\msgothic.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
)
FALLBACK_FONTS_VARIABLE = "CARELINE_REPORT_FALLBACK_FONTS"
# What a character no embedded font has prints as (DejaVu Sans has it).
MISSING_MARK = "\u25a1"
MISSING_NOTE = (
    f"Characters shown as {MISSING_MARK} could not be printed with the fonts on this "
    "computer; Careline holds them as typed."
)


def fallback_font_files() -> list[Path]:
    """The fallback font files this computer has (the first one found is used)."""
    chosen = os.environ.get(FALLBACK_FONTS_VARIABLE)
    names = _FALLBACK_CANDIDATES if chosen is None else [n for n in chosen.split(os.pathsep) if n]
    return [Path(n) for n in names if Path(n).is_file()]


class MissingFontError(CarelineError):
    """The report font is missing from the installation (its file is named)."""


class _Page(FPDF):
    """A4 with Careline's header and footer on every page."""

    def __init__(self, title: str, context: PrintContext, patient: PatientLine | None) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report_title = title
        self.context = context
        self.patient = patient
        for style, file in (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf")):
            path = FONT_DIR / file
            if not path.is_file():
                raise MissingFontError(
                    f"the report font {file} is missing from {FONT_DIR}; reinstall Careline"
                )
            self.add_font(FONT, style, str(path))
        self._printable = self._characters(FONT)
        self._add_fallback_font()
        self.missing_on_page = False  # a character printed as MISSING_MARK on this page
        self.set_title(title)
        self.set_author(context.printed_by)
        self.set_creator("Careline")
        self.set_auto_page_break(auto=True, margin=22)
        self.set_margins(18, 16, 18)

    def _characters(self, family: str) -> set[int]:
        """The code points an embedded TrueType font has glyphs for."""
        font = self.fonts[family.lower()]
        return set(font.cmap) if isinstance(font, TTFFont) else set()

    def _add_fallback_font(self) -> None:
        """Embed the first fallback font that loads (one that does not is skipped)."""
        for path in fallback_font_files():
            try:
                for style in ("", "B"):  # no bold CJK face: the regular one for both
                    self.add_font("Fallback", style, str(path))
            except Exception:  # a damaged or unsupported font file: skip it
                self.fonts.pop("fallback", None)
                self.fonts.pop("fallbackb", None)
                continue
            self._printable |= self._characters("Fallback")
            self.set_fallback_fonts(["Fallback"], exact_match=False)
            return

    def normalize_text(self, text: str) -> str:
        """Text as printed: a character no embedded font has becomes MISSING_MARK (noted
        in the page's footer) instead of vanishing from the page."""
        shown = "".join(
            c if ord(c) in self._printable or c in "\n\r\t" else MISSING_MARK for c in text
        )
        if shown != text:
            self.missing_on_page = True
        return super().normalize_text(shown)

    def header(self) -> None:
        self.set_font(FONT, "B", 12)
        self.cell(0, 6, self.context.clinic, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 10)
        self.cell(0, 5, self.report_title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if self.patient is not None:
            self.set_font(FONT, "B", 11)
            self.cell(
                0,
                6,
                f"{self.patient.name}    born {self.patient.birth_date}",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
        y = self.get_y() + 1
        self.line(self.l_margin, y, self.w - self.r_margin, y)
        self.set_y(y + 3)

    def footer(self) -> None:
        self.set_y(-18)
        self.set_text_color(*_GREY)
        self.set_font(FONT, "", 8)
        printed = f"Printed {self.context.printed_at} by {self.context.printed_by}"
        self.cell(0, 4, printed, new_x=XPos.LMARGIN, new_y=YPos.TOP)
        self.cell(
            0, 4, f"Page {self.page_no()} of {{nb}}", align="R",
            new_x=XPos.LMARGIN, new_y=YPos.NEXT,
        )  # fmt: skip
        self.multi_cell(0, 4, CONFIDENTIAL, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if self.missing_on_page:
            self.set_y(-22)
            self.cell(0, 4, MISSING_NOTE, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.missing_on_page = False
        self.set_text_color(0, 0, 0)

    # ----- building blocks -------------------------------------------------------------

    def section(self, title: str) -> None:
        """A section heading, kept on the page with at least a few lines after it."""
        if self.get_y() > self.h - self.b_margin - 20:
            self.add_page()
        self.ln(2)
        self.set_font(FONT, "B", 11)
        self.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 10)

    def paragraph(self, body: str, bold: bool = False, size: float = 10) -> None:
        """A wrapped paragraph."""
        self.set_font(FONT, "B" if bold else "", size)
        self.multi_cell(0, _LINE, body, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 10)

    def fields(self, rows: Sequence[tuple[str, str]]) -> None:
        """Label: value lines."""
        for label, value in rows:
            self.set_font(FONT, "B", 10)
            self.cell(38, _LINE, label)
            self.set_font(FONT, "", 10)
            self.multi_cell(0, _LINE, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def grid(
        self,
        headings: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float | None],
    ) -> None:
        """A table with a heading row (repeated on each page it runs onto).

        ``widths`` per column: None sizes the column to its widest text, measured in the
        table's fonts, so a date or a time never breaks over two lines (up to a quarter of
        the page's width; a longer text wraps); a number is the column's share of the width
        the measured columns leave.
        """
        self.set_font(FONT, "", 9)
        with self.table(
            col_widths=self._column_widths(headings, rows, widths),
            line_height=_LINE,
            text_align="LEFT",  # justified, a narrow column's words stood far apart
            headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
            repeat_headings=TableHeadingsDisplay.ON_TOP_OF_EVERY_PAGE,
        ) as table:
            heading = table.row()
            for h in headings:
                heading.cell(h)
            for values in rows:
                row = table.row()
                for v in values:
                    row.cell(v)
        self.set_font(FONT, "", 10)

    def _column_widths(
        self,
        headings: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float | None],
    ) -> tuple[float, ...]:
        """Each column's width in mm across the page (see :meth:`grid`)."""
        # The table's cells keep the cell margin on either side of their text; a little
        # more is left so rounding never pushes the last character onto a line of its own.
        room = 2 * self.c_margin + 1
        most = self.epw / 4
        measured: dict[int, float] = {}
        for column, share in enumerate(widths):
            if share is not None:
                continue
            self.set_font(FONT, "B", 9)
            widest = self.get_string_width(headings[column])
            self.set_font(FONT, "", 9)
            for values in rows:
                widest = max(widest, self.get_string_width(values[column]))
            measured[column] = min(widest + room, most)
        left = self.epw - sum(measured.values())
        shares = sum(share for share in widths if share is not None) or 1
        return tuple(
            measured[column] if share is None else left * share / shares
            for column, share in enumerate(widths)
        )

    def none(self, what: str) -> None:
        """An empty section says so."""
        self.set_text_color(*_GREY)
        self.paragraph(what)
        self.set_text_color(0, 0, 0)


def _start(title: str, context: PrintContext, patient: PatientLine | None) -> _Page:
    pdf = _Page(title, context, patient)
    pdf.add_page()
    return pdf


def _patient_fields(pdf: _Page, p: PatientLine) -> None:
    pdf.fields(
        [
            ("Name", p.name),
            ("Date of birth", p.birth_date),
            ("Sex", p.sex or "not recorded"),
            ("MRN", p.mrn or "none"),
            ("Phone", p.phone or "none"),
        ]
    )


def _allergies(pdf: _Page, allergies: Sequence[AllergyLine], state: AllergyState) -> None:
    """The Allergies section, saying what the chart's banner says: the allergies, "No known
    allergies" (asked and recorded), or that nobody has recorded them yet (never the same
    words for the last two: "none" and "not asked" are different answers)."""
    pdf.section("Allergies")
    if state is AllergyState.ALLERGIES:
        pdf.grid(
            ("Substance", "Reaction", "Severity"),
            [(a.substance, a.reaction or "", a.severity or "") for a in allergies],
            (3, 4, None),
        )
    elif state is AllergyState.NONE_KNOWN:
        pdf.paragraph("No known allergies", bold=True)
    else:
        pdf.paragraph("Allergies not recorded: ask the patient.", bold=True)


def summary_pdf(report: PatientSummaryReport) -> bytes:
    """The patient summary as a PDF document."""
    pdf = _start("Patient summary", report.context, report.patient)
    pdf.section("Demographics")
    _patient_fields(pdf, report.patient)
    _allergies(pdf, report.allergies, report.allergy_state)
    pdf.section("Active problems")
    if report.problems:
        pdf.grid(
            ("Problem", "Code", "Onset"),
            [(p.description, p.code or "uncoded", p.onset or "") for p in report.problems],
            (5, None, None),
        )
    else:
        pdf.none("No active problems recorded.")
    pdf.section("Active medications")
    if report.medications:
        pdf.grid(
            ("Medication", "Strength, dose, route, frequency"),
            [(m.name, m.how) for m in report.medications],
            (4, 5),
        )
    else:
        pdf.none("No active medications recorded.")
    pdf.section("Latest vital signs")
    if report.vitals:
        pdf.grid(
            ("Measurement", "Value", "Measured"),
            [(v.label, v.value, v.measured_at) for v in report.vitals],
            (4, 3, None),
        )
    else:
        pdf.none("No vital signs recorded.")
    return bytes(pdf.output())


def visit_pdf(report: VisitReport) -> bytes:
    """The visit note as a PDF document."""
    pdf = _start("Visit note", report.context, report.patient)
    pdf.section("Visit")
    times = report.started_at + (f" to {report.ended_at}" if report.ended_at else " (open)")
    pdf.fields(
        [
            ("Reason", report.reason or "not recorded"),
            ("Clinician", report.clinician or "not recorded"),
            ("Time", times),
        ]
    )
    _allergies(pdf, report.allergies, report.allergy_state)
    pdf.section("Vital signs")
    if report.vitals:
        # Who recorded each set is named, as each note names who wrote and signed it.
        pdf.grid(
            ("Measurement", "Value", "Measured", "Recorded by"),
            [(v.label, v.value, v.measured_at, v.recorded_by) for v in report.vitals],
            (4, 3, None, None),
        )
    else:
        pdf.none("No vital signs recorded in this visit.")
    pdf.section("Diagnoses")
    if report.diagnoses:
        pdf.grid(
            ("Diagnosis", "Code", "Status"),
            [(d.description, d.code or "uncoded", _status(d)) for d in report.diagnoses],
            (5, None, None),
        )
    else:
        pdf.none("No diagnoses recorded in this visit.")
    pdf.section("Medication changes")
    if report.medications:
        pdf.grid(
            ("Medication", "Strength, dose, route, frequency", "From", "Stopped"),
            [(m.name, m.how, m.start or "", _stopped(m)) for m in report.medications],
            (3, 5, None, None),
        )
    else:
        pdf.none("No medications started, changed or stopped in this visit.")
    pdf.section("Notes")
    if not report.notes:
        pdf.none("No notes written in this visit.")
    for note in report.notes:
        pdf.paragraph(note.body)
        # Everyone who wrote the text is named: who started it and who edited it.
        editors = ", ".join(note.editors)
        edited = f", edited by {editors}" if editors else ""
        if note.signed_at:
            signed = f"Signed by {note.signed_by} on {note.signed_at}"
            if note.author != note.signed_by:  # a nurse's note a clinician signed: both
                signed += f"; written by {note.author}{edited}"
            elif editors:
                signed += f"; edited by {editors}"
            pdf.paragraph(signed, bold=True, size=9)
        else:
            pdf.paragraph(f"Draft by {note.author}{edited}, not signed", bold=True, size=9)
        for addendum in note.addenda:
            pdf.ln(1)
            pdf.paragraph(f"Addendum by {addendum.added_by} on {addendum.added_at}:", True, 9)
            pdf.paragraph(addendum.body)
        pdf.ln(3)
    return bytes(pdf.output())


def _status(d: DiagnosisLine) -> str:
    """The Status column: a resolved problem with its date ("Resolved 2026-12-06")."""
    return f"{d.status} {d.resolved}" if d.resolved else d.status


def _stopped(m: MedicationChangeLine) -> str:
    """The Stopped column: an old dose a dose change stopped says so (its new dose is the
    next row), so the note never reads as the medication stopped."""
    if m.dose_changed:
        return f"{m.stop or ''} (dose changed)".strip()
    return m.stop or ""


def day_pdf(report: DayReport) -> bytes:
    """The day's appointment list as a PDF document."""
    pdf = _start(f"Appointments on {report.day}", report.context, None)
    if report.appointments:
        # A clinician column once appointments name one (the schedule's own field).
        by_whom = any(a.clinician for a in report.appointments)
        pdf.grid(
            ("Time", "Patient", "Born", "MRN", "Reason", *(("Clinician",) if by_whom else ()),
             "Status"),
            [
                (
                    f"{a.starts}–{a.ends}", a.patient, a.birth_date, a.mrn or "", a.reason or "",
                    *((a.clinician or "",) if by_whom else ()), a.status,
                )
                for a in report.appointments
            ],
            # Time, birth date, MRN and status sized to their text: never broken mid-date.
            (None, 5, None, None, 4, *((3,) if by_whom else ()), None),
        )  # fmt: skip
    else:
        pdf.none("No appointments on this day.")
    if report.cancelled:
        pdf.ln(2)
        pdf.none(f"{report.cancelled} cancelled appointment(s) not listed.")
    return bytes(pdf.output())


def save(path: Path, document: bytes) -> None:
    """Write a report to ``path``, readable by its owner only (mode 0600): it holds
    patient data.

    The report goes to a new file in the same folder (mkstemp: O_CREAT | O_EXCL |
    O_NOFOLLOW, mode 0600), synced, then renamed onto ``path`` in one step: a file it
    replaces does not pass on its mode, a symlink at ``path`` is replaced rather than
    followed, and a failure leaves the old file whole.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(document)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
