"""``careline sync``'s human line says what signature checks refused this session."""

from __future__ import annotations

from core.cli.sync import _summary
from core.sync.session import SyncReport


def test_sync_says_what_was_refused_here_and_there() -> None:
    report = SyncReport(pulled=3, pushed=1, quarantined=1)
    report.refused.append(
        ("me", 7, "its device was revoked on 2026-01-01 09:00 UTC, before the op")
    )
    text = _summary(report, 0, "its signature does not verify")
    assert text == (
        "Synced: 3 received, 1 sent. 1 change from another workstation was refused and not "
        "applied here: its signature does not verify. See 'careline quarantine list'. "
        "1 change made on this computer was refused by another workstation: its device was "
        "revoked on 2026-01-01 09:00 UTC, before the op. Tell your administrator; see "
        "'careline quarantine list'."
    )
    assert _summary(SyncReport(pulled=1), 0) == "Synced: 1 received, 0 sent."
