"""Shared form rules: the mouse wheel scrolls a form, it never changes a value in it; a
dialog grown for a message gives the room back once the message goes; a number typed on a
closed choice box goes on to the field after it, as if Tab came first."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from PySide6.QtCore import QDate, Qt, QTime
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDateEdit,
    QDialog,
    QDoubleSpinBox,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTextEdit,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.widgets import (
    choose_deliberately,
    clear_when_edited,
    dialog_layout,
    error_label,
    guard_choices,
    ignore_wheel,
    input_value,
)
from tests.ui.conftest import POPUP_NOISE, press, type_at_the_keyboard, wheel


def test_the_wheel_scrolls_past_a_spin_box_instead_of_changing_it(qtbot: QtBot) -> None:
    area = QScrollArea()
    qtbot.addWidget(area)
    content = QWidget()
    layout = QVBoxLayout(content)
    guarded, plain = QSpinBox(), QSpinBox()
    for spin in (guarded, plain):
        spin.setValue(50)
        layout.addWidget(spin)
    layout.addSpacing(2_000)  # taller than the view: there is something to scroll
    area.setWidget(content)
    area.resize(200, 150)
    area.show()
    qtbot.waitExposed(area)
    ignore_wheel(guarded)

    wheel(plain)
    assert plain.value() == 49  # an unguarded spin box takes the wheel
    assert area.verticalScrollBar().value() == 0

    wheel(guarded, notches=-2)
    assert guarded.value() == 50
    assert area.verticalScrollBar().value() > 0  # the wheel scrolled the form instead


def test_a_message_put_right_gives_back_its_room_but_not_the_persons(qtbot: QtBot) -> None:
    """A dialog grown for a message goes back to its height once the message goes (a blank
    band stayed in its place); a height the person chose meanwhile is kept."""
    dialog = QDialog()
    qtbot.addWidget(dialog)
    field, error = QLineEdit(), error_label()
    clear_when_edited(field, error)
    dialog_layout(dialog, field, error, QPushButton("Save"))
    dialog.resize(420, dialog.sizeHint().height())
    dialog.show()
    qtbot.waitExposed(dialog)
    opened = dialog.height()

    error.setText("This message takes several lines in a narrow dialog. " * 4)
    error.show()
    grown = dialog.height()
    assert grown > opened
    field.setFocus()
    QTest.keyClicks(field, "x")  # the person puts it right: the message goes
    assert not error.isVisible()
    qtbot.waitUntil(lambda: dialog.height() == opened)

    error.show()
    assert dialog.height() == grown
    dialog.resize(dialog.width(), grown + 150)  # the person makes it taller
    QTest.keyClicks(field, "y")
    QApplication.sendPostedEvents()  # the layout's request, handled
    assert not error.isVisible() and dialog.height() == grown + 150


def type_in_clicked_list(qtbot: QtBot, box: QComboBox, typed: str) -> None:
    """The box clicked open, ``typed`` into its list, then Return, which closes it."""
    QTest.mouseClick(box, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(box.view().isVisible)
    QTest.keyClicks(box.view(), typed)
    QTest.keyClick(box.view(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not box.view().isVisible())


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the list opens
def test_a_letter_typed_in_a_list_opened_by_a_click_moves_to_its_item(qtbot: QtBot) -> None:
    """The import wizard's date format: a person clicks the box, types D and presses Return
    for DD/MM/YYYY. Swallowing that letter (as more letters are) left YYYY-MM-DD chosen
    and every row of the file refused."""
    box = QComboBox()
    box.addItems(["YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY"])
    qtbot.addWidget(box)
    choose_deliberately(box)
    box.show()
    qtbot.waitExposed(box)
    type_in_clicked_list(qtbot, box, "D")
    assert box.currentText() == "DD/MM/YYYY"
    # A word typed into the open list is no choice: Return keeps what was chosen.
    type_in_clicked_list(qtbot, box, "mm")
    assert box.currentText() == "DD/MM/YYYY"


def text_field(kind: str) -> QWidget:
    """A field of ``kind`` holding something (what Tab selects, or not, to type over)."""
    fields: dict[str, Callable[[], QWidget]] = {
        "line edit": lambda: QLineEdit("old"),
        "read-only line edit": lambda: QLineEdit("old", readOnly=True),
        "spin box": lambda: QSpinBox(value=50),
        "decimal spin box": lambda: QDoubleSpinBox(value=5.5),
        "time edit": lambda: QTimeEdit(QTime(9, 15)),
        "date edit": lambda: QDateEdit(QDate(2020, 5, 6)),
        "plain text": lambda: QPlainTextEdit("old"),
        "rich text": lambda: QTextEdit(plainText="old"),
        "button": lambda: QPushButton("Save"),
        "choice box": lambda: QComboBox(),
    }
    return fields[kind]()


def choice_then(
    qtbot: QtBot, field: QWidget, items: Sequence[str] = ("Female", "Male")
) -> tuple[QWidget, QComboBox, QWidget]:
    """A form of a choice box (``items``, the first chosen, guarded as every form's are)
    then ``field`` then a button, shown and active, the keyboard on the box. (The caller
    keeps the form: dropped, it is deleted with its fields.)"""
    form = QWidget()
    qtbot.addWidget(form)
    layout = QVBoxLayout(form)
    box = QComboBox()
    box.addItems(list(items))
    for widget in (box, field, QPushButton("Save")):
        layout.addWidget(widget)
    guard_choices(box, field)
    form.show()
    qtbot.waitExposed(form)
    form.activateWindow()
    qtbot.waitUntil(form.isActiveWindow)
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)
    return form, box, field


TAKE_TEXT = ["line edit", "spin box", "decimal spin box", "time edit", "date edit",
             "plain text", "rich text"]  # fmt: skip


@pytest.mark.parametrize("kind", TAKE_TEXT)
@pytest.mark.parametrize("typed", ["12", "-3", ".5"])
def test_a_number_typed_on_a_closed_choice_box_lands_as_after_a_tab(
    qtbot: QtBot, kind: str, typed: str
) -> None:
    """One Tab short, a number typed on a closed choice box opened its list, which took the
    rest of it. It goes on to the text field after the box instead, exactly as if Tab had
    been pressed first (what the field held selected and typed over where Tab selects it),
    and the box's choice stays."""
    _tabbed, box, field = choice_then(qtbot, text_field(kind))
    press(Qt.Key.Key_Tab)
    type_at_the_keyboard(typed)
    after_tab = input_value(field)
    assert QApplication.focusWidget() is field

    _form, box, field = choice_then(qtbot, text_field(kind))
    type_at_the_keyboard(typed)
    assert not box.view().isVisible(), f"{typed!r} opened the list"
    assert box.currentText() == "Female"
    assert QApplication.focusWidget() is field
    assert input_value(field) == after_tab


def test_a_keypad_number_on_a_closed_choice_box_goes_on_too(qtbot: QtBot) -> None:
    """A nurse types values on the numeric keypad: its digits go on as the others do."""
    _form, box, field = choice_then(qtbot, text_field("line edit"))
    for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_Period, Qt.Key.Key_5):
        QTest.keyClick(box, key, Qt.KeyboardModifier.KeypadModifier)
    assert isinstance(field, QLineEdit) and field.text() == "12.5"
    assert field.hasFocus() and box.currentText() == "Female" and not box.view().isVisible()


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the list opens
@pytest.mark.parametrize("kind", ["button", "choice box", "read-only line edit"])
def test_a_number_on_a_choice_box_before_no_text_field_opens_its_list(
    qtbot: QtBot, kind: str
) -> None:
    """Where the next stop takes no text (a button, another box, a field only shown), a
    number typed on the closed box is no value for it: the list opens, as for a letter,
    and a word after it chooses nothing."""
    _form, box, field = choice_then(qtbot, text_field(kind))
    held = input_value(field)
    type_at_the_keyboard("12")
    assert box.view().isVisible() and box.currentText() == "Female"
    press(Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not box.view().isVisible())
    assert box.currentText() == "Female" and input_value(field) == held


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the list opens
def test_a_digit_an_item_starts_with_opens_the_list_at_that_item(qtbot: QtBot) -> None:
    """In a box of numbers ("1 week", "30 minutes") a digit is a choice being made: the list
    opens at its item for Return to take, as a letter does in a box of words; a keypad
    digit too (Qt's own search chose "2 weeks" from it unasked)."""
    weeks = ("1 week", "2 weeks", "30 minutes")
    _form, box, field = choice_then(qtbot, text_field("line edit"), weeks)
    QTest.keyClick(box, Qt.Key.Key_2, Qt.KeyboardModifier.KeypadModifier)
    assert box.view().isVisible() and box.view().currentIndex().data() == "2 weeks"
    assert box.currentText() == "1 week"  # nothing chosen yet
    press(Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not box.view().isVisible())
    assert box.currentText() == "1 week" and input_value(field) == "old"
    box.setFocus()
    type_at_the_keyboard("3")
    assert box.view().isVisible() and box.view().currentIndex().data() == "30 minutes"
    press(Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not box.view().isVisible())
    assert box.currentText() == "30 minutes" and input_value(field) == "old"
    # A number no item starts with is a value one Tab short: on to the field.
    box.setFocus()
    type_at_the_keyboard("45")
    assert field.hasFocus() and input_value(field) == "45"
    assert box.currentText() == "30 minutes"
