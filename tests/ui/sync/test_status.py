"""Desktop sync: the status bar, enrollment, and the conflicts inbox, against real core.

Server tests run a real TLS server (``live_server``) in this process; conflicts are made
by syncing two real workstation databases through core's responder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtNetwork import QNetworkInformation
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialogButtonBox
from pytestqt.qtbot import QtBot

from app.conflicts.dialog import ConflictCard, ConflictsDialog
from app.main_window import MainWindow
from app.patients.list_page import PatientListModel
from app.sync import controller as controller_module
from app.sync.controller import ERROR, OFFLINE, PENDING, STOPPED, SYNCED, SyncController
from app.sync.status import EnrollDialog, describe_status
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.store.oplog import version_vector
from core.sync.ca_pin import colon_hex, pem_fingerprint
from core.sync.enroll import ServerCredential, load_credential, save_credential
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.integration.server_fixtures import (
    Live,
    add_clinic,
    clinic_device,
    join_clinic,
    live_server,
    rewrite_audit_tail,
    sync_at,
)
from tests.newer_release import newer_chart, newer_replica
from tests.services import free_port
from tests.ui.conflicts.test_dialog import inbox_from_the_toolbar
from tests.ui.conftest import (
    ADMIN,
    PASSWORD,
    WindowFactory,
    answer_discard,
    answer_discard_by_keyboard,
    asks_nothing,
    held_on_the_worker,
    press,
    sign_in,
    type_at_the_keyboard,
)
from tests.unit.sync.replicas import pull_from

FAST_SYNC = {"debounce_ms": 400, "interval_ms": 60_000, "backoff_base_ms": 1_000}


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: CARELINE_SCREENSHOTS if set (to look at them), else tmp."""
    folder = Path(os.environ.get("CARELINE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def joined(live: Live, folder: Path, name: str) -> tuple[Workstation, str, ServerCredential]:
    """A locked workstation enrolled in a new server clinic holding one patient."""
    clinic_id = add_clinic(live.server, name)
    ws, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, folder)
    ws.records.add_patient("Mensah", "Ama", "1979-05-05")
    sync_at(ws, credential)
    ws.lock()
    return ws, clinic_id, credential


def test_status_shows_synced_then_pending_then_synced(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws, clinic_id, _ = joined(live, tmp_path / "desk", "Harbour Clinic")
    window = make_window(ws, sync_options={**FAST_SYNC, "debounce_ms": 1_500})
    states: list[str] = []
    window.sync.status_changed.connect(lambda s: states.append(s.state))
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=10_000)
    assert window.statusBar().isVisible()
    assert window.sync_status.text.text().startswith("Synced at ")

    window.worker.submit(lambda: ws.records.add_patient("Osei", "Kofi", "1988-02-02"))
    qtbot.waitUntil(lambda: window.sync.status.state == PENDING, timeout=5_000)
    assert window.sync.status.pending == 1
    assert window.sync_status.text.text().startswith("1 change waiting to sync.")
    # The debounce then pushes it; the server acknowledges every op.
    qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=10_000)
    assert states.index(PENDING) < len(states) - 1
    assert version_vector(live.server.replica(clinic_id)) == version_vector(ws.database)
    window.grab().save(str(screenshot_dir(tmp_path) / "sync-status-synced.png"))


def test_status_offline_when_the_server_is_not_running(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    clinic.sign_in(ADMIN, PASSWORD)
    url = f"https://127.0.0.1:{free_port()}"  # nobody listens there
    save_credential(
        clinic.database,
        ServerCredential(url, "dev-1", "clinic-1", "Riverside", "token", "", "", "", None),
    )
    clinic.lock()
    window = make_window(clinic, sync_options=FAST_SYNC)
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: window.sync.status.state == OFFLINE, timeout=10_000)
    assert "Offline — retrying in" in window.sync_status.text.text()
    assert 0 < window.sync.retry_in_ms() <= 1_000
    # The retry fails again and waits longer (1 s doubled, with jitter: 1-2 s).
    first = window.sync.status.retry_at
    qtbot.waitUntil(lambda: window.sync.status.retry_at != first, timeout=5_000)
    assert window.sync.status.state == OFFLINE
    assert window.sync.retry_in_ms() > 0
    # The UI never waited on the network: the list still answers.
    window.workspace.patient_list.search.setText("Garcia")
    model = window.workspace.patient_list.model
    qtbot.waitUntil(lambda: model.query == "Garcia" and not model.loading, timeout=5_000)
    # Signing out stops syncing: no retry stays scheduled.
    window.sign_out()
    assert window.sync.status.state == STOPPED
    assert window.sync.retry_in_ms() == 0
    assert not window.statusBar().isVisible()


def test_status_error_when_the_device_is_revoked(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws, _, credential = joined(live, tmp_path / "desk", "Revoked Clinic")
    live.server.registry.revoke(credential.device_id)
    window = make_window(ws, sync_options=FAST_SYNC)
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: window.sync.status.state == ERROR, timeout=10_000)
    text = window.sync_status.text.text()
    assert text.startswith("Sync problem: The server no longer accepts this workstation")
    assert "revoked" in text
    assert window.sync.retry_in_ms() == 0  # retrying cannot help


def test_enrollment_dialog_enrolls_and_downloads_the_clinic(
    qtbot: QtBot, live: Live, tmp_path: Path
) -> None:
    clinic_id = add_clinic(live.server, "Lakeside Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    ca_file = tmp_path / "server-ca.pem"
    ca_file.write_text(live.ca_pem)
    ws = Workstation(tmp_path / "new-desk", FAST_PARAMS)
    ws.prepare_join(ADMIN, PASSWORD)
    controller = SyncController(ws)
    dialog = EnrollDialog(controller)
    qtbot.addWidget(dialog)
    dialog.show()
    try:
        # A wrong code: the server's reason, under the code, which gets the keyboard with
        # its text selected.
        dialog.url.setText(live.url)
        dialog.code.setText("AAAA-BBBB-CCCC-DDDD")
        dialog.ca_path.setText(str(ca_file))
        dialog.device.setText("Front desk 2")
        QTest.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.errors["code"].isVisible(), timeout=10_000)
        assert dialog.errors["code"].text() == (
            "The server refused enrollment: the enrollment code is not valid."
        )
        assert not dialog.error.isVisible()
        assert dialog.code.hasFocus() and dialog.code.selectedText() == "AAAA-BBBB-CCCC-DDDD"

        QTest.keyClicks(dialog.code, code)  # typed over the selection
        assert not dialog.errors["code"].isVisible()
        with qtbot.waitSignal(dialog.accepted, timeout=15_000):
            QTest.keyClick(dialog.code, Qt.Key.Key_Return)
        assert controller.status.state == SYNCED
        credential = load_credential(ws.database)
        assert credential is not None and credential.clinic_id == clinic_id
    finally:
        controller.shutdown()
    ws.lock()
    ws.sign_in(ADMIN, PASSWORD)  # the account arrived with the first sync
    assert ws.records.clinic_name() == "Lakeside Clinic"
    ws.lock()


def test_connect_to_server_takes_the_cas_fingerprint_and_a_checked_workstation_name(
    qtbot: QtBot, live: Live, tmp_path: Path
) -> None:
    """As the first-run wizard does: the CA by its SHA-256 fingerprint pasted (as IT gives
    it, with colons), and the workstation's name checked as the server checks it, at the
    field, before the code is sent."""
    clinic_id = add_clinic(live.server, "Fingerprint Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    ws = Workstation(tmp_path / "new-desk", FAST_PARAMS)
    ws.prepare_join(ADMIN, PASSWORD)
    controller = SyncController(ws)
    dialog = EnrollDialog(controller)
    qtbot.addWidget(dialog)
    dialog.show()
    try:
        dialog.url.setText(live.url)
        dialog.code.setText(code)
        QTest.mouseClick(dialog.ca_path, Qt.MouseButton.LeftButton)
        QTest.keyClicks(dialog.ca_path, colon_hex(pem_fingerprint(live.ca_pem))[:40] + "...")
        dialog.device.clear()
        QTest.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)
        said = {name: label.text() for name, label in dialog.errors.items() if label.isVisible()}
        assert said["ca"].startswith("That is not a whole SHA-256 fingerprint: it ends in")
        assert said["device"] == "Enter a name for this workstation (1-64 characters)."
        assert not dialog.waiting  # nothing sent: the code keeps its use

        dialog.ca_path.clear()
        QTest.keyClicks(dialog.ca_path, colon_hex(pem_fingerprint(live.ca_pem)))
        QTest.keyClicks(dialog.device, "Exam room 2")
        with qtbot.waitSignal(dialog.accepted, timeout=15_000):
            QTest.keyClick(dialog.device, Qt.Key.Key_Return)
        credential = load_credential(ws.database)
        assert credential is not None and credential.server_ca_pem == live.ca_pem
    finally:
        controller.shutdown()
    assert [d.name for d in live.server.registry.devices(clinic_id)] == ["Exam room 2"]
    ws.lock()


def test_settings_menu_opens_the_enrollment_dialog(qtbot: QtBot, signed_in: MainWindow) -> None:
    # The sync thread reports its first state just after sign-in (on a busy machine, a
    # moment later): "Sync paused." until then.
    qtbot.waitUntil(
        lambda: signed_in.sync_status.text.text().startswith("Not connected to a clinic server"),
        timeout=10_000,
    )
    signed_in.workspace.enroll_action.trigger()
    qtbot.waitUntil(lambda: signed_in.enroll_dialog is not None)
    assert signed_in.enroll_dialog is not None
    dialog = signed_in.enroll_dialog
    dialog.url.setText("http://plain.example")
    dialog.code.setText("X")
    dialog.submit()
    assert dialog.errors["url"].text() == "The server address must start with https://."


def test_connect_to_server_with_everything_wrong_says_it_all_at_once(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    """Connect to server said one problem at a time below the form: each Connect found
    the next. Now each field in error says so under itself, the keyboard in the first,
    and nothing is sent."""
    signed_in.workspace.enroll_action.trigger()
    qtbot.waitUntil(lambda: signed_in.enroll_dialog is not None)
    dialog = signed_in.enroll_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    dialog.activateWindow()  # as the person's click on it does (offscreen activates none)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog)
    missing = tmp_path / "ca.pem"
    for field, text in ((dialog.url, "careline.example"), (dialog.ca_path, str(missing))):
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    QTest.keyClick(dialog.ca_path, Qt.Key.Key_Return)  # Connect, with no code typed
    said = {name: label.text() for name, label in dialog.errors.items() if label.isVisible()}
    assert said == {
        "url": "The server address must start with https://.",
        "code": "Enter the one-time enrollment code.",
        "ca": f"The CA certificate {missing} cannot be read: No such file or directory.",
    }
    assert not dialog.waiting and dialog.connect_button.isEnabled()
    assert dialog.url.hasFocus() and dialog.url.selectedText() == "careline.example"
    QTest.keyClicks(dialog.url, "https://careline.example")  # typed over: its message goes
    assert not dialog.errors["url"].isVisible() and dialog.errors["code"].isVisible()
    QTest.keyClick(dialog.url, Qt.Key.Key_Tab)
    assert dialog.code.hasFocus()


def test_a_typed_server_address_and_code_are_not_dropped_unasked(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    signed_in.workspace.enroll_action.trigger()
    qtbot.waitUntil(lambda: signed_in.enroll_dialog is not None)
    dialog = signed_in.enroll_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    # The device name filled in for the person is not something they typed.
    QTest.keyClick(dialog.url, Qt.Key.Key_Escape)
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: signed_in.enroll_dialog is None)

    signed_in.workspace.enroll_action.trigger()
    qtbot.waitUntil(lambda: signed_in.enroll_dialog is not None)
    dialog = signed_in.enroll_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    dialog.url.setFocus()
    QTest.keyClicks(dialog.url, "https://careline.riverside.example")
    QTest.keyClick(dialog.url, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.code, "ABCD-EFGH-JKLM-NPQR")
    QTest.keyClick(dialog.code, Qt.Key.Key_Escape)
    answer_discard_by_keyboard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and dialog.code.text() == "ABCD-EFGH-JKLM-NPQR"
    dialog.close()  # the window's close button
    answer_discard_by_keyboard(qtbot, dialog)
    qtbot.waitUntil(lambda: signed_in.enroll_dialog is None)


def _connect_and_close(qtbot: QtBot, window: MainWindow) -> None:
    """Open Connect to server, type an address where nobody answers and a code, Connect,
    then close the dialog with Escape (it closes at once while connecting)."""
    window.workspace.enroll_action.trigger()
    qtbot.waitUntil(lambda: window.enroll_dialog is not None)
    dialog = window.enroll_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    dialog.url.setFocus()
    QTest.keyClicks(dialog.url, f"https://127.0.0.1:{free_port()}")
    QTest.keyClick(dialog.url, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.code, "ABCD-EFGH-JKLM-NPQR")
    QTest.keyClick(dialog.code, Qt.Key.Key_Return)
    assert not dialog.connect_button.isEnabled()  # handed over: connecting
    QTest.keyClick(dialog.code, Qt.Key.Key_Escape)
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: window.enroll_dialog is None)


def test_a_connection_failing_after_its_dialog_closed_is_told(
    qtbot: QtBot, signed_in: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connect to server may be closed while it connects; when the connection then fails,
    the window says so (the status bar goes back to "Not connected", which told nothing)."""
    with held_on_the_worker(monkeypatch, controller_module, "enroll") as release:
        _connect_and_close(qtbot, signed_in)
        release.set()
        notice = signed_in.workspace.notice
        qtbot.waitUntil(
            lambda: "Connecting to the clinic server failed:" in notice.text(), timeout=20_000
        )
    assert notice.isVisible()


def test_a_connection_failing_after_sign_out_is_told_at_the_next_sign_in(
    qtbot: QtBot, signed_in: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    with held_on_the_worker(monkeypatch, controller_module, "enroll") as release:
        _connect_and_close(qtbot, signed_in)
        signed_in.idle.timed_out.emit()  # the auto-logoff
        release.set()
        qtbot.waitUntil(lambda: not signed_in.sync.busy, timeout=20_000)
    sign_in(qtbot, signed_in)
    assert "Connecting to the clinic server failed:" in signed_in.workspace.notice.text()


CONNECTED = "This workstation is now connected to the clinic server."
LEE, LEE_PASSWORD = "doc.lee", "lee's own long password"


def test_a_connection_made_after_sign_out_is_told_at_that_persons_next_sign_in(
    qtbot: QtBot, live: Live, clinic: Workstation, make_window: WindowFactory,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A failed connection was told at the next sign-in; one that succeeded was not (the
    controller, stopped by the sign-out, returned before saying so). Now it passes in the
    status bar when the person who started it signs in again here, and to nobody else."""
    clinic.sign_in(ADMIN, PASSWORD)
    clinic.records.add_user(LEE, "Lee Doc", "clinician", LEE_PASSWORD)
    clinic.sign_in(LEE, LEE_PASSWORD)  # a first sign-in adds their key slot
    clinic.lock()
    clinic_id = add_clinic(live.server, "Brookside Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    ca_file = tmp_path / "server-ca.pem"
    ca_file.write_text(live.ca_pem)
    window = make_window(clinic, sync_options=FAST_SYNC)
    sign_in(qtbot, window)
    window.workspace.enroll_action.trigger()
    qtbot.waitUntil(lambda: window.enroll_dialog is not None)
    dialog = window.enroll_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    for field, text in ((dialog.url, live.url), (dialog.code, code),
                        (dialog.ca_path, str(ca_file))):  # fmt: skip
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    with held_on_the_worker(monkeypatch, controller_module, "enroll") as release:
        QTest.keyClick(dialog.ca_path, Qt.Key.Key_Return)
        assert dialog.waiting
        # Sign out over the open dialog (it closes; the connection goes on).
        QTest.keyClick(dialog.ca_path, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
        assert window.session is None
        # (Heard even though the sign-out stopped syncing: it used to go unsaid.)
        with qtbot.waitSignal(window.sync.enroll_finished, timeout=20_000) as finished:
            release.set()
    assert finished.args == [None]  # connected while nobody was signed in
    assert load_credential_of(clinic) is not None

    sign_in(qtbot, window, LEE, LEE_PASSWORD)  # someone else: not told
    assert CONNECTED not in window.statusBar().currentMessage()
    assert CONNECTED not in window.workspace.notice.text()
    window.workspace.lock_action.trigger()  # Sign out
    sign_in(qtbot, window)
    assert window.statusBar().currentMessage() == CONNECTED
    assert CONNECTED not in window.workspace.notice.text()


def load_credential_of(ws: Workstation) -> ServerCredential | None:
    """The server credential ``ws`` (open, as the window leaves it) holds."""
    return load_credential(ws.database)


def make_conflicts(a: Workstation, tmp_path: Path) -> str:
    """Two conflicting edits of Maria Garcia (phone, birth date) on two replicas of ``a``."""
    a.sign_in(ADMIN, PASSWORD)
    join_test_clinic(a.database)
    b = Workstation(tmp_path / "other-desk", FAST_PARAMS)
    b.prepare_join(ADMIN, PASSWORD)
    join_test_clinic(b.database)
    peer = LocalTransport(Responder(a.database))
    sync(b.database, peer, ADMIN)
    b.lock()
    b.sign_in(ADMIN, PASSWORD)
    [maria] = [p for p in a.records.search_patients("Garcia Maria") if p.given == "Maria"]
    a.records.update_patient(maria.id, {"phone": "555-0001", "birth_date": "1984-02-03"})
    b.records.update_patient(maria.id, {"phone": "555-0002", "birth_date": "1984-03-12"})
    sync(b.database, peer, ADMIN)
    assert len(a.records.conflicts()) == 2
    a.lock()
    b.lock()
    return maria.id


def test_conflicts_inbox_choose_and_enter_a_value(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, make_window: WindowFactory
) -> None:
    maria = make_conflicts(clinic, tmp_path)
    window = make_window(clinic)
    sign_in(qtbot, window)
    workspace = window.workspace
    qtbot.waitUntil(lambda: workspace.conflicts_action.text() == "Conflicts (2)")

    # The list marks Maria's row, and only hers.
    model = workspace.patient_list.model
    marked = {
        model.patient_id(row)
        for row in range(model.rowCount())
        if model.index(row, 0).data(PatientListModel.ConflictRole)
    }
    assert marked == {maria}
    assert model.index(0, 0).data(Qt.ItemDataRole.DecorationRole) is not None or (
        model.patient_id(0) != maria
    )

    # So does the chart header.
    workspace.open_chart(maria)
    chart = workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None)
    assert chart.conflict_banner.isVisible()
    assert "2 unresolved conflicts (Date of birth, Phone)" in chart.conflict_text.text()
    shots = screenshot_dir(tmp_path)
    window.grab().save(str(shots / "conflict-chart.png"))

    QTest.mouseClick(chart.conflict_button, Qt.MouseButton.LeftButton)
    dialog = workspace.conflicts_dialog
    assert isinstance(dialog, ConflictsDialog)
    qtbot.waitUntil(lambda: len(dialog.cards) == 2)
    dialog.grab().save(str(shots / "conflicts-dialog.png"))
    by_field = {card.conflict.field: card for card in dialog.cards}

    # Choose one of the competing phone numbers.
    phone = by_field["phone"]
    chosen = next(c for c in phone.conflict.candidates if c.value == "555-0002")
    assert {b.text() for b in phone.choices.values()} == {"555-0001", "555-0002"}
    phone.choose(chosen.id)
    QTest.mouseClick(phone.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(dialog.cards) == 1, timeout=5_000)
    qtbot.waitUntil(lambda: workspace.conflicts_action.text() == "Conflicts (1)")

    # Enter a new birth date: core's validation is shown inline first.
    birth = dialog.cards[0]
    assert isinstance(birth, ConflictCard)
    assert birth.conflict.field == "birth_date"
    QTest.keyClicks(birth.other_value, "2090-01-01")
    assert birth.other.isChecked()
    QTest.mouseClick(birth.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: birth.error.isVisible(), timeout=5_000)
    assert birth.error.text().startswith("Date of birth")
    birth.other_value.setText("1984-03-22")
    QTest.mouseClick(birth.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.cards, timeout=5_000)
    assert dialog.status.text().startswith("No conflicts")
    qtbot.waitUntil(lambda: workspace.conflicts_action.text() == "Conflicts")
    qtbot.waitUntil(lambda: not chart.conflict_banner.isVisible(), timeout=5_000)

    # Core holds the resolutions.
    records = clinic.records
    assert records.conflicts() == []
    patient = records.get_patient(maria)
    assert (patient.phone, patient.birth_date) == ("555-0002", "1984-03-22")
    assert not any(
        model.index(row, 0).data(PatientListModel.ConflictRole) for row in range(model.rowCount())
    )


def test_return_in_another_value_resolves_that_conflict_and_typed_values_are_not_dropped(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, make_window: WindowFactory
) -> None:
    """The tester's T15: Return in "Another value" pressed Close, the inbox's default
    button, and the number typed was gone, the conflict unresolved. Return there resolves
    that conflict; a value typed and not resolved is not thrown away unasked."""
    maria = make_conflicts(clinic, tmp_path)
    window = make_window(clinic)
    dialog = inbox_from_the_toolbar(qtbot, window, 2)
    workspace = window.workspace
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    buttons = dialog.findChild(QDialogButtonBox)
    assert buttons is not None
    close = buttons.button(QDialogButtonBox.StandardButton.Close)
    assert not close.isDefault() and not close.autoDefault()

    phone = next(c for c in dialog.cards if c.conflict.field == "phone")
    assert isinstance(phone, ConflictCard)
    QTest.mouseClick(phone.other_value, Qt.MouseButton.LeftButton)
    type_at_the_keyboard("555-0404")
    assert phone.other.isChecked()
    press(Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(dialog.cards) == 1, timeout=5_000)
    assert dialog.isVisible()
    assert clinic.records.get_patient(maria).phone == "555-0404"

    birth = dialog.cards[0]
    assert isinstance(birth, ConflictCard)
    QTest.mouseClick(birth.other_value, Qt.MouseButton.LeftButton)
    type_at_the_keyboard("1984-03-22")
    press(Qt.Key.Key_Escape)  # typed, not resolved: asks
    answer_discard_by_keyboard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and birth.other_value.text() == "1984-03-22"
    QTest.mouseClick(close, Qt.MouseButton.LeftButton)  # so does Close
    answer_discard(qtbot, dialog, discard=False)
    assert dialog.isVisible()
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    birth.other_value.setFocus()
    press(Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not dialog.cards, timeout=5_000)
    assert clinic.records.get_patient(maria).birth_date == "1984-03-22"
    # Only this workstation's records are known here.
    assert dialog.status.text() == "No conflicts to resolve on this workstation."
    QTest.mouseClick(close, Qt.MouseButton.LeftButton)  # nothing typed: closes at once
    qtbot.waitUntil(lambda: workspace.conflicts_dialog is None)


def test_status_text_for_each_state() -> None:
    import datetime as dt

    from app.sync.controller import SyncStatus

    now = dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.UTC)
    later = now + dt.timedelta(seconds=12)
    assert describe_status(SyncStatus(SYNCED, last_sync=now)) == "Synced at 09:30."
    offline = SyncStatus(OFFLINE, retry_at=later, pending=2)
    assert describe_status(offline, now).startswith("Offline — retrying in 12 s. 2 changes kept")
    one = SyncStatus(OFFLINE, retry_at=later, pending=1)
    assert "12 s. 1 change kept here until then." in describe_status(one, now)
    mixed = SyncStatus(SYNCED, last_sync=now, newer_records=12, held_back=1)
    assert describe_status(mixed) == (
        "Synced at 09:30. Update Careline to see 12 newer records: newer workstations made "
        "them. 1 change waits until the other side's Careline is updated."
    )


def test_network_coming_back_syncs_at_once_instead_of_at_the_next_backoff(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    data, port = tmp_path / "server", free_port()
    with live_server(data, port=port) as running:
        ws, _, _ = joined(running, tmp_path / "desk", "Flaky Network")
    # The server is gone; the workstation goes offline with a long backoff.
    window = make_window(ws, sync_options={**FAST_SYNC, "backoff_base_ms": 120_000})
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: window.sync.status.state == OFFLINE, timeout=10_000)
    assert window.sync.retry_in_ms() > 60_000
    with live_server(data, port=port):
        # What the OS reports through QNetworkInformation when the network returns.
        window.sync.network_changed(QNetworkInformation.Reachability.Online)
        qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=10_000)
        assert window.sync.retry_in_ms() == 0
    window.sign_out()


def test_an_altered_audit_log_shows_in_the_status_bar_and_sync_goes_on(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws, _, credential = joined(live, tmp_path / "desk", "Audit Clinic")
    ws.sign_in(ADMIN, PASSWORD)
    sync_at(ws, credential)  # the server now holds this workstation's audit head
    rewrite_audit_tail(ws, 3)  # with the database key, someone rewrites the log
    ws.lock()
    window = make_window(ws, sync_options=FAST_SYNC)
    sign_in(qtbot, window)
    status = window.sync_status
    qtbot.waitUntil(lambda: bool(window.sync.status.audit_warning), timeout=15_000)
    assert window.sync.status.state in (SYNCED, PENDING)  # the records still sync
    assert "Audit log warning: tell your administrator." in status.text.text()
    assert "differs from what the clinic server recorded" in status.toolTip()


def test_a_workstation_holding_newer_releases_records_tells_its_user_to_update(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws, clinic_id, _ = joined(live, tmp_path / "desk", "Newer Records Clinic")
    # Another workstation of the clinic relays a newer release's records to the server.
    other, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "o")
    newer = newer_replica("newer")
    clinic_device(live.server, clinic_id, newer.db)  # a LAN-paired workstation of the clinic
    pid = newer_chart(newer)
    pull_from(other.records, newer)
    sync_at(other, credential)

    window = make_window(ws, sync_options=FAST_SYNC)
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: window.sync.status.newer_records == 2, timeout=10_000)

    assert window.sync.status.state == SYNCED
    assert "Update Careline to see 2 newer records: newer workstations made them." in (
        window.sync_status.text.text()
    )
    # What this release understands of them is shown as usual.
    assert ws.records.get_patient(pid).family == "Okafor"
