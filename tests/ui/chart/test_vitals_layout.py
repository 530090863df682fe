"""The Vitals tab as a person sees it at the window's first size and on a 1024x740 laptop,
with the app's stylesheet and font: the readings show whole rows, every value and caption of
the form fits whatever unit is chosen, and a negative value is named as out of range."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QLineEdit,
    QScrollArea,
    QStyle,
    QStyleOptionComboBox,
    QStyleOptionFrame,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.chart.vitals import VitalsSection
from app.main_window import MainWindow
from core.records.visits import Visits
from core.records.workstation import Workstation
from tests.ui.chart.test_vitals import open_vitals, record, type_into
from tests.ui.conftest import ADMIN, DEFAULT_SIZE, PASSWORD, POPUP_NOISE, SMALL
from tests.ui.layout import assert_whole, open_popup_rows, rect_in, shot
from tests.ui.session.test_shared_workstation import click_sign_out, signs_in

pytestmark = pytest.mark.usefixtures("styled")

SIZES = {"first size": DEFAULT_SIZE, "1024x740": (SMALL.width(), SMALL.height())}


def in_view(section: VitalsSection, widget: QWidget) -> bool:
    """Whether ``widget`` of the Vitals form shows whole: a field inside the part that
    scrolls, the heading and Record vitals inside the form's card, on the page."""
    area = section.form_scroll
    if area.isAncestorOf(widget):
        return area.viewport().rect().contains(rect_in(widget, area.viewport()))
    card = area.parentWidget()
    assert card is not None and card.isAncestorOf(widget)
    page = section.page
    return card.rect().contains(rect_in(widget, card)) and page.rect().contains(
        rect_in(widget, page)
    )


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_the_readings_show_whole_rows(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, size: tuple[int, int]
) -> None:
    """The tester's picture: under the trend, the Readings table showed a sliver of its one
    row. It keeps room for a few whole rows below its header and scroll bar."""
    signed_in.resize(*size)
    _, section = open_vitals(qtbot, signed_in)
    for pulse in ("72", "75", "80"):
        record(qtbot, section, clinic, pulse)
    table = section.table
    qtbot.waitUntil(lambda: table.rowCount() == 3, timeout=5_000)
    section.plot_choice.setCurrentIndex(section.plot_choice.findData("pulse"))
    QApplication.processEvents()
    assert section.plot.isVisible()  # the trend shares the height with the readings
    shot(signed_in, f"vitals-readings-{size[0]}x{size[1]}")
    assert (signed_in.width(), signed_in.height()) == size
    rows = sum(table.rowHeight(r) for r in range(3))
    assert table.viewport().height() >= rows, f"{table.viewport().height()} < {rows} pixels"
    # The trend above gave up height for them, and shows whole too.
    plot, card = section.plot, section.plot.parentWidget()
    assert card is not None
    assert plot.height() >= plot.minimumHeight() > 0
    assert card.rect().contains(plot.geometry())


@pytest.mark.qt_log_ignore(POPUP_NOISE)
def test_the_visit_list_opens_showing_every_choice(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, small_screen: None
) -> None:
    """The tester's picture: the Visit box's list opened a row and a half tall with scroll
    arrows, for its two choices. It shows both whole."""
    signed_in.resize(SMALL.width(), SMALL.height())
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Visits(clinic.records).start(patient_id, "Cough")
    _, section = open_vitals(qtbot, signed_in)
    assert section.visit.count() == 2  # the open visit, and "Not in a visit"
    shown, needed = open_popup_rows(section.visit)
    shot(section.visit.view().window(), "vitals-visit-list")
    section.visit.hidePopup()
    assert shown >= needed, f"the list shows {shown} of the {needed} pixels its rows need"


@pytest.mark.usefixtures("small_screen")
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_with_the_banners_the_caption_clears_the_plot_and_three_readings_show_whole(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, size: tuple[int, int]
) -> None:
    """The tester's pictures: with the allergy banner and the "form was restored" notice
    the page lacked height, the trend (held at its minimum) ran under its caption, drawn
    over the time axis, and the scroll bar covered the third reading. Now the caption is
    clear of the plot and three readings show whole above the scroll bar."""
    signed_in.resize(*size)
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    clinic.records.add_allergy(patient_id, "Penicillin", "Rash", "moderate")
    chart, section = open_vitals(qtbot, signed_in)
    for n in range(7):
        type_into(qtbot, section.fields["systolic"].edit, str(120 + n))
        type_into(qtbot, section.fields["diastolic"].edit, str(80 + n))
        record(qtbot, section, clinic, str(70 + n))
    type_into(qtbot, section.fields["systolic"].edit, "120")
    click_sign_out(signed_in)
    signs_in(qtbot, signed_in, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: section.fields["systolic"].edit.text() == "120", timeout=5_000)
    assert signed_in.workspace.notice.isVisible()
    assert chart.allergy_banner.isVisible()
    table = section.table
    qtbot.waitUntil(lambda: table.rowCount() == 7, timeout=5_000)
    section.plot_choice.setCurrentIndex(section.plot_choice.findData("bp"))
    QApplication.processEvents()
    shot(signed_in, f"vitals-banners-{size[0]}x{size[1]}")
    page = section.widget()
    caption, plot = rect_in(section.plot_caption, page), rect_in(section.plot, page)
    assert section.plot_caption.isVisible()
    assert not caption.intersects(plot), f"caption {caption} over the plot {plot}"
    assert caption.width() >= section.plot_caption.sizeHint().width()  # its words whole
    card = section.plot.parentWidget()
    assert card is not None and card.rect().contains(section.plot.geometry())
    rows = sum(table.rowHeight(r) for r in range(3))
    # The columns fit at the window's first size; at 1024 they scroll sideways.
    assert table.horizontalScrollBar().isVisible() is (size == SIZES["1024x740"])
    assert table.viewport().height() >= rows, f"{table.viewport().height()} < {rows} pixels"


def test_at_the_first_size_the_form_the_visit_and_every_reading_column_show_whole(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's pictures at 1280x800 (the window 1120x740): the Readings table needed
    sideways scrolling (Height cut, BMI and Pain off the edge), the Visit box cut the
    visit's reason ("2026-12-06 04:57 F"), and the form, scrolled to the field reached by
    Tab, had its "Record vital signs" heading cut off. With the allergy banner every chart
    shows, a whole set recorded in °F, lb and in from the keyboard shows whole."""
    signed_in.resize(*DEFAULT_SIZE)
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Visits(clinic.records).start(patient_id, "Follow-up")
    chart, section = open_vitals(qtbot, signed_in)
    assert chart.allergy_banner.isVisible()
    f = section.fields
    values = {"systolic": "120", "diastolic": "80", "pulse": "70", "temperature": "102.4",
              "respiratory_rate": "16", "spo2": "98", "weight": "154.5", "height": "67.5",
              "pain": "4"}  # fmt: skip
    QTest.mouseClick(section.observed_at, Qt.MouseButton.LeftButton)
    for widget in section.tab_order[1:]:  # Tab down the form, as a nurse does
        QTest.keyClick(QApplication.focusWidget() or section.page, Qt.Key.Key_Tab)
        assert QApplication.focusWidget() is widget
        key = next((k for k, field in f.items() if field.edit is widget), None)
        if key is not None:
            QTest.keyClicks(widget, values[key])
        elif widget is not section.visit and widget is not section.record_button:
            QTest.keyClick(widget, Qt.Key.Key_Down)  # °F, lb, in
    QTest.keyClick(section.record_button, Qt.Key.Key_Space)
    table = section.table
    qtbot.waitUntil(lambda: table.rowCount() == 1, timeout=5_000)
    QApplication.processEvents()
    shot(signed_in, "vitals-whole-set-1120x740")
    row = [table.item(0, c).text() for c in range(table.columnCount())]  # type: ignore[union-attr]
    assert row[1:] == ["120/80", "70", "102.4 °F ▲", "16", "98", "154.5 lb", "67.5 in",
                       "23.8", "4"]  # fmt: skip
    assert not table.horizontalScrollBar().isVisible()
    assert table.horizontalHeader().length() <= table.viewport().width()
    # The form is not scrolled: its heading shows, and every field under it.
    area = section.page.findChild(QScrollArea, "vitalsFormScroll")
    assert area is not None and area.verticalScrollBar().value() == 0
    heading = next(
        label for label in section.page.findChildren(QLabel, "cardHeading")
        if label.text() == "Record vital signs"
    )  # fmt: skip
    for widget in (heading, section.record_button, f["pain"].edit):
        assert in_view(section, widget), widget
    # Today's visit by its time and reason, whole; the date is in its tooltip.
    visit = section.visit
    assert visit.currentText() == f"{visit.toolTip()[11:16]} Follow-up"
    assert visit.toolTip().startswith(section.observed_at.text()[:10])
    option = QStyleOptionComboBox()
    visit.initStyleOption(option)
    field = visit.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, visit
    )
    needed = visit.fontMetrics().horizontalAdvance(visit.currentText())
    assert needed <= field.width(), f"{visit.currentText()!r}: {needed} > {field.width()}"


def shown_width(edit: QLineEdit) -> int:
    """The pixels a line edit has for its text: inside its border and padding (as the
    stylesheet draws them) and Qt's own two-pixel margin each side."""
    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    rect = edit.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    margins = edit.textMargins()
    return rect.width() - margins.left() - margins.right() - 2 * 2


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_values_and_captions_fit_whatever_unit_is_chosen(
    qtbot: QtBot, signed_in: MainWindow, size: tuple[int, int]
) -> None:
    """With °F and lb chosen the value boxes narrowed ("101.2" read "01.2") and captions
    were cut ("Respiratory ra"): every box holds its longest value, every caption shows."""
    signed_in.resize(*size)
    _, section = open_vitals(qtbot, signed_in)
    longest = {"temperature": "113.0", "weight": "1102.3", "height": "102.4"}
    for key, value in longest.items():
        unit = section.fields[key].unit
        assert unit is not None
        unit.setFocus()
        QTest.keyClick(unit, Qt.Key.Key_Down)  # the other unit, as from the keyboard
        assert unit.currentIndex() == 1
        type_into(qtbot, section.fields[key].edit, value)
    QTest.keyClick(section.fields["height"].edit, Qt.Key.Key_Tab)  # checked on leaving
    QApplication.processEvents()
    shot(signed_in, f"vitals-other-units-{size[0]}x{size[1]}")
    for key, field in section.fields.items():
        edit = field.edit
        text = longest.get(key, "000")
        needed = edit.fontMetrics().horizontalAdvance(text)
        assert shown_width(edit) >= needed, f"{key}: {shown_width(edit)} < {needed} pixels"
        if field.unit is not None:
            needed = field.unit.fontMetrics().horizontalAdvance(field.unit.currentText())
            assert field.unit.width() >= needed, key
        if field.hint.isVisible():
            assert_whole(field.hint)
    form = section.record_button.window()
    captions = [
        label
        for label in form.findChildren(QLabel, "caption")
        if label.isVisible() and section.page.isAncestorOf(label)
    ]
    assert len(captions) >= 10
    for label in captions:
        assert_whole(label)


def test_a_negative_weight_is_out_of_range_in_the_unit_chosen(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """'-5' is a number: the message says the weight is out of range and names the range
    in the unit chosen, not that it is not a number."""
    _, section = open_vitals(qtbot, signed_in)
    field = section.fields["weight"]
    type_into(qtbot, field.edit, "-5")
    QTest.keyClick(field.edit, Qt.Key.Key_Tab)
    assert field.message.isVisible()
    assert "not a number" not in field.message.text()
    assert "-5 kg is not possible: must be 0.2 to 500 kg" in field.message.text()
    unit = field.unit
    assert unit is not None
    unit.setFocus()
    QTest.keyClick(unit, Qt.Key.Key_Down)  # lb: checked again in the new unit
    assert "-5 lb is not possible: must be 0.4 to 1102.3 lb (0.2 to 500 kg)" in (
        field.message.text()
    )


def test_a_temperature_put_right_by_its_unit_shows_its_celsius_under_the_value(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """The tester's shot 89: 99 refused as °C on Record, °F chosen; the message stayed (it
    was taken for one about the whole set) or, gone, left its room above "= 37.22 °C",
    which sat under two blank lines. The message goes once the unit makes the value right,
    and the hint is under the value, the kept room below it."""
    signed_in.resize(*DEFAULT_SIZE)
    _, section = open_vitals(qtbot, signed_in)
    temperature = section.fields["temperature"]
    type_into(qtbot, temperature.edit, "99")
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    assert temperature.message.isVisible() and "99 °C is not possible" in (
        temperature.message.text()
    )
    unit = temperature.unit
    assert unit is not None
    assert temperature.edit.hasFocus()  # the field in error
    QTest.keyClick(temperature.edit, Qt.Key.Key_Tab)
    assert unit.hasFocus()
    QTest.keyClick(unit, Qt.Key.Key_Down)
    assert unit.currentText() == "°F"
    QApplication.processEvents()
    shot(signed_in, "vitals-hint-after-unit-fix")
    assert not temperature.message.isVisible()
    assert temperature.hint.isVisible() and temperature.hint.text() == "= 37.22 °C"
    page = section.page
    gap = rect_in(temperature.hint, page).top() - rect_in(temperature.edit, page).bottom()
    assert 0 <= gap < temperature.hint.height(), f"{gap} pixels between the value and its hint"


TESTERS_MISTAKES = {"systolic": "1280", "diastolic": "82", "pulse": "88", "temperature": "100.4",
                    "respiratory_rate": "18", "spo2": "97", "weight": "72,5", "height": "5ft6",
                    "pain": "11"}  # fmt: skip


def test_after_refused_entries_the_field_in_error_shows_whole_and_corrections_move_nothing(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's run at the first size: five entries refused, the keyboard went to
    Systolic with the form scrolled so that the box was half cut off at the top, and each
    correction hid its message and moved the rows below it up, under the mouse (a click
    aimed at the °C box landed on a message line)."""
    signed_in.resize(*DEFAULT_SIZE)
    _, section = open_vitals(qtbot, signed_in)
    f = section.fields
    # Down the form with Tab, as the tester did: each refusal shows as the field is left,
    # and the form scrolls to keep the field reached in view.
    QTest.mouseClick(f["systolic"].edit, Qt.MouseButton.LeftButton)
    for widget in section.tab_order[section.tab_order.index(f["systolic"].edit) :]:
        assert QApplication.focusWidget() is widget
        key = next((k for k, field in f.items() if field.edit is widget), None)
        if key == "pain":
            QTest.keyClicks(widget, TESTERS_MISTAKES[key])
            QTest.keyClick(widget, Qt.Key.Key_Return)
            break
        if key is not None:
            QTest.keyClicks(widget, TESTERS_MISTAKES[key])
        QTest.keyClick(widget, Qt.Key.Key_Tab)
    assert [k for k, field in f.items() if field.message.isVisible()] == [
        "systolic", "temperature", "weight", "height", "pain"
    ]  # fmt: skip
    assert f["systolic"].edit.hasFocus()
    area = section.page.findChild(QScrollArea, "vitalsFormScroll")
    assert area is not None
    QApplication.processEvents()  # the layout's pass, which scrolled the field half away
    viewport = area.viewport().rect()
    for widget in (f["systolic"].edit, f["systolic"].message):
        assert viewport.contains(rect_in(widget, area.viewport())), widget

    # Each correction leaves the rows below where they were.
    page = section.page
    unit = f["temperature"].unit
    assert unit is not None
    where: dict[QWidget, QRect] = {w: rect_in(w, page) for w in (unit, f["pain"].edit)}
    for key, good in (("systolic", "128"), ("weight", "72.5"), ("height", "167")):
        type_into(qtbot, f[key].edit, good)
        QApplication.processEvents()
        assert not f[key].message.isVisible()
        for widget, rect in where.items():
            assert rect_in(widget, page) == rect, f"{widget.objectName()} moved after {key}"
    # Recorded, the form gives the room back.
    type_into(qtbot, f["temperature"].edit, "38")
    type_into(qtbot, f["pain"].edit, "3")
    QTest.keyClick(f["pain"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    QApplication.processEvents()
    gap = rect_in(f["pulse"].edit, page).top() - rect_in(f["systolic"].edit, page).bottom()
    assert gap < f["pulse"].edit.height()


# A 1024x740 laptop screen leaves the window about 1008x700 (the tester's measure).
LAPTOP_WINDOW = (1008, 700)


@pytest.mark.parametrize("size", [DEFAULT_SIZE, LAPTOP_WINDOW], ids=["first size", "laptop"])
def test_the_form_and_record_vitals_show_whole_without_scrolling_on_a_laptop_too(
    qtbot: QtBot, signed_in: MainWindow, size: tuple[int, int]
) -> None:
    """The tester's D7: at 1024x740 (the window 1008x700) "Record vitals" showed only its
    top half and the form scrolled; under the demo clinic's banner it scrolled at the
    first size too. With the allergy banner, the whole form and the button show, and the
    form has nothing to scroll, in a window 700 pixels tall (the demo's banner takes less
    than the 40 pixels a laptop's screen does)."""
    signed_in.resize(*size)
    chart, section = open_vitals(qtbot, signed_in)
    assert chart.allergy_banner.isVisible()
    QApplication.processEvents()
    assert (signed_in.width(), signed_in.height()) == size
    area = section.page.findChild(QScrollArea, "vitalsFormScroll")
    assert area is not None
    assert area.verticalScrollBar().maximum() == 0
    heading = next(
        label for label in section.page.findChildren(QLabel, "cardHeading")
        if label.text() == "Record vital signs"
    )  # fmt: skip
    for widget in (
        heading,
        section.observed_at,
        section.fields["pain"].edit,
        section.record_button,
    ):
        assert in_view(section, widget), widget
    # Focused, a tighter field keeps its size and place: the ring comes out of its padding.
    weight = section.fields["weight"]
    assert weight.unit is not None
    unfocused = [rect_in(w, area.viewport()) for w in (weight.edit, weight.unit)]
    QTest.mouseClick(weight.edit, Qt.MouseButton.LeftButton)
    QApplication.processEvents()
    assert weight.edit.hasFocus()
    assert rect_in(weight.edit, area.viewport()) == unfocused[0]
    QTest.keyClick(weight.edit, Qt.Key.Key_Tab)
    QApplication.processEvents()
    assert weight.unit.hasFocus()
    assert rect_in(weight.unit, area.viewport()) == unfocused[1]


@pytest.mark.parametrize("size", [LAPTOP_WINDOW, (1024, 700)], ids=["1008x700", "1024x700"])
def test_under_the_demo_banner_in_a_700_pixel_window_record_vitals_stays_in_view(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, size: tuple[int, int]
) -> None:
    """The tester's D6: at 1024x700 under the demo clinic's banner, on a chart with a long
    accented name, the whole form scrolled and Record vitals was half cut off. The form's
    heading and Record vitals stay in view; the fields between them scroll, Tab brings each
    into view, and Return records the set."""
    patient = clinic.records.add_patient("D'ARCY-NÚÑEZ DE LA CONCEPCIÓN", "Zoë Anaïs", "1990-04-02")
    signed_in.resize(*size)
    signed_in.workspace.demo_banner.show()  # what a demo session shows (DEMO — sample data)
    workspace = signed_in.workspace
    workspace.open_chart(patient.id)
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    chart = workspace.chart
    section = next(s for s in chart.sections if isinstance(s, VitalsSection))
    bar = chart.tabs.tabBar()
    index = next(i for i in range(chart.tabs.count()) if chart.tabs.tabText(i) == "Vitals")
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    qtbot.waitUntil(section.record_button.isEnabled, timeout=5_000)
    QApplication.processEvents()
    shot(signed_in, f"vitals-demo-banner-{size[0]}x{size[1]}")
    assert (signed_in.width(), signed_in.height()) == size
    assert workspace.demo_banner.isVisible() and chart.allergy_banner.isVisible()
    heading = next(
        label for label in section.page.findChildren(QLabel, "cardHeading")
        if label.text() == "Record vital signs"
    )  # fmt: skip
    for shown in (heading, section.observed_at, section.record_button):
        assert in_view(section, shown), shown
    # Down the form from the keyboard: each field scrolls into view as it is reached.
    QTest.mouseClick(section.observed_at, Qt.MouseButton.LeftButton)
    for widget in section.tab_order[1:-1]:
        QTest.keyClick(QApplication.focusWidget() or section.page, Qt.Key.Key_Tab)
        assert QApplication.focusWidget() is widget
        QApplication.processEvents()
        assert in_view(section, widget), widget.objectName()
    pain = section.fields["pain"].edit
    assert pain.hasFocus()
    shot(signed_in, f"vitals-demo-banner-pain-{size[0]}x{size[1]}")
    for shown in (heading, section.record_button):
        assert in_view(section, shown), shown
    QTest.keyClicks(pain, "3")
    QTest.keyClick(pain, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    # The next set's time shows: the form is back at its top (it stayed scrolled to Pain,
    # "Measured at" cut off above, the tester's shot 91), nothing shifted sideways.
    QApplication.processEvents()
    shot(signed_in, f"vitals-demo-banner-recorded-{size[0]}x{size[1]}")
    area = section.form_scroll
    assert area.verticalScrollBar().value() == 0
    assert area.horizontalScrollBar().value() == 0
    for shown in (heading, section.observed_at, section.fields["systolic"].edit):
        assert in_view(section, shown), shown
    assert section.fields["systolic"].edit.hasFocus()
