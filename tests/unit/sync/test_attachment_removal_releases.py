"""A file taken off a chart, across workstations and releases: the removal is one ordinary
op on the attachment's record (its ``deleted`` register and its reason), so another
workstation hides the file too and lists it as removed with who, when and why; a
workstation of the release before removals (which does not know ``removed_reason``) still
syncs, hides the file (it knows ``deleted``) and relays the reason to the ones behind it;
upgraded, it needs no migration."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from core.records import unknown
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.removed_attachments import WRONG_CHART, remove, removed_from
from core.records.types import ATTACHMENT, RECORD_TYPES
from core.sync.attachments import Attachments
from tests.unit.sync.replicas import assert_converged, new_replica, sync_pair

SHA = "ab" * 32


@contextlib.contextmanager
def before_removals() -> Iterator[None]:
    """Run as the release before removals: an attachment's ``removed_reason`` is a field it
    does not know (kept and relayed, listed in unknown_records)."""
    saved = RECORD_TYPES["attachment"]
    RECORD_TYPES["attachment"] = dataclasses.replace(ATTACHMENT, bookkeeping=())
    try:
        yield
    finally:
        RECORD_TYPES["attachment"] = saved


def _letter(records: ClinicRecords, patient_id: str) -> str:
    """An attachment record (its metadata: the file itself plays no part in sync)."""
    return ClinicalEntries(records).add(
        "attachment", patient_id,
        {"filename": "letter.pdf", "media_type": "application/pdf", "size": "12",
         "sha256": SHA, "title": "Letter", "blob_id": SHA},
    )  # fmt: skip


def _listed(records: ClinicRecords, patient_id: str, tmp_path: Path) -> list[str]:
    return [a.id for a in Attachments(records, tmp_path).for_patient(patient_id)]


def test_a_removal_syncs_and_says_who_when_and_why_elsewhere(tmp_path: Path) -> None:
    here, there = new_replica("nina"), new_replica("doc")
    patient = here.add_patient("Roe", "Jane", "1970-03-12").id
    kept, wrong = _letter(here, patient), _letter(here, patient)
    sync_pair(there, here)
    assert sorted(_listed(there, patient, tmp_path)) == sorted([kept, wrong])
    remove(here, wrong, WRONG_CHART)
    sync_pair(there, here)
    assert _listed(there, patient, tmp_path) == [kept]
    every = Attachments(there, tmp_path).for_patient(patient, include_removed=True)
    [gone] = [a for a in every if a.removed]
    assert (gone.id, gone.title, gone.removed_by, gone.removed_reason) == (
        wrong, "Letter", "nina", WRONG_CHART,
    )  # fmt: skip
    assert gone.removed_at is not None and gone.removed_at[:4] >= "2026"
    assert there.db.query("SELECT count(*) FROM conflicts") == [(0,)]
    assert_converged([here, there])


def test_two_people_removing_the_same_file_at_once_is_no_conflict(tmp_path: Path) -> None:
    here, there = new_replica("nina"), new_replica("doc")
    patient = here.add_patient("Roe", "Jane", "1970-03-12").id
    wrong = _letter(here, patient)
    sync_pair(there, here)
    remove(here, wrong, WRONG_CHART)
    remove(there, wrong, "Wrong file")
    sync_pair(there, here)
    sync_pair(there, here)
    for r in (here, there):
        assert _listed(r, patient, tmp_path) == []
        assert r.db.query("SELECT count(*) FROM conflicts") == [(0,)]
    assert_converged([here, there])


def test_a_workstation_of_the_release_before_hides_the_file_and_relays_the_reason(
    tmp_path: Path,
) -> None:
    new, relay, far = new_replica("nina"), new_replica("nina"), new_replica("doc")
    patient = new.add_patient("Roe", "Jane", "1970-03-12").id
    wrong = _letter(new, patient)
    with before_removals():
        sync_pair(relay, new)
    remove(new, wrong, WRONG_CHART)
    with before_removals():
        report = sync_pair(relay, new)
        assert relay.db.query("SELECT count(*) FROM quarantine") == [(0,)], report
        # It knows ``deleted``: the file leaves the chart there too.
        assert relay.db.query("SELECT count(*) FROM attachments") == [(0,)]
        [(parts,)] = relay.db.query("SELECT parts FROM unknown_records WHERE id = ?", (wrong,))
        assert "field:removed_reason" in parts
    sync_pair(far, relay)  # relayed whole: the reason reaches the workstation behind it
    [gone] = removed_from(far.db, [patient])
    assert (gone.record_id, gone.removal.reason, gone.removal.by) == (wrong, WRONG_CHART, "nina")
    # The relay upgrades: no migration (nothing in its tables changes), the re-derivation
    # every open runs takes the field it kept as one it now knows.
    unknown.refresh(relay.db)
    assert relay.db.query("SELECT count(*) FROM unknown_records") == [(0,)]
    assert [g.removal.reason for g in removed_from(relay.db, [patient])] == [WRONG_CHART]
    assert_converged([new, relay, far])
