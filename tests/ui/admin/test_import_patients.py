"""Settings → Import patients…, driven as an admin moving a clinic in does: choose the file,
map the column the wizard did not recognise and the date format, read the dry run's
problems, import on the worker with a progress bar, read the summary."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QStyle, QStyleOptionComboBox, QTableWidget
from pytestqt.qtbot import QtBot

from app.admin.import_patients import ImportPatientsDialog
from app.main import stylesheet
from app.main_window import MainWindow
from core.records.import_rows import FIELD_LABELS
from tests.ui.conftest import answer_discard_by_keyboard, asks_nothing

LIST = (
    "Surname;First name;DN;Sex;Allergies\n"  # DN: a header the wizard does not know
    "Haddad;Rami;05/06/1955;M;Penicillin; Latex\n"  # the separator is ';' too: quoted below
    "Lefèvre;Zoé;31/02/1984;F;\n"  # there is no 31 February
    "Tanaka;Yuki;07/08/2001;F;NKA\n"
)


def _wizard(window: MainWindow) -> ImportPatientsDialog:
    """Admin → Import patients…, opened."""
    window.workspace.admin_tools.import_action.trigger()
    dialog = window.workspace.admin_tools.dialog
    assert isinstance(dialog, ImportPatientsDialog)
    return dialog


def _text(table: QTableWidget, row: int, column: int) -> str:
    item = table.item(row, column)
    return item.text() if item is not None else ""


def test_an_admin_imports_a_patient_list(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    csv = tmp_path / "list.csv"
    csv.write_bytes(LIST.replace("Penicillin; Latex", '"Penicillin, Latex"').encode("cp1252"))
    tools = signed_in.workspace.admin_tools
    assert tools.import_action.isVisible()
    dialog = _wizard(signed_in)

    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)  # no file yet
    assert dialog.error.isVisible() and "Choose the CSV file" in dialog.error.text()
    dialog.path.setText(str(csv))
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.MAPPING, timeout=5_000)
    assert "3 rows, 5 columns, read as Windows-1252" in dialog.file_summary.text()
    preview = dialog.preview
    assert preview.rowCount() == 4  # the combos' row, then the first rows
    assert _text(preview, 1, 0) == "Haddad" and _text(preview, 2, 1) == "Zoé"
    cells = [preview.cellWidget(0, c) for c in range(5)]
    assert cells == dialog.combos and all(isinstance(c, QComboBox) for c in cells)
    combos = dialog.combos
    assert [c.currentData() for c in combos] == [
        "family", "given", "ignore", "sex", "allergies",
    ]  # fmt: skip
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)  # no birth date column
    assert dialog.error.text() == "No column is mapped to Birth date."
    assert dialog.pages.currentIndex() == dialog.MAPPING
    combos[2].setCurrentIndex(combos[2].findData("birth_date"))
    dialog.separator.setText(",")
    # The default, year first, reads none of these dates: the dry run says so for each.
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.CHECK, timeout=5_000)
    assert dialog.problems.rowCount() == 3 and not dialog.next_button.isEnabled()
    QTest.mouseClick(dialog.back_button, Qt.MouseButton.LeftButton)
    dialog.date_format.setCurrentIndex(dialog.date_format.findData("DD/MM/YYYY"))
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: dialog.pages.currentIndex() == dialog.CHECK and dialog.problems.rowCount() == 1,
        timeout=5_000,
    )
    problems = dialog.problems
    assert [_text(problems, 0, c) for c in range(3)] == ["3", "DN", "31/02/1984"]
    assert "February 1984 has 29 days" in _text(problems, 0, 3)
    assert "2 to import, 0 already present, 1 row" in dialog.check_summary.text()
    assert dialog.next_button.text() == "Import 2 patients"

    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.SUMMARY, timeout=10_000)
    assert dialog.progress.value() == dialog.progress.maximum() == 2
    assert dialog.summary.text().startswith("Imported 2 patients (2 allergies).")
    # The row left out is listed with why, to fix in the spreadsheet, quoted as typed.
    left_out = dialog.left_out
    assert left_out.isVisibleTo(dialog) and left_out.rowCount() == 1
    assert [_text(left_out, 0, c) for c in range(3)] == ["3", "DN", "31/02/1984"]
    assert "February 1984 has 29 days" in _text(left_out, 0, 3)
    records = signed_in.workstation.records
    haddad = records.search_patients("Haddad Rami")
    assert [(p.birth_date, p.sex) for p in haddad] == [("1955-06-05", "male")]
    assert sorted(a.substance for a in records.allergies(haddad[0].id)) == ["Latex", "Penicillin"]
    assert records.search_patients("Lefèvre") == []


def test_stop_import_ends_it_between_batches_and_says_what_was_imported(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    """Stop during the import: the worker ends after the batch it is writing (each batch one
    transaction, so no patient is half-written), the summary says how many rows were left,
    and what was imported is in the clinic."""
    rows = [f"Family{i:03d},Given,19{50 + i % 50:02d}-01-{1 + i % 28:02d}" for i in range(80)]
    csv = tmp_path / "list.csv"
    csv.write_text("Family,Given,DOB\n" + "\n".join(rows) + "\n", encoding="utf-8")
    database = signed_in.workstation.database
    before = database.query("SELECT count(*) FROM patients")[0][0]
    dialog = _wizard(signed_in)
    dialog.BATCH_ROWS = 2
    dialog.path.setText(str(csv))
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.MAPPING, timeout=5_000)
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.CHECK, timeout=10_000)
    assert dialog.plan is not None and len(dialog.plan.to_add) == 80

    def stop_once(done: int, _total: int) -> None:
        if done and dialog.close_button.isEnabled():
            QTest.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)

    dialog._progress.moved.connect(stop_once)
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    assert dialog.close_button.text() == "Stop import"
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.SUMMARY, timeout=30_000)
    result = dialog.outcome
    assert result is not None and result.cancelled
    assert 0 < result.added < 80 and result.added % 2 == 0  # whole batches only
    assert result.rows_left == 80 - result.added
    assert dialog.summary.text().startswith(f"Stopped on request: {result.rows_left} rows")
    added = database.query("SELECT count(*) FROM patients")[0][0] - before
    assert added == result.added
    assert dialog.close_button.text() == "Close"
    QTest.keyClick(dialog, Qt.Key.Key_Escape)  # the summary: nothing left to lose
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: signed_in.workspace.admin_tools.dialog is None)


def test_a_chosen_file_and_mapping_are_not_dropped_unasked(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("Surname,First name,DOB\nHaddad,Rami,1955-06-05\n", encoding="utf-8")
    before = signed_in.workstation.database.query("SELECT count(*) FROM patients")[0][0]
    tools = signed_in.workspace.admin_tools
    dialog = _wizard(signed_in)
    qtbot.waitExposed(dialog)
    QTest.keyClick(dialog.path, Qt.Key.Key_Escape)  # nothing typed: closes at once
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: tools.dialog is None)

    dialog = _wizard(signed_in)
    qtbot.waitExposed(dialog)
    dialog.path.setFocus()
    QTest.keyClicks(dialog.path, str(csv))
    QTest.keyClick(dialog.path, Qt.Key.Key_Escape)
    answer_discard_by_keyboard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and dialog.path.text() == str(csv)
    QTest.keyClick(dialog.path, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.MAPPING, timeout=5_000)
    dialog.separator.setFocus()
    dialog.separator.selectAll()
    QTest.keyClicks(dialog.separator, "|")
    QTest.keyClick(dialog.separator, Qt.Key.Key_Escape)
    answer_discard_by_keyboard(qtbot, dialog, discard=False)
    assert dialog.pages.currentIndex() == dialog.MAPPING and dialog.separator.text() == "|"
    QTest.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)  # Cancel
    answer_discard_by_keyboard(qtbot, dialog)
    qtbot.waitUntil(lambda: tools.dialog is None)
    assert signed_in.workstation.database.query("SELECT count(*) FROM patients")[0][0] == before


def test_return_after_choosing_the_file_goes_on_and_the_field_names_read_whole(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    # Return pressed the Choose… button (the dialog's first button) and opened the file
    # dialog again; the column combos were cut to their column's width ("Family nar").
    csv = tmp_path / "list.csv"
    # Short headings make narrow columns, as in a real practice's export.
    csv.write_text(
        "Surname,First name,DOB,Sex\nHaddad,Rami,05/06/1955,M\nTanaka,Yuki,07/08/2001,F\n",
        encoding="utf-8",
    )
    dialog = _wizard(signed_in)
    assert dialog.next_button.isDefault()
    # The app's stylesheet (its padding is what cut the names), on this dialog only.
    dialog.setStyleSheet(stylesheet())
    dialog.path.setText(str(csv))
    QTest.keyClick(dialog.path, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.MAPPING, timeout=5_000)
    dialog.show()
    qtbot.waitExposed(dialog)
    for column, combo in enumerate(dialog.combos):
        assert dialog.preview.columnWidth(column) >= combo.sizeHint().width()
        # Shown, each combo is wide enough for the longest field name and its arrow.
        # Where the style draws the text (inside the stylesheet's padding, beside the
        # arrow), not the combo's outer width: the outer width passed while the real app
        # under X still showed "Family nam".
        option = QStyleOptionComboBox()
        combo.initStyleOption(option)
        field = combo.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox,
            option,
            QStyle.SubControl.SC_ComboBoxEditField,
            combo,
        )
        longest = max(combo.fontMetrics().horizontalAdvance(t) for t in FIELD_LABELS.values())
        assert field.width() >= longest, (column, field.width(), longest)
        # ... and its row is tall enough for it (the text was cut at the bottom).
        assert dialog.preview.rowHeight(0) >= combo.sizeHint().height()
    assert not dialog.problems.verticalHeader().isVisible()


def test_the_check_page_lists_a_substance_named_twice_with_other_details(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    """'penicillin (rash, mild); Penicillin (anaphylaxis, severe)' imported as a mild rash,
    the check page listing no problem. It is a problem of its row now, naming both."""
    cell = "penicillin (rash, mild); Penicillin (anaphylaxis, severe)"
    csv = tmp_path / "list.csv"
    csv.write_text(
        f'Surname,First name,DOB,Allergies\nEvans,Eve,1955-03-03,"{cell}"\n'
        "Haddad,Rami,1955-06-05,latex\n",
        encoding="utf-8",
    )
    dialog = _wizard(signed_in)
    QTest.keyClicks(dialog.path, str(csv))
    QTest.keyClick(dialog.path, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.MAPPING, timeout=5_000)
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.CHECK, timeout=10_000)
    problems = dialog.problems
    assert problems.rowCount() == 1
    assert [_text(problems, 0, c) for c in range(3)] == ["2", "Allergies", cell]
    assert _text(problems, 0, 3).startswith(
        "names Penicillin twice, with different details ('penicillin (rash, mild)' and "
        "'Penicillin (anaphylaxis, severe)')"
    )
    assert "1 to import, 0 already present, 1 row" in dialog.check_summary.text()
    QTest.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.SUMMARY, timeout=10_000)
    assert signed_in.workstation.records.search_patients("Evans") == []
