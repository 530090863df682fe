"""Settings → FHIR export and import…, driven as an administrator does: the export runs on
the worker and writes a bundle the FHIR models parse; importing it back into the same
clinic matches every patient (offered for merge) and registers nobody twice."""

from __future__ import annotations

import json
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot

from app.admin.fhir import FhirDialog
from core.records.workstation import Workstation
from tests.ui.conftest import WindowFactory, sign_in
from tests.unit.records.fhir.test_import_integrity import ADAMS, patient, peanut


def test_an_admin_exports_and_imports_a_bundle(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window(clinic)
    sign_in(qtbot, window)
    tools = window.workspace.admin_tools
    assert tools.fhir_action.isVisible()
    tools.fhir_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, FhirDialog)

    target = tmp_path / "bundle.json"
    dialog.export_path.setText(str(target))
    QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Exported"), timeout=10_000)
    assert not dialog.progress.isVisible() and dialog.export_button.isEnabled()
    # The bar followed the worker chart by chart (5 patients).
    assert (dialog.progress.value(), dialog.progress.maximum()) == (5, 5)
    bundle = Bundle.model_validate_json(target.read_text(encoding="utf-8"))
    patients = [e for e in bundle.entry or [] if e.resource.get_resource_type() == "Patient"]  # type: ignore[union-attr]
    assert len(patients) == 5

    dialog.import_path.setText(str(target))
    QTest.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.report.isVisible(), timeout=10_000)
    assert dialog.status.text().startswith("Created 0, matched 5")
    assert dialog.report.toPlainText().count("matched  Patient/") == 5  # this clinic's own
    assert clinic.database.query("SELECT count(*) FROM patients")[0][0] == 5


def test_a_bad_file_is_named_and_the_dialog_stays_usable(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window(clinic)
    sign_in(qtbot, window)
    window.workspace.admin_tools.fhir_action.trigger()
    dialog = window.workspace.admin_tools.dialog
    assert isinstance(dialog, FhirDialog)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Patient"}), encoding="utf-8")
    dialog.import_path.setText(str(bad))
    QTest.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=10_000)
    assert "not a FHIR Bundle" in dialog.error.text()
    assert dialog.import_button.isEnabled()


def test_return_in_the_export_field_exports(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    # Return pressed the first Choose… (a file dialog opened instead); an empty status was
    # shown as an empty coloured box.
    window = make_window(clinic)
    sign_in(qtbot, window)
    tools = window.workspace.admin_tools
    tools.fhir_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, FhirDialog)
    assert not dialog.status.isVisible()
    target = tmp_path / "bundle.json"
    dialog.export_path.setText(str(target))
    QTest.keyClick(dialog.export_path, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.status.isVisible(), timeout=10_000)
    assert dialog.status.text().startswith("Exported") and target.is_file()
    assert dialog.isVisible() and not any(
        w.isWindow() and w.isVisible() for w in dialog.findChildren(QWidget) if w is not dialog
    )


def test_a_path_that_cannot_be_used_is_named(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    # Was "Something went wrong that Careline did not expect … may not have been saved".
    window = make_window(clinic)
    sign_in(qtbot, window)
    tools = window.workspace.admin_tools
    tools.fhir_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, FhirDialog)
    dialog.export_path.setText(str(tmp_path / "no such folder" / "bundle.json"))
    QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.error.isVisible, timeout=10_000)
    assert dialog.error.text().startswith("The file could not be used: No such file or directory")
    assert "no such folder" in dialog.error.text()
    # The window grew with the error line: no text squeezed and cut off above it.
    qtbot.waitUntil(lambda: all(
        label.height() >= label.heightForWidth(label.width())
        for label in dialog.findChildren(QLabel) if label.isVisible() and label.wordWrap()
    ), timeout=2_000)  # fmt: skip
    missing = tmp_path / "from-hospital.json"
    dialog.import_path.setText(str(missing))
    QTest.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: str(missing) in dialog.error.text(), timeout=10_000)
    assert (
        dialog.error.text() == f"The file could not be used: No such file or directory ({missing})."
    )


def test_a_refused_import_leaves_the_keyboard_in_the_path_typed(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    """Import, clicked, greyed itself out while the file was read, and Qt gave the keyboard
    to the next button (Close: a Space closed the dialog). It goes back to the path typed,
    where the person puts the refused name right."""
    window = make_window(clinic)
    sign_in(qtbot, window)
    window.workspace.admin_tools.fhir_action.trigger()
    dialog = window.workspace.admin_tools.dialog
    assert isinstance(dialog, FhirDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Patient"}), encoding="utf-8")
    QTest.mouseClick(dialog.import_path, Qt.MouseButton.LeftButton)
    QTest.keyClicks(dialog.import_path, str(bad))
    QTest.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=10_000)
    assert dialog.import_button.isEnabled()
    assert QApplication.focusWidget() is dialog.import_path
    QTest.keyClick(dialog.import_path, Qt.Key.Key_Space)  # typed there, presses nothing
    assert dialog.isVisible() and dialog.import_path.text() == f"{bad} "


def test_a_bundle_with_two_entries_of_one_id_is_refused_by_name(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    """Two Patients 'p1': the first's severe allergy was filed on the second's chart and
    the dialog said 'Created 2'. The refusal names both entries; nothing is imported."""
    window = make_window(clinic)
    sign_in(qtbot, window)
    window.workspace.admin_tools.fhir_action.trigger()
    dialog = window.workspace.admin_tools.dialog
    assert isinstance(dialog, FhirDialog)
    brown = "urn:uuid:bbbbbbbb-0000-0000-0000-000000000001"
    entries = [
        {"fullUrl": ADAMS, "resource": patient("p1", "Adams", "Alice", "1950-05-05")},
        {"fullUrl": "urn:uuid:a2", "resource": peanut("a1", ADAMS)},
        {"fullUrl": brown, "resource": patient("p1", "Brown", "Bob", "1990-09-09")},
    ]
    bundle = tmp_path / "merged.json"
    bundle.write_text(
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
    )
    before = clinic.database.query("SELECT count(*) FROM patients")[0][0]
    QTest.mouseClick(dialog.import_path, Qt.MouseButton.LeftButton)
    QTest.keyClicks(dialog.import_path, str(bundle))
    QTest.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=10_000)
    shown = dialog.error.text()
    assert "Bundle.entry[2]: Patient/p1" in shown and brown in shown
    assert f"as Bundle.entry[0] (Patient/p1, fullUrl {ADAMS})" in shown
    assert "nothing was imported" in shown
    assert not dialog.report.isVisible() and not dialog.status.isVisible()
    assert clinic.database.query("SELECT count(*) FROM patients")[0][0] == before
