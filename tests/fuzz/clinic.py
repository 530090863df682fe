"""Replicas for the fuzz targets and the corpus generator: real in-memory SQLCipher
databases holding a small clinic (patients, an allergy, a signed and an unsigned note)."""

from __future__ import annotations

from core.records.clinic import ClinicRecords
from core.records.notes import Notes
from tests.unit.sync.replicas import Dump, dump_diff, full_dump, new_replica


def seeded_replica(actor: str = "fuzz") -> ClinicRecords:
    """A replica with a clinic set up and a few records of several types."""
    replica = new_replica(actor)
    replica.set_up_clinic("Fuzz Clinic", actor, "Fuzz Admin", "correct horse battery")
    patient = replica.add_patient("Doe", "Jane", "1980-02-03", sex="female", mrn="MRN-1")
    replica.add_allergy(patient.id, "penicillin", "rash")
    notes = Notes(replica)
    signed = notes.create(patient.id, "Seen for a cough.")
    notes.sign(signed.id)
    notes.create(patient.id, "Draft: follow up in two weeks.")
    replica.add_patient("Roe", "Richard", "1975-11-30", sex="male")
    return replica


def assert_unchanged(before: Dump, replica: ClinicRecords, what: str) -> None:
    """``what`` was refused: the replica must hold exactly what it held before, byte for
    byte (no half-applied batch, no audit entry, no moved clock)."""
    differ = dump_diff(before, full_dump(replica))
    if differ:
        raise AssertionError(f"{what} was refused but changed tables {sorted(differ)}")
