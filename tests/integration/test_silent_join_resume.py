"""A silent enrollment whose first sync fails after the server accepted the code: the
workstation keeps its enrollment and the next attempt finishes it without the code (whose
use is spent). Real TLS server (stopped mid-session), real OS keyring, real SQLCipher."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.ca_pin import pem_fingerprint
from core.sync.enroll import EnrollmentError
from core.sync.join import FirstSyncUnfinishedError, first_sync_pending
from core.sync.silent_join import MachineEnrollment, join_silently
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, live_server
from tests.services import free_port


def _enrollment(live: Live, code: str) -> MachineEnrollment:
    return MachineEnrollment(
        live.url, code, None, pem_fingerprint(live.ca_pem), "Front desk", "machine.toml"
    )


def test_an_enrolled_join_whose_first_sync_failed_is_finished_without_a_code(
    tmp_path: Path, secret_service: dict[str, str]
) -> None:
    data, port = tmp_path / "server", free_port()
    desk = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS)
    with live_server(data, port=port) as live:
        clinic = add_clinic(live.server, "Hillside Clinic")
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)  # one use
        enrollment = _enrollment(live, code)
        # The server goes away after the first page of the download.
        with pytest.raises(FirstSyncUnfinishedError, match="no new code is needed") as failed:
            join_silently(desk, enrollment, on_progress=lambda _report: live.halt())
        (device,) = live.server.registry.devices(clinic)
    # The device left enrolled, by the ID IT revokes it by.
    assert f"enrolled as device {device.id}, but the first sync failed" in str(failed.value)
    assert failed.value.device_id == device.id
    assert first_sync_pending(desk) and not desk.is_unlocked

    with live_server(data, port=port) as live:
        # The code is spent: a second workstation cannot use it...
        other = Workstation(tmp_path / "other", kdf_params=FAST_PARAMS)
        with pytest.raises(EnrollmentError, match="refused enrollment"):
            join_silently(other, enrollment)
        assert not other.is_initialized()
        # ...and the first one finishes with the credential it kept.
        result = join_silently(desk, enrollment)
        held = live.server.sync_store(clinic).snapshot_size()
    # The first page had arrived before the server went away: nothing more to receive,
    # and the count is of the clinic's records this computer holds (it used to say 0).
    assert (result.clinic_name, result.records) == ("Hillside Clinic", held)
    assert held > 0
    assert not first_sync_pending(desk) and not desk.is_unlocked
    desk.sign_in("admin", PASSWORD)
    try:
        assert desk.records.actor == "admin"
    finally:
        desk.lock()
