"""Sync on screen: the status-bar indicator and the enrollment dialog."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from app.sync.controller import (
    ERROR,
    IMAGE_BYTES,
    IMAGE_ROWS,
    LAN_UNREACHABLE,
    NOT_ENROLLED,
    OFFLINE,
    PENDING,
    RECORDS,
    STOPPED,
    SYNCED,
    SYNCING,
    SyncController,
    SyncProgress,
    SyncStatus,
)
from app.widgets import (
    TypedForm,
    action_buttons,
    dialog_layout,
    error_label,
    form_layout,
    paragraph,
)
from core.errors import sentence
from core.records import unknown
from core.sync.ca_pin import typed_fingerprint
from core.sync.enroll import default_device_name, device_name_problem
from core.sync.session import held_back_notice
from core.sync.trust_notice import trust_notice

CLOCK_ADVICE = (
    "Changes made here still sync, but this computer's clock should be set right: "
    "tell whoever looks after it."
)


def describe_status(status: SyncStatus, now: dt.datetime | None = None) -> str:
    """One calm line for the status bar (and, for a LAN peer, how many peers are in reach)."""
    text = _describe_state(status, now)
    if status.audit_warning:
        text += " Audit log warning: tell your administrator."
    newer = unknown.notice(status.newer_records)
    if newer:
        text += f" {newer}."
    waiting = held_back_notice(status.held_back)
    if waiting:
        text += f" {waiting}."
    if status.clock_warning:
        text += f" {status.clock_warning}."
    refused = refusal_notice(status)
    if refused:
        text += f" {refused}"
    if not status.lan:
        return text
    if status.state == ERROR and status.lan_refused and not status.lan_peers:
        # Refused by the peers in reach (the state said so); any other busy.
        return text + _busy_notice(status.lan_unreachable)
    if status.state == OFFLINE and status.message == LAN_UNREACHABLE:
        return text  # LAN only, every clinic peer in reach busy: the state said so
    if _synced_nearby(status):
        return text + _busy_notice(status.lan_unreachable)  # the state named the peers
    noun = "LAN peer" if status.lan_peers == 1 else "LAN peers"
    text = f"{text} {status.lan_peers} {noun} in reach."
    text += _busy_notice(status.lan_unreachable)
    if status.lan_refused:
        others = "workstation refuses" if status.lan_refused == 1 else "workstations refuse"
        text += (
            f" {status.lan_refused} other {others} this computer's certificate (it may have "
            "been revoked: ask the clinic's administrator)."
        )
    return text


def _busy_notice(unreachable: int) -> str:
    """Clinic LAN peers busy or not answering this time: they are tried again. Calmly: a
    workstation switched off for the night is no fault (and one gone for a few rounds is
    no longer counted, app/sync/lan_peer.py)."""
    if not unreachable:
        return ""
    noun = "other workstation" if unreachable == 1 else "other workstations"
    return f" {unreachable} {noun} did not answer this time (busy or switched off); tried again."


def _synced_nearby(status: SyncStatus) -> bool:
    """The clinic server is out of reach, and this session synced with LAN peers."""
    return (
        status.state == OFFLINE
        and status.message != LAN_UNREACHABLE
        and status.lan_peers > 0
        and status.lan_synced_at is not None
    )


def refusal_notice(status: SyncStatus) -> str | None:
    """What signature checks refused: changes held aside here, ours refused elsewhere."""
    return trust_notice(status.quarantined, status.quarantine_reason or None, status.refused)


def describe_progress(progress: SyncProgress) -> str:
    """``Downloading clinic records: 12,400 of 100,000…`` (or ``changes``; a snapshot
    image's megabytes, then the share of it stored)."""
    if progress.kind == IMAGE_BYTES and progress.total:
        mb = 1e6 / 1024  # the progress counts KiB; MB as a file manager shows them
        return (
            f"Downloading the clinic: {progress.done / mb:,.1f} of {progress.total / mb:,.1f} MB…"
        )
    if progress.kind == IMAGE_ROWS and progress.total:
        return f"Storing the clinic's records: {100 * progress.done // progress.total}%…"
    what = "clinic records" if progress.kind == RECORDS else "changes"
    if progress.total is None:
        return f"Downloading {what}: {progress.done:,} received…"
    return f"Downloading {what}: {progress.done:,} of {progress.total:,}…"


def _describe_state(status: SyncStatus, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now().astimezone()
    last = f" Last synced {status.last_sync:%H:%M}." if status.last_sync else ""
    if status.state == SYNCED:
        return f"Synced{f' at {status.last_sync:%H:%M}' if status.last_sync else ''}."
    if status.state == PENDING:
        noun = "change" if status.pending == 1 else "changes"
        return f"{status.pending} {noun} waiting to sync.{last}"
    if status.state == SYNCING and status.progress is not None:
        return describe_progress(status.progress)
    if status.state == SYNCING:
        return "Downloading the clinic's records…" if status.bootstrapping else "Syncing…"
    if status.state == OFFLINE:
        seconds = 0
        if status.retry_at is not None:
            seconds = max(round((status.retry_at - now).total_seconds()), 0)
        noun = "change" if status.pending == 1 else "changes"
        pending = f" {status.pending} {noun} kept here until then." if status.pending else ""
        if _synced_nearby(status) and status.lan_synced_at is not None:
            # Not "Offline": records are moving, through the workstations nearby.
            n = status.lan_peers
            nearby = "1 workstation" if n == 1 else f"{n} workstations"
            return (
                f"Server not reachable — synced with {nearby} nearby at "
                f"{status.lan_synced_at:%H:%M}. Trying the server again in {seconds} s."
            )
        if status.message == LAN_UNREACHABLE:
            # LAN only: the clinic's peers in reach are busy, not refusing this computer.
            n = status.lan_unreachable
            peers = "1 LAN peer is" if n == 1 else f"{n} LAN peers are"
            return (
                f"Not syncing for now: {peers} busy or not answering — retrying in "
                f"{seconds} s.{pending}{last}"
            )
        return f"Offline — retrying in {seconds} s.{pending}{last}"
    if status.state == ERROR and status.lan_refused:
        noun = "change" if status.pending == 1 else "changes"
        unsent = f" {status.pending} {noun} made here not sent." if status.pending else ""
        return f"Not syncing: {status.message}{unsent}{last}"
    if status.state == ERROR:
        return f"Sync problem: {status.message}"
    if status.state == NOT_ENROLLED and status.lan:
        return "No clinic server; syncing with LAN peers."
    if status.state == NOT_ENROLLED:
        return "Not connected to a clinic server (Settings → Connect to server…)."
    return "Sync paused."


class SyncStatusWidget(QWidget):
    """The permanent status-bar item: a state dot, a sentence, and a progress bar during a
    long download (busy until the total is known, then filling up)."""

    COLOURS: ClassVar[dict[str, str]] = {
        SYNCED: "#2f7d4f",
        PENDING: "#b7791f",
        SYNCING: "#2b6cb0",
        OFFLINE: "#8a8f98",
        ERROR: "#9b1c1c",
        NOT_ENROLLED: "#8a8f98",
        STOPPED: "#8a8f98",
    }

    def __init__(self, controller: SyncController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self._demo = False
        self.dot = QLabel("●")
        self.dot.setObjectName("syncDot")
        self.text = QLabel()
        self.text.setObjectName("syncStatus")
        self.progress = QProgressBar()
        self.progress.setObjectName("syncProgress")
        self.progress.setAccessibleName("Download progress")
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(140)
        self.progress.setMaximumHeight(10)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setObjectName("link")
        self.sync_button.clicked.connect(controller.sync_now)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 0, 8, 0)
        layout.setSpacing(6)
        layout.addWidget(self.dot)
        layout.addWidget(self.text)
        layout.addWidget(self.progress)
        layout.addWidget(self.sync_button)
        layout.addStretch(1)
        # The offline countdown ticks once a second.
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._refresh)
        controller.status_changed.connect(self.show_status)
        self.show_status(controller.status)

    def show_status(self, status: SyncStatus) -> None:
        """Show ``status`` (connected to the controller)."""
        self._status = status
        progress = status.progress if status.state == SYNCING else None
        self._show_progress(progress, status.state == SYNCING and status.bootstrapping)
        # Shown while syncing too (a click then syncs again right after): hidden, it took
        # the keyboard from whoever had pressed it, and Qt handed it to "New patient".
        self.sync_button.setVisible(status.state in (SYNCED, PENDING, OFFLINE, ERROR, SYNCING))
        refused = refusal_notice(status)
        alarm = status.audit_warning or refused or status.lan_refused
        colour = self.COLOURS[ERROR] if alarm else None
        # Synced with the workstations nearby while the server is out of reach: as
        # "changes waiting" (amber), not the grey of a computer cut off.
        shown = PENDING if _synced_nearby(status) else status.state
        colour = colour or self.COLOURS.get(shown, "#8a8f98")
        self.dot.setStyleSheet(f"color: {colour};")
        tip = status.message if status.state in (OFFLINE, ERROR) else ""
        if status.clock_warning:
            tip = tip or CLOCK_ADVICE
        self.setToolTip(status.audit_warning or refused or tip)
        if status.state == OFFLINE:
            self._tick.start()
        else:
            self._tick.stop()
        self._refresh()

    def _show_progress(self, progress: SyncProgress | None, bootstrapping: bool) -> None:
        if progress is not None and progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(min(progress.done, progress.total))
        else:
            self.progress.setRange(0, 0)  # busy: the total is not known (yet)
        self.progress.setVisible(progress is not None or bootstrapping)

    def set_demo(self, demo: bool) -> None:
        """The demo clinic never syncs: say so instead of offering a server connection."""
        self._demo = demo
        self._refresh()

    def _refresh(self) -> None:
        if self._demo and self._status.state != ERROR:
            self.text.setText("Demo clinic: it never syncs with other computers.")
            return
        self.text.setText(describe_status(self._status))


def read_ca_file(typed: str) -> tuple[str | None, str]:
    """The server's CA certificate from the file named ``typed``: (its PEM text, "") or,
    nothing typed, (None, ""); a file that cannot be used gives (None, why)."""
    if not typed.strip():
        return None, ""
    path = Path(typed.strip())
    try:
        pem = path.read_text(encoding="ascii")
    except OSError as exc:
        # The reason in words ("No such file or directory"), not "[Errno 2] ...".
        return None, f"The CA certificate {path} cannot be read: {exc.strerror or exc}."
    except UnicodeDecodeError:
        return None, "That file is not a PEM certificate."
    if "BEGIN CERTIFICATE" not in pem:
        return None, "That file is not a PEM certificate."
    return pem, ""


def ca_given(typed: str) -> tuple[str | None, str | None, str]:
    """What a CA field holds: (the CA file's PEM, the fingerprint's 64 lowercase hex
    digits, what is wrong with it); nothing typed: (None, None, ""). A file of that name
    wins over a fingerprint; the fingerprint's certificate is fetched from the server on
    the worker, when enrolling (core.sync.ca_pin.ca_for_fingerprint)."""
    typed = typed.strip()
    if not typed or Path(typed).exists():
        pem, unusable = read_ca_file(typed)
        return pem, None, unusable
    try:
        fingerprint = typed_fingerprint(typed)
    except ValueError as exc:
        return None, None, (
            f"{sentence(str(exc))} Paste the whole fingerprint from your IT contact, or "
            "choose the CA certificate file."
        )  # fmt: skip
    if fingerprint is not None:
        return None, fingerprint, ""
    pem, unusable = read_ca_file(typed)
    return pem, None, unusable


# The enrollment's fields (core.sync.enroll.EnrollmentError.field) by EnrollDialog's names.
_ENROLL_FIELDS = {
    "server_url": "url", "enroll_code": "code", "ca_path": "ca", "device_name": "device",
}  # fmt: skip


class EnrollDialog(TypedForm):
    """Connect this workstation to the clinic server with a one-time code. What was typed
    is not dropped unasked (``TypedForm``); once Connect handed it over, closing the dialog
    drops nothing (the enrollment goes on), so it closes at once. It says :attr:`connecting`
    when it hands over: the window then tells the person how the connection ended if the
    dialog has closed by then."""

    connecting = Signal()

    def __init__(self, controller: SyncController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._controller = controller
        self.setObjectName("enrollDialog")
        self.setWindowTitle("Connect to the clinic server")
        self.setMinimumWidth(520)
        heading = QLabel("Connect to the clinic server")
        heading.setObjectName("dialogHeading")
        intro = paragraph(
            "Ask your administrator for the server address and a one-time enrollment code. "
            "Records then sync in the background whenever the server can be reached.",
            "hint",
        )
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://careline.example-clinic.org")
        self.code = QLineEdit()
        self.code.setPlaceholderText("XXXX-XXXX-XXXX-XXXX")
        self.ca_path = QLineEdit()
        self.ca_path.setPlaceholderText(
            "Optional: the CA certificate file, or its SHA-256 fingerprint"
        )
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_path, 1)
        ca_row.addWidget(browse)
        self.device = QLineEdit(default_device_name())
        # A message under each field the form checks, said all at once (show_problems).
        self.errors = {name: error_label() for name in ("url", "code", "ca", "device")}
        form = form_layout()
        form.addRow("Server address", self.url)
        form.addRow("", self.errors["url"])
        form.addRow("Enrollment code", self.code)
        form.addRow("", self.errors["code"])
        form.addRow("CA certificate", ca_row)
        form.addRow("", self.errors["ca"])
        # The name the clinic server lists this workstation by (and conflicts show).
        form.addRow("Workstation name", self.device)
        form.addRow("", self.errors["device"])
        self.clears_on_edit([(self.url, self.errors["url"]), (self.code, self.errors["code"]),
                             (self.ca_path, self.errors["ca"]),
                             (self.device, self.errors["device"])])  # fmt: skip
        self.error = error_label()  # the server's answer
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(8)
        self.busy.hide()
        self.state = QLabel()
        self.state.setObjectName("hint")
        self.buttons, self.connect_button = action_buttons(self, self.submit, "Connect")
        dialog_layout(self, heading, intro, form, self.error, self.state, self.busy, self.buttons)
        controller.enroll_refused_at.connect(self._refused_at)
        controller.enroll_finished.connect(self._finished)
        self._waiting = False
        self._refused_field: str | None = None

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Server CA certificate", "", "Certificates (*.pem *.crt);;All files (*)"
        )
        if path:
            self.ca_path.setText(path)

    def has_changes(self) -> bool:
        """Typed and not yet handed over (while connecting, nothing typed is lost)."""
        return not self._waiting and super().has_changes()

    @property
    def waiting(self) -> bool:
        """True while the connection it handed over runs (it shows how that ends)."""
        return self._waiting

    def submit(self) -> None:
        """Check the whole form (everything wrong is said at once), then enroll and sync on
        the sync thread."""
        if self._waiting:
            return
        self.error.hide()
        for label in self.errors.values():
            label.hide()
        url, code = self.url.text().strip(), self.code.text().strip()
        problems: dict[QLabel, str] = {}
        if not url.startswith("https://"):
            problems[self.errors["url"]] = "The server address must start with https://."
        if not code:
            problems[self.errors["code"]] = "Enter the one-time enrollment code."
        ca_pem, fingerprint, unusable = ca_given(self.ca_path.text())
        if unusable:
            problems[self.errors["ca"]] = unusable
        device = self.device.text().strip()
        wrong_name = device_name_problem(device)
        if wrong_name is not None:
            problems[self.errors["device"]] = sentence(wrong_name)
        if self.show_problems(problems, select=True):
            return
        self._waiting = True
        self.connect_button.setEnabled(False)
        self.busy.show()
        self.state.setText("Enrolling and downloading the clinic's records…")
        self.connecting.emit()
        self._controller.enroll(url, code, ca_pem, device, fingerprint)

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def _refused_at(self, field: str) -> None:
        self._refused_field = _ENROLL_FIELDS.get(field)

    def _finished(self, error: str | None) -> None:
        field, self._refused_field = self._refused_field, None
        if not self._waiting:
            return
        self._waiting = False
        self.busy.hide()
        self.connect_button.setEnabled(True)
        if error is None:
            self.state.setText("Connected.")
            self.accept()
            return
        self.state.clear()
        if field is None:
            self._show_error(error)
            return
        # Under the field it is about, which gets the keyboard with its text selected: typed
        # over, the message goes, and Return connects again.
        self.errors[field].setText(error)
        self.errors[field].show()
        typed_in = {"url": self.url, "code": self.code, "ca": self.ca_path, "device": self.device}
        typed_in[field].setFocus()
        typed_in[field].selectAll()
