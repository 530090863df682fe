"""Big clinical notes still sync: batches and snapshot pages are cut by size, not only by
count, so no message outgrows the protocol's limit (a clinic with long notes would
otherwise never finish a first download)."""

from __future__ import annotations

import random
import string

from core.records.clinic import ClinicRecords
from core.records.notes import Notes
from core.store import oplog
from core.sync import protocol
from tests.unit.sync.replicas import materialized, new_replica, sync_pair

# 200 notes of 90,000 characters: about 18 MB of note text, more than one 16 MiB message.
NOTES, LENGTH = 200, 90_000


def _long_notes(r: ClinicRecords) -> None:
    rnd = random.Random(7)
    patient = r.add_patient("Long", "Notes", "1970-01-01")
    letters = string.ascii_letters + " "
    for _ in range(NOTES):
        Notes(r).create(patient.id, "".join(rnd.choices(letters, k=LENGTH)))


def test_long_notes_reach_a_new_workstation_and_an_existing_one() -> None:
    assert NOTES * LENGTH > protocol.MAX_MESSAGE_BYTES  # the case this test is about
    source = new_replica("ann")
    _long_notes(source)

    fresh = new_replica("new")  # an empty replica bootstraps from a snapshot
    report = sync_pair(fresh, source)
    assert report.snapshot_records == NOTES + 1  # the notes and their patient
    assert report.rounds > 2  # more than one page was needed

    existing = new_replica("bob")
    existing.add_patient("Own", "History", "1990-01-01")  # has history: pulls ops instead
    report = sync_pair(existing, source)
    assert report.pulled == NOTES + 1
    for r in (fresh, existing):
        assert materialized(r)["notes"] == materialized(source)["notes"]


def test_long_notes_are_pushed_in_several_batches() -> None:
    server, writer = new_replica("server"), new_replica("ann")
    server.add_patient("Server", "Side", "1990-01-01")
    sync_pair(writer, server)
    _long_notes(writer)
    report = sync_pair(writer, server)
    assert report.pushed == NOTES + 1
    assert materialized(server)["notes"] == materialized(writer)["notes"]


def test_fit_cuts_by_bytes_but_always_sends_one_item() -> None:
    source = new_replica("ann")
    patient = source.add_patient("Fit", "Test", "1970-01-01")
    for _ in range(3):
        Notes(source).create(patient.id, "x" * 1000)
    ops = [op for op in oplog.ops_after(source.db, {}, 100) if op.record_type == "note"]
    one = len(ops[0].update) + len(ops[0].deps)
    assert protocol.fit(ops, budget=one * 2) == ops[:2]
    assert protocol.fit(ops, budget=1) == ops[:1]
    assert protocol.fit(ops) == ops
