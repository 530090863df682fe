"""The app fetches an attachment from a LAN peer when no server can give it: two windows on
two paired workstations (no clinic server) find each other over mDNS on 127.0.0.1; a PDF
added in A's chart opens in B's chart, fetched from A over the clinic's mutual TLS with the
clinic attachment key sealed for B; B's "Where" column shows the download's progress, then
says it is here."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.pdf_viewer import PdfViewer
from core.sync.attachments import HERE, REMOTE, held_keys
from tests.ui.chart.test_attachments import a_pdf, add_and_select
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import WindowFactory, sign_in
from tests.ui.sync.test_attachments_sync import section_of, where
from tests.ui.sync.test_lan import lan_sync_options, paired_clinics, synced_with_peers

WAIT_MS = 20_000


def test_a_file_added_on_one_peer_opens_on_the_other_without_a_server(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws_a, ws_b = paired_clinics(tmp_path)
    window_a = make_window(ws_a, sync_options=lan_sync_options())
    window_b = make_window(ws_b, sync_options=lan_sync_options())
    for window in (window_a, window_b):
        sign_in(qtbot, window)
    for window in (window_a, window_b):
        qtbot.waitUntil(partial(synced_with_peers, window, 1), timeout=WAIT_MS)

    open_first_chart(qtbot, window_a)
    on_a = section_of(window_a)
    source = tmp_path / "ecg.pdf"
    a_pdf(source, 2)
    add_and_select(qtbot, on_a, source)
    assert held_keys(ws_b.records) == {}  # B has neither the file nor its key yet

    open_first_chart(qtbot, window_b)
    on_b = section_of(window_b)
    qtbot.waitUntil(lambda: on_b.table.rowCount() == 1, timeout=WAIT_MS)  # synced over LAN
    assert where(on_b) == REMOTE
    assert window_b.sync.transfers.peer_addresses() == (f"127.0.0.1:{window_a.sync.lan.port}",)  # type: ignore[union-attr]
    on_b.table.selectRow(0)
    shown: list[str] = []  # the "Where" cell as the fetch reports progress
    window_b.sync.transfers.progressed.connect(lambda *_: shown.append(where(on_b)))
    QTest.mouseClick(on_b.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(on_b.viewer, PdfViewer), timeout=WAIT_MS)
    assert isinstance(on_b.viewer, PdfViewer) and on_b.viewer.page_count == 2
    qtbot.waitUntil(lambda: where(on_b) == HERE, timeout=WAIT_MS)
    assert shown and shown[-1] == "downloading 100%", shown
    assert held_keys(ws_b.records) == held_keys(ws_a.records)
