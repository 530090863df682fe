"""Shared form rules: the mouse wheel scrolls a form, it never changes a value in it; a
dialog grown for a message gives the room back once the message goes."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.widgets import (
    choose_deliberately,
    clear_when_edited,
    dialog_layout,
    error_label,
    ignore_wheel,
)
from tests.ui.conftest import POPUP_NOISE, wheel


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
