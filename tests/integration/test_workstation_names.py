"""Workstations named in conflicts: the clinic server sends the names its devices enrolled
with and their device ids, by replica, and a conflict then says "on Exam room 2 (device
af1459dc)", as IT's device list names it, instead of a replica id no one knows. Real
TLS server (embedded store and PostgreSQL), two real desks, the real
``careline conflicts list``."""

from __future__ import annotations

from pathlib import Path

from app.conflicts.dialog import describe_origin, load_inbox
from core.records.replication import replica_id
from core.records.workstation_names import describe_workstation, workstation_names
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at
from tests.integration.test_cli import careline


def test_a_conflict_names_the_workstation_it_came_from(live: Live, tmp_path: Path) -> None:
    clinic = add_clinic(live.server, "Harbour Clinic")
    a, cred_a = join_clinic(
        live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "Front desk"
    )
    b, cred_b = join_clinic(
        live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "Exam room 2"
    )
    a_id, b_id = replica_id(a.database), replica_id(b.database)
    patient = a.records.add_patient("Mensah", "Ama", "1979-05-05")
    sync_at(a, cred_a)
    sync_at(b, cred_b)
    # The same phone number changed on both desks before either saw the other's change.
    a.records.update_patient(patient.id, {"phone": "555-0100"})
    b.records.update_patient(patient.id, {"phone": "555-0199"})
    sync_at(b, cred_b)
    sync_at(a, cred_a)

    devices = {d.replica_id: d.id for d in live.server.registry.devices(clinic)}
    b_label = f"Exam room 2 (device {devices[b_id][:8]})"
    assert workstation_names(a.database) == {
        a_id: f"Front desk (device {devices[a_id][:8]})",
        b_id: b_label,
    }
    [conflict] = a.records.conflicts(patient.id)
    theirs = next(c for c in conflict.candidates if c.replica == b_id)
    inbox = load_inbox(a.records)
    assert describe_origin(theirs, inbox.this_replica, inbox.names, inbox.desks).startswith(
        f"by Ada Admin on {b_label}, "
    )
    assert describe_workstation(a_id, a_id, inbox.desks) == "this workstation"
    a.lock()
    listed = careline(
        tmp_path / "a", "--user", "admin", "--password-stdin", "conflicts", "list",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert f"on {b_id} [{b_label}] at" in listed.stdout

    # Revoked, the desk keeps its name: the conflicts it left behind still show it.
    [b_device] = [d for d in live.server.registry.devices(clinic) if d.replica_id == b_id]
    live.server.revoke_device(b_device.id)
    a.sign_in("admin", PASSWORD)
    sync_at(a, cred_a)
    assert workstation_names(a.database)[b_id] == b_label
    a.lock()
    b.lock()


def test_a_workstation_that_never_heard_a_name_shows_the_short_id() -> None:
    assert describe_workstation("4a5d1b37c0ffee00", "0000", {}) == "workstation 4a5d1b37"
    named = {"4a5d1b37c0ffee00": "Front desk (device 56572a7b)"}
    assert describe_workstation("4a5d1b37c0ffee00", "0000", named) == named["4a5d1b37c0ffee00"]
    assert describe_workstation("4a5d1b37c0ffee00", "4a5d1b37c0ffee00", named) == (
        "this workstation"
    )
