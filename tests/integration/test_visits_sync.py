"""Two workstations and a live server: a visit's reason changed on both before they sync,
and a note edited on one while it is signed on the other, both reach the conflict inbox of
both workstations; concurrent edits of different parts of a note merge."""

from __future__ import annotations

from pathlib import Path

from core.records.entries import ClinicalEntries
from core.records.notes import Notes
from core.records.visits import Visits
from tests.integration.server_fixtures import add_clinic, join_clinic, live_server, sync_at


def test_visit_and_note_conflicts_through_the_server(tmp_path: Path) -> None:
    with live_server(tmp_path / "server") as live:
        clinic = add_clinic(live.server, "Harbour Clinic")
        a, cred_a = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a", "a")
        b, cred_b = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "b")
        try:
            patient = a.records.add_patient("Mensah", "Akua", "1982-06-14")
            visit = Visits(a.records).start(patient.id, "Cough")
            merged = Notes(a.records).create(
                patient.id, "History: asthma.\nPlan: review.", visit.id
            )
            signed = Notes(a.records).create(patient.id, "Seen today.", visit.id)
            sync_at(a, cred_a)
            sync_at(b, cred_b)
            assert Visits(b.records).get(visit.id).reason == "Cough"

            # Offline on both: the same visit field, two parts of one note, and a note
            # signed on A while B edits it.
            ClinicalEntries(a.records).update("encounter", visit.id, {"reason": "Cough, fever"})
            ClinicalEntries(b.records).update("encounter", visit.id, {"reason": "Wheeze"})
            Notes(a.records).edit(merged.id, "History: asthma since 2001.\nPlan: review.")
            Notes(b.records).edit(merged.id, "History: asthma.\nPlan: review in 2 weeks.")
            Notes(a.records).sign(signed.id)
            Notes(b.records).edit(signed.id, "Seen today. BP 150/95.")
            for _ in range(2):
                sync_at(a, cred_a)
                sync_at(b, cred_b)

            for ws in (a, b):
                records = ws.records
                inbox = {(c.record_id, c.field): c for c in records.review_conflicts()}
                reason = inbox[(visit.id, "reason")]
                assert {c.value for c in reason.candidates} == {"Cough, fever", "Wheeze"}
                body = inbox[(signed.id, "body")]
                assert {c.value for c in body.candidates} == {
                    "Seen today.",
                    "Seen today. BP 150/95.",
                }
                # The signed text is what shows; the merge of the unsigned note is clean.
                assert Notes(records).get(signed.id).body == "Seen today."
                assert (merged.id, "body") not in inbox
                assert Notes(records).get(merged.id).body == (
                    "History: asthma since 2001.\nPlan: review in 2 weeks."
                )
        finally:
            a.lock()
            b.lock()
