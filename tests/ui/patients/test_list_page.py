"""Patient list: lazy paging, debounced search off the GUI thread, stale results dropped."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.page import ChartPage
from app.main_window import MainWindow
from app.operations import Operations
from app.patients.list_page import PAGE_SIZE, PatientListModel
from core.records.models import PatientSummary
from core.records.workstation import Workstation
from tests.ui.conftest import BIG_CLINIC_SIZE, WindowFactory, sign_in


def shown_id(chart: ChartPage) -> str | None:
    return chart.patient.id if chart.patient is not None else None


def names(model: PatientListModel) -> list[str]:
    return [model.index(r, 0).data() for r in range(model.rowCount())]


def test_typing_filters_the_list(qtbot: QtBot, signed_in: MainWindow) -> None:
    page = signed_in.workspace.patient_list
    model = page.model
    assert model.rowCount() == 5
    QTest.keyClicks(page.search, "garc")
    qtbot.waitUntil(lambda: model.query == "garc" and not model.loading, timeout=5_000)
    assert names(model) == ["GARCIA, Luis", "GARCIA, Maria"]
    assert page.status.text() == "2 patients match “garc”"

    page.search.setText("MRN-1003")
    qtbot.waitUntil(lambda: model.query == "MRN-1003" and not model.loading, timeout=5_000)
    assert names(model) == ["OKAFOR, Chinedu"]
    row = [model.index(0, c).data() for c in range(model.columnCount())]
    assert row[1] == "1990-06-15" and row[4] == "MRN-1003"

    page.search.setText("zzzz")
    qtbot.waitUntil(lambda: model.query == "zzzz" and not model.loading, timeout=5_000)
    assert model.rowCount() == 0
    assert "No patients match “zzzz”" in page.status.text()

    page.search.clear()
    qtbot.waitUntil(lambda: model.query == "" and model.rowCount() == 5, timeout=5_000)


def test_a_birth_date_typed_as_the_readme_says_finds_the_patient(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """Maria Garcia was born 1984-03-02; 1984-3-2 and 19840302 (README: "Dates are year
    first: 1984-03-02, 1984-3-2 or 19840302") found nobody."""
    page = signed_in.workspace.patient_list
    model = page.model
    for typed in ("1984-3-2", "19840302", "1984-03-02", "garcia 1984-3-2"):
        page.search.setFocus()
        page.search.selectAll()
        QTest.keyClicks(page.search, typed)
        QTest.keyClick(page.search, Qt.Key.Key_Return)  # searches at once, into the list

        def found(typed: str = typed) -> bool:
            return model.query == typed and not model.loading

        qtbot.waitUntil(found, timeout=5_000)
        assert names(model) == ["GARCIA, Maria"], typed
        assert page.status.text() == f"1 patient matches “{typed}”"


def test_search_is_debounced(qtbot: QtBot, signed_in: MainWindow) -> None:
    page = signed_in.workspace.patient_list
    queries: list[str] = []
    page.model.query_finished.connect(queries.append)
    QTest.keyClicks(page.search, "okafor")  # six keystrokes, faster than the debounce
    qtbot.waitUntil(lambda: queries == ["okafor"], timeout=5_000)
    qtbot.wait(300)
    assert queries == ["okafor"]


def test_lazy_loading_a_page_at_a_time(
    qtbot: QtBot, big_clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(big_clinic)
    sign_in(qtbot, window)
    model = window.workspace.patient_list.model
    assert model.rowCount() == PAGE_SIZE
    root = QModelIndex()
    loaded = PAGE_SIZE
    while model.canFetchMore(root):
        model.fetchMore(root)
        assert not model.canFetchMore(root)  # one request at a time
        qtbot.waitUntil(lambda: not model.loading, timeout=5_000)
        assert model.rowCount() in (loaded + PAGE_SIZE, BIG_CLINIC_SIZE)
        loaded = model.rowCount()
    assert model.rowCount() == BIG_CLINIC_SIZE
    ids = [model.patient_id(r) for r in range(model.rowCount())]
    assert len(set(ids)) == BIG_CLINIC_SIZE  # no page fetched twice
    qtbot.waitUntil(
        lambda: window.workspace.patient_list.status.text() == "1,000 patients in the clinic"
    )


def test_scrolling_to_the_end_fetches_the_next_page(
    qtbot: QtBot, big_clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(big_clinic)
    sign_in(qtbot, window)
    table = window.workspace.patient_list.table
    model = window.workspace.patient_list.model
    table.scrollToBottom()
    qtbot.waitUntil(lambda: model.rowCount() > PAGE_SIZE, timeout=5_000)


def test_a_search_result_pages_too(
    qtbot: QtBot, big_clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(big_clinic)
    sign_in(qtbot, window)
    page = window.workspace.patient_list
    page.search.setText("testpatient")
    qtbot.waitUntil(lambda: page.model.query == "testpatient" and not page.model.loading)
    assert page.model.rowCount() == PAGE_SIZE
    assert page.model.canFetchMore(QModelIndex())
    assert page.status.text() == "200+ patients match “testpatient” (scroll for more)"


def summary(family: str) -> PatientSummary:
    return PatientSummary(family.lower(), family, "Test", "1970-01-01", None, None)


def test_results_of_an_older_query_are_dropped(qtbot: QtBot, operations: Operations) -> None:
    old_started, release_old = threading.Event(), threading.Event()

    def fetch(text: str, limit: int, offset: int) -> list[PatientSummary]:
        if text == "old":
            old_started.set()
            release_old.wait(5)
            return [summary("Stale")]
        return [summary("Fresh")]

    model = PatientListModel(operations, fetch, page_size=10)
    resets: list[list[str]] = []
    model.modelReset.connect(lambda: resets.append(names(model)))
    model.set_query("old")
    assert old_started.wait(5)  # the old query is running on the worker
    model.set_query("new")
    release_old.set()
    qtbot.waitUntil(lambda: names(model) == ["FRESH, Test"], timeout=5_000)
    qtbot.wait(50)
    assert ["STALE, Test"] not in resets
    assert names(model) == ["FRESH, Test"]
    assert model.query == "new"


def test_the_gui_thread_never_waits_for_a_slow_query(qtbot: QtBot, operations: Operations) -> None:
    release = threading.Event()

    def fetch(text: str, limit: int, offset: int) -> list[PatientSummary]:
        release.wait(5)
        return [summary("Slow")]

    model = PatientListModel(operations, fetch)
    started = time.monotonic()
    model.set_query("")
    assert time.monotonic() - started < 0.5
    assert model.loading and model.rowCount() == 0
    release.set()
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5_000)


def test_enter_and_double_click_open_the_chart(qtbot: QtBot, signed_in: MainWindow) -> None:
    workspace = signed_in.workspace
    table = workspace.patient_list.table
    model = workspace.patient_list.model
    table.setFocus()
    table.selectRow(2)
    expected = model.patient_id(2)
    QTest.keyClick(table, Qt.Key.Key_Return)
    assert workspace.pages.currentWidget() is workspace.chart
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    assert shown_id(workspace.chart) == expected

    QTest.mouseClick(workspace.chart.back_button, Qt.MouseButton.LeftButton)
    assert workspace.pages.currentWidget() is workspace.patient_list
    assert workspace.chart.patient is None
    rect = table.visualRect(model.index(0, 0))
    # QTest's double click needs the press a real double click starts with.
    QTest.mouseClick(
        table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
    )
    QTest.mouseDClick(
        table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
    )
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    assert shown_id(workspace.chart) == model.patient_id(0)


def test_down_from_the_search_box_moves_into_the_list(qtbot: QtBot, signed_in: MainWindow) -> None:
    page = signed_in.workspace.patient_list
    page.search.setFocus()
    QTest.keyClicks(page.search, "nguyen")
    QTest.keyClick(page.search, Qt.Key.Key_Down)  # searches at once, no debounce wait
    qtbot.waitUntil(lambda: page.model.query == "nguyen" and not page.model.loading)
    assert page.table.hasFocus()
    assert page.table.current_patient_id() == page.model.patient_id(0)
    assert names(page.model) == ["NGUYEN, Bao"]


def test_enter_in_the_search_box_opens_the_first_patient_found(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """README: "Ctrl+F goes to the patient search …, Enter opens the selected chart". It
    took two: the first Enter only moved into the list. Enter in the search box opens the
    first patient found; pressed before the search has run, it runs it and opens nothing
    (the row selected then was the earlier search's: another patient)."""
    workspace = signed_in.workspace
    page = workspace.patient_list
    QTest.keyClick(signed_in, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert page.search.hasFocus()
    QTest.keyClicks(page.search, "nguyen")
    QTest.keyClick(page.search, Qt.Key.Key_Return)  # at once: the search runs, no chart
    assert workspace.pages.currentWidget() is page and workspace.chart.patient is None
    qtbot.waitUntil(lambda: page.model.query == "nguyen" and not page.model.loading)
    assert names(page.model) == ["NGUYEN, Bao"] and page.search.hasFocus()
    QTest.keyClick(page.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    assert shown_id(workspace.chart) == page.model.patient_id(0)
    assert workspace.pages.currentWidget() is workspace.chart


def test_a_change_elsewhere_keeps_the_list_where_the_person_left_it(
    qtbot: QtBot, big_clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(big_clinic)
    sign_in(qtbot, window)
    page = window.workspace.patient_list
    model, table = page.model, page.table
    table.scrollToBottom()  # a second page loads
    qtbot.waitUntil(lambda: model.rowCount() > PAGE_SIZE and not model.loading, timeout=5_000)
    row = PAGE_SIZE + 5
    table.selectRow(row)
    chosen = model.patient_id(row)
    scrolled = table.verticalScrollBar().value()
    assert scrolled > 0
    # A colleague changes the first patient (as a sync would bring it): the list reloads.
    first = model.patient_id(0)
    big_clinic.records.update_patient(first, {"phone": "555 0199"})
    with qtbot.waitSignal(model.modelReset, timeout=5_000):
        window.operations.catch_up()
    qtbot.waitUntil(lambda: not model.loading, timeout=5_000)
    assert model.rowCount() > PAGE_SIZE  # the rows loaded are still there
    assert table.current_patient_id() == chosen
    assert table.verticalScrollBar().value() == scrolled
