"""The chart's Attachments tab: the patient's files (scanned letters, lab PDFs, photos),
added from a file dialog or by dropping files on the tab, opened inside the app (images, and
PDFs through Qt's PDF module from PySide6-Addons: :mod:`app.chart.pdf_viewer`; both are
decrypted into memory, never onto the disk) or in the system's viewer, and saved out as a
copy.

Every file operation (encrypting, uploading, downloading, decrypting) runs on the worker;
a progress bar follows it, so the window never waits. Files are encrypted on this
workstation (:mod:`core.sync.attachments`); a file another workstation added and this one
has not fetched yet is listed as "available when connected".
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.chart.cards import list_table
from app.chart.permits import ANY, restrict
from app.chart.visit_view import local_time
from app.messages import describe_error, validation_text
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.sync.transfers import DOWNLOAD, AttachmentTransfers
from app.widgets import (
    TypedForm,
    action_buttons,
    dialog_layout,
    error_label,
    fit_to_screen,
    form_layout,
    ignore_wheel,
)
from core.records import validation
from core.records.changeset import Changes
from core.records.errors import ValidationError
from core.records.removed_attachments import REASONS
from core.sync.attachment_files import FileRefused, check_file
from core.sync.attachments import HERE, SAVED, VIEWED, Attachment, Attachments, where_shown

T = TypeVar("T")
COLUMNS = ("Date", "Title", "Category", "File", "Where")
CATEGORIES = ("letter", "lab", "imaging", "photo", "referral", "other")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")


def has_qt_pdf() -> bool:
    """True when PySide6-Addons' Qt PDF module is installed (PDFs open inside the app)."""
    return importlib.util.find_spec("PySide6.QtPdf") is not None


class _Progress(QObject):
    """Carries (bytes done, bytes in all) from the worker thread to the progress bar."""

    moved = Signal(int, int)
    fetched = Signal()  # a file arrived in the cache (no sync controller to say so)

    def report(self, done: int, total: int) -> None:
        """Called on the worker thread; Qt queues the signal to the GUI thread."""
        self.moved.emit(done, total)


def _detail_fields(title: str) -> tuple[QLineEdit, QLineEdit, QComboBox]:
    """A file's Title, Date and Category boxes (adding one, correcting one)."""
    title_box = QLineEdit(title)
    date = QLineEdit()
    date.setPlaceholderText("YYYY-MM-DD (the document's date, optional)")
    category = QComboBox()
    category.setAccessibleName("Category")
    category.setEditable(True)
    category.addItems(["", *CATEGORIES])
    line = category.lineEdit()
    if line is not None:  # editable: it has one
        line.setPlaceholderText("Optional: choose or type one")
    ignore_wheel(category)  # scrolled over, it put "lab" in the box unasked
    return title_box, date, category


def _checked_details(
    errors: dict[str, QLabel], title_box: QLineEdit, date_box: QLineEdit
) -> tuple[dict[QLabel, str], str, str | None]:
    """The problems of a file's title and date (each under its field), the title, the date.
    The date is checked here, as core will: a wrong one keeps the dialog open with
    everything typed in it."""
    problems: dict[QLabel, str] = {}
    title = title_box.text().strip()
    if not title:
        problems[errors["title"]] = "Give the file a title."
    date: str | None = None
    try:
        date = validation.past_date("date", date_box.text())
    except ValidationError as exc:
        problems[errors["date"]] = validation_text(exc, "attachment")
    return problems, title, date


class AddAttachmentDialog(TypedForm):
    """Title, date and category of a file about to be added (a file dropped on the tab
    comes chosen; its name is the first title).

    It opens on what the person does first: Choose file… (a dropped file: its title, to
    check). The category box starts empty and an untouched one stores none."""

    def __init__(self, path: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("addAttachmentDialog")
        self.setWindowTitle("Add a file to the chart")
        self.setMinimumWidth(520)  # the date's hint is read whole
        self.path = path
        self.file_label = QLabel(path.name if path else "No file chosen")
        self.browse = QPushButton("Choose file…")
        self.browse.clicked.connect(self.choose_file)
        self.title, self.date, self.category = _detail_fields(path.stem if path else "")
        # A message under each field it is about (one form-level line under Category said
        # one thing at a time, about whichever field): see TypedForm.show_problems.
        self.errors = {name: error_label() for name in ("file", "title", "date")}
        self.clears_on_edit(
            [
                (self.browse, self.errors["file"]),  # put right by choosing one (set_path)
                (self.title, self.errors["title"]),
                (self.date, self.errors["date"]),
            ]
        )
        row = QHBoxLayout()
        row.addWidget(self.file_label, 1)
        row.addWidget(self.browse)
        holder = QWidget()
        holder.setLayout(row)
        form = form_layout()
        form.addRow("File", holder)
        form.addRow("", self.errors["file"])
        form.addRow("Title", self.title)
        form.addRow("", self.errors["title"])
        form.addRow("Date", self.date)
        form.addRow("", self.errors["date"])
        form.addRow("Category", self.category)
        buttons, self.add_button = action_buttons(self, self.accept, "Add")
        heading = QLabel("Add a file to the chart")
        heading.setObjectName("dialogHeading")
        dialog_layout(self, heading, form, buttons)
        # Return in a field is Add: Choose file…, focused as the dialog opens, had become
        # the default button, and Return typed in Date opened the file dialog again. (Set
        # once the button is in the dialog: only then does Qt keep it as the default.)
        self.add_button.setDefault(True)
        # Focus where the person starts (a dialog with none focused gave it to Add).
        self._focus_next_step()

    def _focus_next_step(self) -> None:
        """Choose file… until a file is chosen; then its title, to check or retype."""
        if self.path is None:
            self.browse.setFocus(Qt.FocusReason.OtherFocusReason)
        else:
            self.title.setFocus(Qt.FocusReason.OtherFocusReason)
            self.title.selectAll()

    def form_state(self) -> object:
        """The fields, and the file chosen."""
        return (super().form_state(), self.path)

    def choose_file(self) -> None:
        """Pick the file with the system's file dialog."""
        name, _ = QFileDialog.getOpenFileName(self, "Add a file to the chart")
        if name:
            self.set_path(Path(name))

    def set_path(self, path: Path) -> None:
        """Use this file (and its name as the title if none was typed)."""
        self.path = path
        self.file_label.setText(path.name)
        self.errors["file"].hide()  # "Choose a file to add." is answered
        if not self.title.text().strip():
            self.title.setText(path.stem)
            self.errors["title"].hide()  # "Give the file a title." is answered too
        self._focus_next_step()

    def values(self) -> tuple[Path, str, str | None, str | None] | None:
        """(file, title, date, category), or None with every problem shown at once, each
        under its field, the keyboard in the first of them."""
        path = self.path
        problems, title, date = _checked_details(self.errors, self.title, self.date)
        if path is None or not path.is_file():
            problems[self.errors["file"]] = "Choose a file to add."
        else:
            # An empty, oversized or fake file is named here, as core refuses it (it reads
            # the file's first kilobyte only), and the dialog stays open to choose another.
            try:
                check_file(path)
            except FileRefused as exc:
                problems[self.errors["file"]] = f"{exc}."
        if self.show_problems(problems, select=True) or path is None:
            return None
        return (path, title, date, self.category.currentText().strip() or None)

    def accept(self) -> None:
        """Close only with a file and a title."""
        if self.values() is not None:
            super().accept()


class EditAttachmentDialog(TypedForm):
    """Correct a file's title, date or category (the file itself stays as it is)."""

    def __init__(self, item: Attachment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("editAttachmentDialog")
        self.setWindowTitle("Change a file's details")
        self.setMinimumWidth(520)
        self.item = item
        self.title, self.date, self.category = _detail_fields(item.title)
        self.date.setText(item.date or "")
        self.category.setCurrentText(item.category or "")
        self.errors = {name: error_label() for name in ("title", "date")}
        self.clears_on_edit([(self.title, self.errors["title"]), (self.date, self.errors["date"])])
        form = form_layout()
        form.addRow("File", QLabel(item.filename))
        form.addRow("Title", self.title)
        form.addRow("", self.errors["title"])
        form.addRow("Date", self.date)
        form.addRow("", self.errors["date"])
        form.addRow("Category", self.category)
        buttons, self.save_button = action_buttons(self, self.accept)
        heading = QLabel(f"Change the details of {item.filename}")
        heading.setObjectName("dialogHeading")
        dialog_layout(self, heading, form, buttons)
        self.save_button.setDefault(True)
        self.title.setFocus(Qt.FocusReason.OtherFocusReason)
        self.title.selectAll()

    def values(self) -> tuple[str, str, str] | None:
        """(title, date or "", category or ""), or None with the problems shown."""
        problems, title, date = _checked_details(self.errors, self.title, self.date)
        if self.show_problems(problems, select=True):
            return None
        return (title, date or "", self.category.currentText().strip())

    def accept(self) -> None:
        """Close only with a title and a right date."""
        if self.values() is not None:
            super().accept()


class RemoveAttachmentDialog(TypedForm):
    """Why a file is taken off the chart: a reason chosen or typed (it is kept, and listed
    under "Show removed" with who removed it, when and why)."""

    def __init__(self, item: Attachment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("removeAttachmentDialog")
        self.setWindowTitle("Remove a file from the chart")
        self.setMinimumWidth(520)
        self.item = item
        heading = QLabel(f"Remove “{item.title}” from this chart?")
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        explain = QLabel(
            "It leaves this chart on every workstation. Nothing is erased: the file is kept "
            "in the clinic's records, and “Show removed” lists it with who removed it, when "
            "and why."
        )
        explain.setObjectName("hint")
        explain.setWordWrap(True)
        self.reason = QComboBox()
        self.reason.setAccessibleName("Reason")
        self.reason.setEditable(True)
        self.reason.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.reason.addItems(["", *REASONS])
        line = self.reason.lineEdit()
        if line is not None:
            line.setPlaceholderText("Choose a reason or type your own")
        ignore_wheel(self.reason)
        self.error = error_label()
        self.clears_on_edit([(self.reason, self.error)])
        form = form_layout()
        form.addRow("Reason", self.reason)
        form.addRow("", self.error)
        buttons, self.remove_button = action_buttons(self, self.accept, "Remove from chart")
        dialog_layout(self, heading, explain, form, buttons)
        self.remove_button.setDefault(True)
        self.reason.setFocus(Qt.FocusReason.OtherFocusReason)

    def chosen_reason(self) -> str | None:
        """The reason chosen or typed, or None with the problem shown."""
        reason = self.reason.currentText().strip()
        if self.show_problems({self.error: "Say why the file is removed."} if not reason else {}):
            return None
        return reason

    def accept(self) -> None:
        """Close only with a reason."""
        if self.chosen_reason() is not None:
            super().accept()


class ImageViewer(QDialog):
    """An image attachment, shown inside the app (scrollable at full size)."""

    def __init__(self, title: str, pixmap: QPixmap, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self.setWindowTitle(title)
        self.image = QLabel()
        self.image.setPixmap(pixmap)
        scroll = QScrollArea()
        scroll.setWidget(self.image)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll)
        # The image's size with the frame and margins around it, so no scroll bar cuts into
        # an image that fits (a fixed 40 pixels did not); at most the screen's available
        # room, where a larger image scrolls.
        m, frame = layout.contentsMargins(), 2 * scroll.frameWidth()
        around = QSize(m.left() + m.right() + frame, m.top() + m.bottom() + frame)
        self.resize(self.image.sizeHint() + around)
        fit_to_screen(self)


class _DropArea(QWidget):
    """The tab's page: accepts files dropped on it."""

    dropped = Signal(object)  # Path

    def __init__(self) -> None:
        super().__init__()
        self.setAcceptDrops(True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.dropped.emit(Path(url.toLocalFile()))
                event.acceptProposedAction()
                return


# Without a server an added file has nowhere to upload to: it stays here, and LAN peers
# fetch it from this workstation.
NO_SERVER_ADDED = "it stays on this workstation, where LAN peers can fetch it (no server is set)"


def _has_server(attachments: Attachments) -> bool:
    """Whether this workstation is enrolled with a server to upload files to."""
    return attachments.credential is not None


class _ListKeys(QObject):
    """A list of files driven by the keyboard: reached with none chosen, the keyboard's row
    is chosen (so Open works at once); Return or Enter opens the chosen file, as a double
    click does."""

    def __init__(self, table: QTableWidget, open_chosen: Callable[[], None]) -> None:
        super().__init__(table)
        self._table = table
        self._open = open_chosen

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Qt's hook, on the list's own events."""
        table = self._table
        if watched is not table:
            return False
        kind = event.type()
        if kind == QEvent.Type.FocusIn and not table.selectedIndexes() and table.rowCount():
            table.selectRow(max(table.currentRow(), 0))
        elif (
            kind == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self._open()
            return True
        return False


class AttachmentsSection:
    """The Attachments tab (a :class:`app.chart.section.ChartSection`)."""

    READ = "chart.attachments"

    def __init__(self, operations: Operations, records: RecordsProvider) -> None:
        self._operations = operations
        self._records = records
        self._patient_id: str | None = None
        self._items: list[Attachment] = []
        self._opened = Path(tempfile.mkdtemp(prefix="careline-opened-"))  # mode 0700
        # Decrypted copies handed to the system viewer go when the app does, at the latest.
        weakref.finalize(self, shutil.rmtree, self._opened, True)
        self.add_dialog: AddAttachmentDialog | None = None
        self.dialog: EditAttachmentDialog | RemoveAttachmentDialog | None = None
        self.permitted: frozenset[str] = ANY
        self.viewer: QDialog | None = None
        self.progress_signal = _Progress()
        self.transfers: AttachmentTransfers | None = None
        operations.changed.connect(self.records_changed)

        self.page = _DropArea()
        self.page.setObjectName("attachmentsTab")
        self.page.dropped.connect(self.add_file)
        self.table = list_table(COLUMNS, "attachmentsTable")
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemDoubleClicked.connect(lambda _item: self.open_selected())
        self.table.installEventFilter(_ListKeys(self.table, self.open_selected))
        self.add_button = QPushButton("Add file…")
        self.add_button.clicked.connect(lambda: self.add_file(None))
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open_selected)
        self.save_button = QPushButton("Save a copy…")
        self.save_button.clicked.connect(self.ask_save_copy)
        self.edit_button = QPushButton("Edit details…")
        self.edit_button.clicked.connect(self.edit_selected)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.clicked.connect(self.remove_selected)
        # As the problem and medication lists show their past entries: files taken off the
        # chart, greyed, with who removed them, when and why.
        self.show_removed = QCheckBox("Show removed")
        self.show_removed.toggled.connect(lambda _on: self.reload())
        self.progress = QProgressBar()
        self.progress.setObjectName("attachmentProgress")
        self.progress.hide()
        self.progress_signal.moved.connect(self._moved)
        self.progress_signal.fetched.connect(self.reload)
        self.status = QLabel()
        self.status.setObjectName("statusText")
        self.status.setWordWrap(True)
        hint = QLabel("Drop files here to add them to the chart.")
        hint.setObjectName("hint")
        buttons = QHBoxLayout()
        for button in (self.add_button, self.open_button, self.save_button,
                       self.edit_button, self.remove_button):  # fmt: skip
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.show_removed)
        layout = QVBoxLayout(self.page)
        layout.addLayout(buttons)
        layout.addWidget(hint)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self._update_buttons()

    # ----- ChartSection ------------------------------------------------------------------

    def widget(self) -> QWidget:
        """The tab's page."""
        return self.page

    def show_patient(self, patient_id: str) -> None:
        """List this patient's files."""
        self.clear()
        self._patient_id = patient_id
        self.reload()

    def clear(self) -> None:
        """Forget the patient: cancel reads, close dialogs, remove opened copies."""
        self._operations.cancel(self.READ)
        self._patient_id = None
        self._items = []
        self.table.setRowCount(0)
        self.status.clear()
        self.progress.hide()
        for dialog in (self.add_dialog, self.viewer, self.dialog):
            if dialog is not None:
                dialog.reject()  # not close(): that is the person's close button, which asks
        self.add_dialog = self.viewer = self.dialog = None
        self.show_removed.setChecked(False)  # the next chart opens on its current files
        # Decrypted copies handed to the system viewer: gone when the chart is left.
        shutil.rmtree(self._opened, ignore_errors=True)
        self._opened.mkdir(mode=0o700, exist_ok=True)
        self._update_buttons()

    # ----- reading -----------------------------------------------------------------------

    def use_transfers(self, transfers: AttachmentTransfers) -> None:
        """Follow attachment transfers (the sync thread's uploads, fetches) in the "Where"
        column, and fetch from the LAN peers the sync thread reached when the server
        cannot be."""
        self.transfers = transfers
        transfers.progressed.connect(self._transfer_progressed)
        transfers.finished.connect(self._transfer_finished)

    def _attachments(self, fetching: bool) -> Attachments:
        # Called on the worker. Only a fetch may ask LAN peers (building their transports
        # reads the database and loads this device's TLS key; connecting waits for a use).
        records = self._records()
        peers = []
        if fetching and self.transfers is not None:
            peers = self.transfers.peers_for(records.db)
        cache_mb = self.transfers.settings.cache_mb if self.transfers is not None else 2048
        return Attachments.for_records(records, cache_mb, peers=peers)

    def _with_attachments(self, use: Callable[[Attachments], T], fetching: bool = False) -> T:
        """Run ``use`` on the worker with this workstation's attachments, then close the
        LAN peer connections it opened."""
        with self._attachments(fetching) as attachments:
            return use(attachments)

    def _rows_of(self, blob_id: str) -> list[int]:
        return [row for row, a in enumerate(self._items) if a.blob_id == blob_id]

    def _transfer_progressed(self, blob_id: str, direction: str, percent: int) -> None:
        for row in self._rows_of(blob_id):
            self.table.setItem(row, 4, QTableWidgetItem(f"{direction} {percent}%"))

    def _transfer_finished(self, blob_id: str) -> None:
        """An upload reached the server or a fetch completed: "Where" changed."""
        if self._rows_of(blob_id):
            self.reload()

    def reload(self) -> None:
        """Read the list again (on the worker)."""
        patient_id = self._patient_id
        if patient_id is None:
            return
        removed = self.show_removed.isChecked()

        def read(a: Attachments) -> tuple[list[Attachment], bool]:
            return a.for_patient(patient_id, include_removed=removed), _has_server(a)

        self._operations.read(
            self.READ,
            lambda: self._with_attachments(read),
            lambda found: self._arrived(patient_id, *found),
            self._failed,
        )

    def records_changed(self, changes: Changes) -> None:
        """Attachment records changed (here or by sync): read again."""
        if self._patient_id is not None and changes.changed("attachment"):
            self.reload()

    def _arrived(self, patient_id: str, items: list[Attachment], has_server: bool) -> None:
        if patient_id != self._patient_id:
            return
        self._items = items
        self.table.setRowCount(len(items))
        for row, a in enumerate(items):
            where = removed_text(a) if a.removed else where_shown(a.availability, has_server)
            cells = (a.date or a.created_at[:10], a.title, a.category or "", a.filename, where)
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if a.removed:
                    cell.setForeground(Qt.GlobalColor.gray)
                    cell.setToolTip(where)
                self.table.setItem(row, column, cell)
        if not items and not self.status.text():  # not over what was just done ("Removed…")
            self.status.setText("No files in this chart yet.")
        self._update_buttons()

    def _failed(self, exc: Exception) -> None:
        self.progress.hide()
        self.status.setText(describe_error(exc))
        self._update_buttons()

    def selected(self) -> Attachment | None:
        """The highlighted file."""
        rows = {index.row() for index in self.table.selectedIndexes()}
        if len(rows) != 1:
            return None
        # While the list is refilled, the table may still hold a row the new list has not.
        row = rows.pop()
        return self._items[row] if row < len(self._items) else None

    def _update_buttons(self) -> None:
        self.add_button.setEnabled(self._patient_id is not None)
        item = self.selected()
        # A removed file is listed for the record; it is neither opened from the chart nor
        # changed (core no longer finds it on the chart).
        on_chart = item is not None and not item.removed
        self.open_button.setEnabled(on_chart)
        self.save_button.setEnabled(on_chart)
        restrict(self.edit_button, self.permitted, "attachment.update", enabled=on_chart)
        restrict(self.remove_button, self.permitted, "attachment.delete", enabled=on_chart)

    def set_permitted(self, permitted: frozenset[str]) -> None:
        """What the signed-in person may do on this chart (Edit details… and Remove… follow;
        core refuses them anyway)."""
        self.permitted = permitted
        self._update_buttons()

    def _moved(self, done: int, total: int) -> None:
        self.progress.show()
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(min(done, total))

    # ----- adding ------------------------------------------------------------------------

    def add_file(self, path: Path | None) -> None:
        """Ask for the title, date and category of a file (dropped, or to be chosen)."""
        if self._patient_id is None:
            return
        self.add_dialog = AddAttachmentDialog(path, self.page)
        self.add_dialog.accepted.connect(self._add_accepted)
        self.add_dialog.open()

    def _add_accepted(self) -> None:
        dialog, patient_id = self.add_dialog, self._patient_id
        values = dialog.values() if dialog is not None else None
        if values is None or patient_id is None:
            return
        path, title, date, category = values
        self.status.setText(f"Encrypting {path.name}…")

        def add() -> tuple[Attachment, bool]:
            return self._with_attachments(
                lambda a: (
                    a.add(patient_id, path, title=title, date=date, category=category),
                    _has_server(a),
                )
            )

        self._operations.submit(add, self._added, self._add_failed, label="add attachment")

    def _added(self, added: tuple[Attachment, bool]) -> None:
        item, has_server = added
        where = "it is uploaded at the next sync" if has_server else NO_SERVER_ADDED
        self.status.setText(f"Added {item.title}; {where}.")

    def _add_failed(self, exc: Exception) -> None:
        self.status.setText(f"Not added: {describe_error(exc)}")

    # ----- correcting and removing --------------------------------------------------------

    def _open_dialog(self, dialog: EditAttachmentDialog | RemoveAttachmentDialog) -> None:
        if self.dialog is not None:
            self.dialog.reject()
        self.dialog = dialog
        dialog.open()

    def edit_selected(self) -> None:
        """Ask for the highlighted file's corrected title, date and category."""
        item = self.selected()
        if item is None or item.removed:
            return
        dialog = EditAttachmentDialog(item, self.page)
        dialog.accepted.connect(lambda: self._edit_accepted(dialog))
        self._open_dialog(dialog)

    def _edit_accepted(self, dialog: EditAttachmentDialog) -> None:
        values = dialog.values()
        if values is None:
            return
        title, date, category = values
        item = dialog.item

        def edit() -> Attachment:
            return self._with_attachments(
                lambda a: a.edit(item.id, title=title, date=date, category=category)
            )

        self._operations.submit(
            edit,
            lambda done: self.status.setText(f"Changed the details of {done.title}."),
            lambda exc: self.status.setText(f"Not changed: {describe_error(exc)}"),
            label="change attachment",
        )

    def remove_selected(self) -> None:
        """Ask why the highlighted file leaves the chart, then take it off."""
        item = self.selected()
        if item is None or item.removed:
            return
        dialog = RemoveAttachmentDialog(item, self.page)
        dialog.accepted.connect(lambda: self._remove_accepted(dialog))
        self._open_dialog(dialog)

    def _remove_accepted(self, dialog: RemoveAttachmentDialog) -> None:
        reason = dialog.chosen_reason()
        if reason is None:
            return
        item = dialog.item

        def remove() -> None:
            self._with_attachments(lambda a: a.remove(item.id, reason))

        self._operations.submit(
            remove,
            lambda _done: self.status.setText(
                f"Removed {item.title} from the chart ({reason}). It is kept: "
                "“Show removed” lists it."
            ),
            lambda exc: self.status.setText(f"Not removed: {describe_error(exc)}"),
            label="remove attachment",
        )

    # ----- opening and saving ------------------------------------------------------------

    def _fetch_progress(self, item: Attachment) -> Callable[[int, int], None]:
        """Progress of opening ``item``: the bar, and its "Where" cell while it downloads."""
        bar = self.progress_signal.report
        if self.transfers is None or item.availability == HERE or item.blob_id is None:
            return bar
        cell = self.transfers.progress(item.blob_id, DOWNLOAD)

        def both(done: int, total: int) -> None:
            bar(done, total)
            cell(done, total)

        return both

    def _fetched(self, item: Attachment) -> None:
        """Called on the worker once ``item`` is in the cache: its "Where" changes."""
        if item.availability != HERE and item.blob_id is not None:
            if self.transfers is not None:
                self.transfers.done(item.blob_id)
            else:
                self.progress_signal.fetched.emit()

    def _decrypt_to(self, item: Attachment, dest: Path, then: object, action: str) -> None:
        progress = self._fetch_progress(item)
        self.status.setText(f"Opening {item.title}…")

        def work() -> Path:
            path = self._with_attachments(
                lambda a: a.open_to(item.id, dest, progress, action=action), fetching=True
            )
            self._fetched(item)
            return path

        self._operations.submit(work, then, self._failed, label="open attachment")  # type: ignore[arg-type]

    def open_selected(self) -> None:
        """Open the highlighted file inside the app (images, and PDFs through Qt's PDF
        module: decrypted into memory, never onto the disk), else with the system's viewer."""
        item = self.selected()
        if item is None:
            return
        if not _shown_inside(item):
            self.open_in_system_viewer(item)
            return
        progress = self._fetch_progress(item)
        self.status.setText(f"Opening {item.title}…")

        def work() -> bytes:
            data = self._with_attachments(lambda a: a.read(item.id, progress), fetching=True)
            self._fetched(item)
            return data

        self._operations.submit(
            work, lambda data: self._show(item, data), self._failed, label="open attachment"
        )

    def open_in_system_viewer(self, item: Attachment) -> None:
        """Hand a decrypted copy (kept until the chart is left) to the system's viewer."""
        dest = self._opened / f"{item.id}-{Path(item.filename).name}"
        self._decrypt_to(item, dest, lambda path: self._to_system_viewer(item, path), VIEWED)

    def _to_system_viewer(self, item: Attachment, path: Path) -> None:
        self.progress.hide()
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
        self.status.setText(
            f"{item.title} opened in the system's viewer (a decrypted copy is kept until "
            "you leave this chart)."
        )

    def _show(self, item: Attachment, data: bytes) -> None:
        self.progress.hide()
        self.status.clear()
        if item.media_type in IMAGE_TYPES:
            pixmap = QPixmap()
            if not pixmap.loadFromData(data):
                self.status.setText(f"{item.filename} cannot be shown: damaged or not an image")
                return
            self.viewer = ImageViewer(item.title, pixmap, self.page)
            self.viewer.show()
            return
        from app.chart.pdf_viewer import PdfUnreadable, PdfViewer

        try:
            viewer = PdfViewer(item.title, item.filename, data, self.page)
        except PdfUnreadable as exc:
            self.status.setText(str(exc))
            return
        viewer.system_viewer_wanted.connect(lambda: self.open_in_system_viewer(item))
        self.viewer = viewer
        viewer.show()

    def ask_save_copy(self) -> None:
        """Ask where to save a decrypted copy of the highlighted file."""
        item = self.selected()
        if item is None:
            return
        name, _ = QFileDialog.getSaveFileName(self.page, "Save a copy", item.filename)
        if name:
            self.save_copy(item, Path(name))

    def save_copy(self, item: Attachment, dest: Path) -> None:
        """Decrypt the file into ``dest`` (on the worker)."""
        self._decrypt_to(item, dest, self._saved, SAVED)

    def _saved(self, path: Path) -> None:
        self.progress.hide()
        self.status.setText(f"Saved a copy to {path}.")


def removed_text(item: Attachment) -> str:
    """``Removed 2026-12-06 14:02 by nina: Added to the wrong chart`` (local time)."""
    when = local_time(item.removed_at)
    return f"Removed {when} by {item.removed_by}: {item.removed_reason or 'no reason given'}"


def _shown_inside(item: Attachment) -> bool:
    """Images, and PDFs when Qt's PDF module is installed, open inside the app."""
    return item.media_type in IMAGE_TYPES or (item.media_type == "application/pdf" and has_qt_pdf())
