"""A hostile replica sends an op its author may not make: a front-desk account's
workstation, its own checks removed, signs a medication (warfarin) with its genuine device
key. The clinic server (embedded and PostgreSQL) and an honest LAN peer each quarantine it
with the reason, never apply it, and an op the same person may make still arrives. The
server also refuses a note placed under another patient's visit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.authz.tuples import RelationTuple
from core.cli import server as server_cli
from core.records import authorize, remote_authz
from core.records.clinic import ClinicRecords, new_id
from core.records.errors import NotAllowedError
from core.records.medications import Medications
from core.records.relations import Access
from core.records.replication import replica_id
from core.records.visits import Visits
from core.store import oplog
from core.store.database import utc_now
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at
from tests.integration.test_lan_hostile import Clinic, _quarantined_here, _sync
from tests.integration.test_lan_hostile import clinic as clinic  # the LAN clinic fixture
from tests.integration.test_remote_apply_forgeries import _forge

pytestmark = [
    pytest.mark.strict_authors,
    pytest.mark.strict_authz,
    pytest.mark.database_url_in_env,  # live: embedded and PostgreSQL; admin commands run here
]

WHY = "prescribe needs a clinician"


def _hostile_prescription(db: Any, patient_id: str, monkeypatch: pytest.MonkeyPatch) -> oplog.Op:
    """What a workstation whose own checks were removed writes as the front desk."""
    monkeypatch.setattr(authorize, "ENFORCING", False)
    try:
        Medications(ClinicRecords(db, "desk")).start(patient_id, {"name": "warfarin"})
    finally:
        monkeypatch.setattr(authorize, "ENFORCING", True)
    me = replica_id(db)
    op = [o for o in oplog.ops_after(db, {}, 100_000) if o.origin == me][-1]
    assert (op.author, op.signer) == ("desk", "device")
    return op


def test_a_lan_peer_quarantines_a_front_desk_prescription(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, m = clinic.a, clinic.b, clinic.m
    a.ws.records.add_user("desk", "Dee Desk", "front_desk", PASSWORD)
    _sync(a, m)
    _sync(a, b)
    pid = a.ws.records.list_patients()[0].id
    # The honest gate on M refuses it as the front desk would see it.
    with pytest.raises(NotAllowedError, match="Only a clinician can start a medication"):
        Medications(ClinicRecords(m.db, "desk")).start(pid, {"name": "warfarin"})
    forged = _hostile_prescription(m.db, pid, monkeypatch)

    for peer in (a, b):
        report = _sync(m, peer)
        assert [(o, s) for o, s, _ in report.refused] == [(forged.origin, forged.seq)]
        assert WHY in report.refused[0][2]
        assert oplog.version_vector(peer.db).get(forged.origin, 0) < forged.seq
        assert Medications(peer.ws.records).list(pid) == []  # never applied
    a.ws.lock()
    reason = _quarantined_here(a.ws.data_dir, forged.origin, forged.seq)
    assert "'desk'" in reason and WHY in reason


def _quarantine_list(live: Live, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    data_dir = str(live.server.data_dir)
    code = server_cli.main(["--data-dir", data_dir, "--json", "admin", "quarantine", "list"])
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_the_server_quarantines_a_front_desk_prescription(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic_id = add_clinic(live.server, "Hostile Desk Clinic")
    live.server.add_user(clinic_id, "desk", "Dee Desk", "front_desk", PASSWORD)
    desk, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "d")
    # The founder (admin and clinician) registers a patient from this workstation.
    patient = desk.records.add_patient("Hopper", "Grace", "1906-12-09")
    sync_at(desk, credential)
    forged = _hostile_prescription(desk.database, patient.id, monkeypatch)
    report = sync_at(desk, credential)
    refused = [(o, s) for o, s, _ in report.refused]
    assert refused == [(forged.origin, forged.seq)]
    assert WHY in report.refused[0][2]
    store = live.server.sync_store(clinic_id)
    assert store.version_vector().get(forged.origin, 0) < forged.seq
    [row] = _quarantine_list(live, capsys)
    assert row["author"] == "desk" and WHY in row["reason"]
    desk.lock()


def test_the_server_keeps_its_permission_history_until_a_role_changes(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server judged every push against a permission history read from every user and
    tuple record (and decoded) again; it keeps it from one push to the next while none of
    them is stored. A role given between two pushes counts at the second: the front desk's
    prescription, quarantined, is sent again at the next sync and now arrives."""
    hits: list[bool] = []
    kept_history = remote_authz.kept_history

    def counted(token: str) -> remote_authz.History | None:
        found = kept_history(token)
        hits.append(found is not None)
        return found

    monkeypatch.setattr(remote_authz, "kept_history", counted)
    clinic_id = add_clinic(live.server, "Kept History Clinic")
    live.server.add_user(clinic_id, "desk", "Dee Desk", "front_desk", PASSWORD)
    desk, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "d")
    patient = desk.records.add_patient("Hopper", "Grace", "1906-12-09")
    sync_at(desk, credential)
    hits.clear()
    ClinicRecords(desk.database, "desk").update_patient(patient.id, {"phone": "555-0101"})
    sync_at(desk, credential)
    assert hits == [True]  # judged against the history the last push left
    forged = _hostile_prescription(desk.database, patient.id, monkeypatch)
    assert [s for _, s, _ in sync_at(desk, credential).refused] == [forged.seq]

    live.server.staff(clinic_id, lambda staff: staff.set_role("desk", "clinician"))
    sync_at(desk, credential)  # sends the op kept aside again
    store = live.server.sync_store(clinic_id)
    assert store.version_vector()[forged.origin] == forged.seq
    desk.lock()


def test_the_server_judges_a_first_upload_of_care_teams_without_working_it_out_per_op(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clinic's first upload of care teams (after an import, or a LAN-only period): one
    push of many tuple ops. The server judged each against the tuples worked out again
    from every write after the one before it learned its tuple (5,000 took longer than
    the 30 s request timeout); now the history is worked out once for the push, each op
    adding its own tuple to it, and every grant arrives."""
    clinic_id = add_clinic(live.server, "Care Team Clinic")
    live.server.add_user(clinic_id, "nina", "Nina Nurse", "nurse", PASSWORD)
    desk, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "d")
    pids = [desk.records.add_patient(f"Pat{i:03d}", "Bo", "1970-01-01").id for i in range(120)]
    sync_at(desk, credential)
    access = Access(desk.records)
    for pid in pids:
        access.grant(RelationTuple(f"patient:{pid}", "care_team", "user:nina"))
    built: list[int] = []
    listed: list[int] = []
    build, list_all = remote_authz._Index.build, remote_authz.History._tuples_at

    def counted_build(history: remote_authz.History) -> remote_authz._Index:
        built.append(1)
        return build(history)

    def counted_list(history: remote_authz.History, hlc: str) -> list[RelationTuple]:
        listed.append(1)
        return list_all(history, hlc)

    monkeypatch.setattr(remote_authz._Index, "build", counted_build)
    monkeypatch.setattr(remote_authz.History, "_tuples_at", counted_list)
    report = sync_at(desk, credential)
    assert report.pushed == len(pids) and report.refused == []
    assert listed == []
    assert built == [1]  # the push's, once
    store = live.server.sync_store(clinic_id)
    assert (
        store.version_vector()[replica_id(desk.database)]
        == oplog.version_vector(desk.database)[replica_id(desk.database)]
    )
    desk.lock()


def test_the_server_quarantines_a_note_under_another_patients_visit(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clinician may write on both charts; the note, made on one, names the other's
    visit: the server (embedded and PostgreSQL) refuses it, as the workstations do."""
    clinic_id = add_clinic(live.server, "Visit Check Clinic")
    live.server.add_user(clinic_id, "clin", "Cal Clinician", "clinician", PASSWORD)
    desk, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "d")
    clin = ClinicRecords(desk.database, "clin")
    first = clin.add_patient("Hopper", "Grace", "1906-12-09").id
    second = clin.add_patient("Lamarr", "Hedy", "1914-11-09").id
    visit = Visits(clin).start(first, reason="cough").id
    Visits(clin).add_note(visit, "dry cough")  # under its own chart's visit: arrives
    assert sync_at(desk, credential).refused == []
    values = {
        "patient_id": second,
        "encounter_id": visit,
        "author": "clin",
        "created_at": utc_now(),
    }
    forged = _forge(desk.database, "clin", new_id(), "note", values)
    report = sync_at(desk, credential)
    assert [(o, s) for o, s, _ in report.refused] == [(forged.origin, forged.seq)]
    why = "it puts a note under another patient's visit"
    assert why in report.refused[0][2]
    store = live.server.sync_store(clinic_id)
    assert store.version_vector()[forged.origin] == forged.seq - 1  # the visit's work arrived
    [row] = _quarantine_list(live, capsys)
    assert row["author"] == "clin" and why in row["reason"]
    desk.lock()
