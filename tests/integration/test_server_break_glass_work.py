"""Work done under a break-glass grant, pushed to the clinic server (embedded and
PostgreSQL), is judged there with the grant, as a workstation judges it
(test_remote_break_glass_work.py): a nurse off a restricted chart's care team who breaks
the glass writes a note and vitals; they arrive with the grant in one push, and a later
note arrives judged with the grant the server holds (on PostgreSQL, read from its sealed
records). Another nurse's note on the chart, with no grant, is quarantined there."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.records import authorize
from core.records.break_glass import BreakGlass
from core.records.chart_access import set_restricted
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.notes import Notes
from core.records.replication import replica_id
from core.records.visits import Visits
from core.records.workstation import Workstation
from core.store import oplog
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at
from tests.integration.test_remote_break_glass_work import VITALS

pytestmark = [pytest.mark.strict_authors, pytest.mark.strict_authz]


def _all_arrived(live: Live, clinic_id: str, desk: Workstation) -> bool:
    """Whether the server holds every op the desk made."""
    me = replica_id(desk.database)
    held = live.server.sync_store(clinic_id).version_vector().get(me, 0)
    return held == oplog.version_vector(desk.database)[me]


def test_work_under_a_grant_reaches_the_server_and_work_without_one_does_not(
    live: Live, tmp_path: Path
) -> None:
    clinic_id = add_clinic(live.server, "Break Glass Clinic")
    for name, full, role in (
        ("clin", "Cal Clinician", "clinician"),
        ("nurse1", "Nia Nurse", "nurse"),
        ("nurse2", "Ned Nurse", "nurse"),
    ):
        live.server.add_user(clinic_id, name, full, role, PASSWORD)
    desk, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "d")
    clin = ClinicRecords(desk.database, "clin")
    pid = clin.add_patient("Secret", "Sam", "1970-01-01").id
    Visits(clin).add_note(Visits(clin).start(pid, reason="follow-up").id, "HIV positive")
    set_restricted(clin, pid, True)  # its care team: clin alone
    assert sync_at(desk, credential).refused == []

    # The grant and the work under it in one push.
    nurse1 = ClinicRecords(desk.database, "nurse1")
    BreakGlass(nurse1).open(pid, "unconscious", 30)
    Notes(nurse1).create(pid, "given oxygen")
    ClinicalEntries(nurse1).add("observation", pid, VITALS)
    assert sync_at(desk, credential).refused == []
    assert _all_arrived(live, clinic_id, desk)
    # Later work, judged with the grant the server holds.
    Notes(nurse1).create(pid, "breathing on her own")
    assert sync_at(desk, credential).refused == []
    assert _all_arrived(live, clinic_id, desk)

    # Another nurse, no grant of hers: the desk's checks removed.
    authorize.ENFORCING = False
    try:
        Notes(ClinicRecords(desk.database, "nurse2")).create(pid, "not mine to write")
    finally:
        authorize.ENFORCING = True
    report = sync_at(desk, credential)
    [(_, _, why)] = report.refused
    assert "write note needs a nurse or a clinician (on the care team" in why
    assert not _all_arrived(live, clinic_id, desk)
    desk.lock()
