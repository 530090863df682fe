"""Repeat stays where the person saw it while they type a new password: the strength hint
above it keeps the room of its longest text from the start, in every form that has one.

The tester's report: in "Choose your password" the keyboard was in New password and
Repeat at y~395; the first key typed grew the hint to three lines, Repeat went to y~429,
and the click where Repeat had been landed on nothing, so the repeat was typed on into
the password ("The two new passwords are different"). It happened to two staff."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget
from pytestqt.qtbot import QtBot

from app.admin.staff import AddStaffDialog, ResetPasswordDialog
from app.main_window import MainWindow
from app.session.forced_change import ForcedPasswordChangeDialog
from app.session.key_dialogs import ChangePasswordDialog, RecoverPasswordDialog
from app.worker import Worker
from core.records.staff import StaffMember
from core.records.workstation import Workstation
from tests.ui.conftest import ADMIN, CLINIC_NAME, WindowFactory

# What a person might type, key by key: the first key, a short password, a weak one with
# the longest explanation there is, and a strong one.
TYPED = ["h", "arbour", "PASSWORDPASSWORD", " locum shift rota"]

Form = Callable[[Worker, Workstation], tuple[QWidget, QLineEdit, QLineEdit]]


def _nina() -> StaffMember:
    return StaffMember("nina", "Nina Okafor", "nurse", True, True, False)


FORMS: dict[str, Form] = {
    "forced change": lambda worker, ws: _fields(
        ForcedPasswordChangeDialog(worker, ws, "nina", "Nina Okafor", "tulip window", None)
    ),
    "change password": lambda worker, ws: _fields(ChangePasswordDialog(worker, ws, ADMIN, None)),
    "forgotten password": lambda worker, ws: _fields(
        RecoverPasswordDialog(worker, ws, ADMIN, None)
    ),
    "add staff": lambda worker, ws: _fields(AddStaffDialog(worker, ws, None)),
    "admin reset": lambda worker, ws: _fields(ResetPasswordDialog(worker, ws, _nina(), None)),
}


def _fields(
    dialog: ForcedPasswordChangeDialog
    | ChangePasswordDialog
    | RecoverPasswordDialog
    | AddStaffDialog
    | ResetPasswordDialog,
) -> tuple[QWidget, QLineEdit, QLineEdit]:
    return dialog, dialog.new, dialog.confirm


def repeat_stays_put(window: QWidget, new: QLineEdit, repeat: QLineEdit) -> None:
    """Type ``TYPED`` into ``new`` key by key; Repeat is where it was before the first."""
    new.setFocus()
    QApplication.processEvents()
    before = repeat.mapTo(window, QPoint())
    for text in TYPED:
        QTest.keyClicks(new, text)
        QApplication.processEvents()
        where = repeat.mapTo(window, QPoint())
        assert where == before, f"Repeat moved from {before} to {where} after {text!r}"
    assert new.text() == "".join(TYPED)


@pytest.mark.parametrize("name", FORMS)
def test_repeat_does_not_move_while_the_new_password_is_typed(
    qtbot: QtBot, styled: None, worker: Worker, clinic: Workstation, name: str
) -> None:
    dialog, new, repeat = FORMS[name](worker, clinic)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    repeat_stays_put(dialog, new, repeat)
    for widget in (new, repeat):
        widget.clear()  # no question about typed passwords on closing
    dialog.close()


def test_the_first_run_confirm_field_does_not_move_while_the_password_is_typed(
    qtbot: QtBot, styled: None, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    window: MainWindow = make_window(fresh_workstation)
    wizard = window.first_run
    assert wizard is not None
    wizard.clinic_page.clinic_name.setText(CLINIC_NAME)
    wizard.next()
    page = wizard.admin_page
    qtbot.waitUntil(page.isVisible)
    QTest.keyClicks(page.username, "mgarcia")
    repeat_stays_put(wizard, page.password, page.confirm)
