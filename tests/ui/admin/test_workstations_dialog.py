"""Settings → Paired workstations… driven as an administrator does: the workstations the
LAN CA holder let join, Revoke… on a lost one (Cancel first, then Revoke), and what the
rest of the clinic then refuses, and when; where this computer last saw each one. A
computer that holds no CA says why: nothing paired yet, or another workstation holds it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QTableWidget
from pytestqt.qtbot import QtBot

from app.admin.workstations import WorkstationsDialog
from app.main_window import MainWindow
from core.crypto import certs
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, sign_in
from tests.ui.sync.test_lan import paired_clinics


def _texts(table: QTableWidget, row: int) -> list[str]:
    return [table.item(row, c).text() for c in range(table.columnCount())]  # type: ignore[union-attr]


def _button(box: QMessageBox, text: str) -> QAbstractButton:
    return next(b for b in box.buttons() if b.text().replace("&", "") == text)


def _open(qtbot: QtBot, window: object) -> WorkstationsDialog:
    tools = window.workspace.admin_tools  # type: ignore[attr-defined]
    assert tools.workstations_action.isVisible()
    tools.workstations_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, WorkstationsDialog)
    return dialog


def test_an_admin_revokes_a_lost_workstation(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    clinic.sign_in(ADMIN, PASSWORD)
    lan_id.ensure_identity(clinic.database, ADMIN)  # the clinic's first LAN workstation
    laptop, _cert, _ca = lan_id.issue_device(
        clinic.database, certs.make_csr(certs.new_private_key(), "laptop"), ADMIN
    )
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window)
    dialog = _open(qtbot, window)
    table = dialog.table
    qtbot.waitUntil(lambda: table.rowCount() == 2, timeout=5_000)
    rows = {_texts(table, r)[0]: _texts(table, r) for r in range(2)}
    assert rows[laptop][1] == "Active"
    assert [r[1] for r in rows.values()].count("This workstation") == 1
    assert dialog.status.text() == "1 other workstation may sync with the clinic."
    assert not dialog.revoke_button.isEnabled()  # nothing chosen yet

    def choose(device_id: str) -> None:
        row = next(r for r in range(table.rowCount()) if _texts(table, r)[0] == device_id)
        item = table.item(row, 0)
        assert item is not None
        QTest.mouseClick(
            table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualItemRect(item).center()
        )

    # This computer itself cannot be revoked.
    mine = next(d for d, cells in rows.items() if cells[1] == "This workstation")
    choose(mine)
    assert not dialog.revoke_button.isEnabled()

    # The laptop: asked first, and Cancel (the default, under the keyboard) changes nothing.
    choose(laptop)
    assert dialog.revoke_button.isEnabled()
    QTest.mouseClick(dialog.revoke_button, Qt.MouseButton.LeftButton)
    box = dialog.confirm_box
    assert box is not None and laptop in box.text()
    QTest.keyClick(box.focusWidget(), Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: dialog.confirm_box is None, timeout=5_000)
    assert lan_id.revoked_serials(clinic.database) == set()

    QTest.mouseClick(dialog.revoke_button, Qt.MouseButton.LeftButton)
    box = dialog.confirm_box
    assert box is not None
    QTest.mouseClick(_button(box, "Revoke"), Qt.MouseButton.LeftButton)
    before = datetime.now().replace(second=0, microsecond=0)
    qtbot.waitUntil(
        lambda: any(_texts(table, r)[1].startswith("Revoked") for r in range(table.rowCount())),
        timeout=5_000,
    )
    # The row says when (this computer's time, to the minute).
    state = next(
        _texts(table, r)[1] for r in range(table.rowCount()) if _texts(table, r)[0] == laptop
    )
    assert state.startswith("Revoked ")
    revoked_at = datetime.strptime(state.removeprefix("Revoked "), "%Y-%m-%d %H:%M")
    assert before <= revoked_at <= datetime.now()
    assert dialog.status.text() == "0 other workstations may sync with the clinic."
    # Its certificates are on the clinic's signed revocation list, which every sync carries.
    serials = lan_id.issued_serials(clinic.database, laptop)
    assert serials and serials <= lan_id.revoked_serials(clinic.database)
    crl = op_trust.crl_of(clinic.database)
    identity = lan_id.load_identity(clinic.database)
    assert crl is not None and identity is not None
    assert serials <= set(certs.read_crl(crl, identity.ca_certificate).revoked)
    assert not dialog.revoke_button.isEnabled()


def _listing_nothing(qtbot: QtBot, window: MainWindow, says: str) -> str:
    """Sign in, open the dialog, wait for its status to say ``says``; no rows, nothing to
    revoke. Returns the status text."""
    sign_in(qtbot, window)
    dialog = _open(qtbot, window)
    qtbot.waitUntil(lambda: says in dialog.status.text(), timeout=5_000)
    assert dialog.table.rowCount() == 0
    assert not dialog.revoke_button.isEnabled()
    return dialog.status.text()


def test_the_clinics_first_workstation_says_none_was_paired_yet(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    # No CA yet because nothing was paired: this IS the computer that will show the codes.
    status = _listing_nothing(qtbot, make_window(clinic), "No workstation has been paired yet.")
    assert status.startswith("No workstation has been paired yet.")
    assert "Pair a workstation…" in status


def test_a_workstation_that_joined_through_a_peer_says_where_to_go(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    _holder, joined = paired_clinics(tmp_path)
    status = _listing_nothing(qtbot, make_window(joined), "does not hold")
    assert "Open this on the workstation that shows pairing codes" in status


def test_revoke_is_never_the_default_button(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    # The default button's blue fill hides the danger colour, and Enter must not revoke.
    window = make_window(clinic)
    sign_in(qtbot, window)
    dialog = _open(qtbot, window)
    assert not dialog.revoke_button.autoDefault()
    assert not dialog.revoke_button.isDefault()


def test_each_workstation_shows_where_this_computer_last_saw_it(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    # B paired with A over the network and synced with it; a laptop was issued a
    # certificate here without either (so nothing says where it is).
    holder, joined = paired_clinics(tmp_path)
    joined.sign_in(ADMIN, PASSWORD)
    identity = lan_id.load_identity(joined.database)
    assert identity is not None
    joined.lock()
    holder.sign_in(ADMIN, PASSWORD)
    laptop, _cert, _ca = lan_id.issue_device(
        holder.database, certs.make_csr(certs.new_private_key(), "laptop"), ADMIN
    )
    holder.lock()
    window = make_window(holder)
    sign_in(qtbot, window)
    before = datetime.now().replace(second=0, microsecond=0)
    dialog = _open(qtbot, window)
    table = dialog.table
    qtbot.waitUntil(lambda: table.rowCount() == 3, timeout=5_000)
    column = WorkstationsDialog.COLUMNS.index("Last seen")
    assert table.horizontalHeaderItem(column).text() == "Last seen"  # type: ignore[union-attr]
    seen = {_texts(table, r)[0]: _texts(table, r)[column] for r in range(3)}
    address, at = seen[identity.device_id].split(" at ")
    assert address == "127.0.0.1"  # the address its sync came from, at this computer's time
    assert before - timedelta(minutes=5) <= datetime.strptime(at, "%Y-%m-%d %H:%M") <= before
    assert seen[laptop] == "Not recorded"
    mine = next(r for r in range(3) if _texts(table, r)[1] == "This workstation")
    assert _texts(table, mine)[column] == "This computer"
