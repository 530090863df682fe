"""First run: create the clinic and its first administrator, or join an existing clinic
(through the clinic server, or through a LAN peer showing a pairing code), then show this
workstation's recovery key once: to an administrator only. Someone else who joins is told
that an administrator makes it (core/sync/join_recovery.py): the key resets any account's
password, an administrator's included.

Creating the clinic (key derivation, database creation) runs on the worker. The
administrator page is a commit page: once the clinic exists there is no going back, and
the recovery key page cannot be left until the person confirms they stored the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.messages import describe_error, validation_text
from app.session.recovery_sheet import RecoveryKeyActions
from app.session.strength_hint import StrengthHint, worded
from app.sync.controller import SyncProgress, download_progress
from app.sync.join import (
    FirstSyncError,
    JoinRequest,
    PendingJoin,
    discard_unfinished_join,
    discarded_words,
    join_clinic,
    kept_join,
)
from app.sync.status import ca_given, describe_progress
from app.widgets import (
    check_all,
    clear_when_edited,
    error_label,
    fields_of,
    form_layout,
    input_value,
    paragraph,
    show_problems,
)
from app.worker import Job, Worker
from core.errors import sentence
from core.records import demo, validation
from core.records.demo import DemoClinic
from core.records.errors import ValidationError
from core.records.workstation import Workstation
from core.sync.enroll import EnrollmentError, default_device_name, device_name_problem
from core.sync.reach import is_certificate_problem
from core.sync.session import SyncReport


def _enable_commit(wizard: QWizard, enabled: bool) -> None:
    """Enable or disable the page's commit button (Create clinic, Join clinic) while its
    work runs. Disabled, a button stops being the dialog's default, so it is made the
    default again: else Return in a field does nothing after a failed attempt."""
    commit = wizard.button(QWizard.WizardButton.CommitButton)
    commit.setEnabled(enabled)
    if enabled and isinstance(commit, QPushButton):
        commit.setDefault(True)


@dataclass(frozen=True)
class ClinicCreated:
    """What ``Workstation.init`` or a join gave back."""

    username: str
    recovery_key: str | None  # None: a join by someone who is not an administrator
    keyring_note: str | None
    no_key_words: str = ""  # without a key: why, and who makes it (the person reads it)
    device_id: str = ""  # a join's: how the clinic server or the LAN peers know this computer
    device_name: str = ""  # a join through the server's: how its device list names it
    on_server: bool = False  # joined through the clinic server (not a LAN peer)


def device_words(created: ClinicCreated) -> str:
    """What a join enrolled, for the person to give IT (a device is revoked by its ID), or
    "" for a clinic created here."""
    if not created.device_id:
        return ""
    revoke = "(IT uses the ID to revoke it: 'careline-server admin device revoke ID')."
    if created.device_name:
        return (
            f"The clinic server lists this workstation as “{created.device_name}”, device ID "
            f"{created.device_id} {revoke}"
        )
    if created.on_server:  # a kept join finished: the name it was given is not kept here
        return f"The clinic server lists this workstation as device ID {created.device_id} {revoke}"
    return f"This workstation's device ID in the clinic is {created.device_id}."


def heading(step: int, title: str, subtitle: str, steps: int = 3) -> str:
    """A page title: where the person is in the set-up, the title, one line of context."""
    return (
        f'<div style="color:#55636f; font-size:10pt">Step {step} of {steps}</div>'
        f'<div style="color:#23465c; font-size:17pt; font-weight:600">{title}</div>'
        f'<div style="color:#3b4a56; font-size:11pt; font-weight:normal; margin-top:4px">'
        f"{subtitle}</div>"
    )


class ClinicPage(QWizardPage):
    """Step 1: the clinic's name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTitle(
            heading(1, "Set up your clinic", "This computer does not hold any clinic records yet.")
        )
        self.create_choice = QRadioButton("Create a new clinic")
        self.create_choice.setObjectName("createClinic")
        self.join_choice = QRadioButton("Join an existing clinic")
        self.join_choice.setObjectName("joinClinic")
        self.demo_choice = QRadioButton("Explore with sample data")
        self.demo_choice.setObjectName("exploreDemo")
        self.create_choice.setChecked(True)
        self._choices = QButtonGroup(self)
        for choice in (self.create_choice, self.join_choice, self.demo_choice):
            self._choices.addButton(choice)
        self.clinic_name = QLineEdit()
        self.clinic_name.setObjectName("clinicName")
        self.clinic_name.setPlaceholderText("e.g. Riverside Family Practice")
        self.error = error_label()
        form = form_layout()
        form.addRow("Clinic name", self.clinic_name)
        form.addRow("", self.error)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(9, 12, 9, 0)  # flush with the title
        layout.setSpacing(14)
        layout.addWidget(
            paragraph(
                "Careline will create an encrypted database for your clinic on this computer, "
                "and an administrator account for you. It works without a network connection."
            )
        )
        layout.addWidget(self.create_choice)
        layout.addLayout(form)
        layout.addWidget(self.join_choice)
        layout.addWidget(
            paragraph(
                "Choose this on a second computer of a clinic that already uses Careline: it "
                "receives the clinic's records from the clinic server or from another "
                "workstation on this network.",
                "hint",
            )
        )
        layout.addWidget(self.demo_choice)
        layout.addWidget(
            paragraph(
                "A demo clinic of made-up patients to learn on, in a folder of its own. It "
                "never syncs and leaves this computer's clinic untouched.",
                "hint",
            )
        )
        layout.addStretch(1)
        self.create_choice.toggled.connect(self._choice_changed)

    def _choice_changed(self, creating: bool) -> None:
        self.clinic_name.setEnabled(creating)
        self.error.hide()

    @property
    def joining(self) -> bool:
        """True if the person chose to join an existing clinic."""
        return self.join_choice.isChecked()

    def nextId(self) -> int:
        """The administrator page, or the join page."""
        wizard = self.wizard()
        if self.joining and isinstance(wizard, FirstRunWizard):
            return wizard.join_page_id
        if self.demo_choice.isChecked() and isinstance(wizard, FirstRunWizard):
            return wizard.demo_page_id
        return super().nextId()

    def validatePage(self) -> bool:
        """Check the name with core's rules before moving on."""
        if not self.create_choice.isChecked():
            return True
        try:
            validation.text("clinic", self.clinic_name.text())
        except ValidationError as exc:
            self.error.setText(validation_text(exc))
            self.error.show()
            self.clinic_name.setFocus()
            return False
        self.error.hide()
        return True


class AdminPage(QWizardPage):
    """Step 2: the first administrator; choosing "Create clinic" creates everything."""

    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self._wizard = wizard
        self._job: Job[ClinicCreated] | None = None
        self.created: ClinicCreated | None = None
        self.setTitle(
            heading(
                2,
                "Create the administrator account",
                "You will use this account to sign in and to add other staff.",
            )
        )
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Create clinic")

        self.username = QLineEdit()
        self.username.setObjectName("adminUsername")
        self.username.setPlaceholderText("e.g. mgarcia")
        self.full_name = QLineEdit()
        self.full_name.setObjectName("adminFullName")
        self.full_name.setPlaceholderText("e.g. Maria Garcia")
        self.password = QLineEdit()
        self.password.setObjectName("adminPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm = QLineEdit()
        self.confirm.setObjectName("adminConfirm")
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.inputs = {
            "username": self.username,
            "full_name": self.full_name,
            "password": self.password,
            "confirm": self.confirm,
        }
        # The password's message place is its strength hint (app/session/strength_hint.py).
        self.strength = StrengthHint(
            self.password, lambda: (self.username.text(), self.full_name.text())
        )
        self.errors = {field: error_label() for field in self.inputs}
        self.errors["password"] = self.strength
        self._field_of: dict[QLabel, QWidget] = {self.errors[f]: w for f, w in self.inputs.items()}
        self.general_error = error_label()
        self.progress = paragraph("", "hint")
        self.progress.hide()

        form = form_layout()
        for caption, field in (
            ("User name", "username"),
            ("Full name", "full_name"),
            ("Password", "password"),
            ("Confirm password", "confirm"),
        ):
            form.addRow(caption, self.inputs[field])
            form.addRow("", self.errors[field])
            if field != "password":
                clear_when_edited(self.inputs[field], self.errors[field])  # as every form's
        layout = QVBoxLayout(self)
        layout.setContentsMargins(9, 12, 9, 0)  # flush with the title
        layout.setSpacing(12)
        layout.addLayout(form)
        layout.addWidget(
            paragraph(
                "User names use 2-32 lower-case letters, digits, dots, dashes or underscores. "
                "Choose a password "
                "of at least 10 characters that you do not use anywhere else: staff passwords "
                "unlock the clinic's records on this computer.",
                "hint",
            )
        )
        layout.addWidget(self.general_error)
        layout.addWidget(self.progress)
        layout.addStretch(1)

    @property
    def creating(self) -> bool:
        """True while the clinic is being created (on the worker)."""
        return self._job is not None

    def show_error(self, field: str | None, text: str) -> None:
        """Show ``text`` under ``field`` (or below the form)."""
        label = self.errors.get(field or "", self.general_error)
        label.setText(text)
        label.show()
        if field in self.inputs:
            self.inputs[field].setFocus()

    def _clear_errors(self) -> None:
        for label in (*self.errors.values(), self.general_error):
            if isinstance(label, StrengthHint):
                label.update_hint()
                continue
            label.clear()
            label.hide()

    def validatePage(self) -> bool:
        """Refuse while creating; start creating; accept once the clinic exists."""
        if self.created is not None:
            return True
        if self._job is not None:
            return False
        self._clear_errors()
        # Core's own checks, all of them, before anything is made: one message at a time
        # sent the person round the form once per mistake.
        username, full_name, password = (
            self.username.text(),
            self.full_name.text(),
            self.password.text(),
        )
        problems = check_all([
            (self.errors["username"], lambda: validation.username(username)),
            (self.errors["full_name"], lambda: validation.text("full_name", full_name or username)),
        ])  # fmt: skip
        weak = self.strength.refusal()
        if weak is not None:
            problems[self.errors["password"]] = weak
        if password != self.confirm.text():
            problems[self.errors["confirm"]] = "The two passwords are different. Type them again."
            self.confirm.clear()
        if show_problems(self, problems, self._field_of, select=True):
            _enable_commit(self._wizard, True)  # Return in the field put right goes on
            return False
        self._set_busy(True)
        self._job = self._wizard.create_clinic(
            self._wizard.clinic_page.clinic_name.text(),
            self.username.text(),
            self.full_name.text(),
            self.password.text(),
            self._created,
            self._failed,
        )
        return False

    def _set_busy(self, busy: bool) -> None:
        for widget in self.inputs.values():
            widget.setEnabled(not busy)
        self.progress.setText("Creating the encrypted clinic database…" if busy else "")
        self.progress.setVisible(busy)
        _enable_commit(self._wizard, not busy)
        self._wizard.button(QWizard.WizardButton.BackButton).setEnabled(not busy)

    def _created(self, created: ClinicCreated) -> None:
        self._job = None
        self.created = created
        # The passwords are no longer needed on screen (Python cannot wipe the strings).
        self.password.clear()
        self.confirm.clear()
        self._set_busy(False)
        self._wizard.next()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self._set_busy(False)
        if isinstance(exc, ValidationError):
            if exc.field == "clinic":
                self._wizard.back()
                self._wizard.clinic_page.error.setText(validation_text(exc))
                self._wizard.clinic_page.error.show()
                return
            label = self.errors.get(exc.field)
            words = worded(exc) if isinstance(label, StrengthHint) else validation_text(exc)
            self.show_error(exc.field, words)
        else:
            self.show_error(None, describe_error(exc))


class RecoveryPage(QWizardPage):
    """Step 3: the recovery key, shown this once, and a required confirmation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTitle(
            heading(
                3,
                "Store your recovery key",
                "Careline shows this key only now. It cannot show it again.",
            )
        )
        self.key = QLabel()
        self.key.setObjectName("recoveryKey")
        self.key.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.key.setAlignment(Qt.AlignmentFlag.AlignCenter)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(max(mono.pointSizeF(), 10.0) * 1.35)
        mono.setWeight(QFont.Weight.DemiBold)
        self.key.setFont(mono)
        self.key_actions = RecoveryKeyActions(self.key.text)  # Print…, Copy
        self.keyring_note = paragraph("", "notice")
        self.keyring_note.hide()
        self.device_note = device_paragraph()
        self.stored = QCheckBox(
            "I have written down or printed the recovery key and stored it safely"
        )
        self.stored.setObjectName("storedCheckbox")
        # A mandatory field: QWizard keeps Finish disabled until it is ticked.
        self.registerField("stored_safely*", self.stored)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(9, 12, 9, 0)  # flush with the title
        layout.setSpacing(14)
        layout.addWidget(
            paragraph(
                "If every staff password is forgotten, this key is the only way to open the "
                "clinic's records on this computer. Write it down or print it, and keep it "
                "somewhere safe away from the computer, such as the clinic safe. Do not save "
                "it in a file on this computer or send it by e-mail."
            )
        )
        layout.addWidget(self.key)
        layout.addWidget(self.key_actions)
        layout.addWidget(self.keyring_note)
        layout.addWidget(self.device_note)
        layout.addWidget(self.stored)
        layout.addStretch(1)

    def nextId(self) -> int:
        """The last page, whichever way the clinic came to this computer."""
        return -1

    def hideEvent(self, event: QHideEvent) -> None:
        """The key leaves the screen: a copy still on the clipboard goes too."""
        self.key_actions.forget()
        super().hideEvent(event)

    def show_key(self, created: ClinicCreated) -> None:
        """Fill in the key and, when there is no OS keyring, say what that means."""
        self.key.setText(created.recovery_key or "")
        show_keyring_note(self.keyring_note, created)
        show_device_note(self.device_note, created)


def device_paragraph() -> QLabel:
    """Where a join's success says which device it enrolled (hidden until then)."""
    label = paragraph("", "hint")
    label.setObjectName("joinedDevice")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def show_device_note(label: QLabel, created: ClinicCreated) -> None:
    """Say in ``label`` which device the join enrolled, or hide it (a clinic made here)."""
    label.setText(device_words(created))
    label.setVisible(bool(created.device_id))


def show_keyring_note(label: QLabel, created: ClinicCreated) -> None:
    """When this computer has no OS keyring, say in ``label`` what that means."""
    if created.keyring_note:
        label.setText(
            "This computer has no usable OS keyring, so Careline cannot unlock the records "
            "by itself. Staff passwords open the database: each person signs in with their "
            f"own password. (Details: {created.keyring_note}.)"
        )
        label.show()
    else:
        label.hide()


class NoRecoveryKeyPage(QWizardPage):
    """Step 3 of a join by someone who may not hold the recovery key (not an
    administrator): nothing secret, only who makes the key, then on to sign in."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTitle(
            heading(
                3,
                "This computer has joined the clinic",
                "You can sign in with your Careline password.",
            )
        )
        self.note = paragraph("")
        self.note.setObjectName("noRecoveryKeyNote")
        self.keyring_note = paragraph("", "notice")
        self.keyring_note.hide()
        self.device_note = device_paragraph()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(9, 12, 9, 0)  # flush with the title
        layout.setSpacing(14)
        layout.addWidget(self.note)
        layout.addWidget(self.keyring_note)
        layout.addWidget(self.device_note)
        layout.addStretch(1)

    def nextId(self) -> int:
        """The last page."""
        return -1

    def show_note(self, created: ClinicCreated) -> None:
        """Say why there is no recovery key and who makes it."""
        self.note.setText(created.no_key_words)
        show_keyring_note(self.keyring_note, created)
        show_device_note(self.device_note, created)


class FirstRunWizard(QWizard):
    """The set-up wizard, embedded as a page of the main window.

    Emits :attr:`setup_finished` with the user name, and whether this computer joined a
    clinic rather than made one, after the recovery key was confirmed. There is no Cancel
    and Escape does nothing: closing the window quits the app instead, and the window asks
    first while the set-up holds typed text (:meth:`has_changes`, as a ``TypedForm`` does).
    """

    setup_finished = Signal(str, bool)  # user name; True when this computer joined
    download_progressed = Signal(object)  # SyncProgress of a join's first download
    demo_progressed = Signal(int, int)  # sample patients written, of how many
    demo_ready = Signal(object)  # DemoClinic: made (or found) and closed, ready to sign in
    demo_patients = demo.DEFAULT_PATIENTS  # how many sample patients the demo gets

    def __init__(
        self, worker: Worker, workstation: Workstation, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._worker = worker
        self._workstation = workstation
        self.home = workstation.data_dir  # this computer's clinic folder (the demo's beside)
        self.setObjectName("firstRunWizard")
        # Shown inside the main window rather than as a separate dialog window.
        self.setWindowFlags(Qt.WindowType.Widget)
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setTitleFormat(Qt.TextFormat.RichText)
        self.setOption(QWizard.WizardOption.NoCancelButton, True)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Continue to sign in")
        self.clinic_page = ClinicPage()
        self.admin_page = AdminPage(self)
        self.recovery_page = RecoveryPage()
        self.join_page = JoinPage(self)
        self.demo_page = DemoPage(self)
        self.no_key_page = NoRecoveryKeyPage()
        for page in (self.clinic_page, self.admin_page, self.recovery_page):
            self.addPage(page)
        self.join_page_id = self.addPage(self.join_page)
        self.demo_page_id = self.addPage(self.demo_page)
        self.no_key_page_id = self.addPage(self.no_key_page)
        for which in (
            QWizard.WizardButton.NextButton,
            QWizard.WizardButton.CommitButton,
            QWizard.WizardButton.FinishButton,
        ):
            self.button(which).setObjectName("primary")
        self.currentIdChanged.connect(self._page_changed)
        self._opened_with: dict[QWidget, object] | None = None

    def _typed(self) -> dict[QWidget, object]:
        # The text fields only: choosing to join or to explore throws nothing typed away.
        return {w: input_value(w) for w in fields_of(self) if isinstance(w, QLineEdit)}

    def showEvent(self, event: QShowEvent) -> None:
        """First shown: what its fields hold is what it opened with (a resumed join's user
        name is filled in before)."""
        super().showEvent(event)
        if self._opened_with is None:
            self._opened_with = self._typed()

    def has_changes(self) -> bool:
        """True while text typed into the set-up (the clinic's name, the administrator's
        account, the server's address and code, ...) would be lost by closing: before the
        clinic exists here. (After, the recovery key has a question of its own.)"""
        opened = self._opened_with
        return self.created is None and opened is not None and self._typed() != opened

    def create_clinic(
        self,
        clinic_name: str,
        username: str,
        full_name: str,
        password: str,
        on_done: Callable[[ClinicCreated], None],
        on_error: Callable[[Exception], None],
    ) -> Job[ClinicCreated]:
        """Run ``Workstation.init`` on the worker."""
        ws = self._workstation

        def create() -> ClinicCreated:
            recovery = ws.init(clinic_name, username, full_name or username, password)
            return ClinicCreated(username.strip().lower(), recovery, ws.keyring_note)

        return self._worker.submit(create, on_done, on_error, label="create clinic")

    def join_clinic(
        self,
        request: JoinRequest,
        on_done: Callable[[ClinicCreated], None],
        on_error: Callable[[Exception], None],
    ) -> Job[ClinicCreated]:
        """Join an existing clinic on the worker (see :func:`app.sync.join.join_clinic`); the
        first download's progress arrives as :attr:`download_progressed` signals."""
        ws = self._workstation
        relay = self.download_progressed

        def progressed(report: SyncReport) -> None:
            progress = download_progress(report)  # immutable: safe to hand to the GUI
            if progress is not None:
                relay.emit(progress)

        def run() -> ClinicCreated:
            joined = join_clinic(ws, request, progressed)
            recovery, name = joined.recovery, request.username.strip().lower()
            device_name = (request.device_name or "").strip() if not request.via_peer else ""
            return ClinicCreated(name, recovery.key, ws.keyring_note, recovery.words,
                                 joined.device_id, device_name, not request.via_peer)  # fmt: skip

        return self._worker.submit(run, on_done, on_error, label="join clinic")

    def make_demo(
        self, on_done: Callable[[DemoClinic], None], on_error: Callable[[Exception], None]
    ) -> Job[DemoClinic]:
        """On the worker: the demo clinic beside this computer's data folder, made now (with
        :attr:`demo_progressed` signals) or, if it exists already, as it is."""
        home, kdf_params = self._workstation.data_dir, self._workstation.kdf_params
        relay, patients = self.demo_progressed, self.demo_patients

        def run() -> DemoClinic:
            found = demo.open_demo(home)
            if found is not None:
                return found
            return demo.create_demo(
                home, patients=patients, on_progress=relay.emit, kdf_params=kdf_params
            )

        return self._worker.submit(run, on_done, on_error, label="make demo clinic")

    def find_peers(
        self, on_done: Callable[[list[str]], None], on_error: Callable[[Exception], None]
    ) -> Job[list[str]]:
        """Browse mDNS for LAN peers (HOST:PORT) on the worker."""
        from core.sync.lan import discovery

        def run() -> list[str]:
            return [peer.address for peer in discovery.browse(2.0)]

        return self._worker.submit(run, on_done, on_error, label="find peers")

    @property
    def workstation(self) -> Workstation:
        """This computer's workstation (the clinic folder being set up)."""
        return self._workstation

    @property
    def worker(self) -> Worker:
        """The database worker the wizard's jobs run on."""
        return self._worker

    @property
    def created(self) -> ClinicCreated | None:
        """The clinic created or joined on this computer, once it exists."""
        return self.admin_page.created or self.join_page.created

    def making_recovery_key(self) -> str:
        """What the set-up is doing now that ends with a recovery key shown once
        ("creating the clinic", "joining the clinic"), or "" when nothing is. Closing the
        window must wait for it: quitting then let the work finish, and the key was never
        shown (MainWindow.closeEvent)."""
        if self.admin_page.creating:
            return "creating the clinic"
        if self.join_page.joining:
            return "joining the clinic"
        return ""

    def recovery_key_unconfirmed(self) -> bool:
        """A recovery key is on screen and the person has not confirmed storing it."""
        created = self.created
        return (
            created is not None
            and created.recovery_key is not None
            and not self.recovery_page.stored.isChecked()
        )

    def _page_changed(self, page_id: int) -> None:
        page, created = self.page(page_id), self.created
        if created is None or page not in (self.recovery_page, self.no_key_page):
            return
        if page is self.recovery_page:
            self.recovery_page.show_key(created)
        else:
            self.no_key_page.show_note(created)
        # There is nothing to go back to once the clinic exists: no Back button at all.
        self.setButtonLayout([QWizard.WizardButton.Stretch, QWizard.WizardButton.FinishButton])

    def reject(self) -> None:
        """Escape must not hide the wizard (or the recovery key) and leave a blank window."""

    def accept(self) -> None:
        """Finish: forget the key on screen and hand over to sign-in."""
        if self.currentPage() is self.demo_page:
            self.validateCurrentPage()  # starts making the demo; demo_ready hands over
            return
        created = self.created
        if created is None or self.recovery_key_unconfirmed():
            return
        self.recovery_page.key.clear()
        super().accept()
        self.setup_finished.emit(created.username, self.join_page.created is not None)


_STRETCH = QWizard.WizardButton.Stretch
# The wizard's usual buttons (Cancel is off: NoCancelButton).
_ALL_BUTTONS = [
    _STRETCH,
    QWizard.WizardButton.BackButton,
    QWizard.WizardButton.NextButton,
    QWizard.WizardButton.CommitButton,
    QWizard.WizardButton.FinishButton,
]


class JoinPage(QWizardPage):
    """Step 2 (joining): through the clinic server, or through a LAN peer's pairing code."""

    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self._wizard = wizard
        self._job: Job[ClinicCreated] | None = None
        self._find_job: Job[list[str]] | None = None
        self._discard_job: Job[bool] | None = None
        self.created: ClinicCreated | None = None
        # An enrollment kept after its first sync failed (the code is spent): Try again
        # finishes it with the password alone (core/sync/join.py).
        self.resuming: PendingJoin | None = None
        self.confirm_box: QMessageBox | None = None  # Discard this attempt's question
        # The device a failed first sync left enrolled, when its error said (the kept
        # credential holding it opens only with the person's password): Discard names it.
        self.kept_device_id: str | None = None
        self.setTitle(
            heading(
                2,
                "Join an existing clinic",
                "This computer receives the clinic's records and syncs with the others.",
            )
        )
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Join clinic")

        self.via_server = QRadioButton("Through the clinic server")
        self.via_server.setObjectName("joinViaServer")
        self.via_peer = QRadioButton("Through another workstation on this network")
        self.via_peer.setObjectName("joinViaPeer")
        self.via_server.setChecked(True)
        self._via = QButtonGroup(self)
        self._via.addButton(self.via_server)
        self._via.addButton(self.via_peer)

        self.server_url = QLineEdit()
        self.server_url.setPlaceholderText("https://careline.example-clinic.org")
        self.enroll_code = QLineEdit()
        self.enroll_code.setPlaceholderText("The one-time enrollment code")
        self.ca_path = QLineEdit()
        self.ca_path.setObjectName("joinCa")
        self.ca_path.setPlaceholderText(
            "Optional: the CA certificate file, or its SHA-256 fingerprint"
        )
        self.ca_path.setToolTip(
            "The clinic server's CA certificate, to trust only that server: choose its file "
            "(PEM), or paste its SHA-256 fingerprint (64 hex digits, colons allowed) from your "
            "IT contact"
        )
        # Prefilled with the host name, which many computers share (a cloned image's): the
        # server's device list tells workstations apart by it.
        self.device_name = QLineEdit(default_device_name())
        self.device_name.setObjectName("joinDeviceName")
        self.device_name.setToolTip(
            "How the clinic server lists this computer, for IT (1-64 characters): e.g. "
            "“Front desk 2”"
        )
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_path, 1)
        ca_row.addWidget(browse)
        # A message under each field, said all at once (show_problems); ``error`` below the
        # form says the rest (the server's or the peer's answer).
        self.errors = {name: error_label() for name in (
            "server_url", "enroll_code", "ca_path", "device_name", "pair_code", "peer_address",
            "username", "password")}  # fmt: skip
        self.server_form = QWidget()
        server_form = form_layout()
        server_form.addRow("Server address", self.server_url)
        server_form.addRow("", self.errors["server_url"])
        server_form.addRow("Enrollment code", self.enroll_code)
        server_form.addRow("", self.errors["enroll_code"])
        server_form.addRow("CA certificate", ca_row)
        server_form.addRow("", self.errors["ca_path"])
        server_form.addRow("Workstation name", self.device_name)
        server_form.addRow("", self.errors["device_name"])
        self.server_form.setLayout(server_form)

        self.pair_code = QLineEdit()
        self.pair_code.setPlaceholderText("The pairing code shown on the other workstation")
        self.peer_address = QLineEdit()
        self.peer_address.setPlaceholderText("HOST:PORT of the other workstation")
        self.find_button = QPushButton("Find")
        self.find_button.setToolTip("Look for Careline workstations on this network")
        self.find_button.clicked.connect(self._find_peers)
        peer_row = QHBoxLayout()
        peer_row.addWidget(self.peer_address, 1)
        peer_row.addWidget(self.find_button)
        self.peer_form = QWidget()
        peer_form = form_layout()
        peer_form.addRow("Pairing code", self.pair_code)
        peer_form.addRow("", self.errors["pair_code"])
        peer_form.addRow("Workstation", peer_row)
        peer_form.addRow("", self.errors["peer_address"])
        self.peer_form.setLayout(peer_form)
        self.peer_form.hide()

        self.username = QLineEdit()
        self.username.setObjectName("joinUsername")
        self.password = QLineEdit()
        self.password.setObjectName("joinPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        account = form_layout()
        account.addRow("Your user name", self.username)
        account.addRow("", self.errors["username"])
        account.addRow("Password", self.password)
        account.addRow("", self.errors["password"])
        self._field_of: dict[QLabel, QWidget] = {
            label: getattr(self, name) for name, label in self.errors.items()
        }
        for label, field in self._field_of.items():
            clear_when_edited(field, label)
        self.error = error_label()
        self.resume_note = paragraph(
            "This computer is enrolled with the clinic server, but receiving the clinic's "
            "records did not finish. Enter your password and choose Try again: no new code "
            "is needed. To join another clinic or server instead, discard this attempt (you "
            "will then need a new enrollment code).",
            "hint",
        )
        self.resume_note.hide()
        self.discard_button = QPushButton("Discard this attempt")
        self.discard_button.setObjectName("discardJoin")
        self.discard_button.setToolTip(
            "Remove what this attempt kept on this computer; joining again needs a new code"
        )
        self.discard_button.clicked.connect(self._discard)
        self.discard_button.hide()
        self.progress = paragraph("", "hint")
        self.progress.hide()
        self.download_bar = QProgressBar()
        self.download_bar.setObjectName("downloadProgress")
        self.download_bar.setTextVisible(False)
        self.download_bar.hide()
        wizard.download_progressed.connect(self._download_progressed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(9, 12, 9, 0)  # flush with the title
        layout.setSpacing(10)
        layout.addWidget(self.resume_note)
        layout.addWidget(self.via_server)
        layout.addWidget(self.via_peer)
        layout.addWidget(self.server_form)
        layout.addWidget(self.peer_form)
        layout.addLayout(account)
        layout.addWidget(
            paragraph(
                "Sign in with your existing account in the clinic: the account must already "
                "exist there. Your password also protects the records on this computer.",
                "hint",
            )
        )
        layout.addWidget(self.error)
        discard_row = QHBoxLayout()
        discard_row.addWidget(self.discard_button)
        discard_row.addStretch(1)
        layout.addLayout(discard_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.download_bar)
        layout.addStretch(1)
        self.via_peer.toggled.connect(self._via_changed)

    def _via_changed(self, peer: bool) -> None:
        self.server_form.setVisible(not peer)
        self.peer_form.setVisible(peer)
        self._hide_errors()

    def _hide_errors(self) -> None:
        for label in (self.error, *self.errors.values()):
            label.hide()

    def nextId(self) -> int:
        """The recovery key page; once joined by someone who gets no recovery key (not an
        administrator), the page that says who makes it."""
        if self.created is not None and self.created.recovery_key is None:
            return self._wizard.no_key_page_id
        return self._wizard.pageIds()[2]

    @property
    def joining(self) -> bool:
        """True while this computer is joining the clinic (on the worker)."""
        return self._job is not None

    def _choose_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Server CA certificate", "", "Certificates (*.pem *.crt);;All files (*)"
        )
        if path:
            self.ca_path.setText(path)

    def _find_peers(self) -> None:
        if self._find_job is not None:
            return
        self.find_button.setEnabled(False)
        self.find_button.setText("Looking…")
        self._find_job = self._wizard.find_peers(self._peers_found, self._find_failed)

    def _peers_found(self, addresses: list[str]) -> None:
        self._find_done()
        if addresses:
            self.peer_address.setText(addresses[0])
        else:
            self.show_error("No Careline workstation answered on this network. Type its address.")

    def _find_failed(self, exc: Exception) -> None:
        self._find_done()
        self.show_error(f"Looking for workstations failed: {exc}")

    def _find_done(self) -> None:
        self._find_job = None
        self.find_button.setEnabled(True)
        self.find_button.setText("Find")

    def show_error(self, text: str) -> None:
        """Show ``text`` below the form."""
        self.error.setText(text)
        self.error.show()

    def resume(self, pending: PendingJoin) -> None:
        """Offer to finish the kept enrollment ``pending``: the person who started it, their
        password, Try again; the server fields (and the spent code) are not asked again."""
        self.resuming = pending
        self.username.setText(pending.username)
        self.username.setReadOnly(True)
        for widget in (self.via_server, self.via_peer, self.server_form, self.peer_form):
            widget.hide()
        self.resume_note.show()
        self.discard_button.show()
        self.setButtonText(QWizard.WizardButton.CommitButton, "Try again")
        # Back would offer to create a clinic in a folder that holds this attempt.
        self._wizard.setButtonLayout([_STRETCH, QWizard.WizardButton.CommitButton])

    def _start_afresh(self) -> None:
        self.resuming = None
        self.kept_device_id = None
        self.username.setReadOnly(False)
        self.enroll_code.clear()
        for widget in (self.via_server, self.via_peer):
            widget.show()
        self._via_changed(self.via_peer.isChecked())
        self.resume_note.hide()
        self.discard_button.hide()
        self.setButtonText(QWizard.WizardButton.CommitButton, "Join clinic")
        self._wizard.setButtonLayout(_ALL_BUTTONS)

    def _discard(self) -> None:
        """Ask, then discard the kept attempt: joining again needs a new code."""
        if self.resuming is None or self._job is not None or self._discard_job is not None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Discard this attempt",
            "Remove what this join kept on this computer? Joining again then needs a new "
            "enrollment code from your administrator, and the device it enrolled"
            + (f" ({self.kept_device_id})" if self.kept_device_id else "")
            + " stays listed on the server until an administrator revokes it.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setObjectName("confirmDiscardJoin")
        confirm = box.addButton("Discard", QMessageBox.ButtonRole.AcceptRole)
        confirm.setObjectName("confirmDiscardJoinButton")

        def answered() -> None:
            self.confirm_box = None
            box.deleteLater()
            if box.clickedButton() is confirm:
                self._discard_now()

        box.finished.connect(answered)
        self.confirm_box = box
        box.open()

    def _discard_now(self) -> None:
        """Discard the kept attempt (on the worker): the page asks for a new code again."""
        if self.resuming is None or self._job is not None or self._discard_job is not None:
            return
        ws, device_id = self._wizard.workstation, self.kept_device_id
        self.discard_button.setEnabled(False)

        def done(removed: bool) -> None:
            self._discard_job = None
            self.discard_button.setEnabled(True)
            self._start_afresh()
            if removed:
                self.show_error(sentence(discarded_words(device_id)))
            # The button that had the keyboard is gone: on to the first field to fill in.
            (self.enroll_code if self.server_url.text() else self.server_url).setFocus()

        def failed(exc: Exception) -> None:
            self._discard_job = None
            self.discard_button.setEnabled(True)
            self.show_error(describe_error(exc))

        self._discard_job = self._wizard.worker.submit(
            lambda: discard_unfinished_join(ws), done, failed, label="discard unfinished join"
        )

    def request(self) -> JoinRequest | dict[QLabel, str]:
        """The join request from the form, or everything wrong with it (a field's message
        label -> its text)."""
        problems: dict[QLabel, str] = {}
        if self.resuming is None:
            if self.via_peer.isChecked():
                pair_code, peer = self.pair_code.text().strip(), self.peer_address.text().strip()
                if not pair_code:
                    problems[self.errors["pair_code"]] = (
                        "Enter the pairing code shown on the other workstation."
                    )
                if not peer:
                    problems[self.errors["peer_address"]] = (
                        "Enter the other workstation's address (HOST:PORT), or choose Find."
                    )
            else:
                url, code = self.server_url.text().strip(), self.enroll_code.text().strip()
                if not url.startswith("https://"):
                    problems[self.errors["server_url"]] = (
                        "The server address must start with https://."
                    )
                if not code:
                    problems[self.errors["enroll_code"]] = "Enter the one-time enrollment code."
                ca_pem, fingerprint, unusable = self._ca_given()
                if unusable:
                    problems[self.errors["ca_path"]] = unusable
                device_name = self.device_name.text().strip()
                wrong_name = device_name_problem(device_name)
                if wrong_name is not None:
                    problems[self.errors["device_name"]] = sentence(wrong_name)
        if not self.username.text().strip():
            problems[self.errors["username"]] = "Enter your user name in the clinic."
        if not self.password.text():
            problems[self.errors["password"]] = "Enter your password in the clinic."
        if problems:
            return problems
        if self.resuming is not None:
            # The kept credential names the server: nothing else is sent (no code).
            return JoinRequest(self.username.text(), self.password.text())
        if self.via_peer.isChecked():
            return JoinRequest(self.username.text(), self.password.text(),
                               pair_code=pair_code, peer=peer)  # fmt: skip
        return JoinRequest(
            self.username.text(),
            self.password.text(),
            server_url=url,
            enroll_code=code,
            ca_pem=ca_pem,
            ca_fingerprint=fingerprint,
            device_name=device_name,
        )

    def _ca_given(self) -> tuple[str | None, str | None, str]:
        """What the CA field holds (:func:`app.sync.status.ca_given`)."""
        return ca_given(self.ca_path.text())

    def validatePage(self) -> bool:
        """Refuse while joining; start joining; accept once this computer holds the clinic."""
        if self.created is not None:
            return True
        if self._job is not None or self._discard_job is not None:
            return False
        self._hide_errors()
        request = self.request()
        if isinstance(request, dict):
            show_problems(self, request, self._field_of, select=True)
            # Clicked, Join clinic had the keyboard until the field in error took it: the
            # default again, so that Return in the field put right joins.
            _enable_commit(self._wizard, True)
            return False
        self._set_busy(True)
        self._job = self._wizard.join_clinic(request, self._joined, self._failed)
        return False

    def _set_busy(self, busy: bool) -> None:
        for widget in (self.server_form, self.peer_form, self.username, self.password):
            widget.setEnabled(not busy)
        for radio in (self.via_server, self.via_peer):
            radio.setEnabled(not busy)
        self.discard_button.setEnabled(not busy)
        self.progress.setText("Joining and receiving the clinic's records…" if busy else "")
        self.progress.setVisible(busy)
        if busy:
            self.download_bar.setRange(0, 0)  # busy until the first page says how many
        self.download_bar.setVisible(busy)
        _enable_commit(self._wizard, not busy)
        self._wizard.button(QWizard.WizardButton.BackButton).setEnabled(not busy)

    def _download_progressed(self, progress: SyncProgress) -> None:
        if self._job is None:
            return  # a late signal from a join that has already ended
        self.progress.setText(describe_progress(progress))
        if progress.total:
            self.download_bar.setRange(0, progress.total)
            self.download_bar.setValue(min(progress.done, progress.total))

    def _server_field(self, exc: Exception) -> str | None:
        """The server field ``exc`` is about, when it can be mended there (not while a
        kept attempt is finished: those fields are not asked again)."""
        if self.resuming is not None or self.via_peer.isChecked():
            return None
        if not isinstance(exc, EnrollmentError):
            return None
        mendable = ("server_url", "enroll_code", "ca_path", "device_name")
        return exc.field if exc.field in mendable else None

    def _joined(self, created: ClinicCreated) -> None:
        self._job = None
        self.created = created
        self.password.clear()
        self._set_busy(False)
        self._wizard.next()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self._set_busy(False)
        if isinstance(exc, FirstSyncError) and exc.device_id is not None:
            self.kept_device_id = exc.device_id
        # A refusal about one server field (a used code, an address that did not answer, a
        # fingerprint no certificate has) is said under that field, which gets the keyboard,
        # its text selected: the person mends it there and Return tries again. The rest
        # below the form.
        field = self._server_field(exc)
        if field is not None:
            words = describe_error(exc)
            if is_certificate_problem(exc):  # the field takes either form
                words += (
                    " Paste the clinic server's CA fingerprint (SHA-256, from your IT contact) "
                    "here, or choose its CA certificate file."
                )
            self.errors[field].setText(words)
            self.errors[field].show()
            mend: QLineEdit = getattr(self, field)
            mend.setFocus()
            mend.selectAll()
        else:
            self.show_error(describe_error(exc))
            # The fields were disabled while joining, which took the keyboard from them:
            # give it back to the password (all that Try again needs, and what a refused
            # one needs typed again), selected so that typing replaces it and Return tries
            # again.
            self.password.setFocus()
            self.password.selectAll()
        # The server accepted the code before the first sync failed: the attempt is kept
        # (a small file read, on the GUI thread), and Try again finishes it.
        pending = kept_join(self._wizard.workstation)
        if pending is not None:
            self.resume(pending)
        elif self.resuming is not None:
            # The kept attempt is gone (its records held no account for this person, so
            # it was removed): joining again needs a new code, asked for on the fresh page.
            self._start_afresh()
            self.show_error(
                f"{describe_error(exc)} What this attempt kept on this computer was removed: "
                "join again with a new code."
            )


class DemoPage(QWizardPage):
    """Step 2 (exploring): make the demo clinic, with progress, then open it signed in."""

    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self._wizard = wizard
        self._job: Job[DemoClinic] | None = None
        self.made: DemoClinic | None = None
        self.setTitle(
            heading(
                2,
                "Explore with sample data",
                "A demo clinic of made-up patients, to learn Careline on.",
                steps=2,
            )
        )
        self.setButtonText(QWizard.WizardButton.FinishButton, "Open the demo")
        folder = demo.demo_folder(wizard.home)
        self.about = paragraph(
            f"Careline makes a clinic of {wizard.demo_patients} made-up patients with "
            "allergies, problems, medications, past visits with vitals and notes, and a "
            "week of appointments around today. It is marked “DEMO — sample data” "
            "everywhere it shows and never syncs with other computers.\n\n"
            f"It lives in its own folder, {folder}, apart from this computer's clinic "
            "(start Careline as usual to set that up later). Open the demo again at any "
            f"time with “careline --demo”, signed in as “{demo.DEMO_USER}” with the "
            f"password “{demo.DEMO_PASSWORD}”."
        )
        self.progress = paragraph("", "hint")
        self.progress.hide()
        self.bar = QProgressBar()
        self.bar.setObjectName("demoProgress")
        self.bar.setTextVisible(False)
        self.bar.hide()
        self.error = error_label()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(9, 12, 9, 0)  # flush with the title
        layout.setSpacing(12)
        layout.addWidget(self.about)
        layout.addWidget(self.error)
        layout.addWidget(self.progress)
        layout.addWidget(self.bar)
        layout.addStretch(1)
        wizard.demo_progressed.connect(self._progressed)

    def nextId(self) -> int:
        """The last page."""
        return -1

    def validatePage(self) -> bool:
        """Start making (or finding) the demo; the wizard hands over once it is ready."""
        if self._job is not None or self.made is not None:
            return False
        self.error.hide()
        self._set_busy(True)
        self._job = self._wizard.make_demo(self._made, self._failed)
        return False

    def _set_busy(self, busy: bool) -> None:
        self.progress.setText("Writing the sample patients…" if busy else "")
        self.progress.setVisible(busy)
        if busy:
            self.bar.setRange(0, 0)  # busy until the first group is written
        self.bar.setVisible(busy)
        self._wizard.button(QWizard.WizardButton.FinishButton).setEnabled(not busy)
        self._wizard.button(QWizard.WizardButton.BackButton).setEnabled(not busy)

    def _progressed(self, done: int, total: int) -> None:
        if self._job is None:
            return
        self.progress.setText(f"Writing the sample patients: {done} of {total}…")
        self.bar.setRange(0, total)
        self.bar.setValue(done)

    def _made(self, made: DemoClinic) -> None:
        self._job = None
        self.made = made
        self.progress.setText("Opening the demo clinic…")
        self._wizard.demo_ready.emit(made)

    def _failed(self, exc: Exception) -> None:
        self.show_failure(exc)

    def show_failure(self, exc: Exception) -> None:
        """Making or opening the demo failed: say why, and let the person try again."""
        self._job = None
        self.made = None
        self._set_busy(False)
        self.error.setText(describe_error(exc))
        self.error.show()
