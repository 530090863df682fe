"""First run, "Join an existing clinic": through the clinic server (a real TLS server in
this process) and through a LAN peer showing a pairing code."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget, QWizard
from pytestqt.qtbot import QtBot

from app.session.first_run import FirstRunWizard, JoinPage
from app.sync.controller import RECORDS, SYNCED, SyncProgress
from app.sync.lan_peer import LanOptions
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.ca_pin import colon_hex, pem_fingerprint
from core.sync.enroll import default_device_name, load_credential
from core.sync.lan import identity as lan_id
from core.sync.lan.server import PeerServer
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at
from tests.services import free_port, free_port_pair
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, new_clinic, sign_in

COMMIT = QWizard.WizardButton.CommitButton


def click(wizard: FirstRunWizard, which: QWizard.WizardButton) -> None:
    button = wizard.button(which)
    assert button.isVisible() and button.isEnabled(), which
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def activate(qtbot: QtBot, window: QWidget) -> None:
    """Make ``window`` the active one, as the person's click on it does: the keyboard is
    only ever in the active window (the offscreen platform activates none by itself)."""
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)


def to_join_page(wizard: FirstRunWizard) -> None:
    wizard.clinic_page.join_choice.setChecked(True)
    assert not wizard.clinic_page.clinic_name.isEnabled()
    click(wizard, QWizard.WizardButton.NextButton)
    assert wizard.currentPage() is wizard.join_page
    assert wizard.button(COMMIT).text() == "Join clinic"


def finish(qtbot: QtBot, wizard: FirstRunWizard) -> None:
    """Recovery key shown once, confirmed, then on to sign-in."""
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.recovery_page, timeout=30_000)
    assert wizard.recovery_page.key.text()
    wizard.recovery_page.stored.setChecked(True)
    click(wizard, QWizard.WizardButton.FinishButton)


def test_join_through_the_server(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    # A clinic on the server that another workstation already filled.
    clinic_id = add_clinic(live.server, "Harbour Clinic")
    first, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "a")
    first.records.add_patient("Mensah", "Ama", "1979-05-05")
    sync_at(first, credential)
    first.lock()
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(live.ca_pem)

    ws = Workstation(tmp_path / "new", kdf_params=FAST_PARAMS)
    window = make_window(ws, sync_options={"debounce_ms": 400, "interval_ms": 60_000})
    wizard = window.first_run
    assert wizard is not None
    to_join_page(wizard)
    page = wizard.join_page
    assert page.server_form.isVisible() and not page.peer_form.isVisible()

    # A wrong code is refused in plain words at the code, and nothing is left behind.
    page.server_url.setText(live.url)
    page.enroll_code.setText("WRONG-CODE")
    page.ca_path.setText(str(ca_file))
    page.username.setText(ADMIN)
    page.password.setText(PASSWORD)
    click(wizard, COMMIT)
    refused = _refusal_at(qtbot, page, "enroll_code")
    assert refused == "The server refused enrollment: the enrollment code is not valid."
    assert wizard.currentPage() is page
    assert not ws.is_initialized()

    page.enroll_code.setText(code)
    seen: list[SyncProgress] = []
    wizard.download_progressed.connect(seen.append)
    click(wizard, COMMIT)
    qtbot.waitUntil(lambda: page.download_bar.isVisible(), timeout=5_000)
    finish(qtbot, wizard)
    # The first download reported real progress: every record of the clinic, of a total.
    total = live.server.sync_store(clinic_id).snapshot_size()
    assert seen and seen[-1].kind == RECORDS
    assert (seen[-1].done, seen[-1].total) == (total, total)
    assert (page.download_bar.value(), page.download_bar.maximum()) == (total, total)
    # The person chose no password here: the sign-in screen says which one to use.
    notice = window.sign_in_page.notice.text()
    assert "joined the clinic" in notice and "you just chose" not in notice
    sign_in(qtbot, window, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=20_000)
    model = window.workspace.patient_list.model
    assert model.rowCount() == 1
    assert load_credential(ws.database) is not None


def test_join_through_a_lan_peer(qtbot: QtBot, tmp_path: Path, make_window: WindowFactory) -> None:
    clinic = new_clinic(tmp_path / "a")
    clinic.sign_in(ADMIN, PASSWORD)
    identity = lan_id.ensure_identity(clinic.database, ADMIN)
    code = lan_id.new_pair_code(clinic.database, ADMIN)
    port = free_port_pair()
    ws = Workstation(tmp_path / "new", kdf_params=FAST_PARAMS)
    with PeerServer(clinic.database, identity, "127.0.0.1", port) as server:
        window = make_window(ws)
        wizard = window.first_run
        assert wizard is not None
        to_join_page(wizard)
        page = wizard.join_page
        page.via_peer.setChecked(True)
        assert page.peer_form.isVisible() and not page.server_form.isVisible()
        page.pair_code.setText(code)
        page.peer_address.setText(f"127.0.0.1:{server.port}")
        page.username.setText(ADMIN)
        page.password.setText(PASSWORD)
        click(wizard, COMMIT)
        finish(qtbot, wizard)
    clinic.lock()
    sign_in(qtbot, window)
    assert window.workspace.patient_list.model.rowCount() == 5
    assert lan_id.load_identity(ws.database) is not None


@pytest.mark.mdns
def test_pair_in_the_app_then_join_from_the_first_run(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    # A clinic with no server and no LAN identity yet: pairing creates its LAN CA.
    clinic = new_clinic(tmp_path / "a")
    options = {"debounce_ms": 300, "interval_ms": 2_000}

    def lan() -> LanOptions:
        return LanOptions(
            host="127.0.0.1",
            port=free_port_pair(),
            announce_address="127.0.0.1",
            interfaces=["127.0.0.1"],
            browse_seconds=1.0,
        )

    window_a = make_window(clinic, sync_options={**options, "lan": lan()})
    sign_in(qtbot, window_a)
    assert window_a.workspace.pair_action.isVisible()
    window_a.workspace.pair_action.trigger()
    qtbot.waitUntil(lambda: window_a.pair_code_box is not None, timeout=10_000)
    box = window_a.pair_code_box
    assert box is not None
    match = re.search(r"Pairing code: (\S+)", box.text())
    address = re.search(r"address: (\S+)\.", box.text())
    assert match and address
    lan_a = window_a.sync.lan
    assert lan_a is not None
    qtbot.waitUntil(lambda: lan_a.pairing_port is not None, timeout=10_000)
    assert address.group(1) == f"127.0.0.1:{lan_a.port}"
    box.accept()

    ws_b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    window_b = make_window(ws_b, sync_options={**options, "lan": lan()})
    wizard = window_b.first_run
    assert wizard is not None
    to_join_page(wizard)
    page = wizard.join_page
    page.via_peer.setChecked(True)
    page.pair_code.setText(match.group(1))
    page.peer_address.setText(address.group(1))
    page.username.setText(ADMIN)
    page.password.setText(PASSWORD)
    click(wizard, COMMIT)
    finish(qtbot, wizard)
    sign_in(qtbot, window_b)
    assert window_b.workspace.patient_list.model.rowCount() == 5
    # Now LAN peers of each other: an edit on B reaches A.
    window_b.worker.submit(lambda: ws_b.records.add_patient("Hopper", "Grace", "1906-12-09"))
    rows_a = window_a.workspace.patient_list.model.rowCount
    qtbot.waitUntil(lambda: rows_a() == 6, timeout=20_000)


@pytest.fixture
def join_wizard(qtbot: QtBot, tmp_path: Path, make_window: WindowFactory) -> FirstRunWizard:
    """A new workstation's first-run wizard, on its Join page, its window active."""
    window = make_window(Workstation(tmp_path / "new", kdf_params=FAST_PARAMS))
    activate(qtbot, window)
    wizard = window.first_run
    assert wizard is not None
    to_join_page(wizard)
    return wizard


def _refusal_at(qtbot: QtBot, page: JoinPage, field: str) -> str:
    """Wait for the server's refusal, said under ``field`` (which has the keyboard, its text
    selected, so that typing over it mends it) and nowhere else; returns it."""
    qtbot.waitUntil(lambda: page.errors[field].isVisible(), timeout=20_000)
    said = [name for name, label in page.errors.items() if label.isVisible()]
    assert said == [field] and not page.error.isVisible()
    typed_in: QLineEdit = getattr(page, field)
    assert typed_in.hasFocus() and typed_in.selectedText() == typed_in.text()
    return page.errors[field].text()


def _try_joining(qtbot: QtBot, wizard: FirstRunWizard, url: str, field: str) -> str:
    """Type into the join page's fields, click Join clinic, and return the refusal said
    under ``field``."""
    page = wizard.join_page
    typed = ((page.server_url, url), (page.enroll_code, "AAAA-BBBB-CCCC-DDDD"),
             (page.username, ADMIN), (page.password, PASSWORD))  # fmt: skip
    for typed_in, text in typed:
        QTest.mouseClick(typed_in, Qt.MouseButton.LeftButton)
        QTest.keyClicks(typed_in, text)
    click(wizard, COMMIT)
    shown = _refusal_at(qtbot, page, field)
    assert wizard.currentPage() is page
    return shown


def test_a_join_form_with_everything_wrong_says_it_all_at_once(
    qtbot: QtBot, tmp_path: Path, join_wizard: FirstRunWizard
) -> None:
    """Join said one problem at a time, below the form: each Join clinic found the next.
    Now every field in error says so under itself, the keyboard in the first of them."""
    wizard = join_wizard
    page = wizard.join_page
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate")
    for field, text in ((page.server_url, "http://careline.example"),
                        (page.ca_path, str(not_pem))):  # fmt: skip
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    click(wizard, COMMIT)  # no code, no user name, no password either
    said = {name: label.text() for name, label in page.errors.items() if label.isVisible()}
    assert said == {
        "server_url": "The server address must start with https://.",
        "enroll_code": "Enter the one-time enrollment code.",
        "ca_path": "That file is not a PEM certificate.",
        "username": "Enter your user name in the clinic.",
        "password": "Enter your password in the clinic.",
    }
    assert not page.error.isVisible()
    assert (
        page.server_url.hasFocus() and page.server_url.selectedText() == "http://careline.example"
    )
    # Typing the address over answers its message only; Tab goes on to the code.
    QTest.keyClicks(page.server_url, "https://careline.example")
    assert not page.errors["server_url"].isVisible() and page.errors["enroll_code"].isVisible()
    QTest.keyClick(page.server_url, Qt.Key.Key_Tab)
    assert page.enroll_code.hasFocus()

    # Through a workstation on this network: its two fields, and the account's, at once.
    radio = page.via_peer  # clicked on its round button (the row is wider than its label)
    QTest.mouseClick(radio, Qt.MouseButton.LeftButton, pos=QPoint(8, radio.height() // 2))
    assert radio.isChecked()
    assert [n for n, label in page.errors.items() if label.isVisible()] == []
    click(wizard, COMMIT)
    shown = {name for name, label in page.errors.items() if label.isVisible()}
    assert shown == {"pair_code", "peer_address", "username", "password"}
    assert page.pair_code.hasFocus()
    assert not wizard.workstation.is_initialized()


def test_a_server_that_does_not_answer_is_named_in_plain_words(
    qtbot: QtBot, join_wizard: FirstRunWizard, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    wizard, ws = join_wizard, join_wizard.workstation
    with caplog.at_level(logging.INFO, logger="core.sync.reach"):
        shown = _try_joining(qtbot, wizard, url, "server_url")
    assert shown == (
        f"Cannot reach the server at {url}: nothing there accepted the connection (check "
        "the server address and port, and that the server is running)."
    )
    assert "Errno" not in shown and "Connect" not in shown
    # The socket's own words are kept for whoever looks into it.
    assert "Connection refused" in caplog.text and url in caplog.text
    assert not ws.is_initialized()


def test_a_server_certificate_not_trusted_is_named_a_certificate_problem(
    qtbot: QtBot, live: Live, join_wizard: FirstRunWizard
) -> None:
    wizard, ws = join_wizard, join_wizard.workstation
    # No CA certificate given: the system's CAs do not know the clinic server's.
    shown = _try_joining(qtbot, wizard, live.url, "ca_path")
    assert shown.startswith(f"Cannot reach the server at {live.url}: a certificate problem")
    assert "SSL" not in shown and "_ssl.c" not in shown and "verify failed" not in shown
    assert not ws.is_initialized()
    # Said at the field that mends it, which takes either form.
    assert shown.endswith(
        " Paste the clinic server's CA fingerprint (SHA-256, from your IT contact) here, or "
        "choose its CA certificate file."
    )


def test_a_ca_file_that_cannot_be_read_is_named_without_an_errno(
    qtbot: QtBot, tmp_path: Path, join_wizard: FirstRunWizard
) -> None:
    wizard = join_wizard
    page = wizard.join_page
    missing = tmp_path / "ca.pem"
    for field, text in ((page.server_url, "https://127.0.0.1:9"), (page.enroll_code, "CODE"),
                        (page.ca_path, str(missing)), (page.username, ADMIN),
                        (page.password, PASSWORD)):  # fmt: skip
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    click(wizard, COMMIT)
    message = page.errors["ca_path"]
    assert message.isVisible()
    assert (
        message.text() == f"The CA certificate {missing} cannot be read: No such file or directory."
    )
    assert page.ca_path.hasFocus()


def _type(field: QWidget, text: str) -> None:
    """Click into ``field`` and type ``text`` over what it holds, as a person does."""
    QTest.mouseClick(field, Qt.MouseButton.LeftButton)
    QTest.keyClick(field, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(field, text)


def _tab(page: JoinPage) -> QWidget | None:
    """Press Tab where the keyboard is; returns where it went."""
    QTest.keyClick(page.window().focusWidget(), Qt.Key.Key_Tab)
    return page.window().focusWidget()


def test_the_server_lists_the_workstation_by_the_name_typed_and_the_wizard_shows_its_id(
    qtbot: QtBot, live: Live, join_wizard: FirstRunWizard
) -> None:
    """Every join was named after the host name (eight "DESKTOP-1" in the server's device
    list), and the device ID IT revokes by was never shown. The CA is pinned by its
    fingerprint, pasted as IT's tools print it (colons, capitals): no file to carry."""
    clinic_id = add_clinic(live.server, "Fingerprint Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    wizard = join_wizard
    page = wizard.join_page
    assert page.device_name.text() == default_device_name() != ""
    fingerprint = colon_hex(pem_fingerprint(live.ca_pem))  # AB:CD:... as careline-server prints
    QTest.mouseClick(page.server_url, Qt.MouseButton.LeftButton)
    QTest.keyClicks(page.server_url, live.url)
    assert _tab(page) is page.enroll_code
    QTest.keyClicks(page.enroll_code, code)
    assert _tab(page) is page.ca_path
    QTest.keyClicks(page.ca_path, fingerprint)
    _tab(page)  # Choose…
    # Tab selects the prefilled host name: typing replaces it.
    assert _tab(page) is page.device_name
    assert page.device_name.selectedText() == default_device_name()
    QTest.keyClicks(page.device_name, "Front desk 2")
    _type(page.username, ADMIN)
    _type(page.password, PASSWORD)
    click(wizard, COMMIT)
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.recovery_page, timeout=30_000)
    (device,) = live.server.registry.devices(clinic_id)
    assert device.name == "Front desk 2"
    note = wizard.recovery_page.device_note
    assert note.isVisible()
    assert note.text() == (
        f"The clinic server lists this workstation as “Front desk 2”, device ID {device.id} "
        "(IT uses the ID to revoke it: 'careline-server admin device revoke ID')."
    )
    # The fingerprint pinned the clinic's CA: the system's CAs do not trust this server
    # (test_a_server_certificate_not_trusted_is_named_a_certificate_problem).
    finish(qtbot, wizard)


def test_a_workstation_name_the_server_would_refuse_is_said_at_the_field(
    join_wizard: FirstRunWizard,
) -> None:
    wizard = join_wizard
    page = wizard.join_page
    for field, text in ((page.server_url, "https://careline.example"), (page.enroll_code, "C"),
                        (page.username, ADMIN), (page.password, PASSWORD)):  # fmt: skip
        _type(field, text)
    # Emptied: the server keeps 1-64 printable characters.
    QTest.mouseClick(page.device_name, Qt.MouseButton.LeftButton)
    QTest.keyClick(page.device_name, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(page.device_name, Qt.Key.Key_Backspace)
    click(wizard, COMMIT)
    message = page.errors["device_name"]
    assert message.isVisible()
    assert message.text() == "Enter a name for this workstation (1-64 characters)."
    assert [n for n, label in page.errors.items() if label.isVisible()] == ["device_name"]
    assert page.device_name.hasFocus() and not page.error.isVisible()
    # Typing answers the message; a name too long is named with its length.
    QTest.keyClicks(page.device_name, "Reception " * 7)
    assert not message.isVisible()
    click(wizard, COMMIT)
    assert message.text() == "The workstation name is 69 characters long; use at most 64."
    assert page.device_name.hasFocus() and not wizard.workstation.is_initialized()


def test_a_fingerprint_cut_short_is_said_at_the_ca_field(
    join_wizard: FirstRunWizard,
) -> None:
    """The old message showed 16 digits and "..."; pasted back, they are refused at once,
    in words, before anything is sent."""
    wizard = join_wizard
    page = wizard.join_page
    for field, text in ((page.server_url, "https://careline.example"), (page.enroll_code, "C"),
                        (page.ca_path, "3f2a9c0d11e4b7a8..."),
                        (page.username, ADMIN), (page.password, PASSWORD)):  # fmt: skip
        _type(field, text)
    click(wizard, COMMIT)
    message = page.errors["ca_path"]
    assert message.isVisible() and page.ca_path.hasFocus()
    assert message.text() == (
        "That is not a whole SHA-256 fingerprint: it ends in “...”, so it was cut short (16 "
        "hex digits of 64). Paste the whole fingerprint from your IT contact, or choose the "
        "CA certificate file."
    )
    # A SHA-1 fingerprint is named for what it is.
    _type(page.ca_path, "AB:" * 19 + "CD")
    click(wizard, COMMIT)
    assert message.text().startswith(
        "That is not a whole SHA-256 fingerprint: it has 40 hex digits, a SHA-1 fingerprint; "
        "the SHA-256 one has 64."
    )
    assert not wizard.workstation.is_initialized()


def test_a_fingerprint_the_server_does_not_present_is_refused_before_the_code_is_sent(
    qtbot: QtBot, live: Live, join_wizard: FirstRunWizard
) -> None:
    clinic_id = add_clinic(live.server, "Wrong Print Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    wizard = join_wizard
    page = wizard.join_page
    wrong = "ab" * 32
    for field, text in ((page.server_url, live.url), (page.enroll_code, code),
                        (page.ca_path, wrong), (page.username, ADMIN),
                        (page.password, PASSWORD)):  # fmt: skip
        _type(field, text)
    click(wizard, COMMIT)
    shown = _refusal_at(qtbot, page, "ca_path")
    # Both whole, as careline-server prints them, for IT to compare digit by digit.
    assert f"fingerprint given ({colon_hex(wrong)}; it presented " in shown
    assert colon_hex(pem_fingerprint(live.ca_pem)) in shown
    assert "..." not in shown and "nothing was sent" in shown
    assert "give the server's CA certificate file instead" in shown
    assert live.server.registry.code_clinic(code) == clinic_id  # the code keeps its use
    assert not wizard.workstation.is_initialized()
