"""Printing reports from the app: Save as PDF, or Print through the system print dialog.

The PDF is the one :mod:`core.reports` makes for the command line too, built (and its
disclosure audited) on the worker. "Print…" renders that same PDF's pages with pdfium onto
the printer chosen in the system dialog (rendering on the worker, painting on the GUI
thread), so paper and file never differ and there is one layout.

For other screens: :func:`print_summary`, :func:`print_visit` (the visit view) and
:func:`print_day` (the schedule) open the dialog and return it; the caller closes it when
it forgets its patient (``dialog.reject()`` in its ``clear()``), and drops its reference on
the dialog's ``finished`` signal (the dialog deletes itself when closed). The chart's
header button is :class:`PrintSummary`, a :class:`~app.chart.section.ChartSection`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pypdfium2
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QDialog, QFileDialog, QHBoxLayout, QLabel, QPushButton, QWidget

from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import KeepsFocusDialog, dialog_layout, paragraph
from app.worker import Job
from core.reports import data, pdf

PRINT_DPI = 300  # rendering resolution for the printer: sharp text, ~9 MB a grey A4 page


@dataclass(frozen=True)
class PageImage:
    """One rendered page (8-bit grey), made on the worker."""

    pixels: bytes
    width: int
    height: int
    stride: int

    def image(self) -> QImage:
        """The page as a QImage (a copy owning its pixels)."""
        return QImage(
            self.pixels, self.width, self.height, self.stride, QImage.Format.Format_Grayscale8
        ).copy()


def render_pages(document: bytes, dpi: int = PRINT_DPI) -> list[PageImage]:
    """Every page of a PDF as grey pixels (pdfium; runs on the worker)."""
    pdf_doc = pypdfium2.PdfDocument(document)
    try:
        pages = []
        for page in pdf_doc:
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            pages.append(
                PageImage(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride)
            )
            page.close()
        return pages
    finally:
        pdf_doc.close()


def paint_pages(printer: QPrinter, pages: list[PageImage]) -> None:
    """Paint rendered pages onto ``printer``, one sheet each, fitted to the paper."""
    painter = QPainter()
    if not painter.begin(printer):
        raise OSError("the printer could not be started")
    try:
        for number, page in enumerate(pages):
            if number:
                printer.newPage()
            target = QRectF(printer.pageLayout().fullRectPixels(printer.resolution()))
            image = page.image()
            scale = min(target.width() / image.width(), target.height() / image.height())
            painter.drawImage(QRectF(0, 0, image.width() * scale, image.height() * scale), image)
    finally:
        painter.end()


class PrintDialog(KeepsFocusDialog):
    """ "Save as PDF…" or "Print…" for one report."""

    def __init__(
        self,
        operations: Operations,
        title: str,
        make_pdf: Callable[[], bytes],
        file_name: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._make_pdf = make_pdf
        self._file_name = file_name
        self._job: Job[object] | None = None
        self.file_dialog: QFileDialog | None = None
        self.print_dialog: QPrintDialog | None = None
        # One printer for the dialog's life: what the person chose stays chosen.
        self.printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        self.printer.setDocName(title)
        self.setObjectName("printDialog")
        self.setWindowTitle(title)
        self.setMinimumWidth(440)

        heading = QLabel(title)
        heading.setObjectName("dialogHeading")
        self.save_button = QPushButton("Save as PDF…")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.choose_file)
        self.print_button = QPushButton("Print…")
        self.print_button.clicked.connect(self.choose_printer)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        # Return presses the button the focus ring marks (each is auto-default: the one
        # with the keyboard is the default), and Save as PDF… otherwise, the one blue
        # button. Close alone was auto-default: it looked primary too, and Return on the
        # ringed Save as PDF… closed the dialog with nothing saved.
        for button in (self.save_button, self.print_button, self.close_button):
            button.setAutoDefault(True)
        self.save_button.setDefault(True)
        buttons = QWidget()
        row = QHBoxLayout(buttons)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.save_button)
        row.addWidget(self.print_button)
        row.addStretch(1)
        row.addWidget(self.close_button)
        self.status = paragraph("", "statusText")
        self.status.hide()
        dialog_layout(
            self,
            heading,
            paragraph(
                "The printout holds patient information. Printing or saving it is recorded "
                "in the audit log. Keep the paper or file safe."
            ),
            self.status,
            buttons,
        )
        self.save_button.setFocus()

    # ----- save as PDF -------------------------------------------------------------------

    def choose_file(self) -> None:
        """Ask where to save (Qt's own file dialog, so it works the same everywhere)."""
        dialog = QFileDialog(self, "Save as PDF", str(Path.home() / self._file_name))
        dialog.setObjectName("savePdfDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter("PDF files (*.pdf)")
        dialog.setDefaultSuffix("pdf")
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        dialog.fileSelected.connect(self.save_to)
        dialog.finished.connect(self._back_from_chooser)
        self.file_dialog = dialog
        dialog.open()

    def save_to(self, path: str) -> None:
        """Make the PDF on the worker and write it to ``path``."""
        make = self._make_pdf
        target = Path(path)

        def save() -> Path:
            pdf.save(target, make())
            return target

        self._run(save, self._saved, f"Saving {target.name}…")

    def _saved(self, path: object) -> None:
        self._show(f"Saved to {path}.")

    # ----- print -------------------------------------------------------------------------

    def choose_printer(self) -> None:
        """The system print dialog; the PDF is made only once a printer was chosen."""
        dialog = QPrintDialog(self.printer, self)
        dialog.setObjectName("systemPrintDialog")
        dialog.accepted.connect(self.print_now)
        dialog.finished.connect(self._back_from_chooser)
        self.print_dialog = dialog
        QDialog.open(dialog)  # PySide6 binds only QPrintDialog.open(receiver, member)

    def print_now(self) -> None:
        """Make and render the PDF on the worker, then paint it onto the chosen printer."""
        make = self._make_pdf
        self._run(lambda: render_pages(make()), self._rendered, "Preparing the printout…")

    def _rendered(self, pages: object) -> None:
        assert isinstance(pages, list)
        try:
            paint_pages(self.printer, pages)
        except OSError as exc:
            self._show(f"Not printed: {exc}.", error=True)
            return
        noun = "page" if len(pages) == 1 else "pages"
        self._show(f"Sent {len(pages)} {noun} to {self.printer.printerName() or 'the printer'}.")

    # ----- shared --------------------------------------------------------------------------

    def _back_from_chooser(self) -> None:
        # The file or print dialog closed: this dialog takes the keyboard back. Left alone,
        # the hidden chooser stayed the active window and Escape closed nothing.
        if self.isVisible():
            self.activateWindow()

    def _run(self, fn: Callable[[], object], done: Callable[[object], None], text: str) -> None:
        if self._job is not None:
            return
        self._set_busy(True)
        self._show(text)

        def finished(result: object) -> None:
            self._job = None
            self._set_busy(False)
            done(result)

        def failed(exc: Exception) -> None:
            self._job = None
            self._set_busy(False)
            self._show(describe_error(exc), error=True)

        self._job = self._operations.submit(fn, finished, failed, label="print")

    def _set_busy(self, busy: bool) -> None:
        self.save_button.setEnabled(not busy)
        self.print_button.setEnabled(not busy)

    def _show(self, text: str, error: bool = False) -> None:
        self.status.setObjectName("fieldError" if error else "statusText")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setText(text)
        self.status.show()
        self.adjustSize()  # room for the message: the dialog grows rather than clips

    @property
    def busy(self) -> bool:
        """True while a PDF is being made."""
        return self._job is not None

    def done(self, result: int) -> None:
        """Close with its own dialogs; a job in flight is not reported back."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        for child in (self.file_dialog, self.print_dialog):
            if child is not None and child.isVisible():
                child.reject()
        super().done(result)


def _open(dialog: PrintDialog) -> PrintDialog:
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


def print_summary(
    parent: QWidget, operations: Operations, records: RecordsProvider, patient_id: str
) -> PrintDialog:
    """Offer the patient summary of ``patient_id`` as PDF or on paper."""
    return _open(
        PrintDialog(
            operations,
            "Print patient summary",
            lambda: pdf.summary_pdf(data.summary_report(records(), patient_id)),
            "patient-summary.pdf",
            parent,
        )
    )


def print_visit(
    parent: QWidget, operations: Operations, records: RecordsProvider, visit_id: str
) -> PrintDialog:
    """Offer the visit note of ``visit_id`` (reason, clinician, times, notes with signature
    and addenda, vitals) as PDF or on paper."""
    return _open(
        PrintDialog(
            operations,
            "Print visit note",
            lambda: pdf.visit_pdf(data.visit_report(records(), visit_id)),
            "visit-note.pdf",
            parent,
        )
    )


def print_day(
    parent: QWidget, operations: Operations, records: RecordsProvider, day: str | None = None
) -> PrintDialog:
    """Offer the appointment list of ``day`` (YYYY-MM-DD; today when None)."""
    return _open(
        PrintDialog(
            operations,
            f"Print appointments of {day}" if day else "Print today's appointments",
            lambda: pdf.day_pdf(data.day_report(records(), day)),
            f"appointments-{day or 'today'}.pdf",
            parent,
        )
    )


class PrintSummary:
    """The chart header's "Print summary…" button (a ChartSection: enabled while a chart
    is shown; the dialog closes when the chart is cleared)."""

    def __init__(self, operations: Operations, records: RecordsProvider) -> None:
        self._operations = operations
        self._records = records
        self._patient_id: str | None = None
        self.dialog: PrintDialog | None = None
        self.button = QPushButton("Print summary…")
        self.button.setObjectName("printSummaryButton")
        self.button.clicked.connect(self.open)
        self.button.setEnabled(False)

    def widget(self) -> QWidget:
        """The button."""
        return self.button

    def show_patient(self, patient_id: str) -> None:
        """This patient's summary can be printed now."""
        self._patient_id = patient_id
        self.button.setEnabled(True)

    def clear(self) -> None:
        """No chart: nothing to print, and an open dialog closes."""
        self._patient_id = None
        self.button.setEnabled(False)
        if self.dialog is not None:
            self.dialog.reject()
            self.dialog = None

    def open(self) -> None:
        """Open the print dialog for the patient shown."""
        if self._patient_id is not None:
            self.dialog = print_summary(
                self.button.window(), self._operations, self._records, self._patient_id
            )
            self.dialog.finished.connect(self._closed)

    def _closed(self) -> None:
        self.dialog = None
