"""A reading's time changed on two desks at once, settled from the conflict inbox by
typing the right time: a time ahead of this computer's clock is refused there as the
Vitals form refuses it, and nothing is settled. Real core: two workstation databases
synced through core's responder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.conflicts.dialog import ConflictCard
from core.records.entries import ClinicalEntries
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation
from core.sync.session import sync
from tests.ui.conflicts.test_dialog import inbox_from_the_toolbar, other_desk
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory


def test_a_time_typed_ahead_of_the_clock_to_settle_a_readings_time_is_refused(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, make_window: WindowFactory
) -> None:
    clinic.sign_in(ADMIN, PASSWORD)
    [maria] = [p for p in clinic.records.search_patients("Garcia Maria") if p.given == "Maria"]
    [pulse] = VitalSigns(clinic.records).record(
        maria.id, {"pulse": "72"}, observed_at="2026-12-01T09:00"
    )
    other, peer = other_desk(clinic, tmp_path)
    ClinicalEntries(clinic.records).update(
        "observation", pulse.id, {"observed_at": "2026-12-01 08:50"}
    )
    ClinicalEntries(other.records).update(
        "observation", pulse.id, {"observed_at": "2026-12-01 08:55"}
    )
    sync(other.database, peer, ADMIN)
    clinic.lock()
    other.lock()
    window = make_window(clinic)
    dialog = inbox_from_the_toolbar(qtbot, window, 1)
    [card] = dialog.cards
    assert isinstance(card, ConflictCard) and card.conflict.field == "observed_at"

    tomorrow = (dt.datetime.now() + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    QTest.keyClicks(card.other_value, tomorrow)
    assert card.other.isChecked()
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(card.error.isVisible, timeout=5_000)
    assert card.error.text().startswith(
        f"Measured at: {tomorrow} is in the future: this computer's clock says "
    )
    assert dialog.cards == [card] and card.other_value.text() == tomorrow  # nothing lost
    records = window.workstation.records
    assert [c.field for c in records.conflicts(pulse.id)] == ["observed_at"]

    card.other_value.selectAll()
    QTest.keyClicks(card.other_value, "2026-12-01 08:52")
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.cards, timeout=5_000)
    assert records.conflicts() == []
    assert VitalSigns(records).get(pulse.id).observed_at == "2026-12-01T08:52"
