"""The status bar's download progress, against a real TLS server in this process.

A first download (snapshot) and a large pull fill a determinate bar that says how many
records or changes of how many arrived; a small incremental sync shows no bar at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.sync.controller import (
    CHANGES,
    IMAGE_BYTES,
    LARGE_PULL_OPS,
    RECORDS,
    SYNCED,
    SyncController,
    SyncProgress,
    SyncStatus,
    download_progress,
)
from app.sync.status import SyncStatusWidget, describe_progress
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync import snapshot_image
from core.sync.session import SyncReport
from tests.integration.seed import bulk_patients
from tests.integration.server_fixtures import Live, add_clinic, join_clinic
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, sign_in

BIG_CLINIC = 4_100  # three snapshot pages of at most 2,000 records
LARGE_PULL = 1_200  # three batches of 500 ops, above LARGE_PULL_OPS


@dataclass(frozen=True)
class Shot:
    """What the status-bar item showed after one status change."""

    state: str
    visible: bool
    maximum: int
    value: int
    text: str


def recorder(widget: SyncStatusWidget, controller: SyncController) -> list[Shot]:
    """Every state of the bar and its sentence, as the person would have seen it."""
    shots: list[Shot] = []

    def take(status: SyncStatus) -> None:
        bar = widget.progress
        shots.append(
            Shot(status.state, bar.isVisible(), bar.maximum(), bar.value(), widget.text.text())
        )

    controller.status_changed.connect(take)  # after the widget's own slot: it has updated
    return shots


def joined_watching(
    qtbot: QtBot, live: Live, clinic_id: str, folder: Path
) -> tuple[Workstation, list[Shot]]:
    """A new workstation in ``folder`` joined to ``clinic_id`` through the app's sync
    controller, with the status bar's every state while it did; the bar ends hidden on
    "Synced at …"."""
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    ws = Workstation(folder / "new-desk", FAST_PARAMS)
    ws.prepare_join(ADMIN, PASSWORD)
    controller = SyncController(ws)
    widget = SyncStatusWidget(controller)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    shots = recorder(widget, controller)
    try:
        with qtbot.waitSignal(controller.enroll_finished, timeout=60_000) as finished:
            controller.enroll(live.url, code, live.ca_pem, "Front desk 3")
        assert finished.args == [None]
        shots = shots[:]  # what was shown until then (shutting down shows "paused")
        assert widget.progress.isHidden()
        assert widget.text.text().startswith("Synced at ")
    finally:
        controller.shutdown()
    return ws, shots


def test_first_download_fills_a_determinate_bar_then_hides_it(
    qtbot: QtBot, live: Live, tmp_path: Path
) -> None:
    clinic_id = add_clinic(live.server, "Big Clinic")
    replica = live.server.replica(clinic_id)
    bulk_patients(replica, "Big", BIG_CLINIC)
    total = int(replica.query("SELECT count(*) FROM record_states")[0][0])
    ws, shots = joined_watching(qtbot, live, clinic_id, tmp_path)

    # Busy until the first page says how many records the clinic holds...
    busy = [s for s in shots if s.visible and s.maximum == 0]
    filling = [s for s in shots if s.visible and s.maximum > 0]
    assert busy and shots.index(busy[0]) < shots.index(filling[0])
    assert busy[0].text == "Downloading the clinic's records…"
    # ...then determinate, advancing page by page to the whole clinic.
    assert {s.maximum for s in filling} == {total}
    values = [s.value for s in filling]
    assert values == sorted(values) and len(set(values)) >= 3, values
    assert values[0] == 2_000 and values[-1] == total
    assert f"Downloading clinic records: 2,000 of {total:,}…" in [s.text for s in filling]
    # Done: the bar is gone and the status says so.
    assert shots[-1].state == SYNCED and not shots[-1].visible
    ws.lock()
    ws.sign_in(ADMIN, PASSWORD)
    assert ws.records.count_patients() == BIG_CLINIC
    ws.lock()


def test_large_pull_shows_progress_small_sync_shows_none(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    clinic_id = add_clinic(live.server, "Growing Clinic")
    ws, _ = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "desk")
    ws.records.add_patient("Mensah", "Ama", "1979-05-05")  # the list has a first page
    ws.lock()
    window = make_window(ws, sync_options={"interval_ms": 60_000})
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=10_000)
    shots = recorder(window.sync_status, window.sync)
    replica = live.server.replica(clinic_id)

    # Another workstation's single change: an ordinary sync, no bar.
    bulk_patients(replica, "Small", 1)
    with qtbot.waitSignal(window.sync.synced, timeout=10_000) as small:
        window.sync.sync_now()
    assert small.args[0].pulled == 1
    assert shots and not any(s.visible for s in shots)

    # Many changes at once (a workstation back after a long time offline): a bar.
    shots.clear()
    bulk_patients(replica, "Many", LARGE_PULL)
    with qtbot.waitSignal(window.sync.synced, timeout=30_000) as large:
        window.sync.sync_now()
    assert large.args[0].pulled == LARGE_PULL
    filling = [s for s in shots if s.visible and s.maximum > 0]
    assert [s.value for s in filling] == [500, 1_000, 1_200]
    assert {s.maximum for s in filling} == {LARGE_PULL}
    assert filling[0].text == "Downloading changes: 500 of 1,200…"
    assert shots[-1].state == SYNCED and not shots[-1].visible
    assert window.sync_status.progress.isHidden()


def test_which_reports_get_a_bar() -> None:
    small_pull = SyncReport(pulled=40, expected_ops=LARGE_PULL_OPS - 1)
    assert download_progress(small_pull) is None
    assert download_progress(SyncReport()) is None
    large = download_progress(SyncReport(pulled=500, expected_ops=3_000))
    assert large == SyncProgress(CHANGES, 500, 3_000)
    # A snapshot: its records, whatever the (small) pull after it.
    snap = SyncReport(snapshot_records=2_000, expected_records=100_000)
    assert download_progress(snap) == SyncProgress(RECORDS, 2_000, 100_000)
    after = SyncReport(snapshot_records=100_000, expected_records=100_000, expected_ops=3)
    assert download_progress(after) == SyncProgress(RECORDS, 100_000, 100_000)
    # Records written meanwhile never show "more of fewer"; an older server gives no total.
    grown = download_progress(SyncReport(snapshot_records=10_010, expected_records=10_000))
    assert grown == SyncProgress(RECORDS, 10_010, 10_010)
    unknown = download_progress(SyncReport(snapshot_records=2_000))
    assert unknown == SyncProgress(RECORDS, 2_000, None)
    assert describe_progress(SyncProgress(RECORDS, 12_400, 100_000)) == (
        "Downloading clinic records: 12,400 of 100,000…"
    )
    assert describe_progress(SyncProgress(RECORDS, 2_000, None)) == (
        "Downloading clinic records: 2,000 received…"
    )
    # A first download as one file: its megabytes, then the share of it stored.
    fetching = SyncReport(
        expected_records=100_000, image_bytes=48_000_000, image_received=12_582_912
    )
    assert download_progress(fetching) == SyncProgress(IMAGE_BYTES, 12_288, 46_875)  # KiB
    assert describe_progress(download_progress(fetching)) == (  # type: ignore[arg-type]
        "Downloading the clinic: 12.6 of 48.0 MB…"
    )
    storing = SyncReport(image_bytes=48_000_000, image_rows=300_000, image_rows_done=120_000)
    # A clinic network's file past 2 GiB still fits a progress bar's 32-bit range.
    huge = download_progress(SyncReport(image_bytes=5 * 2**30, image_received=2**30))
    assert huge is not None and huge.total is not None and huge.total < 2**31
    assert describe_progress(download_progress(storing)) == (  # type: ignore[arg-type]
        "Storing the clinic's records: 40%…"
    )


def test_a_first_download_as_one_file_shows_the_file_then_its_storing(
    qtbot: QtBot, live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic_id = add_clinic(live.server, "Filed Clinic")
    bulk_patients(live.server.replica(clinic_id), "Big", BIG_CLINIC)
    keeper = live.server.image_keeper(clinic_id)
    keeper.min_records = BIG_CLINIC  # (5,000 by default)
    keeper.prepare()
    assert keeper.wait(60) and keeper.last_error is None
    monkeypatch.setattr(snapshot_image, "COPY_ROWS", 1_000)  # several steps for 4,100 records
    ws, shots = joined_watching(qtbot, live, clinic_id, tmp_path)

    texts = [s.text for s in shots if s.visible]
    fetched = [t for t in texts if t.startswith("Downloading the clinic: ")]
    stored = [t for t in texts if t.startswith("Storing the clinic's records: ")]
    assert fetched and fetched[-1].endswith(" MB…"), texts
    percents = [int(t.rsplit(" ", 1)[1].rstrip("%…")) for t in stored]
    assert len(percents) >= 3 and percents == sorted(percents) and percents[-1] == 100, stored
    assert texts.index(fetched[-1]) < texts.index(stored[0])  # the file, then its storing
    assert shots[-1].state == SYNCED and not shots[-1].visible
    ws.lock()
    ws.sign_in(ADMIN, PASSWORD)
    assert ws.records.count_patients() == BIG_CLINIC
    assert ws.database.query("SELECT 1 FROM audit_log WHERE action = 'sync.snapshot_image'")
    ws.lock()
