"""Registering and editing patients through the dialog; core's validation is shown inline."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from core.records.workstation import Workstation
from tests.ui.conftest import answer_discard, type_at_the_keyboard
from tests.ui.layout import blank_above, rect_in
from tests.ui.patients.conftest import EditDialog, open_new_dialog, save


def test_register_a_patient(qtbot: QtBot, signed_in: MainWindow, clinic: Workstation) -> None:
    dialog = open_new_dialog(qtbot, signed_in)
    assert dialog.birth_date.text() == ""  # no plausible-looking default date
    QTest.keyClicks(dialog.family, "Haddad")
    QTest.keyClicks(dialog.given, "Yusuf")
    QTest.keyClicks(dialog.birth_date, "2001-04-17")
    dialog.sex.setCurrentIndex(dialog.sex.findData("male"))
    QTest.keyClicks(dialog.mrn, "MRN-2001")
    QTest.keyClicks(dialog.phone, "555 0199")
    save(qtbot, dialog)

    workspace = signed_in.workspace
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    assert workspace.patient_dialog is None  # closed and released
    assert workspace.pages.currentWidget() is workspace.chart
    created = workspace.chart.patient
    assert created is not None
    assert (created.family, created.given, created.birth_date) == ("Haddad", "Yusuf", "2001-04-17")
    assert (created.sex, created.mrn, created.phone) == ("male", "MRN-2001", "555 0199")
    assert workspace.chart.name.text() == "HADDAD, Yusuf"
    stored = clinic.records.get_patient(created.id)  # the worker is idle: safe to read
    assert stored == created
    model = workspace.patient_list.model
    qtbot.waitUntil(lambda: model.rowCount() == 6 and not model.loading, timeout=5_000)


def test_core_validation_is_shown_on_the_field(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's F3: an empty Save said only "Date of birth is required." and put the
    keyboard in the date (the third field): the family name typed next landed there, and
    the other two messages came one round each. Every message shows at once now, and the
    keyboard goes to the first field in error, in the form's order."""
    dialog = open_new_dialog(qtbot, signed_in)
    QTest.keyClick(dialog.focusWidget() or dialog, Qt.Key.Key_Return)  # Save, nothing typed
    shown = {f: label.text() for f, label in dialog.errors.items() if label.isVisible()}
    assert shown == {
        "family": "Family name is required.",
        "given": "Given name is required.",
        "birth_date": "Date of birth is required.",
    }
    assert dialog.focusWidget() is dialog.family
    assert dialog.isVisible() and clinic.records.count_patients() == 5

    # What the person types next goes where they expect; each fixed field's message goes.
    QTest.keyClicks(dialog.focusWidget(), "Okafor")
    assert dialog.family.text() == "Okafor" and dialog.birth_date.text() == ""
    assert not dialog.errors["family"].isVisible()
    assert dialog.errors["given"].isVisible() and dialog.errors["birth_date"].isVisible()
    # A date that is not one, and a blank given name: both said, the given name focused
    # (it comes first), the date's message core's own.
    QTest.keyClicks(dialog.birth_date, "31/02/1990")
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Return)
    assert dialog.errors["given"].text() == "Given name is required."
    assert (
        dialog.errors["birth_date"]
        .text()
        .startswith("Date of birth: '31/02/1990' has the year last")
    )
    assert dialog.focusWidget() is dialog.given
    assert not dialog.errors["family"].isVisible()
    dialog.birth_date.setText("1990-01-01")

    dialog.family.setText("Okafor")
    dialog.given.setText("Ngozi")
    dialog.mrn.setText("MRN-1003")  # already Chinedu Okafor's
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.errors["mrn"].isVisible(), timeout=5_000)
    assert dialog.errors["mrn"].text() == "MRN: 'MRN-1003' is already used by another patient."
    assert not dialog.errors["family"].isVisible()
    assert dialog.isVisible() and dialog.save_button.isEnabled()
    assert clinic.records.count_patients() == 5
    # Put right, the message about it goes (the others were gone already).
    dialog.mrn.setFocus()
    QTest.keyClick(dialog.mrn, Qt.Key.Key_Backspace)
    assert not dialog.errors["mrn"].isVisible()

    QTest.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Cancel), Qt.MouseButton.LeftButton
    )
    answer_discard(qtbot, dialog)  # a typed registration is thrown away only when asked
    qtbot.waitUntil(lambda: signed_in.workspace.patient_dialog is None)
    assert signed_in.workspace.chart.patient is None


def test_a_phone_typed_with_a_letter_is_refused_under_phone(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's T1: "055-ABC-12!!" was stored as a phone. A letter O typed for a zero
    is named, the keyboard goes to Phone, and the number is stored as retyped."""
    dialog = open_new_dialog(qtbot, signed_in)
    QTest.keyClicks(dialog.family, "Mensah")
    QTest.keyClicks(dialog.given, "Akosua")
    QTest.keyClicks(dialog.birth_date, "1988-07-02")
    QTest.keyClicks(dialog.phone, "07700 9OO 123")
    QTest.keyClick(dialog.phone, Qt.Key.Key_Return)
    assert dialog.errors["phone"].isVisible()
    assert dialog.errors["phone"].text() == (
        "Phone: '07700 9OO 123' holds the letter O where a digit goes (type 0 for a zero)."
    )
    assert dialog.focusWidget() is dialog.phone
    assert clinic.records.count_patients() == 5
    dialog.phone.selectAll()
    QTest.keyClicks(dialog.phone, "07700 900 123")
    assert not dialog.errors["phone"].isVisible()
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: signed_in.workspace.chart.patient is not None, timeout=5_000)
    created = signed_in.workspace.chart.patient
    assert created is not None and created.phone == "07700 900 123"


def test_an_mrn_held_in_capitals_is_refused_when_typed_in_lower_case(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's: with TST-001 held, tst-001 was registered, and a search for it then
    found both patients. It is refused under MRN, naming how it is held; retyped, the
    registration keeps what was typed."""
    dialog = open_new_dialog(qtbot, signed_in)
    QTest.keyClicks(dialog.family, "Owusu")
    QTest.keyClicks(dialog.given, "Kofi")
    QTest.keyClicks(dialog.birth_date, "1979-05-21")
    QTest.keyClicks(dialog.mrn, "mrn-1003")  # Chinedu Okafor's MRN-1003
    QTest.keyClick(dialog.mrn, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.errors["mrn"].isVisible(), timeout=5_000)
    assert dialog.errors["mrn"].text() == (
        "MRN: 'mrn-1003' is already used by another patient (as 'MRN-1003')."
    )
    assert dialog.focusWidget() is dialog.mrn
    assert (dialog.family.text(), dialog.mrn.text()) == ("Owusu", "mrn-1003")
    assert clinic.records.count_patients() == 5
    QTest.keyClicks(dialog.mrn, "a")
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: signed_in.workspace.chart.patient is not None, timeout=5_000)
    created = signed_in.workspace.chart.patient
    assert created is not None and created.mrn == "mrn-1003a"


def test_a_field_message_sits_right_under_its_box_and_moves_nothing_above(
    qtbot: QtBot, styled: None, signed_in: MainWindow, open_edit_dialog: EditDialog
) -> None:
    """The retest's 013/014: in the registration dialog the phone's message appeared with
    an empty line above it, and the whole form moved 17 pixels as it came and went. The
    message is right under the box in registration as in Edit details, and the fields
    above it stay where they were."""
    for dialog in (open_new_dialog(qtbot, signed_in), open_edit_dialog("OKAFOR, Chinedu")):
        message = dialog.errors["phone"]
        if not dialog.family.text():  # registration
            for field, text in ((dialog.family, "Okafor"), (dialog.given, "Chinedu"),
                                (dialog.birth_date, "1990-06-15")):  # fmt: skip
                QTest.keyClicks(field, text)
        QApplication.processEvents()
        family, phone = rect_in(dialog.family, dialog), rect_in(dialog.phone, dialog)
        dialog.phone.selectAll()
        QTest.keyClicks(dialog.phone, "055-ABC-12!!")
        QTest.keyClick(dialog.phone, Qt.Key.Key_Return)
        QApplication.processEvents()
        assert message.isVisible() and message.text().startswith("Phone: '055-ABC-12!!'")
        assert blank_above(dialog, dialog.phone, message) <= 2, dialog.windowTitle()
        assert (rect_in(dialog.family, dialog), rect_in(dialog.phone, dialog)) == (family, phone)
        dialog.phone.selectAll()
        QTest.keyClicks(dialog.phone, "055 123 4567")  # put right: the message goes
        QApplication.processEvents()
        assert not message.isVisible()
        assert (rect_in(dialog.family, dialog), rect_in(dialog.phone, dialog)) == (family, phone)
        dialog.reject()


def test_edit_a_patient_from_the_chart(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    workspace = signed_in.workspace
    model = workspace.patient_list.model
    row = next(r for r in range(model.rowCount()) if model.index(r, 0).data() == "NGUYEN, Bao")
    patient_id = model.patient_id(row)
    workspace.open_chart(patient_id)
    chart = workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    QTest.mouseClick(chart.edit_button, Qt.MouseButton.LeftButton)
    dialog = chart.patient_dialog
    assert dialog is not None
    assert dialog.family.text() == "Nguyen"
    assert dialog.birth_date.text() == "2012-09-09"
    assert dialog.sex.currentData() is None
    dialog.family.setText("Nguyen-Tran")
    dialog.phone.setText("555 0142")
    dialog.sex.setCurrentIndex(dialog.sex.findData("female"))
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: chart.name.text() == "NGUYEN-TRAN, Bao", timeout=5_000)
    assert chart.phone.text() == "555 0142"
    assert chart.sex.text() == "Female"
    assert chart.patient_dialog is None

    stored = clinic.records.get_patient(patient_id)
    assert (stored.family, stored.phone, stored.sex) == ("Nguyen-Tran", "555 0142", "female")
    assert stored.birth_date == "2012-09-09"
    qtbot.waitUntil(lambda: "NGUYEN-TRAN, Bao" in [model.index(r, 0).data() for r in range(5)])


def test_a_number_typed_one_tab_short_on_sex_lands_in_mrn_and_sex_stays(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, open_edit_dialog: EditDialog
) -> None:
    """A clerk replacing a patient's MRN with the hospital's number, one Tab short, typed
    it on the closed Sex box: its first digit opened the list, which swallowed the rest,
    and the old MRN was saved. The number goes on to MRN as if Tab came first (the old
    MRN selected and typed over, as Tab does), Sex as it was; Save stores just that."""
    dialog = open_edit_dialog("OKAFOR, Chinedu")
    assert dialog.mrn.text() == "MRN-1003"
    sex = dialog.sex.currentData()
    dialog.birth_date.setFocus()
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is dialog.sex
    type_at_the_keyboard("40021")
    assert not dialog.sex.view().isVisible()
    assert dialog.sex.currentData() == sex
    assert dialog.mrn.hasFocus() and dialog.mrn.text() == "40021"
    QTest.keyClick(dialog.mrn, Qt.Key.Key_Return)
    chart = signed_in.workspace.chart
    qtbot.waitUntil(lambda: chart.patient_dialog is None, timeout=5_000)
    stored = next(p for p in clinic.records.list_patients() if p.given == "Chinedu")
    assert (stored.mrn, stored.sex) == ("40021", sex)


def test_an_edit_that_changes_nothing_just_closes(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    workspace = signed_in.workspace
    patient_id = workspace.patient_list.model.patient_id(0)
    before = clinic.records.get_patient(patient_id)
    workspace.open_chart(patient_id)
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    workspace.chart.edit_patient()
    dialog = workspace.chart.patient_dialog
    assert dialog is not None
    save(qtbot, dialog)
    assert workspace.chart.patient_dialog is None
    assert clinic.records.get_patient(patient_id).updated_at == before.updated_at


def test_files_on_disk_hold_no_plaintext_of_a_name_typed_in(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    dialog = open_new_dialog(qtbot, signed_in)
    QTest.keyClicks(dialog.family, "Zyxwarowska")
    QTest.keyClicks(dialog.given, "Quilla")
    QTest.keyClicks(dialog.birth_date, "1979-09-09")
    save(qtbot, dialog)
    workspace = signed_in.workspace
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    # While the app is open the newest pages sit in the WAL: check every file there is.
    files = sorted(f for f in clinic.data_dir.rglob("*") if f.is_file())
    assert any(f.name.endswith("-wal") for f in files)
    for f in files:
        content = f.read_bytes()
        assert b"Zyxwarowska" not in content, f.name
        assert "Zyxwarowska".encode("utf-16-le") not in content, f.name
        assert b"Quilla" not in content, f.name
