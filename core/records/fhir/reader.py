"""Reading a FHIR Bundle for import, before anything is written: every entry parsed by
the library's models and mapped to Careline's fields by its resource's module, every value
put through the write path's own checks, and the entries grouped by the patient whose chart
they belong to. A bundle that is not JSON, not a Bundle, or has a resource that fails is
refused with FhirError naming the resource and element; entries of other resource types,
and Observations that are not vital signs, are reported as skipped."""

from __future__ import annotations

import json
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

from core.records import validation as v
from core.records import vitals
from core.records.clinic import clean_item
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
from core.records.fhir.common import FhirError, parse, reference_text, source_key
from core.records.fhir.report import Outcome
from core.records.notes import MAX_NOTE
from core.records.types import ALLERGIES, APPOINTMENT, ENCOUNTER, LISTS
from core.records.vital_signs import measure_all

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


@dataclass
class Entry:
    """One entry of the bundle, parsed, and what its mapping module read from it."""

    name: str  # Patient/p1, for messages
    rtype: str
    resource: Resource
    refs: set[str] = field(default_factory=set)  # how other entries may reference it
    fields: Any = None  # what the resource's mapping module read from it


@dataclass
class Chart:
    """A bundle patient and the entries on their chart."""

    """A bundle patient and the entries on their chart."""

    entry: Entry
    key: str  # source key (meta)
    entries: list[Entry] = field(default_factory=list)


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


def _patient_ref(entry: Entry) -> list[str]:
    """The references by which an entry names its patient."""
    r = entry.resource
    if isinstance(r, AllergyIntolerance):
        return [t for t in (reference_text(r.patient),) if t]
    if isinstance(r, FhirAppointment):
        return list(entry.fields.patients)
    subject = getattr(r, "subject", None)
    return [t for t in (reference_text(subject),) if t]


def _map(entry: Entry) -> None:
    """Read the entry's fields with its mapping module and put them through the write
    path's own checks (FhirError names the resource and element)."""
    r, where = entry.resource, entry.name
    try:
        if isinstance(r, FhirPatient):
            f = patient.from_fhir(r, where)
            for name, value in (("family", f.family), ("given", f.given)):
                v.text(name, value)
            v.birth_date(f.birth_date)
            v.sex(f.sex)
            v.mrn(f.mrn)
            v.phone_number("phone", f.phone)
            entry.fields = f
        elif isinstance(r, AllergyIntolerance):
            a = allergy.from_fhir(r)
            if not a.none_known:
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


Vital = tuple[Entry, observation.ObservationFields]


def vital_sets(entries: list[Entry]) -> list[list[Vital]]:
    """Vital signs recorded together as the sets a nurse records: those naming the same
    set (a Careline export names each one's), else those of the same time and visit (a
    bundle from elsewhere); both blood pressure numbers go in one (a set repeating a vital
    is split)."""
    sets: dict[tuple[str, str | None, str | None], list[list[Vital]]] = {}
    for e in entries:
        for o in e.fields:
            groups = sets.setdefault((o.observed_at, o.encounter, o.set_key), [[]])
            if any(other.key == o.key for _, other in groups[-1]):
                groups.append([])
            groups[-1].append((e, o))
    return [group for groups in sets.values() for group in groups]


def vital_values(group: list[Vital]) -> tuple[dict[str, str], dict[str, str]]:
    """A set's values and UCUM units by vital key, as ``VitalSigns.record`` takes them."""
    values = {o.key: o.value for _, o in group}
    units = {o.key: o.unit for _, o in group if o.unit}
    return values, units


def _check_vital_sets(chart: Chart) -> None:
    """Each set as the write path will check it (FhirError names its first Observation)."""
    for group in vital_sets([e for e in chart.entries if e.rtype == "Observation"]):
        _, errors = measure_all(*vital_values(group))
        if errors:
            raise FhirError(group[0][0].name, str(next(iter(errors.values()))))


def read_bundle(data: bytes | str) -> tuple[list[Chart], list[Outcome]]:
    """The bundle's charts (each patient with the entries on their chart), checked, and
    the entries that will not be imported (other types, no patient in the bundle)."""
    doc = _load(data)
    skipped: list[Outcome] = []
    entries: list[Entry] = []
    by_ref: dict[str, Entry] = {}
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
        entry = Entry(name, rtype, parse(MODELS[rtype], resource, name), refs)
        if rtype != "Provenance":
            try:
                _map(entry)
            except observation.NotAVitalSign as exc:
                skipped.append(Outcome(name, None, f"{exc}: not imported"))
                continue
        for ref in refs:
            by_ref[ref] = entry
        entries.append(entry)
    charts: dict[str, Chart] = {}
    for e in entries:
        if e.rtype == "Patient":
            f: patient.PatientFields = e.fields
            assert isinstance(e.resource, FhirPatient)
            identity = next(
                (f"{i.system}|{i.value}" for i in e.resource.identifier or [] if i.value),
                min(e.refs) if e.refs else e.name,
            )
            charts[e.name] = Chart(e, source_key("Patient", identity, f.birth_date))
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


def _owner(e: Entry, by_ref: dict[str, Entry]) -> Entry | None:
    for ref in _patient_ref(e):
        found = by_ref.get(ref)
        if found is not None and found.rtype == "Patient":
            return found
    return None
