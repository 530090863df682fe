"""A FHIR Bundle (``transaction`` or ``collection``) into the clinic, through the normal
write path, as one audited, resumable batch.

First the whole bundle is read and checked without writing anything (``reader.py``): a
bundle that is not JSON, not a Bundle, or has a resource that fails is refused with an
error naming the resource and element, and nothing is written. Entries of other resource
types are reported as skipped, never dropped silently.

Before anything is written, the importing person must hold every permission the bundle's
records need (``needed_permissions``): the import is an admin's (``fhir.import``) and each
record it writes passes its own gate (other workstations check its op's author too), so an
admin who is not also a clinician is refused up front, with the permissions named.

Then each patient of the bundle is written with everything on their chart in one
transaction (``Database.batch``): the registration, allergies, problems, medications,
appointments, visits, vital signs and notes, each through its own audited write, and a
``fhir.import`` audit entry. Each record carries its source (the patient record's
``source`` column; a note, visit, appointment or vital sign's ``source`` register,
``fhir:<bundle patient>|<Type>/<id>``), replicated with it: a re-run of the same bundle,
after an interruption or on another workstation once synced, finds the patient by its
source and skips the chart, so nothing is created twice. (Allergies, problems and
medications are items of the patient's record, whose source names the bundle patient.)

A patient already in the clinic (the same Careline record id, the same MRN, or born the
same day with the same or a similar name: the rules registration uses,
core/records/duplicates.py) is offered for merge rather than duplicated: the bundle's chart
is imported onto a new record naming the existing one in ``duplicate_of``, which puts the
pair on the "Possible duplicates" review list (core/records/merges.py) where a person
merges it into the existing chart (or dismisses it). The MRN stays with the existing chart
(an MRN is unique); the report lists the patient as matched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from fhir.resources.R4B.provenance import Provenance

from core.records import authorize, crdt, vitals
from core.records import validation as v
from core.records.allergy_status import AllergyRecords
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.crdt import RecordDoc
from core.records.duplicates import describe, find_possible_duplicates
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError
from core.records.fhir import (
    allergy,
    appointment,
    condition,
    document,
    encounter,
    medication,
    patient,
)
from core.records.fhir.common import reference_text, staff_name
from core.records.fhir.reader import Chart, Entry, read_bundle, vital_sets, vital_values
from core.records.fhir.report import ImportReport, Outcome
from core.records.models import PatientSummary
from core.records.permissions import WHO
from core.records.types import SOURCE
from core.records.vital_signs import VitalSigns
from core.store.database import utc_now

META_PREFIX = "fhir.import:"  # the resume key of imports made before V15 (local meta)
SOURCE_PREFIX = "fhir:"

# What each resource type's records need (core/records/permissions.py), on a new chart or
# on the clinic; a signed note or addendum also needs sign_note (``needed_permissions``).
NEEDS: dict[str, tuple[str, ...]] = {
    "Patient": ("register_patient",),
    "AllergyIntolerance": ("record_allergy",),
    "Condition": ("diagnose",),
    "MedicationStatement": ("prescribe",),
    "Observation": ("record_vitals",),
    "Encounter": ("manage_visit",),
    "Appointment": ("schedule",),
    "DocumentReference": ("write_note",),
}
_ON_CLINIC = frozenset({"register_patient", "schedule"})

Progress = Callable[[int, int], object]


class _Importer:
    def __init__(self, records: ClinicRecords, batch: str, report: ImportReport) -> None:
        self.records = records
        self.db = records.db
        self.actor = records.actor
        self.entries = ClinicalEntries(records)
        self.batch = batch
        self.report = report

    # ----- matching ------------------------------------------------------------------

    def already_imported(self, key: str) -> str | None:
        """The patient an earlier run made from this bundle patient (here, or on another
        workstation and synced), or None."""
        rows = self.db.query(
            "SELECT id FROM patients WHERE source = ? ORDER BY id LIMIT 1", (SOURCE_PREFIX + key,)
        )
        if rows:
            return str(rows[0][0])
        rows = self.db.query("SELECT value FROM meta WHERE key = ?", (META_PREFIX + key,))
        return str(rows[0][0]) if rows else None

    def match(self, f: patient.PatientFields) -> tuple[str, str] | None:
        """(existing patient id, why) when the patient is already in the clinic."""
        if f.mrn:
            rows = self.db.query(
                "SELECT id, family, given, birth_date, mrn, sex FROM patients "
                "WHERE mrn = ? COLLATE NOCASE",  # as registration: case makes no other MRN
                (v.mrn(f.mrn),),
            )
            if rows:
                return str(rows[0][0]), f"the same MRN: {describe(PatientSummary(*rows[0]))}"
        found = find_possible_duplicates(self.db, f.family, f.given, v.birth_date(f.birth_date))
        if found:
            return found[0].id, f"born the same day with a similar name: {describe(found[0])}"
        return None

    # ----- writing one chart ----------------------------------------------------------

    def chart(self, chart: Chart) -> None:
        """One bundle patient: skipped (already imported), matched, or created."""
        done = self.already_imported(chart.key)
        if done is not None:
            reason = f"already imported by an earlier run of this bundle (patient {done})"
            for e in (chart.entry, *chart.entries):
                self.report.skipped.append(
                    Outcome(e.name, done if e is chart.entry else None, reason)
                )
            return
        f: patient.PatientFields = chart.entry.fields
        if f.record_id and self.db.query("SELECT 1 FROM patients WHERE id = ?", (f.record_id,)):
            # This clinic's own record (a bundle exported here, or from a replica of it).
            reason = "the same Careline record is already in this clinic: nothing imported"
            self.report.matched.append(Outcome(chart.entry.name, f.record_id, reason))
            self.report.skipped += [Outcome(e.name, None, reason) for e in chart.entries]
            return
        found = self.match(f)
        created: list[Outcome] = []
        with self.db.batch():  # the whole chart, or nothing of it
            created = self._create(chart, None if found is None else found[0])
        if found is not None:
            existing, why = found
            self.report.matched.append(
                Outcome(
                    chart.entry.name,
                    existing,
                    f"already registered ({why}): imported as {created[0].record_id}, "
                    "listed under Possible duplicates to merge",
                )
            )
        self.report.created += created

    def _create(self, chart: Chart, duplicate_of: str | None) -> list[Outcome]:
        f: patient.PatientFields = chart.entry.fields
        # A likely duplicate leaves the MRN to the chart already holding it (MRNs are unique).
        mrn = f.mrn if duplicate_of is None else None
        p = self.records.add_patient(
            f.family,
            f.given,
            f.birth_date,
            f.sex,
            mrn,
            f.phone,
            extra={"source": SOURCE_PREFIX + chart.key, "duplicate_of": duplicate_of or ""},
        )
        out = [Outcome(chart.entry.name, p.id)]

        def source(e: Entry) -> str:
            return f"{SOURCE_PREFIX}{chart.key}|{e.name}"

        ids: dict[str, str] = {}  # a bundle reference -> the record made from it
        provenance: list[list[str]] = []
        note_authors: list[list[str]] = []  # [note record id, its author at the source]
        skipped: list[Outcome] = []
        by_type: dict[str, list[Entry]] = {}
        for e in chart.entries:
            by_type.setdefault(e.rtype, []).append(e)

        def made(e: Entry, record_id: str, reason: str | None = None) -> None:
            ids.update({ref: record_id for ref in e.refs})
            out.append(Outcome(e.name, record_id, reason))

        allergies = by_type.get("AllergyIntolerance", [])
        for e in allergies:  # first: a recorded allergy ends "No known allergies"
            if e.fields.none_known:
                AllergyRecords(self.records).record_no_known_allergies(p.id)
                made(e, p.id)
        for e in allergies:
            a: allergy.AllergyFields = e.fields
            if not a.none_known:
                added = self.records.add_allergy(p.id, a.substance or "", a.reaction, a.severity)
                made(e, added.id)
        for e in by_type.get("Appointment", []):
            ap: appointment.AppointmentFields = e.fields
            rid = self.entries.add("appointment", p.id, ap.values, source(e))
            if ap.arrived_at:
                self._set("appointment.status", "appointment", rid, {"arrived_at": ap.arrived_at})
            made(e, rid)
        for e in by_type.get("Encounter", []):
            en: encounter.EncounterFields = e.fields
            values = {**en.values, "appointment_id": ids.get(en.appointment or "")}
            rid = self.entries.add("encounter", p.id, values, source(e))
            if en.closed_at:
                closing = {"closed_at": en.closed_at, "closed_by": en.closed_by}
                self._set("encounter.close", "encounter", rid, closing)
            made(e, rid)
        for rtype, list_name in (("Condition", "problems"), ("MedicationStatement", "medications")):
            for e in by_type.get(rtype, []):
                item: condition.ConditionFields | medication.MedicationFields = e.fields
                values = {**item.values, "encounter_id": ids.get(item.encounter or "")}
                made(e, self.entries.add_to_list(p.id, list_name, values))
        vital_signs = VitalSigns(self.records)
        recorded: set[Entry] = set()  # by the entry itself (Entry compares as itself)
        for group in vital_sets(by_type.get("Observation", [])):
            first = group[0][1]
            typed, units = vital_values(group)
            sources = {vitals.vital(o.key).code: source(e) for e, o in group}
            readings = vital_signs.record(
                p.id, typed, units, first.observed_at, ids.get(first.encounter or ""), sources
            )
            by_code = {r.code: r.id for r in readings}
            for e, o in group:
                if e not in recorded:  # a blood-pressure entry: its systolic's record
                    recorded.add(e)
                    made(e, by_code[vitals.vital(o.key).code])
        for e in by_type.get("DocumentReference", []):
            if e.fields is None:
                skipped.append(
                    Outcome(
                        e.name,
                        None,
                        "an attached file's content is not in a FHIR bundle: attach the file",
                    )
                )
                continue
            n: document.NoteFields = e.fields
            note_id = self._note(p.id, n, ids, source(e))
            if n.source_author is None:
                made(e, note_id)
                continue
            # Kept as the source's words, in the audit entry and the report: as the note's
            # author it would name whoever holds that user name here.
            note_authors.append([note_id, n.source_author])
            made(e, note_id, f"written by {n.source_author!r} at the source; by {self.actor} here")
        for e in by_type.get("Provenance", []):
            prov = e.resource
            assert isinstance(prov, Provenance)
            targets = [
                ids.get(reference_text(t) or "", reference_text(t) or "") for t in prov.target
            ]
            who = [staff_name(a.who) or "" for a in prov.agent]
            # [target, who, when], and what they did when it was not recording it (UPDATE:
            # resolved or stopped): two rows for one target would else read as two recorders.
            did = [c.code for c in (prov.activity.coding or []) if c.code] if prov.activity else []
            row = [*targets[:1], ", ".join(who), str(prov.recorded)]
            provenance.append(row + [d for d in did[:1] if d != "CREATE"])
            out.append(Outcome(e.name, None, "kept in the import's audit entry (fhir.import)"))
        details = {
            "batch": self.batch,
            "source": chart.key,
            "records": len(out),
            "provenance": provenance,
            "note_authors": note_authors,
        }
        with self.db.write(self.actor, "fhir.import", "patient", p.id, details):
            pass  # the resume key is the patient's replicated ``source``
        self.report.skipped += skipped
        return out

    def _set(
        self, action: str, type_name: str, record_id: str, fields: Mapping[str, crdt.Value]
    ) -> None:
        with self.db.write(self.actor, action, type_name, record_id) as tx:
            change(tx, self.actor, record_id, type_name, self.records.setter(fields))

    def _note(
        self, patient_id: str, n: document.NoteFields, ids: dict[str, str], source: str
    ) -> str:
        """A note by the importing person (the source's author is the caller's to keep),
        then its signature and addenda (a signed note's only: read_bundle refused any
        other), each its own write (so each passes the permission its action needs)."""
        note_id, actor = new_id(), self.actor
        encounter_id = ids.get(n.encounter or "")

        def create(doc: RecordDoc, hlc: str) -> None:
            for name, value in (
                ("patient_id", patient_id),
                ("encounter_id", encounter_id),
                ("author", actor),
                ("created_at", utc_now()),
                (SOURCE, source),
            ):
                crdt.write(doc, name, value, hlc, actor)
            crdt.text(doc, "body").insert(0, n.body)

        with self.db.write(actor, "note.create", "note", note_id) as tx:
            change(tx, actor, note_id, "note", create)
        if n.signed_at is not None:
            signature = {"signed_body": n.body, "signed_at": n.signed_at or utc_now()}
            self._set("note.sign", "note", note_id, signature)
        for text in n.addenda if n.signed_at is not None else ():
            with self.db.write(actor, "note.addendum", "note", note_id) as tx:
                change(tx, actor, note_id, "note", _addendum(text, actor))
        return note_id


def _addendum(text: str, actor: str) -> Callable[[RecordDoc, str], None]:
    def add(doc: RecordDoc, hlc: str) -> None:
        crdt.add(doc, "addenda", {"body": text}, hlc, actor)

    return add


def needed_permissions(charts: list[Chart]) -> list[str]:
    """The permissions writing these charts needs (``NEEDS``), in the matrix's order."""
    found: set[str] = set()
    for chart in charts:
        for e in (chart.entry, *chart.entries):
            found.update(NEEDS.get(e.rtype, ()))
            n = e.fields if e.rtype == "DocumentReference" else None
            if isinstance(n, document.NoteFields) and (n.signed_at is not None or n.addenda):
                found.add("sign_note")
    return [p for p in WHO if p in found]


def _require_record_permissions(records: ClinicRecords, charts: list[Chart]) -> None:
    """Refuse (audited, nothing written) an importer who could not write every record:
    each imported record passes its own gate here and is checked again by every other
    workstation, so an import must be made by someone who may record it all (an admin who
    is also a clinician, or a clinician given the admin role)."""
    if not authorize.ENFORCING:
        return
    chart = new_id()  # an ordinary new chart: what each bundle patient becomes
    missing = [
        p
        for p in needed_permissions(charts)
        if not records.may(p, None if p in _ON_CLINIC else chart)
    ]
    if not missing:
        return
    wants = "; ".join(f"{p.replace('_', ' ')} ({WHO[p]})" for p in missing)
    message = (
        f"{records.actor} may not write the records this bundle holds: importing them needs "
        f"{wants}. Import as someone holding those roles (an admin who is also a clinician), "
        "or have an admin add the clinician role to this account"
    )
    details = {"action": "fhir.import", "reason": message}
    with records.db.write(records.actor, authorize.REFUSED, "clinic", "clinic", details):
        pass
    raise NotAllowedError(message)


def import_bundle(
    records: ClinicRecords, data: bytes | str, on_progress: Progress | None = None
) -> ImportReport:
    """Import a FHIR Bundle into the clinic; see the module docstring. FhirError for a
    bundle that cannot be read (nothing written), NotAllowedError (audited) for anyone but
    an admin."""
    raw = data.encode() if isinstance(data, str) else data
    batch = hashlib.sha256(raw).hexdigest()[:16]
    charts, skipped = read_bundle(raw)
    report = ImportReport(batch, skipped=skipped)
    start = {"batch": batch, "patients": len(charts), "phase": "start"}
    with records.db.write(records.actor, "fhir.import", "clinic", "clinic", start):
        pass  # the gate refuses anyone but an admin before anything is written
    _require_record_permissions(records, charts)
    importer = _Importer(records, batch, report)
    for done, chart in enumerate(charts, 1):
        importer.chart(chart)
        if on_progress is not None:
            on_progress(done, len(charts))
    end = {
        "batch": batch,
        "phase": "done",
        "created": len(report.created),
        "matched": len(report.matched),
        "skipped": len(report.skipped),
    }
    with records.db.write(records.actor, "fhir.import", "clinic", "clinic", end):
        pass
    return report
