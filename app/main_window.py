"""The main window: first run, sign-in, and the signed-in workspace, one at a time.

Every database call goes through the :class:`~app.worker.Worker`, reads and writes through
:class:`~app.operations.Operations`: each screen refreshes itself when ``changed`` says its
records changed, whether the change was made here or arrived by sync. Signing out (the Sign
out button or the idle timer) cancels outstanding work, keeps unsaved forms as drafts for the
person (app/session/drafts.py), empties every model and widget that showed patient data,
closes dialogs, and then signs the person out on the worker (after any write already in
progress), so the sign-in screen never sits on top of patient details. The clinic stays
open for the next person until it is closed: by "Close the clinic on this computer", after
``close_after_idle_hours`` with nobody signed in, or when the app quits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.admin.backup import BackupTools, RestoreDialog
from app.admin.hook import AdminTools
from app.admin.staff import StaffDialog
from app.admin.two_factor import TwoFactorDialog
from app.background_errors import MESSAGE_MS, BackgroundErrors
from app.chart.page import ChartPage
from app.chart.visits import reopen_visit_drafts_with
from app.chart.vitals import VITALS_FORM, draft_reopener
from app.conflicts.dialog import ConflictsDialog
from app.locked_settings import LockedSettingsNotice
from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import PatientDialog, RecordsProvider
from app.patients.duplicates import DuplicatesDialog
from app.patients.list_page import PatientListPage
from app.schedule.hook import add_schedule, reopen_booking
from app.session.auto_lock import IdleWatcher, hours_to_ms, minutes_to_ms
from app.session.drafts import Draft, DraftKeeper, restored_notice
from app.session.first_run import FirstRunWizard
from app.session.key_dialogs import ChangePasswordDialog, NewRecoveryKeyDialog, RekeyDialog
from app.session.outcomes import Outcome, Outcomes
from app.session.sign_in import ClinicState, Session, SignInPage, sign_in
from app.sync.controller import SyncController
from app.sync.join import kept_join
from app.sync.silent_join import SilentJoinPage
from app.sync.status import EnrollDialog, SyncStatusWidget
from app.widgets import (
    ElidedLabel,
    ask_to_discard,
    fit_to_screen,
    keep_room_when_hidden,
    reach_dialogs,
)
from app.worker import Worker
from core.config.settings import IgnoredValue
from core.keys.errors import KeyError_
from core.records.changeset import Changes
from core.records.clinic import ClinicRecords
from core.records.demo import (
    DEMO_NOTICE,
    DEMO_PASSWORD,
    DEMO_USER,
    DemoClinic,
    is_demo_folder,
    open_demo,
)
from core.records.models import Patient, PatientSummary
from core.records.workstation import Workstation
from core.store.errors import StoreError
from core.sync.join import JoinResult, PendingJoin, first_sync_pending
from core.sync.lan import identity as lan_id
from core.sync.lan.discovery import lan_address
from core.sync.silent_join import MachineEnrollment, join_silently

log = logging.getLogger(__name__)

APP_NAME = "Careline"
DEFAULT_AUTO_LOCK_MINUTES = 10
DEFAULT_CLOSE_AFTER_IDLE_HOURS = 12
# A signed-in name this long shows whole on the toolbar; only a longer one ends in "…".
USER_NAME_KEPT = 32


def window_title(clinic_name: str = "", patient_name: str = "", demo: bool = False) -> str:
    """``<patient> — <clinic> — Careline``, with what is known, and Careline only once
    (the demo clinic's titles start with the DEMO notice).

    The application's name comes last: on X11 and Wayland Qt appends the application
    display name to any title that does not already end with it.
    """
    parts = [p for p in (patient_name.strip(), clinic_name.strip()) if p]
    if demo:
        parts.insert(0, DEMO_NOTICE)
    parts = [p for p in parts if p.casefold() != APP_NAME.casefold()]
    return " — ".join([*parts, APP_NAME])


def describe_timeout(timeout_ms: int) -> str:
    """``10 minutes`` (or hours, or seconds for the short timeouts tests use)."""
    if timeout_ms >= 3_600_000:
        hours = round(timeout_ms / 3_600_000)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if timeout_ms >= 60_000:
        minutes = round(timeout_ms / 60_000)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    seconds = max(round(timeout_ms / 1000), 1)
    return f"{seconds} second{'s' if seconds != 1 else ''}"


class Workspace(QWidget):
    """What a signed-in person sees: toolbar, patient list, and a patient's chart."""

    lock_requested = Signal()  # sign out
    close_requested = Signal()  # close the clinic on this computer
    title_changed = Signal(str)  # the patient whose chart is shown ("" for none)

    CONFLICTS = "conflicts"  # the key of the conflict count's reads

    def __init__(
        self, operations: Operations, workstation: Workstation, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._worker = operations.worker

        # Resolved on the worker at call time: ``records`` changes with each sign-in.
        def records() -> ClinicRecords:
            return workstation.records

        def fetch_page(text: str, limit: int, offset: int) -> list[PatientSummary]:
            return workstation.records.search_patients(text, limit=limit, offset=offset)

        def count() -> int:
            return workstation.records.count_patients()

        self._records: RecordsProvider = records

        self.toolbar = QToolBar("Main")
        self.toolbar.setObjectName("mainToolbar")
        self.toolbar.setMovable(False)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.toolbar.addWidget(self._gap(12))
        # The clinic's and the person's names give way ("…") before any button does.
        self.clinic_label = ElidedLabel()
        self.clinic_label.setObjectName("toolbarClinic")
        self.toolbar.addWidget(self.clinic_label)
        self.new_patient_action = QAction("New patient", self)
        self.new_patient_action.setShortcut(QKeySequence("Ctrl+N"))
        self.new_patient_action.setToolTip("Register a new patient (Ctrl+N)")
        self.new_patient_action.triggered.connect(self.new_patient)
        self.toolbar.addAction(self.new_patient_action)
        self.conflicts_action = QAction("Conflicts", self)
        self.conflicts_action.setShortcut(QKeySequence("Ctrl+Shift+C"))
        self.conflicts_action.setToolTip(
            "Fields changed on two workstations at once (Ctrl+Shift+C)"
        )
        self.conflicts_action.triggered.connect(self.show_conflicts)
        self.toolbar.addAction(self.conflicts_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        # Who is signed in, on two lines ("Signed in as" over the name), the name never
        # elided: on one line at 1024 pixels it read "Signed in as Dr. Amara O…", and on a
        # shared workstation the name is how a person sees it is not their own session.
        # Only a name longer than USER_NAME_KEPT characters gives way, to keep the buttons.
        self.user_caption = QLabel("Signed in as")
        self.user_caption.setObjectName("toolbarUserCaption")
        self.user_label = ElidedLabel(keep=USER_NAME_KEPT)
        self.user_label.setObjectName("toolbarUser")
        signed_in = QWidget()
        signed_in.setObjectName("toolbarSignedIn")
        lines = QVBoxLayout(signed_in)
        lines.setContentsMargins(0, 0, 0, 0)
        lines.setSpacing(0)
        lines.addWidget(self.user_caption)
        lines.addWidget(self.user_label)
        self.toolbar.addWidget(signed_in)
        self.enroll_action = QAction("Connect to server…", self)
        self.enroll_action.setToolTip("Enroll this workstation with the clinic server")
        self.settings_menu = QMenu("Settings", self)
        self.settings_menu.addAction(self.enroll_action)
        self.pair_action = QAction("Pair a workstation…", self)
        self.pair_action.setToolTip("Show a one-time code that lets a LAN workstation join")
        self.settings_menu.addAction(self.pair_action)
        # The signed-in person's own account, then what only an administrator may do.
        self.settings_menu.addSeparator()
        self.change_password_action = QAction("Change password…", self)
        self.change_password_action.setToolTip("Change the password you sign in with")
        self.settings_menu.addAction(self.change_password_action)
        self.admin_separator = self.settings_menu.addSeparator()
        self.staff_action = QAction("Staff…", self)
        self.staff_action.setToolTip(
            "Add staff, change roles, deactivate, reset passwords (administrators only)"
        )
        self.settings_menu.addAction(self.staff_action)
        self.two_factor_action = QAction("Two-factor sign-in…", self)
        self.two_factor_action.setToolTip(
            "Ask for a code from an authenticator app at your sign-in (administrators only)"
        )
        self.settings_menu.addAction(self.two_factor_action)
        self.new_recovery_key_action = QAction("New recovery key…", self)
        self.new_recovery_key_action.setToolTip(
            "Replace this computer's recovery key (administrators only)"
        )
        self.settings_menu.addAction(self.new_recovery_key_action)
        self.rekey_action = QAction("Re-encrypt database…", self)
        self.rekey_action.setToolTip(
            "Encrypt the clinic's records again under a new key (administrators only)"
        )
        self.settings_menu.addAction(self.rekey_action)
        self.settings_menu.addSeparator()
        self.close_action = QAction("Close the clinic on this computer", self)
        self.close_action.setToolTip(
            "Sign out and close the encrypted database here; its key leaves memory"
        )
        self.close_action.triggered.connect(self.close_requested)
        self.settings_menu.addAction(self.close_action)
        self.settings_button = QToolButton()
        self.settings_button.setText("Settings")
        self.settings_button.setToolTip("Server, pairing, password and keys (Alt+S)")
        self.settings_button.setObjectName("toolbarButton")
        self.settings_button.setMenu(self.settings_menu)
        self.settings_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.toolbar.addWidget(self.settings_button)
        self.lock_action = QAction("Sign out", self)
        self.lock_action.setShortcut(QKeySequence("Ctrl+L"))
        self.lock_action.setToolTip(
            "Sign out and show the sign-in screen, for you or a colleague (Ctrl+L)"
        )
        self.lock_action.triggered.connect(self.lock_requested)
        self.toolbar.addAction(self.lock_action)
        # Signing out works over an open dialog too (what it holds is kept as at auto-lock).
        reach_dialogs(self.lock_action, self)
        self.toolbar.addWidget(self._gap(12))
        for action in (self.new_patient_action, self.conflicts_action, self.lock_action):
            button = self.toolbar.widgetForAction(action)
            button.setObjectName("toolbarButton")
        # Toolbar buttons take no keyboard focus by default: these do, so Tab reaches them
        # (Space or Enter presses one; on Settings it opens the menu).
        for button in self.toolbar_buttons():
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.settings_shortcut = QAction("Settings menu", self)
        self.settings_shortcut.setShortcut(QKeySequence("Alt+S"))
        self.settings_shortcut.triggered.connect(self.show_settings_menu)
        self.find_action = QAction("Find a patient", self)
        self.find_action.setShortcut(QKeySequence.StandardKey.Find)
        self.find_action.triggered.connect(self.find_patient)
        self.addActions([self.settings_shortcut, self.find_action])

        self.patient_list = PatientListPage(operations, fetch_page, count)
        self.patient_list.search.setToolTip("Search patients (Ctrl+F)")
        self.chart = ChartPage(operations, records)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.patient_list)
        self.pages.addWidget(self.chart)
        self.schedule = add_schedule(self)  # the Schedule button (Ctrl+D) and page
        self.admin_tools = AdminTools(self)  # Settings → Audit log…, Break-glass reviews…

        # Says when unsaved forms were restored after a sign-in (until the person moves to
        # another page) or that a restored computer must join again (show_notice).
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.dismiss_notice = QPushButton("Dismiss")
        self.dismiss_notice.setObjectName("link")
        self.dismiss_notice.setToolTip("Hide this message")
        self.dismiss_notice.clicked.connect(self.hide_notice)
        self.notice_bar = QFrame()
        self.notice_bar.setObjectName("noticeBar")
        bar = QHBoxLayout(self.notice_bar)
        bar.setContentsMargins(0, 0, 12, 0)
        bar.addWidget(self.notice, 1)
        bar.addWidget(self.dismiss_notice)
        self.notice_bar.hide()
        self._passing_notices: list[str] = []  # gone once the person moves on
        # Gone once its forms are closed too; its room stays until the next page or notice:
        # the list moved up under the pointer as the form closed, and a click aimed at one
        # patient opened the next.
        self._notice_forms = _ClosedForms(lambda text: self._drop_notice(text, True), self)
        # Always in view while the demo clinic is open: nobody mistakes it for real records.
        self.demo_banner = QLabel(DEMO_NOTICE)
        self.demo_banner.setObjectName("demoBanner")
        self.demo_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.demo_banner.hide()
        body = QVBoxLayout()
        body.setContentsMargins(24, 18, 24, 18)
        body.addWidget(self.notice_bar)
        body.addWidget(self.pages)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.demo_banner)
        layout.addLayout(body, 1)

        self.patient_dialog: PatientDialog | None = None
        self.conflicts_dialog: ConflictsDialog | None = None
        # A restored draft waiting for its patient's chart: (patient id, what to do then).
        self._after_chart: tuple[str, Callable[[], None]] | None = None
        self.chart.chart_shown.connect(self._chart_shown)
        self.conflicted: dict[str, list[str]] = {}  # record id -> fields in conflict
        self.chart.review_conflicts.connect(self.show_conflicts)
        self.pages.currentChanged.connect(lambda _index: self._moved_on())
        self.patient_list.open_requested.connect(self.open_chart)
        self.patient_list.duplicates_requested.connect(self.show_duplicates)
        self.chart.back_requested.connect(self.show_list)
        self.chart.title_changed.connect(self.title_changed)
        operations.changed.connect(self.records_changed)

    def show_notice(self, text: str, passing: bool = False, forms: Sequence[str] = ()) -> None:
        """Say ``text`` above the pages (after what is said there already) until dismissed;
        ``passing``: only until the person moves to another page; ``forms``: the dialogs
        (object names) it is about, and once every one of them is closed it goes too."""
        shown = self.notice.text() if self.notice_bar.isVisibleTo(self) else ""
        keep_room_when_hidden(self.notice_bar, False)
        self.notice.setText(f"{shown}\n{text}".strip())
        if passing:
            self._passing_notices.append(text)
        if forms:
            self._notice_forms.watch(text, forms)
        self.notice_bar.show()

    def hide_notice(self, keep_room: bool = False) -> None:
        """Dismiss: the notice goes, all of it (``keep_room``: its room stays, blank, until
        the next page or notice, so nothing under it moves)."""
        self._passing_notices = []
        self._notice_forms.forget()
        if not keep_room:
            # Kept, the room is the hidden bar's size hint: emptied, its line went from
            # it and the list under it still moved up (9 pixels); hidden, it is not read.
            self.notice.clear()
        keep_room_when_hidden(self.notice_bar, keep_room)
        self.notice_bar.hide()

    def _moved_on(self) -> None:
        """Another page: what was said only about the one left goes (a restored form's
        notice); the rest stays. A room kept for a notice gone goes too."""
        keep_room_when_hidden(self.notice_bar, False)
        if self.notice_bar.isHidden():
            self.notice.clear()  # what a kept room held (see hide_notice)
        passing, self._passing_notices = self._passing_notices, []
        for text in passing:
            self._drop_notice(text)

    def _drop_notice(self, text: str, keep_room: bool = False) -> None:
        """``text`` goes from the notice (the notice with it when nothing else is said;
        ``keep_room``: see :meth:`hide_notice`)."""
        self._notice_forms.forget(text)
        if text in self._passing_notices:
            self._passing_notices.remove(text)
        said = self.notice.text() if self.notice_bar.isVisibleTo(self) else ""
        lines = said.split("\n")
        if text not in lines:
            return
        lines.remove(text)
        if any(lines):
            self.notice.setText("\n".join(lines))
        else:
            self.hide_notice(keep_room)

    def toolbar_buttons(self) -> list[QToolButton]:
        """New patient, Schedule, Conflicts, Settings and Lock: the toolbar's buttons, in
        Tab order (the order they sit in)."""
        buttons = [self.toolbar.widgetForAction(a) for a in self.toolbar.actions()]
        return [b for b in buttons if isinstance(b, QToolButton) and b.objectName()]

    def show_settings_menu(self) -> None:
        """Alt+S: the Settings menu, under its button (without a nested event loop)."""
        button = self.settings_button
        self.settings_menu.popup(button.mapToGlobal(QPoint(0, button.height())))

    def find_patient(self) -> None:
        """Ctrl+F: the patient search, text selected, from the list or from a chart."""
        if self.pages.currentWidget() is not self.patient_list:
            self.show_list()
        self.patient_list.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.patient_list.search.selectAll()

    @staticmethod
    def _gap(width: int) -> QWidget:
        # Toolbars ignore stylesheet padding at their ends; a fixed gap lines them up
        # with the page margins below.
        gap = QWidget()
        gap.setFixedWidth(width)
        return gap

    def start(self, session: Session) -> None:
        """Show the patient list for a person who just signed in."""
        self.clinic_label.setText(session.clinic_name)
        name = session.user.full_name or session.user.username
        self.user_label.setText(name)
        self.user_label.setAccessibleName(f"Signed in as {name}")
        # Core refuses these to anyone else too; hiding them spares a pointless refusal.
        is_admin = session.may_administer
        admin_only = (
            self.admin_separator,
            self.staff_action,
            self.two_factor_action,
            self.new_recovery_key_action,
            self.rekey_action,
        )
        for action in admin_only:
            action.setVisible(is_admin)
        self.admin_tools.set_admin(is_admin)
        self.patient_list.duplicates_button.setVisible(session.may_merge)
        # A demo never syncs (core refuses it too): no sync set-up to offer.
        self.demo_banner.setVisible(session.demo)
        self.enroll_action.setVisible(not session.demo)
        self.pair_action.setEnabled(not session.demo)
        self.show_list()
        self.patient_list.activate()
        self.patient_list.search.setFocus()
        self.refresh_conflicts()

    def records_changed(self, changes: Changes) -> None:
        """Recount conflicts when a change may have opened or settled one."""
        if changes.may_change_conflicts(self.conflicted):
            self.refresh_conflicts()

    def refresh_conflicts(self) -> None:
        """Recount open conflicts: toolbar badge, list markers, chart banner."""
        records = self._records

        def fetch() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            for conflict in records().conflicts():
                found.setdefault(conflict.record_id, []).append(conflict.field)
            return found

        self._operations.read(
            self.CONFLICTS, fetch, self._conflicts_arrived, self._conflicts_failed
        )

    def _conflicts_arrived(self, conflicted: dict[str, list[str]]) -> None:
        self.conflicted = conflicted
        count = sum(len(fields) for fields in conflicted.values())
        self.conflicts_action.setText(f"Conflicts ({count})" if count else "Conflicts")
        button = self.toolbar.widgetForAction(self.conflicts_action)
        button.setProperty("attention", bool(count))
        button.style().unpolish(button)
        button.style().polish(button)
        self.patient_list.model.set_conflicted(set(conflicted))
        self.chart.set_conflicted(conflicted)

    def _conflicts_failed(self, exc: Exception) -> None:
        log.info("conflict count failed: %s", exc)

    def show_conflicts(self) -> None:
        """Open the conflicts inbox."""
        if self.conflicts_dialog is not None:
            self.conflicts_dialog.raise_()
            return
        dialog = ConflictsDialog(self._operations, self._records, self)
        dialog.finished.connect(self._forget_conflicts_dialog)
        self.conflicts_dialog = dialog
        dialog.open()
        dialog.refresh()

    def show_duplicates(self) -> None:
        """Possible duplicates… from the patient list (a dialog like Settings' reviews)."""
        self.admin_tools.open(DuplicatesDialog(self._operations, self._records, self))

    def _forget_conflicts_dialog(self) -> None:
        if self.conflicts_dialog is not None:
            self.conflicts_dialog.deleteLater()
            self.conflicts_dialog = None

    def clear(self) -> None:
        """Remove every patient detail and close every dialog (signing out)."""
        self._after_chart = None
        self.hide_notice()
        if self.patient_dialog is not None:
            self.patient_dialog.reject()
        if self.conflicts_dialog is not None:
            self.conflicts_dialog.reject()
        self._operations.cancel(self.CONFLICTS)
        self.conflicted = {}
        self.patient_list.model.set_conflicted(set())
        self.chart.set_conflicted({})
        self.conflicts_action.setText("Conflicts")
        self.chart.clear()
        self.chart.end_session()
        self.schedule.clear()
        self.admin_tools.close()
        self.patient_list.clear()
        self.user_label.clear()
        self.pages.setCurrentWidget(self.patient_list)

    def show_list(self) -> None:
        """Back to the list (the chart's details are cleared from the page)."""
        self.chart.clear()
        self.pages.setCurrentWidget(self.patient_list)
        self.patient_list.table.setFocus()

    def open_chart(self, patient_id: str) -> None:
        """Open a chart (audited by core)."""
        self.chart.load(patient_id)
        self.pages.setCurrentWidget(self.chart)
        # Focus inside the chart, so Escape (back to the list) and Tab start there.
        self.chart.back_button.setFocus(Qt.FocusReason.OtherFocusReason)

    def new_patient(self) -> None:
        """Open the registration dialog."""
        if self.patient_dialog is not None:
            self.patient_dialog.raise_()
            return
        dialog = PatientDialog(self._operations, self._records, None, self)
        dialog.saved.connect(self._patient_registered)
        dialog.open_existing.connect(self.open_chart)  # a possible duplicate, chosen instead
        dialog.finished.connect(self._forget_dialog)
        self.patient_dialog = dialog
        dialog.open()

    def _forget_dialog(self) -> None:
        if self.patient_dialog is not None:
            self.patient_dialog.deleteLater()
            self.patient_dialog = None

    def _patient_registered(self, patient: Patient) -> None:
        # The list refreshes from the change broadcast.
        self.open_chart(patient.id)

    # ----- drafts kept across a sign-out ------------------------------------------------

    def reopen_drafts_with(self, drafts: DraftKeeper) -> None:
        """Tell ``drafts`` how to open this workspace's forms again."""
        drafts.reopen_with("patientDialog", self._reopen_patient_form)
        drafts.reopen_with("allergyDialog", self._reopen_allergy_form)
        drafts.reopen_with("bookingDialog", lambda draft: reopen_booking(self, draft))
        drafts.reopen_with(VITALS_FORM, draft_reopener(self._in_chart, lambda: self.chart.sections))
        reopen_visit_drafts_with(drafts, self._in_chart, self.chart.sections)
        # Chart sections with a form of their own name it (DRAFT_KIND) and reopen it.
        for section in self.chart.sections:
            kind = getattr(section, "DRAFT_KIND", None)
            if kind is not None:
                drafts.reopen_with(kind, partial(self._reopen_section_form, section))

    def keep_left_forms(self, drafts: DraftKeeper, who: Callable[[], str | None]) -> None:
        """Chart forms left unsaved (another patient opened, back to the list) wait in
        ``drafts`` for the person signed in (``who``), and come back with a notice when they
        return to that patient."""
        for section in self.chart.sections:
            if hasattr(section, "keep_drafts_in"):
                # The notice concerns this chart's form: it goes when the person moves on,
                # or once the form is done with (saved or emptied), whichever tab is shown.
                section.keep_drafts_in(
                    drafts,
                    who,
                    lambda text, forms: self.show_notice(text, passing=True, forms=forms),
                    self.form_done,
                )

    def form_done(self, name: str) -> None:
        """A restored form that is not a dialog (the Vitals tab's, object name ``name``)
        was saved or emptied: "Your unsaved … form was restored." no longer holds."""
        self._notice_forms.closed(name)

    def _reopen_section_form(self, section: Any, draft: Draft) -> None:
        self._in_chart(str(draft.values["patient_id"]), lambda: section.reopen(draft.values))

    def _reopen_patient_form(self, draft: Draft) -> None:
        patient_id = draft.values.get("patient_id")
        if patient_id is None:
            self.new_patient()
            if self.patient_dialog is not None:
                self.patient_dialog.restore(draft.values)
            return

        def edit() -> None:
            self.chart.edit_patient()
            if self.chart.patient_dialog is not None:
                self.chart.patient_dialog.restore(draft.values)

        self._in_chart(str(patient_id), edit)

    def _reopen_allergy_form(self, draft: Draft) -> None:
        def add() -> None:
            self.chart.add_allergy()
            if self.chart.allergy_dialog is not None:
                self.chart.allergy_dialog.restore(draft.values)

        self._in_chart(str(draft.values["patient_id"]), add)

    def _in_chart(self, patient_id: str, then: Callable[[], None]) -> None:
        """Open ``patient_id``'s chart (freshly read), then call ``then`` once it shows."""
        self._after_chart = (patient_id, then)
        self.open_chart(patient_id)

    def _chart_shown(self, patient_id: str) -> None:
        pending, self._after_chart = self._after_chart, None
        if pending is not None and pending[0] == patient_id:
            pending[1]()


class _ClosedForms(QObject):
    """Which notices wait for which dialogs to close (``Workspace.show_notice``'s
    ``forms``): a restored form's notice stayed after that form was saved or cancelled.
    Watches dialogs being hidden, application-wide, only while a notice waits."""

    def __init__(self, closed: Callable[[str], None], parent: QObject) -> None:
        super().__init__(parent)
        self._closed = closed  # called with a notice whose dialogs have all closed
        self._waiting: dict[str, set[str]] = {}  # notice -> object names of open dialogs

    def watch(self, text: str, forms: Sequence[str]) -> None:
        """``text`` goes once a dialog of each name in ``forms`` has closed. (A form
        that is not a dialog, the Vitals tab's, never closes: it says when it is done
        with, :meth:`closed`.)"""
        app = QApplication.instance()
        if not self._waiting and app is not None:
            app.installEventFilter(self)
        self._waiting[text] = set(forms)

    def forget(self, text: str | None = None) -> None:
        """Stop waiting for ``text``'s dialogs (None: for every notice)."""
        if text is None:
            self._waiting.clear()
        else:
            self._waiting.pop(text, None)
        app = QApplication.instance()
        if not self._waiting and app is not None:
            app.removeEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A dialog of a waited-for name closed (hidden, not minimised); events go on."""
        if (
            event.type() == QEvent.Type.Hide
            and not event.spontaneous()
            and isinstance(watched, QDialog)
        ):
            self.closed(watched.objectName())
        return False

    def closed(self, name: str) -> None:
        """The form ``name`` is done with (a dialog closed; the Vitals form, which never
        closes, saved or emptied): the notices that waited only for it go."""
        for text, forms in list(self._waiting.items()):
            forms.discard(name)
            if not forms:
                self._closed(text)


class MainWindow(QMainWindow):
    """Careline's one window. Call :meth:`start` after constructing it."""

    locked = Signal()  # signed out (the clinic may stay open)
    closed = Signal()  # the clinic was closed on this computer

    def __init__(
        self,
        workstation: Workstation,
        worker: Worker | None = None,
        auto_lock_ms: int = minutes_to_ms(DEFAULT_AUTO_LOCK_MINUTES),
        initial_user: str = "",
        close_after_ms: int = hours_to_ms(DEFAULT_CLOSE_AFTER_IDLE_HOURS),
        sync_options: dict[str, Any] | None = None,
        demo: bool = False,
        silent_enrollment: MachineEnrollment | None = None,
        ignored_settings: Sequence[IgnoredValue] = (),
    ) -> None:
        super().__init__()
        self.workstation = workstation
        # From the machine-wide configuration: a first start joins with no wizard.
        self._silent_enrollment = silent_enrollment
        self.silent_join_page: SilentJoinPage | None = None
        self._demo_requested = demo  # careline --demo: the demo beside the data folder
        self._owns_worker = worker is None
        self.worker = worker or Worker()
        self._initial_user = initial_user
        self._session: Session | None = None
        self._clinic_name = ""
        self._patient_name = ""
        self._shut_down = False
        self.setObjectName("mainWindow")
        self.setWindowTitle(window_title())
        self.resize(1120, 740)
        self.setMinimumSize(820, 560)
        # On a smaller screen (a 1024x740 laptop), no larger than it: at 1120 pixels the
        # toolbar's Sign out and the pages' right-hand buttons were off its edge.
        fit_to_screen(self)

        self.stack = QStackedWidget()
        self.setCentralWidget(self.stack)
        self.sign_in_page = SignInPage(self.worker, workstation)
        self.operations = Operations(self.worker, lambda: workstation.database, self)
        self.workspace = Workspace(self.operations, workstation)
        self.first_run: FirstRunWizard | None = None
        self.first_run_page: QWidget | None = None
        # Closing the window while the set-up holds typed text asks first (closeEvent).
        self.discard_box: QMessageBox | None = None
        self._setup_discarded = False
        self.stack.addWidget(self.sign_in_page)
        self.stack.addWidget(self.workspace)

        # Background sync on its own thread; its state is always in the status bar.
        self.sync = SyncController(workstation, parent=self, **(sync_options or {}))
        self.sync_status = SyncStatusWidget(self.sync)
        # The chart follows attachment uploads and fetches from the LAN peers sync reached.
        self.workspace.chart.attachments.use_transfers(self.sync.transfers)
        self.statusBar().setObjectName("statusBar")
        self.statusBar().setSizeGripEnabled(False)
        self.statusBar().addPermanentWidget(self.sync_status, 1)
        # The person's own settings IT's machine configuration overrides, said where they look.
        self.locked_settings = LockedSettingsNotice(ignored_settings)
        self.statusBar().addPermanentWidget(self.locked_settings)
        self.statusBar().hide()
        # A background task (sync, the database thread, a LAN peer) that failed with an
        # exception nothing caught is said here, not only logged (app/background_errors).
        self.background_errors = BackgroundErrors(self)
        self.background_errors.failed.connect(
            lambda text: self.statusBar().showMessage(text, MESSAGE_MS)
        )
        # Own writes wait to be synced: the status bar counts them. Idle also catches writes
        # made outside Operations (password and key dialogs).
        self.operations.changed.connect(self._records_changed)
        self.worker.idle.connect(self.sync.local_change)
        self.sync.remote_changes.connect(self.operations.publish)
        self.workspace.title_changed.connect(self._show_patient_title)
        self.workspace.enroll_action.triggered.connect(self.show_enroll)
        self.workspace.pair_action.triggered.connect(self.show_pair_code)
        self.workspace.pair_action.setVisible(self.sync.lan is not None)
        self.pair_code_box: QMessageBox | None = None
        self.enroll_dialog: EnrollDialog | None = None
        self.workspace.change_password_action.triggered.connect(self.show_change_password)
        self.workspace.new_recovery_key_action.triggered.connect(self.show_new_recovery_key)
        self.workspace.rekey_action.triggered.connect(self.show_rekey)
        self.workspace.staff_action.triggered.connect(self.show_staff)
        self.workspace.two_factor_action.triggered.connect(self.show_two_factor)
        self.key_dialog: QDialog | None = None
        self.notice_box: QMessageBox | None = None
        # How work ended after its dialog closed, for the person who started it: said now
        # if they are signed in, else at their next sign-in here (app/session/outcomes.py).
        self.outcomes = Outcomes(self._signed_in_as, self._show_outcome)
        self._enrolling_for: str | None = None  # who started the connection in progress
        self.sync.enroll_finished.connect(self._enroll_finished)  # before any dialog's slot
        self.setup_box: QMessageBox | None = None  # "Careline is setting up" (closeEvent)
        self.backups = BackupTools(self)  # Settings → Back up now…, Restore…; the schedule

        self.idle = IdleWatcher(auto_lock_ms, self)
        self.idle.timed_out.connect(self.sign_out_after_idle)
        # Signed out for this long with nobody signing in: close the clinic here.
        self.close_timer = QTimer(self)
        self.close_timer.setSingleShot(True)
        self.close_timer.setInterval(close_after_ms)
        self.close_timer.timeout.connect(self.close_after_idle)
        self.drafts = DraftKeeper()
        self.workspace.reopen_drafts_with(self.drafts)
        self.workspace.keep_left_forms(
            self.drafts, lambda: self._session.user.username if self._session else None
        )
        self.sign_in_page.signed_in.connect(self._signed_in)
        self.sign_in_page.close_requested.connect(self.close_clinic)
        self.sign_in_page.change_declined.connect(self._show_clinic_state)
        self.workspace.lock_requested.connect(self.sign_out)
        self.workspace.close_requested.connect(self.close_clinic)
        self.worker.unhandled_error.connect(self._show_unhandled)

    @property
    def session(self) -> Session | None:
        """Who is signed in, or None while signed out or closed."""
        return self._session

    def start(self) -> None:
        """First run if there is no clinic; otherwise try the keyring quietly, then sign in.

        Started for the demo (``careline --demo``), the window holds the demo clinic beside
        the data folder, or offers to make it if there is none yet."""
        ws = self.workstation
        if self._demo_requested:
            found = open_demo(ws.data_dir)
            if found is None:
                self._show_first_run(demo_only=True)
                return
            ws.use_folder(found.folder)
            self._initial_user = found.username
        # A person's join whose first sync failed after the code was spent: the wizard
        # offers Try again with their password (no code), or discarding it.
        pending = None if self._demo_requested else kept_join(ws)
        if pending is not None:
            self._show_first_run(resume=pending)
            return
        # Silent enrollment whose first sync failed: finished now, with no code.
        unfinished = self._silent_enrollment is not None and first_sync_pending(ws)
        if not ws.is_initialized() or unfinished:
            if self._silent_enrollment is not None and not self._demo_requested:
                self._join_silently(self._silent_enrollment)
            else:
                self._show_first_run()
            return

        def try_keyring() -> bool:
            # Opening with the OS keyring lets a colleague who has never signed in on this
            # computer do so; without a keyring, staff passwords open the database instead.
            try:
                ws.unlock_with_keyring()
            except (KeyError_, StoreError) as exc:
                log.info("not unlocked with the OS keyring: %s", exc)
                return False
            return True

        # With close_after_idle_hours = 0 the clinic is open only while someone is signed
        # in: it stays closed here (a sign-in without a slot still tries the keyring).
        if self.close_timer.interval() > 0:
            self.worker.submit(try_keyring, self._opened_by_keyring, label="keyring unlock")
        notice = ""
        if is_demo_folder(ws.data_dir):
            notice = f"{DEMO_NOTICE}. Sign in as {DEMO_USER} with the password {DEMO_PASSWORD}."
        self._show_sign_in(self._initial_user, notice)
        self._show_clinic_state()

    def _opened_by_keyring(self, opened: bool) -> None:
        # Open with nobody signed in: closes after close_after_idle_hours like a sign-out.
        if opened and self._session is None:
            self.close_timer.start()

    # ----- screens ----------------------------------------------------------------------

    def _show_first_run(self, demo_only: bool = False, resume: PendingJoin | None = None) -> None:
        wizard = FirstRunWizard(self.worker, self.workstation)
        wizard.setup_finished.connect(self._setup_finished)
        wizard.demo_ready.connect(self._open_demo)
        if demo_only:
            wizard.setStartId(wizard.demo_page_id)
        if resume is not None:
            wizard.setStartId(wizard.join_page_id)
            wizard.join_page.resume(resume)
        self.first_run = wizard
        # A centred card of reading width: set-up text is long, and full-width lines on a
        # large screen are hard to follow.
        card = QFrame()
        card.setObjectName("card")
        card.setMaximumSize(820, 640)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(20, 16, 20, 12)
        inner.addWidget(wizard)
        page = QWidget()
        page.setObjectName("firstRunPage")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card, 20)
        row.addStretch(1)
        outer = QVBoxLayout(page)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addStretch(1)
        outer.addLayout(row, 20)
        outer.addStretch(1)
        self.first_run_page = page
        self.stack.addWidget(page)
        self.stack.setCurrentWidget(page)
        focus = wizard.join_page.password if resume is not None else wizard.clinic_page.clinic_name
        focus.setFocus()

    def _join_silently(self, enrollment: MachineEnrollment) -> None:
        """Join the clinic IT configured, then show the staff sign-in (no wizard)."""
        page = self.silent_join_page
        if page is None:
            page = SilentJoinPage(enrollment)
            page.retry_requested.connect(lambda: self._join_silently(enrollment))
            page.manual_requested.connect(self._silent_join_by_hand)
            self.silent_join_page = page
            self.stack.addWidget(page)
        self.stack.setCurrentWidget(page)
        page.show_joining()
        ws = self.workstation
        self.setWindowTitle(window_title("Joining the clinic"))
        self.worker.submit(
            lambda: join_silently(ws, enrollment),
            self._silently_joined,
            self._silent_join_failed,
            label="silent enrollment",
        )

    def _silent_join_failed(self, exc: Exception) -> None:
        # The log is where IT looks when a workstation of twenty did not join.
        log.warning("silent enrollment failed: %s", describe_error(exc))
        self.setWindowTitle(window_title("Could not join the clinic"))
        if self.silent_join_page is not None:
            self.silent_join_page.show_failure(exc)

    def _drop_silent_join_page(self) -> None:
        page, self.silent_join_page = self.silent_join_page, None
        if page is not None:
            page.timer.stop()
            self.stack.removeWidget(page)
            page.deleteLater()

    def _silently_joined(self, result: JoinResult) -> None:
        self._drop_silent_join_page()
        self._clinic_name = result.clinic_name
        self._update_title()
        self._show_sign_in(
            "",
            f"This workstation has joined {result.clinic_name}. Sign in with your Careline "
            "user name and password.",
        )
        self._show_clinic_state()

    def _silent_join_by_hand(self) -> None:
        self._drop_silent_join_page()
        self._update_title()
        self._show_first_run()

    def _open_demo(self, made: DemoClinic) -> None:
        """The wizard made (or found) the demo clinic: this window holds it from now on
        (this computer's own clinic folder stays as it was), signed in as its demo user."""
        ws = self.workstation

        def open_it() -> Session:
            ws.use_folder(made.folder)
            return sign_in(ws, made.username, made.password)

        self.worker.submit(open_it, self._demo_opened, self._demo_failed, label="open demo")

    def _demo_opened(self, session: Session) -> None:
        page, self.first_run_page, self.first_run = self.first_run_page, None, None
        if page is not None:
            self.stack.removeWidget(page)
            page.deleteLater()
        self._signed_in(session)

    def _demo_failed(self, exc: Exception) -> None:
        wizard = self.first_run
        if wizard is not None:
            wizard.demo_page.show_failure(exc)

    def _setup_finished(self, username: str, joined: bool) -> None:
        # Init leaves the database open; lock it so the first session starts with a real
        # sign-in, which also proves the new password works before anyone relies on it.
        self.worker.submit(self.workstation.lock, label="lock after set-up")
        notice = (
            "This computer has joined the clinic. Sign in with your Careline password."
            if joined
            else "Your clinic is ready. Sign in with the password you just chose."
        )
        # The person at the keyboard has just set up (or joined) under this name.
        self._show_sign_in(username, notice, same_person=True)
        page, self.first_run_page, self.first_run = self.first_run_page, None, None
        if page is not None:
            self.stack.removeWidget(page)
            page.deleteLater()

    def _show_sign_in(
        self, username: str = "", notice: str = "", same_person: bool = False
    ) -> None:
        self.stack.setCurrentWidget(self.sign_in_page)
        self.sign_in_page.prepare(username, notice, self._clinic_name, same_person=same_person)

    def _show_clinic_state(self) -> None:
        """Tell the sign-in screen (after the work queued so far) whether the clinic is open
        here, and whose passwords open it if it is closed."""
        ws = self.workstation
        closes_at_sign_out = self.close_timer.interval() == 0

        def state() -> ClinicState:
            if ws.is_unlocked:
                return ClinicState(True, [])
            try:
                return ClinicState(
                    False, ws.password_users(), ws.has_keyring_slot(), closes_at_sign_out
                )
            except KeyError_ as exc:
                log.info("cannot list the password slots: %s", exc)
                return ClinicState(False, None)

        self.worker.submit(state, self.sign_in_page.show_state, label="clinic state")

    def _signed_in(self, session: Session) -> None:
        self.close_timer.stop()
        self._session = session
        self._clinic_name = session.clinic_name
        self._update_title()
        self.stack.setCurrentWidget(self.workspace)
        self.operations.start()
        self.workspace.start(session)
        # A pairing code lets a computer join and receive every record: administrators'.
        self.workspace.pair_action.setVisible(self.sync.lan is not None and session.may_administer)
        self.idle.start()
        self.sync_status.set_demo(session.demo)
        self.statusBar().show()
        self.sync.start()
        restored = self.drafts.restore(session.user.username)
        if restored:
            self.workspace.show_notice(
                restored_notice(restored), passing=True, forms=[d.kind for d in restored]
            )
        # What ended while they were away waits above the pages, but for passing news (a
        # connection made, a scheduled backup), said together in the status bar.
        kept = self.outcomes.take(session.user.username)
        for outcome in kept:
            if not outcome.passing:
                self.workspace.show_notice(outcome.text)
        passed = " ".join(o.text for o in kept if o.passing)
        if passed:
            self.statusBar().showMessage(passed, 20_000)

    # ----- outcomes of work whose dialog closed -----------------------------------------

    def _signed_in_as(self, username: str) -> bool:
        return self._session is not None and self._session.user.username == username

    def _show_outcome(self, outcome: Outcome) -> None:
        """A problem stays above the pages until dismissed; a success passes in the status
        bar."""
        if outcome.problem:
            self.workspace.show_notice(outcome.text)
        else:
            self.statusBar().showMessage(outcome.text, 20_000)

    # ----- sync -------------------------------------------------------------------------

    def _records_changed(self, changes: Changes) -> None:
        if changes.local:
            self.sync.local_change()

    # ----- title ------------------------------------------------------------------------

    def _show_patient_title(self, patient_name: str) -> None:
        self._patient_name = patient_name
        self._update_title()

    def _update_title(self) -> None:
        # No patient's name in the title of a locked window.
        patient = self._patient_name if self._session is not None else ""
        demo = self._session.demo if self._session is not None else False
        self.setWindowTitle(window_title(self._clinic_name, patient, demo))

    def show_pair_code(self) -> None:
        """Settings → Pair a workstation…: a one-time code (creating the clinic's LAN CA on
        the first workstation of a clinic with no server), then serve the pairing listener."""
        lan = self.sync.lan
        if lan is None or self._session is None:
            return
        ws = self.workstation

        def make_code() -> str:
            records = ws.records
            lan_id.ensure_identity(records.db, records.actor)
            return lan_id.new_pair_code(records.db, records.actor)

        self.worker.submit(make_code, self._show_code, self._pair_failed, label="pairing code")

    def _show_code(self, code: str) -> None:
        lan = self.sync.lan
        if lan is None or self._session is None:
            return
        self.sync.sync_now()  # starts serving (and the pairing listener) if not yet
        port = lan.port or lan.options.port
        address = f"{lan.options.announce_address or lan_address()}:{port}"
        text = (
            f"Pairing code: {code}\n\n"
            'On the new workstation choose "Join an existing clinic", then "Through another '
            "workstation on this network\", and enter this code and this workstation's "
            f"address: {address}. The code works once, for 10 minutes."
        )
        self._pair_message(QMessageBox.Icon.Information, text)

    def _pair_failed(self, exc: Exception) -> None:
        self._pair_message(QMessageBox.Icon.Warning, f"No pairing code: {exc}")

    def _pair_message(self, icon: QMessageBox.Icon, text: str) -> None:
        box = QMessageBox(icon, "Pair a workstation", text, parent=self)
        box.setObjectName("pairCodeBox")
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.pair_code_box = box
        box.destroyed.connect(lambda: setattr(self, "pair_code_box", None))
        box.open()

    def show_enroll(self) -> None:
        """Open the enrollment dialog (Settings → Connect to server…)."""
        if self.enroll_dialog is not None:
            self.enroll_dialog.raise_()
            return
        dialog = EnrollDialog(self.sync, self)
        dialog.finished.connect(self._forget_enroll_dialog)
        dialog.connecting.connect(self._enroll_started)
        self.enroll_dialog = dialog
        dialog.open()

    def _enroll_started(self) -> None:
        self._enrolling_for = self._session.user.username if self._session else None

    def _enroll_finished(self, error: str | None) -> None:
        """A connection ended: if its dialog has closed meanwhile, the person who started it
        is told how (the dialog says so itself while open)."""
        who, self._enrolling_for = self._enrolling_for, None
        dialog = self.enroll_dialog
        if who is None or (dialog is not None and dialog.isVisible() and dialog.waiting):
            return
        if error is None:
            self.outcomes.tell(
                who, "This workstation is now connected to the clinic server.", passing=True
            )
        else:
            self.outcomes.tell(who, f"Connecting to the clinic server failed: {error}", True)

    def _forget_enroll_dialog(self) -> None:
        if self.enroll_dialog is not None:
            self.enroll_dialog.deleteLater()
            self.enroll_dialog = None

    # ----- passwords and keys -----------------------------------------------------------

    def show_change_password(self) -> None:
        """Settings → Change password… for the signed-in person."""
        if self._session is None:
            return
        dialog = ChangePasswordDialog(
            self.worker, self.workstation, self._session.user.username, self
        )
        dialog.changed.connect(self._password_changed)
        self._open_key_dialog(dialog)

    def show_new_recovery_key(self) -> None:
        """Settings → New recovery key… (administrators)."""
        if self._session is not None:
            tell = self.outcomes.teller(self._session.user.username)
            self._open_key_dialog(NewRecoveryKeyDialog(self.worker, self.workstation, self, tell))

    def show_staff(self) -> None:
        """Settings → Staff… (administrators)."""
        if self._session is not None:
            self._open_key_dialog(StaffDialog(self.worker, self.workstation, self))

    def show_two_factor(self) -> None:
        """Settings → Two-factor sign-in… (administrators): reads whether it is on first."""
        session = self._session
        if session is None:
            return
        ws, name = self.workstation, session.user.username

        def enrolled() -> bool:
            user = ws.records.user(name)
            return user is not None and user.two_factor

        def show(on: bool) -> None:
            if self._session is session:
                self._open_key_dialog(
                    TwoFactorDialog(self.worker, ws, name, on, session.clinic_name, self)
                )

        self.worker.submit(enrolled, show, label="two-factor state")

    def show_rekey(self) -> None:
        """Settings → Re-encrypt database… (administrators)."""
        if self._session is not None:
            tell = self.outcomes.teller(self._session.user.username)
            self._open_key_dialog(RekeyDialog(self.worker, self.workstation, self, tell))

    def _open_key_dialog(self, dialog: QDialog) -> None:
        if self.key_dialog is not None:
            dialog.deleteLater()
            self.key_dialog.raise_()
            return
        dialog.finished.connect(self._forget_key_dialog)
        self.key_dialog = dialog
        dialog.open()

    def _forget_key_dialog(self) -> None:
        if self.key_dialog is not None:
            self.key_dialog.deleteLater()
            self.key_dialog = None

    def _password_changed(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Password changed",
            "Your password was changed. Use the new password from now on, here and, once "
            "this computer has synced, on the clinic's other computers. If one of them does "
            "not take it, it will ask for your previous password there once as well.",
            parent=self,
        )
        box.setObjectName("passwordChangedBox")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.notice_box = box
        box.destroyed.connect(lambda: setattr(self, "notice_box", None))
        box.open()

    # ----- signing out and closing ------------------------------------------------------

    def sign_out(self, notice: str = "Signed out.", username: str = "") -> None:
        """Sign the person out: keep their unsaved forms as drafts, wipe patient data from
        the screen, and leave the clinic open (key in locked memory) for the next person,
        until ``close_after_idle_hours`` pass (0: close it now)."""
        self._end_session()
        if self.close_timer.interval() == 0:
            self.close_clinic()
            return
        self.close_timer.start()
        self._show_sign_in(username, notice)
        self._show_clinic_state()

    def _end_session(self) -> None:
        session = self._session
        self._session = None
        self.idle.stop()
        self.sync.stop()
        self.statusBar().hide()
        self.statusBar().clearMessage()  # said to this person: not to whoever signs in next
        self.operations.stop()
        self.worker.cancel_all()
        if session is not None:
            self.drafts.keep(session.user.username, self)
        self.workspace.clear()
        self._update_title()
        for dialog in self.findChildren(QDialog):
            if dialog.isVisible() and dialog is not self.first_run:
                dialog.reject()
        self.worker.submit(self.workstation.sign_out, label="sign out")
        self.locked.emit()

    def sign_out_after_idle(self) -> None:
        """The idle timer ran out: sign out, ready for the same person to continue."""
        username = self._session.user.username if self._session else ""
        self.sign_out(
            f"Careline signed you out after {describe_timeout(self.idle.timeout_ms)} without "
            "activity, to protect patient information. Sign in to continue.",
            username,
        )

    def close_clinic(
        self, notice: str = "The clinic is closed on this computer. Sign in to open it."
    ) -> None:
        """Close the clinic on this computer: sign out if needed, drop every kept draft,
        then close the database and zero its key on the worker."""
        if self._session is not None:
            self._end_session()
        self.sign_in_page.cancel()  # a sign-in in flight would land on a closed database
        self.close_timer.stop()
        self.drafts.drop_all()
        self.worker.submit(self._close_after_lan, label="close clinic")
        self._show_sign_in("", notice)
        self._show_clinic_state()
        self.closed.emit()

    def close_after_idle(self) -> None:
        """Nobody signed in for ``close_after_idle_hours``."""
        self.close_clinic(
            f"Careline closed the clinic on this computer after "
            f"{describe_timeout(self.close_timer.interval())} with nobody signed in. "
            "Sign in to open it."
        )

    def _close_after_lan(self) -> None:
        # On the worker: the LAN peer server stops (in its own thread) before the database
        # it serves closes.
        self.sync.wait_lan_stopped()
        self.workstation.lock()

    def _ask_to_discard_setup(self) -> None:
        """Ask "Discard what you typed?" about the first-run wizard (the question every
        form asks); Discard closes the window, Keep editing goes back to the set-up."""
        if self.discard_box is not None:
            self.discard_box.raise_()
            return

        def answered(discard: bool) -> None:
            self.discard_box = None
            if discard:
                self._setup_discarded = True
                self.close()

        self.discard_box = ask_to_discard(self, self.windowTitle(), answered)

    def _say_setup_runs(self, doing: str) -> None:
        """Closing while the set-up makes the recovery key: say why the window stays."""
        if self.setup_box is not None:
            self.setup_box.raise_()
            return
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Careline is setting up",
            f"Careline is {doing} on this computer.",
            parent=self,
        )
        box.setObjectName("setupRunningBox")
        box.setInformativeText(
            "Careline can be closed once that is done and you have seen this computer's "
            "recovery key: it is shown next, and only once."
            if doing == "creating the clinic"
            else "Careline can be closed once that is done. If you are an administrator, this "
            "computer's recovery key is shown next, and only once."
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _result: setattr(self, "setup_box", None))
        self.setup_box = box
        box.open()

    # ----- errors and shutdown ----------------------------------------------------------

    def _show_unhandled(self, exc: Exception) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, describe_error(exc), parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def shutdown(self) -> None:
        """Stop the worker and lock the workstation (closes the DB, zeroes keys)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.background_errors.close()
        self.idle.stop()
        self.close_timer.stop()
        self.drafts.drop_all()
        # The session in progress breaks off before the database closes under it.
        self.sync.shutdown()
        self.sign_in_page.cancel()
        self.workspace.clear()
        # A new recovery key on screen, or being put in force, is settled (in force if the
        # person confirmed storing it, else withdrawn) before the database closes.
        settling = [
            d for d in (self.key_dialog, self.backups.dialog)
            if isinstance(d, (NewRecoveryKeyDialog, RestoreDialog))
        ]  # fmt: skip
        if self._owns_worker:
            self.worker.stop()
            # The worker thread has ended, so settling and locking here race no query.
            for dialog in settling:
                dialog.settle_now()
            self.workstation.lock()
        else:
            for dialog in settling:
                dialog.reject()  # settles on the worker, ahead of the lock
            self.worker.cancel_all()
            self.worker.submit(self.workstation.lock, label="lock on close")

    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask before throwing away what was typed into the set-up, warn before losing an
        unconfirmed recovery key; lock on the way out."""
        wizard = self.first_run
        doing = wizard.making_recovery_key() if wizard is not None else ""
        if doing and not self._shut_down:
            # Quitting now let the work finish with its recovery key never shown.
            event.ignore()
            self._say_setup_runs(doing)
            return
        settled = self._shut_down or self._setup_discarded
        if wizard is not None and not settled and wizard.has_changes():
            event.ignore()
            self._ask_to_discard_setup()
            return
        if wizard is not None and wizard.recovery_key_unconfirmed():
            answer = QMessageBox.question(
                self,
                "Close Careline?",
                "You have not confirmed that you stored the recovery key. It will not be shown "
                "again. Close anyway?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.shutdown()
        super().closeEvent(event)
