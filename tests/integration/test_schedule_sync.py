"""Two workstations and the clinic server, live over TLS: the schedule syncs, and the same
appointment moved on both before they sync surfaces in both conflict inboxes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.records.schedule import Schedule
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import add_clinic, join_clinic, live_server, sync_at


def test_moving_one_appointment_on_two_workstations_is_a_conflict(
    tmp_path: Path, no_keyring: None
) -> None:
    with live_server(tmp_path / "server") as live:
        clinic = add_clinic(live.server, "Harbour Clinic")
        live.server.add_user(clinic, "lee", "Dr Sam Lee", "clinician", PASSWORD)
        a, cred_a = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "a")
        b, cred_b = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "b")
        try:
            patient = a.records.add_patient("Mensah", "Ama", "1979-05-05")
            booked = Schedule(a.records).book(
                patient.id, "2026-12-07 09:30", "lee", minutes=15, reason="Cough"
            )
            sync_at(a, cred_a)
            sync_at(b, cred_b)
            day = Schedule(b.records).day(dt.date(2026, 12, 7))
            assert [(x.id, x.patient_name, x.clinician) for x in day] == [
                (booked.id, "MENSAH, Ama", "lee")
            ]

            # The front desk on a and the nurse on b move it at the same time, offline.
            Schedule(a.records).move(booked.id, "2026-12-07 10:00")
            Schedule(b.records).move(booked.id, "2026-12-07 11:15", minutes=30)
            for ws, cred in ((a, cred_a), (b, cred_b), (a, cred_a)):
                sync_at(ws, cred)
            for ws in (a, b):
                found = {c.field: c for c in ws.records.conflicts()}
                assert sorted(found) == ["ends_at", "starts_at"]
                assert {str(c.value) for c in found["starts_at"].candidates} == {
                    "2026-12-07T10:00",
                    "2026-12-07T11:15",
                }
                assert {c.record_id for c in found.values()} == {booked.id}

            # A person chooses the later start: that move's end comes with it (one choice
            # settles the whole move), and the other workstation follows.
            start = next(c for c in a.records.conflicts() if c.field == "starts_at")
            chosen = max(start.candidates, key=lambda c: str(c.value))
            a.records.resolve_conflict(start.id, choose=chosen.id)
            assert a.records.conflicts() == []
            sync_at(a, cred_a)
            sync_at(b, cred_b)
            assert a.records.conflicts() == b.records.conflicts() == []
            settled = Schedule(b.records).get(booked.id)
            assert (settled.starts_at, settled.ends_at) == ("2026-12-07T11:15", "2026-12-07T11:45")

            # Checking in on one workstation shows in the other's waiting room.
            # (On the appointment's day, by the clinic's clock.)
            morning = dt.datetime(2026, 12, 7, 11, 10)
            Schedule(b.records, lambda: morning).set_status(booked.id, "arrived")
            sync_at(b, cred_b)
            sync_at(a, cred_a)
            waiting = Schedule(a.records).waiting(dt.date(2026, 12, 7))
            assert [w.id for w in waiting] == [booked.id]
        finally:
            a.lock()
            b.lock()
