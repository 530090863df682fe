"""Where keyboard focus is can be seen: the control Tab reached has a ring that neither an
unfocused control nor the primary (blue) button has. Checked on pictures of the real
widgets, grabbed as the screen draws them, with the app's stylesheet and font on."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from core.records.workstation import Workstation
from tests.ui.chart.test_chart_access import open_access, staffed  # noqa: F401 (a fixture)
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_visits import open_editor, start_walk_in, visits_tab
from tests.ui.conftest import WindowFactory, sign_in
from tests.ui.layout import shot

pytestmark = pytest.mark.usefixtures("styled")


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None
    return widget


def tab_to(widget: QWidget, limit: int = 20) -> None:
    """Press Tab until ``widget`` has focus, as a person does."""
    for _ in range(limit):
        if widget.hasFocus():
            return
        QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert widget.hasFocus(), f"Tab never reached {widget!r}"


def edge(widget: QWidget) -> QColor:
    """The colour one pixel in from the widget's left edge, half way down: its border (a
    ring two pixels wide covers it; a one-pixel border leaves the fill showing)."""
    QApplication.processEvents()
    image: QImage = widget.grab().toImage()
    return image.pixelColor(1, image.height() // 2)


def apart(one: QColor, other: QColor) -> int:
    """How different two colours look (the largest channel difference)."""
    return max(
        abs(one.red() - other.red()),
        abs(one.green() - other.green()),
        abs(one.blue() - other.blue()),
    )


def test_the_focused_button_of_a_dialog_is_not_mistaken_for_its_primary_one(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """The tester's picture: in the note editor, Close with focus (so the dialog's default,
    drawn blue) looked exactly like Sign note, the primary button; a keyboard user could not
    tell where Tab had gone."""
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Cough")
    editor = open_editor(qtbot, section)
    editor.activateWindow()
    qtbot.waitUntil(editor.isActiveWindow)
    close = editor.buttons.button(editor.buttons.StandardButton.Close)
    sign = editor.sign_button
    tab_to(close)
    shot(editor, "focus-on-close")
    assert apart(edge(close), edge(sign)) > 60  # Close has focus: a ring Sign note lacks
    tab_to(sign)
    shot(editor, "focus-on-sign")
    assert apart(edge(sign), edge(close)) > 60
    editor.reject()


def test_the_focused_control_on_a_page_has_a_ring_unlike_the_primary_button(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """On the schedule: Print day… and the clinician box with focus each show a ring that
    they lack without it and that Book appointment…, the primary button, never has."""
    page = signed_in.workspace.schedule
    assert page.action is not None
    page.action.trigger()
    qtbot.waitUntil(lambda: not page.loading(), timeout=5_000)
    signed_in.activateWindow()
    qtbot.waitUntil(signed_in.isActiveWindow)
    book, printing, clinician = page.book_button, page.print_button, page.clinician
    page.day_button.setFocus()
    unfocused = {w: edge(w) for w in (printing, clinician)}
    primary = edge(book)
    for widget in (clinician, printing):
        tab_to(widget)
        shot(signed_in, f"focus-on-{type(widget).__name__}")
        ring = edge(widget)
        assert apart(ring, unfocused[widget]) > 60, widget
        assert apart(ring, primary) > 60, widget
    tab_to(book)
    assert apart(edge(book), primary) > 60  # the primary button itself, focused


def differing(one: QImage, other: QImage) -> int:
    """How many pixels of two same-sized pictures differ clearly."""
    assert one.size() == other.size()
    return sum(
        1
        for x in range(one.width())
        for y in range(one.height())
        if apart(one.pixelColor(x, y), other.pixelColor(x, y)) > 60
    )


def test_a_focused_checkbox_has_a_ring(
    qtbot: QtBot,
    staffed: Workstation,  # noqa: F811 (the fixture imported above)
    make_window: WindowFactory,
) -> None:
    """The tester's a1z: Chart access opens with the keyboard on Restricted chart (Space
    ticks it), but nothing on the box said so. With focus it is drawn with a ring it lacks
    without."""
    window = make_window(staffed)
    sign_in(qtbot, window, "doc")
    chart = open_first_chart(qtbot, window)
    dialog = open_access(qtbot, chart)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    box = dialog.restricted
    tab_to(box)
    QApplication.processEvents()
    with_focus = box.grab().toImage()
    shot(dialog, "focus-on-checkbox")
    QTest.keyClick(box, Qt.Key.Key_Tab)
    assert not box.hasFocus()
    QApplication.processEvents()
    without = box.grab().toImage()
    assert differing(with_focus, without) > 40  # a ring, not a pixel or two
    dialog.reject()
