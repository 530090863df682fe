"""A validation message is read whole where it appears: every line of it shows (the advice
after "either way round:" included), inside its dialog or form, and it is never drawn over
the field above or below it; said as a dialog's button is pressed, it leaves that button,
and the buttons beside it, where the person aims. The app's stylesheet is on and the window
at its first size, as a person sees them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)
from pytestqt.exceptions import TimeoutError as WaitTimeout
from pytestqt.qtbot import QtBot

from app.admin.backup import BackupDialog, RestoreDialog
from app.admin.fhir import FhirDialog
from app.admin.import_patients import ImportPatientsDialog
from app.chart.attachments import EditAttachmentDialog
from app.chart.list_dialogs import DateDialog
from app.chart.medications import MedicationDialog, MedicationsCard
from app.chart.problems import IcdSearchDialog, ProblemsCard
from app.chart.vitals import VitalsSection
from app.main_window import MainWindow
from core.records.medications import Medications
from core.records.visits import Visits
from core.records.workstation import Workstation
from tests.ui.chart.cards import card_of
from tests.ui.chart.test_attachments import add_and_select, open_attachments
from tests.ui.chart.test_break_glass import restrict_every_chart
from tests.ui.chart.test_chart_access import open_access
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_problems import ICD_LOAD
from tests.ui.chart.test_visits import visits_tab
from tests.ui.chart.test_vitals import open_vitals, type_into
from tests.ui.conftest import DEFAULT_SIZE
from tests.ui.layout import assert_whole, shot
from tests.ui.patients.conftest import click, open_new_dialog, save

pytestmark = pytest.mark.usefixtures("styled")

YEAR_LAST = "either way round: type the year first, e.g."


@pytest.fixture
def window(signed_in: MainWindow) -> MainWindow:
    """The signed-in window at the size it first opens with."""
    signed_in.resize(*DEFAULT_SIZE)
    QApplication.processEvents()
    return signed_in


def leave(widget: QWidget) -> None:
    """Tab out of a field, as a person moves on (the field checks what was typed)."""
    QTest.keyClick(widget, Qt.Key.Key_Tab)
    QApplication.processEvents()


def test_a_birth_date_with_the_year_last_is_explained_in_full(
    qtbot: QtBot, window: MainWindow
) -> None:
    dialog = open_new_dialog(qtbot, window)
    QTest.keyClicks(dialog.family, "Garcia")
    QTest.keyClicks(dialog.given, "Maria")
    click(dialog.birth_date)
    QTest.keyClicks(dialog.birth_date, "12/03/1975")
    leave(dialog.birth_date)
    message = dialog.errors["birth_date"]
    assert YEAR_LAST in message.text()
    assert_whole(message)
    save(qtbot, dialog)  # refused again on Save: still all of it
    QApplication.processEvents()
    shot(dialog, "birth-date-year-last")
    assert_whole(message)
    assert dialog.save_button.geometry().bottom() <= dialog.rect().bottom()


def test_a_medication_start_date_with_the_year_last_is_explained_in_full(
    qtbot: QtBot, window: MainWindow
) -> None:
    chart = open_first_chart(qtbot, window)
    card = card_of(chart, MedicationsCard)
    QTest.mouseClick(card.start_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitUntil(dialog.isVisible)
    QTest.keyClicks(dialog.fields["name"], "Amlodipine")
    dialog.fields["start"].setText("05/12/2026")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    message = dialog.errors["start"]
    qtbot.waitUntil(message.isVisible, timeout=5_000)
    assert YEAR_LAST in message.text()
    shot(dialog, "medication-start-year-last")
    assert_whole(message)


def open_stop_dialog(qtbot: QtBot, window: MainWindow, clinic: Workstation) -> DateDialog:
    """Amlodipine started on 2024-01-05 on the first chart, chosen, and Stop… clicked."""
    chart = open_first_chart(qtbot, window)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, MedicationsCard)
    Medications(clinic.records).start(
        patient.id,
        {"name": "Amlodipine", "strength": "5 mg", "dose": "1 tablet", "route": "by mouth",
         "frequency": "once daily", "start": "2024-01-05"},
    )  # fmt: skip
    window.operations.catch_up()
    qtbot.waitUntil(lambda: len(card.medications) == 1, timeout=5_000)
    card.table.selectRow(0)
    QTest.mouseClick(card.stop_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, DateDialog)
    qtbot.waitUntil(dialog.isVisible)
    return dialog


def test_a_stop_date_before_the_start_is_said_below_the_date_not_over_it(
    qtbot: QtBot, window: MainWindow, clinic: Workstation
) -> None:
    dialog = open_stop_dialog(qtbot, window, clinic)
    dialog.date.setText("2024-01-01")
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    message = dialog.errors["stop"]
    qtbot.waitUntil(message.isVisible, timeout=5_000)
    assert "before" in message.text()
    shot(dialog, "stop-before-start")
    assert_whole(message)
    assert message.geometry().top() > dialog.date.geometry().bottom()


def test_vitals_messages_at_the_first_window_size_show_whole_and_apart(
    qtbot: QtBot, window: MainWindow, clinic: Workstation
) -> None:
    """Three refusals at once in the fixed-width form: each shows every line, none runs
    into the next row (the form scrolls when they need more than the window's height), and
    a visit with a long reason in the Visit list does not widen the form past its side."""
    patient_id = window.workspace.patient_list.model.patient_id(0)
    Visits(clinic.records).start(patient_id, "Review of the blood pressure readings taken at home")
    chart = open_first_chart(qtbot, window)
    section = card_of(chart, VitalsSection)
    # The visits are read before the tab is first shown, as when a person looks at the
    # Overview first: the Visit list then sized itself to its longest entry.
    qtbot.waitUntil(lambda: section.visit.count() == 2, timeout=5_000)
    _chart, section = open_vitals(qtbot, window)
    fields = section.fields
    for key, typed in (("systolic", "12O"), ("temperature", "37,5"), ("weight", "68,4")):
        type_into(qtbot, fields[key].edit, typed)
        leave(fields[key].edit)
    messages: list[QLabel] = [fields[k].message for k in ("systolic", "temperature", "weight")]
    shot(window, "vitals-three-messages")
    for message in messages:
        assert message.text()
        assert_whole(message)
    form = section.record_button.parentWidget()  # the form's card: its captions too
    assert form is not None
    for label in form.findChildren(QLabel):
        if label.isVisible() and label.text():
            assert_whole(label)


def test_a_vital_is_named_in_its_message_as_the_form_names_it(
    qtbot: QtBot, window: MainWindow
) -> None:
    _chart, section = open_vitals(qtbot, window)
    spo2 = section.fields["spo2"]
    type_into(qtbot, spo2.edit, "101")
    leave(spo2.edit)
    assert spo2.message.text().startswith("SpO2: 101 % is not possible")
    captions = [label.text() for label in section.widget().findChildren(QLabel)]
    assert "SpO2" in captions  # the form's own label for the field


# ----- a message said on pressing a dialog's button leaves its buttons where they were -----

Typed = QLineEdit | QPlainTextEdit | QComboBox


@dataclass
class Refusal:
    """A dialog with something wrong typed in it: the button the person presses, the
    message that says what is wrong (``says``: part of it), a field typed in and what was
    typed there, and the other buttons beside the one pressed."""

    dialog: QDialog
    press: QAbstractButton
    message: QLabel
    says: str
    field: Typed
    typed: str
    others: tuple[QAbstractButton, ...] = ()


def typed_in(field: Typed) -> str:
    """What ``field`` holds, as the person reads it."""
    if isinstance(field, QPlainTextEdit):
        return field.toPlainText()
    return field.currentText() if isinstance(field, QComboBox) else field.text()


def type_into_field(field: Typed, text: str) -> None:
    """Click into ``field`` and type ``text`` (over what it held: a date filled in)."""
    edit = field.lineEdit() if isinstance(field, QComboBox) else field
    assert edit is not None
    QTest.mouseClick(edit, Qt.MouseButton.LeftButton)
    if isinstance(edit, QLineEdit):
        edit.selectAll()
    QTest.keyClicks(edit, text)


def tick(box: QCheckBox) -> None:
    """Click a checkbox on its box."""
    QTest.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


def box_buttons(button: QAbstractButton) -> tuple[QAbstractButton, ...]:
    """The other buttons of ``button``'s button box (Cancel beside Save)."""
    box = button.parentWidget()
    assert isinstance(box, QDialogButtonBox)
    return tuple(b for b in box.buttons() if b is not button and b.isVisible())


def add_a_file(qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path) -> Refusal:
    """Add file…: a title and an impossible date, no file chosen (two messages above Add:
    it moved 46 pixels)."""
    _, section = open_attachments(qtbot, window)
    click(section.add_button)
    dialog = section.add_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    type_into_field(dialog.title, "Chest X-ray")
    type_into_field(dialog.date, "2026-02-30")
    press = dialog.add_button
    return Refusal(dialog, press, dialog.errors["file"], "Choose a file to add.", dialog.title,
                   "Chest X-ray", box_buttons(press))  # fmt: skip


def change_a_files_details(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """Edit details… of a file on the chart: a date in the future."""
    _, section = open_attachments(qtbot, window)
    letter = tmp_path / "scan0001.pdf"
    letter.write_bytes(b"%PDF-1.4 a scanned letter")
    add_and_select(qtbot, section, letter)
    click(section.edit_button)
    dialog = section.dialog
    assert isinstance(dialog, EditAttachmentDialog)
    qtbot.waitExposed(dialog)
    type_into_field(dialog.date, "2999-01-01")
    press = dialog.save_button
    return Refusal(dialog, press, dialog.errors["date"], "future", dialog.date, "2999-01-01",
                   box_buttons(press))  # fmt: skip


def add_an_allergy(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """Add allergy…: a reaction, no substance."""
    chart = open_first_chart(qtbot, window)
    click(chart.add_allergy_button)
    dialog = chart.allergy_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.substance.hasFocus)
    type_into_field(dialog.reaction, "Hives")
    press = dialog.save_button
    return Refusal(dialog, press, dialog.errors["substance"], "Substance is required.",
                   dialog.reaction, "Hives", box_buttons(press))  # fmt: skip


def add_a_problem(qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path) -> Refusal:
    """Add problem…: words searched for, no code picked."""
    card = card_of(open_first_chart(qtbot, window), ProblemsCard)
    click(card.add_button)
    dialog = card.dialog
    assert isinstance(dialog, IcdSearchDialog)
    qtbot.waitUntil(lambda: dialog._ready, timeout=ICD_LOAD)
    type_into_field(dialog.search, "asthma")
    qtbot.waitUntil(lambda: "shown" in dialog.status.text(), timeout=10_000)  # the codes found
    press = dialog.save_button
    return Refusal(dialog, press, dialog.errors["code"], "Choose a code from the list",
                   dialog.search, "asthma", box_buttons(press))  # fmt: skip


def start_a_medication(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """Start…: a start date with the year last."""
    card = card_of(open_first_chart(qtbot, window), MedicationsCard)
    click(card.start_button)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitExposed(dialog)
    type_into_field(dialog.fields["name"], "Amlodipine")
    type_into_field(dialog.fields["start"], "05/12/2026")
    press = dialog.save_button
    return Refusal(dialog, press, dialog.errors["start"], YEAR_LAST, dialog.fields["name"],
                   "Amlodipine", box_buttons(press))  # fmt: skip


def stop_a_medication(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """Stop…: a date before the medication started (core refuses it)."""
    dialog = open_stop_dialog(qtbot, window, clinic)
    type_into_field(dialog.date, "2024-01-01")
    press = dialog.save_button
    return Refusal(dialog, press, dialog.errors["stop"], "before", dialog.date, "2024-01-01",
                   box_buttons(press))  # fmt: skip


def start_a_visit(qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path) -> Refusal:
    """Start visit…: a reason longer than core takes (it refuses it)."""
    section = visits_tab(qtbot, open_first_chart(qtbot, window))
    click(section.start_button)
    qtbot.waitUntil(lambda: section.start_dialog is not None, timeout=5_000)
    dialog = section.start_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=5_000)  # the clinicians are read
    reason = "Review of the readings taken at home " * 6  # 222 characters
    type_into_field(dialog.reason, reason)
    press = dialog.start_button
    return Refusal(dialog, press, dialog.errors["reason"], "longer than 200 characters",
                   dialog.reason, reason, box_buttons(press))  # fmt: skip


def break_the_glass(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """Break the glass… on a restricted chart: a reason of blanks only (core refuses it)."""
    restrict_every_chart(clinic)
    chart = open_first_chart(qtbot, window)
    qtbot.waitUntil(chart.break_glass.button.isVisible, timeout=5_000)
    click(chart.break_glass.button)
    dialog = chart.break_glass.dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.reason.hasFocus, timeout=5_000)
    type_into_field(dialog.reason, "   ")
    press = dialog.save_button
    return Refusal(dialog, press, dialog.errors["reason"], "Reason is required.",
                   dialog.reason, "   ", box_buttons(press))  # fmt: skip


def add_to_the_care_team(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """Chart access…: a name no staff member has, then Add to care team."""
    dialog = open_access(qtbot, open_first_chart(qtbot, window))
    type_into_field(dialog.person, "Nobody by that name")
    close = next(b for b in dialog.findChildren(QAbstractButton) if b.text() == "Close")
    return Refusal(dialog, dialog.add_button, dialog.error, "Choose a staff member to add.",
                   dialog.person, "Nobody by that name", (close,))  # fmt: skip


def register_a_patient(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """New patient: a family name only."""
    dialog = open_new_dialog(qtbot, window)
    type_into_field(dialog.family, "Garcia")
    press = dialog.save_button
    return Refusal(dialog, press, dialog.errors["given"], "Given name is required.",
                   dialog.family, "Garcia", box_buttons(press))  # fmt: skip


def back_up(qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path) -> Refusal:
    """Back up now…: a passphrase too short."""
    window.backups.backup_action.trigger()
    dialog = window.backups.dialog
    assert isinstance(dialog, BackupDialog)
    qtbot.waitExposed(dialog)
    type_into_field(dialog.path, str(tmp_path / "now.clbackup"))
    tick(dialog.use_passphrase)
    type_into_field(dialog.passphrase, "too short")
    press = dialog.start_button
    return Refusal(dialog, press, dialog.error, "Choose a passphrase of at least 12 characters",
                   dialog.passphrase, "too short", box_buttons(press))  # fmt: skip


def restore(qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path) -> Refusal:
    """Restore a backup…: the backup file only."""
    window.backups.restore_action.trigger()
    dialog = window.backups.dialog
    assert isinstance(dialog, RestoreDialog)
    qtbot.waitExposed(dialog)
    backup = str(tmp_path / "now.clbackup")
    type_into_field(dialog.backup, backup)
    press = dialog.start_button
    return Refusal(dialog, press, dialog.error, "Fill in every field.", dialog.backup, backup,
                   box_buttons(press))  # fmt: skip


def export_fhir(qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path) -> Refusal:
    """FHIR export and import…: Export to a folder that does not exist (a long message,
    naming the path: it wraps beside Close)."""
    window.workspace.admin_tools.fhir_action.trigger()
    dialog = window.workspace.admin_tools.dialog
    assert isinstance(dialog, FhirDialog)
    qtbot.waitExposed(dialog)
    target = str(tmp_path / "no such folder" / "bundle.json")
    type_into_field(dialog.export_path, target)
    close = next(b for b in dialog.findChildren(QAbstractButton) if b.text() == "Close")
    return Refusal(dialog, dialog.export_button, dialog.error, "The file could not be used",
                   dialog.export_path, target, (dialog.import_button, close))  # fmt: skip


def import_patients(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path
) -> Refusal:
    """Import patients…: a file that is not there."""
    window.workspace.admin_tools.import_action.trigger()
    dialog = window.workspace.admin_tools.dialog
    assert isinstance(dialog, ImportPatientsDialog)
    qtbot.waitExposed(dialog)
    path = str(tmp_path / "patients.csv")
    type_into_field(dialog.path, path)
    return Refusal(dialog, dialog.next_button, dialog.error, "patients.csv", dialog.path, path,
                   (dialog.close_button,))  # fmt: skip


def places(buttons: tuple[QAbstractButton, ...]) -> list[QPoint]:
    """Where each button is on the screen."""
    return [button.mapToGlobal(QPoint(0, 0)) for button in buttons]


def farthest(before: list[QPoint], after: list[QPoint]) -> int:
    """The most pixels any button moved, across or down."""
    moves = (
        max(abs(a.x() - b.x()), abs(a.y() - b.y())) for a, b in zip(before, after, strict=True)
    )
    return max(moves)


def as_short_as_it_goes(dialog: QDialog) -> None:
    """Make ``dialog`` as short as its contents let it be, as a person dragging its edge
    does. How much more it opens with depends on the fonts: a message that fitted in that
    room here moved nothing, where on another screen it pushed the buttons down."""
    QApplication.processEvents()
    needed = dialog.heightForWidth(dialog.width())
    dialog.resize(dialog.width(), max(needed, dialog.minimumSizeHint().height()))
    QApplication.processEvents()  # laid out as the person sees it


Opener = Callable[[QtBot, MainWindow, Workstation, Path], Refusal]


@pytest.mark.parametrize(
    "opened",
    [add_a_file, change_a_files_details, add_an_allergy, add_a_problem, start_a_medication,
     stop_a_medication, start_a_visit, break_the_glass, add_to_the_care_team,
     register_a_patient, back_up, restore, export_fhir, import_patients],
    ids=lambda opened: opened.__name__,
)  # fmt: skip
def test_a_message_said_on_pressing_a_dialogs_button_leaves_its_buttons_where_they_were(
    qtbot: QtBot, window: MainWindow, clinic: Workstation, tmp_path: Path, opened: Opener
) -> None:
    """The tester's report: a message shown above a dialog's buttons pushed them down (Add
    46 pixels), so the next click, aimed at Add, missed it. Said under its field or beside
    the buttons, the message shows whole and the buttons stay where they were; what was
    typed stays too, and the dialog stays on its screen."""
    refusal = opened(qtbot, window, clinic, tmp_path)
    dialog, message = refusal.dialog, refusal.message
    buttons = (refusal.press, *refusal.others)
    as_short_as_it_goes(dialog)
    before = places(buttons)

    QTest.mouseClick(refusal.press, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(message.isVisible, timeout=10_000)
    assert refusal.says in message.text()
    with suppress(WaitTimeout):  # the window system moves a window in its own time
        qtbot.waitUntil(lambda: farthest(before, places(buttons)) <= 1, timeout=1_000)
    shot(dialog, f"stays-{opened.__name__}")
    assert farthest(before, places(buttons)) <= 1, (
        f"the buttons moved from {before} to {places(buttons)}"
    )
    assert_whole(message)
    assert dialog.isVisible() and typed_in(refusal.field) == refusal.typed
    # No taller than its screen, nor over its top or bottom (the test's main window is
    # wider than the test platform's screen: across, the dialog is where it opened).
    room, frame = dialog.screen().availableGeometry(), dialog.frameGeometry()
    assert room.top() <= frame.top() and frame.bottom() <= room.bottom()


@pytest.mark.xfail(
    strict=True,
    reason="Known, not fixed here: with a date's message already shown (said as the person "
    "Tabbed out of the field), pressing Save re-lays the dialog out and Save moves 18 pixels "
    "up: hold_buttons measures the buttons after giving back room the dialog had kept, so "
    "that move is not made good. Measuring before it broke the FHIR and import cases.",
)
def test_a_message_already_shown_and_said_again_on_save_moves_no_button(
    qtbot: QtBot, window: MainWindow
) -> None:
    """Found using the app under Xvfb: a bad date is said as the person Tabs out of it;
    pressing Save then says the same message again, and Save jumped 18 pixels up (the
    room the dialog had kept was given back under it), so a second click missed it."""
    dialog = open_new_dialog(qtbot, window)
    type_into_field(dialog.family, "Okafor")
    type_into_field(dialog.given, "Ngozi")
    type_into_field(dialog.birth_date, "2027-13-40")
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Tab)
    message = dialog.errors["birth_date"]
    qtbot.waitUntil(message.isVisible, timeout=5_000)
    QApplication.processEvents()
    buttons = box_buttons(dialog.save_button)
    before = places((dialog.save_button, *buttons))

    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()
    with suppress(WaitTimeout):  # the window system moves a window in its own time
        qtbot.waitUntil(lambda: farthest(before, places((dialog.save_button, *buttons))) > 1,
                        timeout=500)  # fmt: skip
    assert message.isVisible() and "no month 13" in message.text()
    assert farthest(before, places((dialog.save_button, *buttons))) <= 1, (
        f"the buttons moved from {before} to {places((dialog.save_button, *buttons))}"
    )
    assert typed_in(dialog.birth_date) == "2027-13-40"
