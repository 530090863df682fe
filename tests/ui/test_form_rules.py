"""Rules every form dialog keeps, driven on the real app as a person does:

- the mouse wheel never changes a choice or a number the pointer passes over;
- Escape, Cancel and the window's close button never throw typed data away unasked
  ("Discard what you typed?", Keep editing the default), and close an untouched or
  unchanged form at once;
- a message about a field goes once the person edits that field (the form's own message,
  once they edit any field);
- a check of the form says everything wrong with it at once, and the keyboard goes to the
  first field in error, in the form's order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QAction, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.admin.staff import AddStaffDialog, ResetPasswordDialog, RoleDialog, StaffDialog
from app.chart.attachments import AttachmentsSection
from app.chart.list_dialogs import SavingDialog
from app.chart.medications import MedicationDialog, MedicationsCard
from app.chart.page import AllergyDialog
from app.chart.problems import ProblemsCard
from app.chart.visits import StartVisitDialog, VisitsSection
from app.main_window import MainWindow
from app.session.key_dialogs import ChangePasswordDialog, FormDialog
from app.session.strength_hint import StrengthHint
from app.widgets import input_value
from core.records.workstation import Workstation
from tests.ui.chart.cards import card_of
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_vitals import open_vitals
from tests.ui.conftest import (
    ADMIN,
    PASSWORD,
    POPUP_NOISE,
    WindowFactory,
    answer_discard,
    asks_nothing,
    discard_question,
    press,
    sign_in,
    type_at_the_keyboard,
    wheel,
)
from tests.ui.layout import rect_in
from tests.ui.schedule.conftest import open_schedule


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def send_wheel(widget: QWidget, notches: int) -> None:
    """A wheel turn over the middle of ``widget`` (positive: away from the person, "up"),
    delivered to it as the application delivers the window system's."""
    centre = widget.rect().center()
    event = QWheelEvent(
        QPointF(centre), QPointF(widget.mapToGlobal(centre)), QPoint(0, 0),
        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(widget, event)


def value_of(widget: QWidget) -> object:
    if isinstance(widget, QComboBox):
        return (widget.currentIndex(), widget.currentText())
    assert isinstance(widget, QAbstractSpinBox)
    return widget.text()


def assert_the_wheel_changes_nothing(qtbot: QtBot, dialog: QDialog) -> int:
    """Focus the dialog's first line edit, then turn the wheel up and down over every
    choice and number in it: none changes, none takes focus. Returns how many there were."""
    qtbot.waitUntil(dialog.isVisible)
    # Focus where a person types (a form with no line edit: its primary button).
    typed = [w for w in dialog.findChildren(QLineEdit) if w.isVisible() and w.isEnabled()]
    primary = dialog.findChild(QPushButton, "primary")
    assert primary is not None
    (typed[0] if typed else primary).setFocus()
    turned = [
        w for w in dialog.findChildren(QWidget) if isinstance(w, QComboBox | QAbstractSpinBox)
    ]
    for widget in turned:
        before = value_of(widget)
        for notches in (1, 1, -1, -3):
            send_wheel(widget, notches)
            assert value_of(widget) == before, f"the wheel changed {widget.objectName()!r}"
        assert not widget.hasFocus(), f"the wheel gave {widget.objectName()!r} focus"
    return len(turned)


def each_form(qtbot: QtBot, window: MainWindow) -> Iterator[tuple[str, QDialog]]:
    """Every form the app opens, one at a time, as a person opens it: registration, the
    chart's forms, booking, staff, import. Each is closed once the caller is done with it."""
    workspace = window.workspace

    def walk(
        name: str, act: Callable[[], object], opened: Callable[[], QDialog | None]
    ) -> Iterator[tuple[str, QDialog]]:
        act()
        dialog = opened()
        assert dialog is not None
        qtbot.waitUntil(dialog.isVisible)
        if isinstance(dialog, StartVisitDialog):
            # Its lists are read after it opens, on the worker, which may first finish the
            # problem form's ICD-10 search (the catalogue's first load takes seconds).
            qtbot.waitUntil(dialog.start_button.isEnabled, timeout=60_000)
        yield name, dialog
        dialog.reject()

    yield from walk(
        "New patient", workspace.new_patient_action.trigger, lambda: workspace.patient_dialog
    )
    chart = open_first_chart(qtbot, window)
    yield from walk("Edit patient", lambda: click(chart.edit_button), lambda: chart.patient_dialog)
    yield from walk(
        "Add allergy", lambda: click(chart.add_allergy_button), lambda: chart.allergy_dialog
    )
    problems = card_of(chart, ProblemsCard)
    yield from walk("Add problem", problems.add_button.click, lambda: problems.dialog)
    medications = card_of(chart, MedicationsCard)
    yield from walk("Start medication", medications.start_button.click, lambda: medications.dialog)
    visits = card_of(chart, VisitsSection)
    yield from walk("Start visit", visits.start_visit, lambda: visits.start_dialog)
    attachments = card_of(chart, AttachmentsSection)
    yield from walk("Add file", lambda: attachments.add_file(None), lambda: attachments.add_dialog)
    schedule = workspace.schedule
    yield from walk("Book", schedule.book, lambda: schedule.dialog)
    workspace.staff_action.trigger()
    staff = window.key_dialog
    assert isinstance(staff, StaffDialog)
    qtbot.waitUntil(lambda: staff.table.rowCount() > 0, timeout=10_000)
    staff.table.selectRow(0)
    yield from walk("Add staff", lambda: click(staff.add_button), lambda: staff.child)
    yield from walk("Change role", lambda: click(staff.role_button), lambda: staff.child)
    yield from walk("Reset password", lambda: click(staff.reset_button), lambda: staff.child)
    staff.reject()
    tools = workspace.admin_tools
    yield from walk("Audit log", tools.show_audit_log, lambda: tools.dialog)
    yield from walk("Import patients", tools.import_action.trigger, lambda: tools.dialog)
    backups = window.backups
    yield from walk("Back up now", backups.backup_action.trigger, lambda: backups.dialog)
    yield from walk("Restore a backup", backups.restore_action.trigger, lambda: backups.dialog)


def test_no_form_takes_a_value_from_the_wheel(qtbot: QtBot, signed_in: MainWindow) -> None:
    """Every form the app opens: registration, the chart's forms, booking, staff, import."""
    seen = {
        name: assert_the_wheel_changes_nothing(qtbot, dialog)
        for name, dialog in each_form(qtbot, signed_in)
    }
    # The forms with choices had them turned (the walk reached them).
    for name in ("New patient", "Add allergy", "Start visit", "Add file", "Book", "Add staff"):
        assert seen[name] >= 1, name
    assert seen["Import patients"] >= 2  # the date format and the two-digit year
    assert seen["Change role"] == 1


def closed_choices(window: QWidget) -> list[QComboBox]:
    """The choice boxes a person can reach in ``window`` whose value is picked from a list
    (an editable box is typed into: what is typed is its value)."""
    return [
        box for box in window.findChildren(QComboBox)
        if box.isVisible() and box.isEnabled() and not box.isEditable() and box.count() > 0
    ]  # fmt: skip


def another_items_letter(box: QComboBox) -> str | None:
    """The first letter of an item other than the one chosen, which the chosen one does
    not start with (so typing it on the box would choose that item in a plain Qt box);
    None when no item starts with a letter (the units: °C, °F)."""
    chosen = box.currentText()[:1].casefold()
    for row in range(box.count()):
        letter = box.itemText(row)[:1]
        if row != box.currentIndex() and letter.isalpha() and letter.casefold() != chosen:
            return letter.lower()
    return None


def give_focus(qtbot: QtBot, box: QComboBox) -> None:
    """The keyboard to ``box``, its window active again (the offscreen platform may leave
    a closed list's frame as the active window)."""
    form = box.window()
    form.activateWindow()
    qtbot.waitUntil(form.isActiveWindow)
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)


def close_list(qtbot: QtBot, box: QComboBox, *keys: Qt.Key) -> None:
    """Press ``keys`` on the open list (then Escape, if it is still open): it closes."""
    for key in keys:
        press(key)
    if box.view().isVisible():
        press(Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not box.view().isVisible())


def assert_typing_chooses_nothing(qtbot: QtBot, box: QComboBox) -> None:
    """On the closed box: one letter opens its list (Escape: nothing chosen); a word, with
    Return or Escape after it, chooses nothing; the wheel changes nothing; one letter and
    Return on the list choose that letter's item, as the README says (where an item
    starts with a letter)."""
    form = box.window()
    before = value_of(box)
    found = another_items_letter(box)
    letter = found or "x"
    name = f"{form.windowTitle()}: {box.accessibleName() or box.objectName() or before}"
    for typed, keys in (
        (letter, (Qt.Key.Key_Escape,)),
        (f"{letter}ild rash", (Qt.Key.Key_Escape,)),
        (f"{letter}ild rash", (Qt.Key.Key_Return,)),
    ):
        give_focus(qtbot, box)
        type_at_the_keyboard(typed)
        assert value_of(box) == before, f"{typed!r} typed on {name!r} chose an item"
        assert box.view().isVisible(), f"{typed!r} typed on {name!r} opened no list"
        close_list(qtbot, box, *keys)
        assert value_of(box) == before, f"{typed!r} then {keys} on {name!r} chose an item"
        assert form.isVisible(), f"{keys} on {name!r}'s list closed the form"
    for notches in (1, -1, -3):
        wheel(box, notches)
        assert value_of(box) == before, f"the wheel changed {name!r}"
    if found is None:
        return  # no item to choose by its letter
    give_focus(qtbot, box)
    type_at_the_keyboard(letter)
    assert box.view().isVisible(), f"{letter!r} typed on {name!r} opened no list"
    close_list(qtbot, box, Qt.Key.Key_Return)
    assert box.currentText().casefold().startswith(letter), f"{name!r}: Return chose nothing"


def with_two_clinicians(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> MainWindow:
    """The admin signed in, with two clinicians on the staff (booking and Start visit ask
    which), the schedule read (it reads the clinicians booking offers)."""
    clinic.sign_in(ADMIN, PASSWORD)
    for user, full_name in (("ama", "Ama Mensah"), ("kofi", "Kofi Owusu")):
        clinic.records.add_user(user, full_name, "clinician", "a long clinic password")
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window)
    open_schedule(qtbot, window)
    return window


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the lists open
def test_no_letter_or_word_typed_on_a_closed_choice_box_chooses_for_the_person(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """The tester's D1 on every form: ``s`` typed on Allergy's closed Severity box chose
    Severe, and ``mild rash`` meant for Reaction then stored Mild; ``f`` on Sex chose
    Female. Every choice box of every form, and of the chart's Vitals form, now changes
    only when the person picks an item from its open list (README, "Desktop app from the
    keyboard")."""
    signed_in = with_two_clinicians(qtbot, clinic, make_window)
    seen: dict[str, int] = {}
    for name, dialog in each_form(qtbot, signed_in):
        boxes = closed_choices(dialog)
        for box in boxes:
            assert_typing_chooses_nothing(qtbot, box)
        seen[name] = len(boxes)
    _chart, vitals = open_vitals(qtbot, signed_in)
    boxes = [box for box in closed_choices(vitals.widget()) if box is not vitals.plot_choice]
    for box in boxes:
        assert_typing_chooses_nothing(qtbot, box)
    seen["Vitals"] = len(boxes)
    # The walk reached every form with a choice box (an editable one, Add file's category,
    # is typed into).
    for name in ("New patient", "Edit patient", "Add allergy", "Book", "Add staff"):
        assert seen[name] == 1, name
    assert seen["Start visit"] >= 1 and seen["Change role"] == 1
    assert seen["Vitals"] >= 3  # units and Visit


def takes_text(widget: QWidget) -> bool:
    """A field a person types text or a number into (not one only shown)."""
    if isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit):
        return not widget.isReadOnly()
    return isinstance(widget, QAbstractSpinBox)


def assert_a_number_goes_on_as_after_a_tab(qtbot: QtBot, box: QComboBox) -> bool:
    """On the closed box, a number no item starts with, typed at the keyboard: where Tab
    goes on to a field that takes text, the number lands there (a line edit's text typed
    over, as after Tab), the list never opening; else the list opens, as for a letter.
    The box's choice stays, either way. True when it went on to a field."""
    form = box.window()
    before = value_of(box)
    name = f"{form.windowTitle()}: {box.accessibleName() or box.objectName() or before}"
    items = [box.itemText(row) for row in range(box.count())]
    digit = next(d for d in "5790" if not any(item.startswith(d) for item in items))
    typed = f"{digit}7"
    give_focus(qtbot, box)
    press(Qt.Key.Key_Tab)
    stop = QApplication.focusWidget()
    assert stop is not None and stop is not box, f"Tab left nothing from {name!r}"
    held = input_value(stop)
    give_focus(qtbot, box)
    type_at_the_keyboard(typed)
    assert value_of(box) == before, f"{typed!r} typed on {name!r} chose an item"
    if takes_text(stop):
        assert not box.view().isVisible(), f"{typed!r} typed on {name!r} opened its list"
        assert QApplication.focusWidget() is stop, f"{typed!r} on {name!r} went elsewhere"
        if isinstance(stop, QLineEdit):
            assert stop.text() == typed, f"{typed!r} on {name!r} landed as {stop.text()!r}"
        assert input_value(stop) != held, f"{typed!r} on {name!r} was lost"
        return True
    assert box.view().isVisible(), f"{typed!r} typed on {name!r} opened no list"
    close_list(qtbot, box, Qt.Key.Key_Escape)
    assert value_of(box) == before and input_value(stop) == held
    assert form.isVisible(), f"Escape on {name!r}'s list closed the form"
    return False


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the lists open (before a button)
def test_a_number_typed_on_a_closed_choice_box_goes_on_to_the_text_field_after_it(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """One Tab short, a number typed on a closed choice box opened its list, which took the
    rest: an MRN typed on New patient's Sex, a reason typed on booking's Clinician, a
    first password on Add staff's Role. On every form's choice boxes (and the Vitals
    form's), a number goes on to the text field Tab reaches next, as if Tab came first,
    the choice unchanged; before a button the list opens, as for a letter."""
    signed_in = with_two_clinicians(qtbot, clinic, make_window)
    went_on: dict[str, list[bool]] = {}
    for name, dialog in each_form(qtbot, signed_in):
        went_on[name] = [
            assert_a_number_goes_on_as_after_a_tab(qtbot, box) for box in closed_choices(dialog)
        ]
    _chart, vitals = open_vitals(qtbot, signed_in)
    boxes = [box for box in closed_choices(vitals.widget()) if box is not vitals.plot_choice]
    went_on["Vitals"] = [assert_a_number_goes_on_as_after_a_tab(qtbot, box) for box in boxes]
    # The walk reached the forms whose choice box comes before a text field, and those
    # whose box comes before their buttons.
    for name in ("New patient", "Edit patient", "Book", "Add staff"):
        assert went_on[name] == [True], name
    assert went_on["Vitals"] and all(went_on["Vitals"])  # the Visit box and the units
    for name in ("Add allergy", "Change role"):
        assert went_on[name] == [False], name


def reads_before(a: QWidget, b: QWidget) -> bool:
    """True when a person reading the window top to bottom, left to right, meets ``a``
    before ``b`` (side by side: the one on the left first)."""
    first, second = rect_in(a, a.window()), rect_in(b, b.window())
    if first.bottom() < second.top():
        return True
    if second.bottom() < first.top():
        return False
    return first.left() < second.left()


def named(widget: QWidget) -> str:
    text = widget.text() if isinstance(widget, QPushButton | QLineEdit) else ""
    return widget.accessibleName() or widget.objectName() or text or type(widget).__name__


def tab_round(qtbot: QtBot, dialog: QDialog) -> list[QWidget]:
    """Tab pressed from the form's first control until focus comes back to it: the controls
    focused, in the order Tab reached them (starting with the top-left one)."""
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    controls = [
        w
        for w in dialog.findChildren(QWidget)
        if w.isVisible() and w.isEnabled() and w.focusPolicy() & Qt.FocusPolicy.TabFocus
        and w.focusProxy() is None and w.window() is dialog
    ]  # fmt: skip
    first = controls[0]
    for widget in controls[1:]:
        if reads_before(widget, first):
            first = widget
    first.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(first.hasFocus)
    reached = [first]
    for _ in range(3 * len(controls)):
        QTest.keyClick(reached[-1], Qt.Key.Key_Tab)
        now = QApplication.focusWidget()
        assert now is not None and now.window() is dialog, "Tab left the form"
        if now is first:
            return reached
        reached.append(now)
    raise AssertionError(f"Tab never came back to {named(first)}: {[named(w) for w in reached]}")


def each_admin_screen(qtbot: QtBot, window: MainWindow) -> Iterator[tuple[str, QDialog]]:
    """The administrators' other windows from the Settings menu, one at a time."""
    workspace = window.workspace

    def key_dialog(name: str, action: QAction) -> Iterator[tuple[str, QDialog]]:
        action.trigger()
        qtbot.waitUntil(lambda: window.key_dialog is not None, timeout=5_000)
        dialog = window.key_dialog
        assert dialog is not None
        qtbot.waitUntil(dialog.isVisible)
        yield name, dialog
        dialog.reject()
        qtbot.waitUntil(lambda: window.key_dialog is None)

    for name, action in (
        ("Change password", workspace.change_password_action),
        ("Two-factor sign-in", workspace.two_factor_action),
    ):
        yield from key_dialog(name, action)
    workspace.staff_action.trigger()
    staff = window.key_dialog
    assert isinstance(staff, StaffDialog)
    qtbot.waitUntil(lambda: staff.table.rowCount() > 0, timeout=10_000)
    staff.table.selectRow(0)
    yield "Staff", staff
    click(staff.other_roles_button)
    other = staff.child
    assert other is not None
    qtbot.waitUntil(other.isVisible)
    yield "Other roles", other
    other.reject()
    staff.reject()
    tools = workspace.admin_tools
    for name, act in (
        ("Break-glass reviews", tools.show_reviews),
        ("FHIR export and import", tools.show_fhir),
        ("Paired workstations", tools.show_workstations),
    ):
        act()
        dialog = tools.dialog
        assert dialog is not None
        qtbot.waitUntil(dialog.isVisible)
        yield name, dialog
        dialog.reject()


def test_tab_follows_every_form_top_to_bottom(qtbot: QtBot, signed_in: MainWindow) -> None:
    """Tab goes through each form's controls in the order a person reads them, top to
    bottom and left to right. Add staff member had Role after the two password fields:
    a password typed one field late chose a role (``a``: Admin)."""
    forms = itertools.chain(each_form(qtbot, signed_in), each_admin_screen(qtbot, signed_in))
    for name, dialog in forms:
        reached = tab_round(qtbot, dialog)
        out_of_order = [
            f"{named(a)} -> {named(b)}"
            for a, b in itertools.pairwise(reached)
            if not reads_before(a, b)
        ]
        assert not out_of_order, f"{name}: Tab goes back up: {out_of_order}"
        assert len(reached) >= 2, name


def test_escape_cancel_and_close_ask_before_a_typed_allergy_is_thrown_away(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    click(chart.add_allergy_button)
    dialog = chart.allergy_dialog
    assert isinstance(dialog, AllergyDialog)
    qtbot.waitUntil(dialog.substance.hasFocus)
    QTest.keyClicks(dialog.substance, "Penicillin")
    QTest.keyClick(dialog.substance, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.reaction, "hives")

    QTest.keyClick(dialog.reaction, Qt.Key.Key_Escape)
    box = discard_question(qtbot, dialog)
    assert {b.text() for b in box.buttons()} == {"Discard", "Keep editing"}
    keep = next(b for b in box.buttons() if b.text() == "Keep editing")
    assert box.defaultButton() is keep and box.escapeButton() is keep
    QTest.keyClick(box, Qt.Key.Key_Escape)  # Escape on the question: keep editing
    qtbot.waitUntil(lambda: asks_nothing(dialog))
    assert dialog.isVisible()
    assert (dialog.substance.text(), dialog.reaction.text()) == ("Penicillin", "hives")

    # Return on the question takes its default: Keep editing.
    click(dialog.buttons.button(dialog.buttons.StandardButton.Cancel))
    box = discard_question(qtbot, dialog)
    QTest.keyClick(box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: asks_nothing(dialog))
    assert dialog.isVisible() and dialog.reaction.text() == "hives"

    dialog.close()  # the window's close button
    answer_discard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and chart.allergy_dialog is dialog

    QTest.keyClick(dialog.reaction, Qt.Key.Key_Escape)
    answer_discard(qtbot, dialog)
    qtbot.waitUntil(lambda: chart.allergy_dialog is None)
    assert not signed_in.workstation.records.allergies(chart.patient.id)  # type: ignore[union-attr]

    # Opened again, the form is empty; untouched, Escape closes it at once.
    click(chart.add_allergy_button)
    again = chart.allergy_dialog
    assert isinstance(again, AllergyDialog) and again is not dialog
    assert (again.substance.text(), again.reaction.text()) == ("", "")
    qtbot.waitUntil(again.substance.hasFocus)
    QTest.keyClick(again.substance, Qt.Key.Key_Escape)
    assert asks_nothing(again)
    qtbot.waitUntil(lambda: chart.allergy_dialog is None)


def test_a_form_left_as_it_opened_closes_at_once(qtbot: QtBot, signed_in: MainWindow) -> None:
    chart = open_first_chart(qtbot, signed_in)
    click(chart.edit_button)
    dialog = chart.patient_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    before = dialog.phone.text()
    dialog.phone.setFocus()
    dialog.phone.end(False)
    QTest.keyClicks(dialog.phone, "9")
    QTest.keyClick(dialog.phone, Qt.Key.Key_Backspace)  # back as it was
    assert dialog.phone.text() == before
    QTest.keyClick(dialog.phone, Qt.Key.Key_Escape)
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: chart.patient_dialog is None)

    # A changed choice counts as typed: the edit asks.
    click(chart.edit_button)
    dialog = chart.patient_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    dialog.sex.setFocus()
    QTest.keyClick(dialog.sex, Qt.Key.Key_Down)
    click(dialog.buttons.button(dialog.buttons.StandardButton.Cancel))
    answer_discard(qtbot, dialog)
    qtbot.waitUntil(lambda: chart.patient_dialog is None)


def test_a_new_patient_with_an_mrn_and_phone_typed_asks_before_escape_drops_them(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    workspace = signed_in.workspace
    workspace.new_patient_action.trigger()
    dialog = workspace.patient_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    dialog.mrn.setFocus()
    QTest.keyClicks(dialog.mrn, "MRN-2001")
    QTest.keyClick(dialog.mrn, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.phone, "555 0101")
    QTest.keyClick(dialog.phone, Qt.Key.Key_Escape)
    answer_discard(qtbot, dialog, discard=False)
    assert (dialog.mrn.text(), dialog.phone.text()) == ("MRN-2001", "555 0101")
    QTest.keyClick(dialog.phone, Qt.Key.Key_Escape)
    answer_discard(qtbot, dialog)
    qtbot.waitUntil(lambda: workspace.patient_dialog is None)


def test_the_staff_forms_ask_and_clear_a_message_once_its_field_is_put_right(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    window = signed_in
    window.workspace.staff_action.trigger()
    staff = window.key_dialog
    assert isinstance(staff, StaffDialog)
    qtbot.waitUntil(lambda: staff.table.rowCount() > 0, timeout=10_000)
    click(staff.add_button)
    add = staff.child
    assert isinstance(add, AddStaffDialog)
    qtbot.waitUntil(add.isVisible)
    add.user.setFocus()
    QTest.keyClicks(add.user, "Sam O'Neil")
    QTest.keyClicks(add.full_name, "Sam O'Neil")
    add.role.setFocus()
    QTest.keyClick(add.role, Qt.Key.Key_Down)  # the first role on the list: Admin
    QTest.keyClick(add.role, Qt.Key.Key_Down)  # the next: Clinician (Admin asks first)
    QTest.keyClicks(add.new, "tulip window seventeen")
    QTest.keyClicks(add.confirm, "tulip window seventeen")
    click(add.save_button)
    error = add.errors["username"]
    qtbot.waitUntil(error.isVisible, timeout=10_000)
    assert "use 2-32 lower-case letters" in error.text()
    add.user.selectAll()
    QTest.keyClicks(add.user, "sam.oneil")
    assert not error.isVisible()  # the name is put right: the message about it is gone

    QTest.keyClick(add.user, Qt.Key.Key_Escape)  # a typed password and name: asks first
    answer_discard(qtbot, add)
    qtbot.waitUntil(lambda: staff.child is None)

    staff.table.selectRow(0)
    for button, kind in (
        (staff.role_button, RoleDialog),
        (staff.reset_button, ResetPasswordDialog),
    ):
        click(button)
        form = staff.child
        assert isinstance(form, kind)
        qtbot.waitUntil(form.isVisible)
        QTest.keyClick(form, Qt.Key.Key_Escape)  # untouched: closes at once
        assert asks_nothing(form)
        qtbot.waitUntil(lambda: staff.child is None)
    click(staff.role_button)
    role = staff.child
    assert isinstance(role, RoleDialog)
    qtbot.waitUntil(role.isVisible)
    role.role.setFocus()
    QTest.keyClick(role.role, Qt.Key.Key_Down)
    QTest.keyClick(role.role, Qt.Key.Key_Escape)
    answer_discard(qtbot, role, discard=False)
    assert role.isVisible()
    role.reject()
    staff.reject()


def test_an_open_question_goes_with_its_form_when_the_program_closes_it(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """A sign-out closes the forms (keeping drafts): it never asks, and leaves no question
    behind for the next person."""
    chart = open_first_chart(qtbot, signed_in)
    click(chart.add_allergy_button)
    dialog = chart.allergy_dialog
    assert isinstance(dialog, AllergyDialog)
    QTest.keyClicks(dialog.substance, "Latex")
    QTest.keyClick(dialog.substance, Qt.Key.Key_Escape)
    box = discard_question(qtbot, dialog)
    signed_in.sign_out()
    assert not dialog.isVisible() and not box.isVisible()
    assert not any(b.isVisible() for b in signed_in.findChildren(QMessageBox, "discardQuestion"))


def test_a_password_half_changed_is_not_dropped_unasked(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    signed_in.workspace.change_password_action.trigger()
    dialog = signed_in.key_dialog
    assert isinstance(dialog, ChangePasswordDialog)
    qtbot.waitUntil(dialog.isVisible)
    dialog.current.setFocus()
    QTest.keyClicks(dialog.current, "correct horse")
    QTest.keyClick(dialog.current, Qt.Key.Key_Escape)
    answer_discard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and dialog.current.text() == "correct horse"
    click(dialog.buttons.button(dialog.buttons.StandardButton.Cancel))
    answer_discard(qtbot, dialog)
    qtbot.waitUntil(lambda: signed_in.key_dialog is None)


def shown_errors(dialog: FormDialog | SavingDialog) -> dict[str, str]:
    """The field messages a form shows now, by field (a message two names share, by the
    first: a dose change's "stop" is its "start")."""
    errors: dict[str, QLabel] = dialog.errors
    shown: dict[str, str] = {}
    for field, label in errors.items():
        # A password's hint is always shown: a message once it refuses.
        said = label.refused() if isinstance(label, StrengthHint) else label.isVisible()
        if said and label not in [errors[f] for f in shown]:
            shown[field] = label.text()
    return shown


def test_every_form_says_all_that_is_wrong_at_once_and_starts_at_the_first(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """The tester's F3, for the other forms than registration (tests/ui/patients): one
    message at a time sent the person round the form once per mistake."""
    window = signed_in
    window.workspace.staff_action.trigger()
    staff = window.key_dialog
    assert isinstance(staff, StaffDialog)
    qtbot.waitUntil(lambda: staff.table.rowCount() > 0, timeout=10_000)
    click(staff.add_button)
    add = staff.child
    assert isinstance(add, AddStaffDialog)
    qtbot.waitUntil(add.isVisible)
    add.full_name.setFocus()
    QTest.keyClick(add.full_name, Qt.Key.Key_Return)  # Add, nothing typed
    assert shown_errors(add) == {
        "username": "Enter a user name.",
        "full_name": "Enter their full name.",
        "role": "Choose their role: it decides what they may do.",
        "password": "Enter a new password.",
    }
    assert add.focusWidget() is add.user and not add.working
    add.reject()
    staff.reject()

    window.workspace.change_password_action.trigger()
    change = window.key_dialog
    assert isinstance(change, ChangePasswordDialog)
    qtbot.waitUntil(change.isVisible)
    QTest.keyClicks(change.new, "tulip window seventeen")
    QTest.keyClicks(change.confirm, "tulip window seventeen!")
    QTest.keyClick(change.confirm, Qt.Key.Key_Return)
    assert shown_errors(change) == {
        "current": "Enter your current password.",
        "confirm": "The two new passwords are different. Type them again.",
    }
    assert change.focusWidget() is change.current and not change.working
    change.reject()

    chart = open_first_chart(qtbot, window)
    click(chart.add_allergy_button)
    allergy = chart.allergy_dialog
    assert isinstance(allergy, AllergyDialog)
    qtbot.waitUntil(allergy.isVisible)
    allergy.reaction.setFocus()
    QTest.keyClicks(allergy.reaction, "hives " * 40)
    QTest.keyClick(allergy.reaction, Qt.Key.Key_Return)
    assert shown_errors(allergy) == {
        "substance": "Substance is required.",
        "reaction": "Reaction is longer than 200 characters.",
    }
    assert allergy.focusWidget() is allergy.substance
    assert chart.patient is not None and chart.allergy_table.rowCount() == 0
    allergy.reject()

    medications = card_of(chart, MedicationsCard)
    click(medications.start_button)
    start = medications.dialog
    assert isinstance(start, MedicationDialog)
    qtbot.waitUntil(start.isVisible)
    fields = start.fields
    fields["start"].selectAll()
    QTest.keyClicks(fields["start"], "2024-02-30")
    QTest.keyClick(fields["start"], Qt.Key.Key_Return)
    errors = shown_errors(start)
    assert errors.keys() == {"name", "start"}
    assert errors["name"] == "Name is required."  # as core has always said it
    assert "February 2024 has 29 days" in errors["start"]
    assert start.focusWidget() is fields["name"]
    start.reject()
