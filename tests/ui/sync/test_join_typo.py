"""First run, "Join an existing clinic" with a mistyped password: the wizard says so before
the code is spent, keeps what was typed, and the same code works once the password is typed
right. A real TLS server in this process; the fields typed into as a person does."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from app.session.first_run import FirstRunWizard
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.enroll import default_device_name
from tests.integration.server_fixtures import Live, add_clinic
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory
from tests.ui.sync.test_join import activate, click, finish, to_join_page

COMMIT = QWizard.WizardButton.CommitButton


def _join_typed(
    qtbot: QtBot,
    live: Live,
    tmp_path: Path,
    make_window: WindowFactory,
    clinic: str,
    password: str,
    name: str | None = None,
) -> tuple[str, str, FirstRunWizard]:
    """A new clinic ``clinic`` on ``live`` with a one-use code; a new workstation's wizard
    on its join page with the server's fields, the admin's name and ``password`` typed as
    a person does (``name``: the workstation name left as the host name, or cleared
    first when ""). Returns the clinic id, the code and the wizard; nothing clicked yet."""
    clinic_id = add_clinic(live.server, clinic)
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)  # one use
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(live.ca_pem)
    window = make_window(Workstation(tmp_path / "new", kdf_params=FAST_PARAMS))
    activate(qtbot, window)
    wizard = window.first_run
    assert wizard is not None
    to_join_page(wizard)
    page = wizard.join_page
    if name is not None:
        page.device_name.setText(name)
    typed = ((page.server_url, live.url), (page.enroll_code, code), (page.ca_path, str(ca_file)),
             (page.username, ADMIN), (page.password, password))  # fmt: skip
    for field, text in typed:
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    return clinic_id, code, wizard


def test_a_mistyped_password_costs_no_code(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    clinic_id, code, wizard = _join_typed(
        qtbot, live, tmp_path, make_window, "Harbour Clinic", PASSWORD + "!"
    )
    page = wizard.join_page
    click(wizard, COMMIT)
    qtbot.waitUntil(lambda: page.error.isVisible(), timeout=20_000)

    assert wizard.currentPage() is page
    said = page.error.text()
    assert f"no account {ADMIN} with this password" in said
    assert "the enrollment code was not used" in said
    assert live.server.registry.devices(clinic_id) == []  # nothing for IT to revoke
    assert not wizard.workstation.is_initialized()
    # What was typed stays, and the keyboard is back in the password, selected.
    assert (page.server_url.text(), page.enroll_code.text()) == (live.url, code)
    assert page.password.hasFocus() and page.password.selectedText() == PASSWORD + "!"

    QTest.keyClicks(page.password, PASSWORD)  # typed over the selection
    QTest.keyClick(page.password, Qt.Key.Key_Return)  # Join clinic again
    finish(qtbot, wizard)
    assert [d.name for d in live.server.registry.devices(clinic_id)] == [default_device_name()]
    assert wizard.workstation.is_initialized()


def test_return_joins_after_a_clicked_join_was_refused_at_a_field(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    """Found using the app under Xvfb: Join clinic clicked with the workstation name left
    empty says so at the field; the person types a name and presses Return, which did
    nothing (the clicked button had stopped being the page's default)."""
    clinic_id, _, wizard = _join_typed(
        qtbot, live, tmp_path, make_window, "Return Clinic", PASSWORD, name=""
    )
    page = wizard.join_page
    click(wizard, COMMIT)
    assert page.errors["device_name"].isVisible() and page.device_name.hasFocus()
    QTest.keyClicks(page.device_name, "Front desk")
    QTest.keyClick(page.device_name, Qt.Key.Key_Return)
    finish(qtbot, wizard)
    assert [d.name for d in live.server.registry.devices(clinic_id)] == ["Front desk"]


def test_a_used_code_is_said_at_the_code_field_and_a_new_one_typed_over_it_joins(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    """Found using the app under Xvfb: the server's refusal of a code was said at the foot
    of the page and the keyboard went to the password. It is said under the code, which
    has the keyboard, selected: the person types the new code over it and presses Return."""
    clinic_id, code, wizard = _join_typed(
        qtbot, live, tmp_path, make_window, "Used Code Clinic", PASSWORD
    )
    spent = live.server.registry.issue_enroll_code(clinic_id, 10)[0]
    live.server.registry.redeem(spent, "elsewhere", "", "aaaa00000000beef")
    page = wizard.join_page
    page.enroll_code.selectAll()
    QTest.keyClicks(page.enroll_code, spent)
    click(wizard, COMMIT)
    qtbot.waitUntil(lambda: page.errors["enroll_code"].isVisible(), timeout=20_000)
    assert page.errors["enroll_code"].text() == (
        "The server refused enrollment: the enrollment code has already been used; ask IT "
        "for a new one."
    )
    assert not page.error.isVisible() and not page.errors["password"].isVisible()
    assert page.enroll_code.hasFocus() and page.enroll_code.selectedText() == spent
    QTest.keyClicks(page.enroll_code, code)  # typed over the selection
    assert not page.errors["enroll_code"].isVisible()  # answered by typing
    QTest.keyClick(page.enroll_code, Qt.Key.Key_Return)  # Join clinic again
    finish(qtbot, wizard)
    assert wizard.workstation.is_initialized()
    assert len(live.server.registry.devices(clinic_id)) == 2
