"""A FHIR Bundle (``transaction`` or ``collection``) into the clinic, through the normal
write path, as one audited, resumable batch.

First the whole bundle is read and checked without writing anything: every entry is parsed
by the library's models and mapped to Careline's fields, and every value is put through
the same checks the write path makes. A bundle that is not JSON, not a Bundle, or has a
resource that fails is refused with an error naming the resource and element, and nothing
is written. Entries of other resource types are reported as skipped, never dropped silently.

Then each patient of the bundle is written with everything on their chart in one
transaction (``Database.batch``): the registration, allergies, problems, medications,
appointments, visits, vital signs and notes, each through its own audited write (so each
passes the permission gate), and a ``fhir.import`` audit entry that records the source key
in the ``meta`` table. A re-run of the same bundle (after an interruption, or twice) finds
that key and skips the patient: nothing is duplicated, and the run goes on where the last
one stopped.

A patient already in the clinic (the same Careline record id, the same MRN, or born the
same day with the same or a similar name: the rules registration uses,
core/records/duplicates.py) is not registered again: the report lists them as matched and
offered for merge, and their chart's entries as skipped for that reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.resource import Resource

from core.records import crdt, vitals
from core.records import validation as v
from core.records.changes import change
from core.records.clinic import ClinicRecords, clean_item, new_id
from core.records.crdt import RecordDoc
from core.records.duplicates import describe, find_possible_duplicates
from core.records.entries import ClinicalEntries
from core.records.errors import ValidationError
from core.records.fhir import (
    allergy,
    appointment,
    condition,
    document,
    encounter,
    medication,
    observation,
    patient,
)
from core.records.fhir.common import FhirError, parse, reference_text, source_key, staff_name
from core.records.models import PatientSummary
from core.records.notes import MAX_NOTE
from core.records.types import ALLERGIES, APPOINTMENT, ENCOUNTER, LISTS
from core.records.vital_signs import VitalSigns, measure_all
from core.store.database import utc_now

MODELS: dict[str, type[Resource]] = {
    "Patient": FhirPatient,
    "AllergyIntolerance": AllergyIntolerance,
    "Condition": Condition,
    "MedicationStatement": MedicationStatement,
    "Observation": Observation,
    "Encounter": Encounter,
    "Appointment": FhirAppointment,
    "DocumentReference": DocumentReference,
    "Provenance": Provenance,
}
BUNDLE_TYPES = ("transaction", "collection")
META_PREFIX = "fhir.import:"

Progress = Callable[[int, int], object]


@dataclass(frozen=True)
class Outcome:
    """What became of one entry: the resource (``Patient/p1``), the record it is now (or
    matched), and why when it was matched or skipped."""

    resource: str
    record_id: str | None = None
    reason: str | None = None


@dataclass
class ImportReport:
    """What an import created, matched and skipped (with reasons)."""

    batch: str  # the bundle's digest: the audit entries of the import name it
    created: list[Outcome] = field(default_factory=list)
    matched: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For ``--json`` output."""
        return {
            "batch": self.batch,
            "created": [asdict(o) for o in self.created],
            "matched": [asdict(o) for o in self.matched],
            "skipped": [asdict(o) for o in self.skipped],
        }

    def text(self) -> str:
        """A person's summary: counts, then each match and skip with its reason."""
        lines = [
            f"Created {len(self.created)}, matched {len(self.matched)}, "
            f"skipped {len(self.skipped)} (batch {self.batch})."
        ]
        lines += [f"matched  {o.resource} -> {o.record_id}: {o.reason}" for o in self.matched]
        lines += [f"skipped  {o.resource}: {o.reason}" for o in self.skipped]
        return "\n".join(lines)


@dataclass
class _Entry:
    name: str  # Patient/p1, for messages
    rtype: str
    resource: Resource
    refs: set[str] = field(default_factory=set)  # how other entries may reference it
    fields: Any = None  # what the resource's mapping module read from it


@dataclass
class _Chart:
    """A bundle patient and the entries on their chart."""

    entry: _Entry
    key: str  # source key (meta)
    entries: list[_Entry] = field(default_factory=list)


def _load(data: bytes | str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirError("bundle", f"is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        found = doc.get("resourceType") if isinstance(doc, dict) else type(doc).__name__
        raise FhirError("bundle.resourceType", f"is {found!r}, not a FHIR Bundle")
    if doc.get("type") not in BUNDLE_TYPES:
        raise FhirError(
            "Bundle.type", f"{doc.get('type')!r}: only a transaction or a collection is imported"
        )
    if not isinstance(doc.get("entry", []), list):
        raise FhirError("Bundle.entry", "is not a list")
    return doc


def _patient_ref(entry: _Entry) -> list[str]:
    """The references by which an entry names its patient."""
    r = entry.resource
    if isinstance(r, AllergyIntolerance):
        return [t for t in (reference_text(r.patient),) if t]
    if isinstance(r, FhirAppointment):
        return list(entry.fields.patients)
    subject = getattr(r, "subject", None)
    return [t for t in (reference_text(subject),) if t]


def _map(entry: _Entry) -> None:
    """Read the entry's fields with its mapping module and put them through the write
    path's own checks (FhirError names the resource and element)."""
    r, where = entry.resource, entry.name
    try:
        if isinstance(r, FhirPatient):
            f = patient.from_fhir(r, where)
            v.text("family", f.family), v.text("given", f.given), v.birth_date(f.birth_date)
            v.sex(f.sex), v.mrn(f.mrn), v.text("phone", f.phone, required=False)
            entry.fields = f
        elif isinstance(r, AllergyIntolerance):
            a = allergy.from_fhir(r)
            clean_item(ALLERGIES, asdict(a))
            entry.fields = a
        elif isinstance(r, Condition):
            c = condition.from_fhir(r, where)
            clean_item(LISTS["problems"], c.values)
            entry.fields = c
        elif isinstance(r, MedicationStatement):
            m = medication.from_fhir(r, where)
            clean_item(LISTS["medications"], m.values)
            entry.fields = m
        elif isinstance(r, Observation):
            found = observation.from_fhir(r, where)
            for o in found:  # blood pressure: checked with its set (_check_vital_sets)
                vitals.measure(vitals.vital(o.key), o.value, o.unit)
            entry.fields = found
        elif isinstance(r, Encounter):
            e = encounter.from_fhir(r, where)
            for spec in ENCOUNTER.writable:
                spec.clean(e.values.get(spec.name))
            entry.fields = e
        elif isinstance(r, FhirAppointment):
            ap = appointment.from_fhir(r, where)
            for spec in APPOINTMENT.writable:
                spec.clean(ap.values.get(spec.name))
            entry.fields = ap
        elif isinstance(r, DocumentReference) and document.is_note(r):
            n = document.note_from_fhir(r, where)
            if not n.body.strip() or len(n.body) > MAX_NOTE:
                raise FhirError(
                    f"{where}.content", f"a note's text must be 1 to {MAX_NOTE} characters"
                )
            entry.fields = n
    except FhirError:
        raise
    except ValidationError as exc:
        raise FhirError(where, str(exc)) from None


_Vital = tuple[_Entry, observation.ObservationFields]


def _vital_sets(entries: list[_Entry]) -> list[list[_Vital]]:
    """Vital signs measured together (same time and visit) as the sets a nurse records:
    both blood pressure numbers go in one (a set repeating a vital is split)."""
    sets: dict[tuple[str, str | None], list[list[_Vital]]] = {}
    for e in entries:
        for o in e.fields:
            groups = sets.setdefault((o.observed_at, o.encounter), [[]])
            if any(other.key == o.key for _, other in groups[-1]):
                groups.append([])
            groups[-1].append((e, o))
    return [group for groups in sets.values() for group in groups]


def _vital_values(group: list[_Vital]) -> tuple[dict[str, str], dict[str, str]]:
    values = {o.key: o.value for _, o in group}
    units = {o.key: o.unit for _, o in group if o.unit}
    return values, units


def _check_vital_sets(chart: _Chart) -> None:
    """Each set as the write path will check it (FhirError names its first Observation)."""
    for group in _vital_sets([e for e in chart.entries if e.rtype == "Observation"]):
        _, errors = measure_all(*_vital_values(group))
        if errors:
            raise FhirError(group[0][0].name, str(next(iter(errors.values()))))


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
        rows = self.db.query("SELECT value FROM meta WHERE key = ?", (META_PREFIX + key,))
        return str(rows[0][0]) if rows else None

    def match(self, f: patient.PatientFields) -> tuple[str, str] | None:
        """(existing patient id, why) when the patient is already in the clinic."""
        if f.record_id and self.db.query("SELECT 1 FROM patients WHERE id = ?", (f.record_id,)):
            return f.record_id, "the same Careline record"
        if f.mrn:
            rows = self.db.query(
                "SELECT id, family, given, birth_date, mrn, sex FROM patients WHERE mrn = ?",
                (v.mrn(f.mrn),),
            )
            if rows:
                return str(rows[0][0]), f"the same MRN: {describe(PatientSummary(*rows[0]))}"
        found = find_possible_duplicates(self.db, f.family, f.given, v.birth_date(f.birth_date))
        if found:
            return found[0].id, f"born the same day with a similar name: {describe(found[0])}"
        return None

    # ----- writing one chart ----------------------------------------------------------

    def chart(self, chart: _Chart) -> None:
        """One bundle patient: skipped (already imported), matched, or created."""
        done = self.already_imported(chart.key)
        if done is not None:
            reason = f"already imported by an earlier run of this bundle (patient {done})"
            for e in (chart.entry, *chart.entries):
                self.report.skipped.append(
                    Outcome(e.name, done if e is chart.entry else None, reason)
                )
            return
        found = self.match(chart.entry.fields)
        if found is not None:
            existing, why = found
            self.report.matched.append(
                Outcome(
                    chart.entry.name,
                    existing,
                    f"already registered ({why}): offered for merge, not duplicated",
                )
            )
            reason = (
                f"its patient {chart.entry.name} matched patient {existing}: "
                "review and merge them first"
            )
            self.report.skipped += [Outcome(e.name, None, reason) for e in chart.entries]
            return
        created: list[Outcome] = []
        with self.db.batch():  # the whole chart, or nothing of it
            created = self._create(chart)
        self.report.created += created

    def _create(self, chart: _Chart) -> list[Outcome]:
        f: patient.PatientFields = chart.entry.fields
        p = self.records.add_patient(f.family, f.given, f.birth_date, f.sex, f.mrn, f.phone)
        out = [Outcome(chart.entry.name, p.id)]
        ids: dict[str, str] = {}  # a bundle reference -> the record made from it
        provenance: list[list[str]] = []
        skipped: list[Outcome] = []
        by_type: dict[str, list[_Entry]] = {}
        for e in chart.entries:
            by_type.setdefault(e.rtype, []).append(e)

        def made(e: _Entry, record_id: str) -> None:
            ids.update({ref: record_id for ref in e.refs})
            out.append(Outcome(e.name, record_id))

        for e in by_type.get("AllergyIntolerance", []):
            a: allergy.AllergyFields = e.fields
            made(e, self.records.add_allergy(p.id, a.substance or "", a.reaction, a.severity).id)
        for e in by_type.get("Appointment", []):
            ap: appointment.AppointmentFields = e.fields
            rid = self.entries.add("appointment", p.id, ap.values)
            if ap.arrived_at:
                self._set("appointment.status", "appointment", rid, {"arrived_at": ap.arrived_at})
            made(e, rid)
        for e in by_type.get("Encounter", []):
            en: encounter.EncounterFields = e.fields
            values = {**en.values, "appointment_id": ids.get(en.appointment or "")}
            rid = self.entries.add("encounter", p.id, values)
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
        recorded: set[str] = set()
        for group in _vital_sets(by_type.get("Observation", [])):
            first = group[0][1]
            typed, units = _vital_values(group)
            readings = vital_signs.record(
                p.id, typed, units, first.observed_at, ids.get(first.encounter or "")
            )
            by_code = {r.code: r.id for r in readings}
            for e, o in group:
                if e.name not in recorded:  # a blood-pressure entry: its systolic's record
                    recorded.add(e.name)
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
            made(e, self._note(p.id, e.fields, ids))
        for e in by_type.get("Provenance", []):
            prov = e.resource
            assert isinstance(prov, Provenance)
            targets = [
                ids.get(reference_text(t) or "", reference_text(t) or "") for t in prov.target
            ]
            who = [staff_name(a.who) or "" for a in prov.agent]
            provenance.append([*targets[:1], ", ".join(who), str(prov.recorded)])
            out.append(Outcome(e.name, None, "kept in the import's audit entry (fhir.import)"))
        details = {
            "batch": self.batch,
            "source": chart.key,
            "records": len(out),
            "provenance": provenance,
        }
        with self.db.write(self.actor, "fhir.import", "patient", p.id, details) as tx:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)", (META_PREFIX + chart.key, p.id)
            )
        self.report.skipped += skipped
        return out

    def _set(
        self, action: str, type_name: str, record_id: str, fields: Mapping[str, crdt.Value]
    ) -> None:
        with self.db.write(self.actor, action, type_name, record_id) as tx:
            change(tx, self.actor, record_id, type_name, self.records.setter(fields))

    def _note(self, patient_id: str, n: document.NoteFields, ids: dict[str, str]) -> str:
        """A note with its author, then its signature and addenda, each its own write
        (so each passes the permission its action needs)."""
        note_id, actor = new_id(), self.actor
        encounter_id = ids.get(n.encounter or "")

        def create(doc: RecordDoc, hlc: str) -> None:
            for name, value in (
                ("patient_id", patient_id),
                ("encounter_id", encounter_id),
                ("author", n.author or actor),
                ("created_at", utc_now()),
            ):
                crdt.write(doc, name, value, hlc, actor)
            crdt.text(doc, "body").insert(0, n.body)

        with self.db.write(actor, "note.create", "note", note_id) as tx:
            change(tx, actor, note_id, "note", create)
        if n.signed_at is not None:
            signature = {"signed_body": n.body, "signed_at": n.signed_at or utc_now()}
            self._set("note.sign", "note", note_id, signature)
        for text in n.addenda:
            with self.db.write(actor, "note.addendum", "note", note_id) as tx:
                change(tx, actor, note_id, "note", _addendum(text, actor))
        return note_id


def _addendum(text: str, actor: str) -> Callable[[RecordDoc, str], None]:
    def add(doc: RecordDoc, hlc: str) -> None:
        crdt.add(doc, "addenda", {"body": text}, hlc, actor)

    return add


def read_bundle(data: bytes | str) -> tuple[list[_Chart], list[Outcome]]:
    """The bundle's charts (each patient with the entries on their chart), checked, and
    the entries that will not be imported (other types, no patient in the bundle)."""
    doc = _load(data)
    skipped: list[Outcome] = []
    entries: list[_Entry] = []
    by_ref: dict[str, _Entry] = {}
    for i, raw in enumerate(doc.get("entry") or []):
        resource = raw.get("resource") if isinstance(raw, dict) else None
        if not isinstance(resource, dict):
            raise FhirError(f"Bundle.entry[{i}].resource", "is missing")
        rtype, rid = str(resource.get("resourceType")), resource.get("id")
        name = f"{rtype}/{rid}" if rid else f"{rtype} (entry {i})"
        if rtype not in MODELS:
            skipped.append(Outcome(name, None, f"{rtype} resources are not imported"))
            continue
        refs = {f"{rtype}/{rid}"} if rid else set()
        full = raw.get("fullUrl")
        if isinstance(full, str) and full:
            refs.add(full)
        entry = _Entry(name, rtype, parse(MODELS[rtype], resource, name), refs)
        if rtype != "Provenance":
            try:
                _map(entry)
            except observation.NotAVitalSign as exc:
                skipped.append(Outcome(name, None, f"{exc}: not imported"))
                continue
        for ref in refs:
            by_ref[ref] = entry
        entries.append(entry)
    charts: dict[str, _Chart] = {}
    for e in entries:
        if e.rtype == "Patient":
            f: patient.PatientFields = e.fields
            assert isinstance(e.resource, FhirPatient)
            identity = next(
                (f"{i.system}|{i.value}" for i in e.resource.identifier or [] if i.value),
                min(e.refs) if e.refs else e.name,
            )
            charts[e.name] = _Chart(e, source_key("Patient", identity, f.birth_date))
    for e in entries:
        if e.rtype == "Patient":
            continue
        if e.rtype == "Provenance":
            assert isinstance(e.resource, Provenance)
            target = by_ref.get(reference_text(e.resource.target[0]) or "")
            owner = (
                None
                if target is None
                else (target if target.rtype == "Patient" else _owner(target, by_ref))
            )
        else:
            owner = _owner(e, by_ref)
        if owner is None or owner.name not in charts:
            skipped.append(Outcome(e.name, None, "its patient is not in the bundle"))
            continue
        charts[owner.name].entries.append(e)
    for chart in charts.values():
        _check_vital_sets(chart)
    return list(charts.values()), skipped


def _owner(e: _Entry, by_ref: dict[str, _Entry]) -> _Entry | None:
    for ref in _patient_ref(e):
        found = by_ref.get(ref)
        if found is not None and found.rtype == "Patient":
            return found
    return None


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
