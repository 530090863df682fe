"""A PDF attachment shown inside the app, through Qt's PDF module (PySide6-Addons' QtPdf and
QtPdfWidgets), with page navigation and zoom.

The decrypted PDF is handed over as bytes and read by ``QPdfDocument`` from a ``QBuffer``:
the plaintext never reaches the disk to be shown. (It does sit in this process's memory
while the viewer is open, in Python bytes and Qt's copy, which Python cannot wipe; the
dialog drops its references when it closes.) "Open in system viewer" is the person's
explicit choice to hand a decrypted copy to another program.
"""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, Qt, Signal
from PySide6.QtPdf import QPdfDocument
from PySide6.QtPdfWidgets import QPdfView
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.widgets import fit_to_screen, ignore_wheel
from core.errors import CarelineError

ZOOM_STEP = 1.25
ZOOM_MIN, ZOOM_MAX = 0.25, 8.0

_WHY = {
    QPdfDocument.Error.InvalidFileFormat: "it is damaged or not a PDF",
    QPdfDocument.Error.IncorrectPassword: "it is protected by a password",
    QPdfDocument.Error.UnsupportedSecurityScheme: "its encryption is not supported",
    QPdfDocument.Error.DataNotYetAvailable: "it is incomplete",
    QPdfDocument.Error.FileNotFound: "it could not be read",
    QPdfDocument.Error.Unknown: "Qt's PDF module could not read it",
}


class PdfUnreadable(CarelineError):
    """The attachment could not be read as a PDF; the message names the file and why."""


class PdfViewer(QDialog):
    """A PDF inside the app: pages, page navigation and zoom."""

    system_viewer_wanted = Signal()  # "Open in system viewer" was pressed

    def __init__(
        self, title: str, filename: str, data: bytes, parent: QWidget | None = None
    ) -> None:
        """Show ``data`` (the PDF's bytes); raises PdfUnreadable naming ``filename`` when
        they are not a readable PDF."""
        super().__init__(parent)
        self.setObjectName("pdfViewer")
        self.setWindowTitle(title)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._bytes = QByteArray(data)
        self._buffer = QBuffer(self._bytes, self)
        self._buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self.document = QPdfDocument(self)
        self.document.load(self._buffer)  # a QBuffer loads at once
        if self.document.status() != QPdfDocument.Status.Ready or self.document.pageCount() < 1:
            why = _WHY.get(self.document.error(), "it has no pages")
            self.document.close()
            raise PdfUnreadable(f"{filename} cannot be shown: {why}")
        self.view = QPdfView(self)
        self.view.setObjectName("pdfView")
        self.view.setDocument(self.document)
        self.view.setPageMode(QPdfView.PageMode.MultiPage)
        self.view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        navigator = self.view.pageNavigator()

        self.page = QSpinBox()
        self.page.setObjectName("pdfPage")
        self.page.setRange(1, self.page_count)
        self.page.valueChanged.connect(self.go_to)
        ignore_wheel(self.page)  # the wheel scrolls the document, not the page number
        self.pages_label = QLabel(f"of {self.page_count}")
        self.pages_label.setObjectName("pdfPageCount")
        self.previous_button = QPushButton("Previous")
        self.previous_button.clicked.connect(lambda: self.page.setValue(self.page.value() - 1))
        self.next_button = QPushButton("Next")
        self.next_button.clicked.connect(lambda: self.page.setValue(self.page.value() + 1))
        self.zoom_out_button = QPushButton("−")
        self.zoom_out_button.setToolTip("Zoom out")
        self.zoom_out_button.clicked.connect(lambda: self.zoom_by(1 / ZOOM_STEP))
        self.zoom_in_button = QPushButton("+")
        self.zoom_in_button.setToolTip("Zoom in")
        self.zoom_in_button.clicked.connect(lambda: self.zoom_by(ZOOM_STEP))
        self.fit_button = QPushButton("Fit width")
        self.fit_button.clicked.connect(self.fit_width)
        self.zoom_label = QLabel()
        self.zoom_label.setObjectName("pdfZoom")
        self.system_button = QPushButton("Open in system viewer")
        self.system_button.clicked.connect(self.system_viewer_wanted)
        navigator.currentPageChanged.connect(self._page_shown)
        self.view.zoomFactorChanged.connect(lambda _factor: self._show_zoom())
        self.view.zoomModeChanged.connect(lambda _mode: self._show_zoom())

        bar = QHBoxLayout()
        for widget in (self.previous_button, self.page, self.pages_label, self.next_button):
            bar.addWidget(widget)
        bar.addStretch(1)
        for widget in (self.zoom_out_button, self.zoom_label, self.zoom_in_button,
                       self.fit_button, self.system_button):  # fmt: skip
            bar.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        self._page_shown(0)
        self._show_zoom()
        # A page's width and height where there is room; on a smaller screen (800 pixels
        # high) the screen's available room, so the window's bottom is never off screen.
        self.resize(800, 900)
        fit_to_screen(self)

    @property
    def page_count(self) -> int:
        """How many pages the PDF has."""
        return int(self.document.pageCount())

    @property
    def current_page(self) -> int:
        """The page shown (0-based)."""
        return int(self.view.pageNavigator().currentPage())

    def go_to(self, number: int) -> None:
        """Show page ``number`` (1-based, as the spin box counts)."""
        index = max(0, min(number - 1, self.page_count - 1))
        if index != self.current_page:
            self.view.pageNavigator().jump(index, QPointF(), self.view.zoomFactor())

    def zoom_by(self, factor: float) -> None:
        """Zoom in (factor > 1) or out, within 25%..800%."""
        current = self.view.zoomFactor()
        self.view.setZoomMode(QPdfView.ZoomMode.Custom)
        self.view.setZoomFactor(max(ZOOM_MIN, min(current * factor, ZOOM_MAX)))

    def fit_width(self) -> None:
        """Scale the pages to the window's width."""
        self.view.setZoomMode(QPdfView.ZoomMode.FitToWidth)

    def _page_shown(self, index: int) -> None:
        self.page.blockSignals(True)
        self.page.setValue(index + 1)
        self.page.blockSignals(False)
        self.previous_button.setEnabled(index > 0)
        self.next_button.setEnabled(index < self.page_count - 1)

    def _show_zoom(self) -> None:
        if self.view.zoomMode() == QPdfView.ZoomMode.FitToWidth:
            self.zoom_label.setText("fit width")
        else:
            self.zoom_label.setText(f"{round(self.view.zoomFactor() * 100)}%")

    def done(self, result: int) -> None:
        """Closing drops the document and the bytes it was read from."""
        self.document.close()
        self._buffer.close()
        self._bytes.clear()
        super().done(result)
