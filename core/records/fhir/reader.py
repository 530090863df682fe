"""Reading a FHIR Bundle for import, before anything is written: every entry parsed by
the library's models and mapped to Careline's fields by its resource's module, every value
put through the write path's own checks, and the entries grouped by the patient whose chart
they belong to. A bundle that is not JSON, not a Bundle, or has a resource that fails is
refused with FhirError naming the resource and element; entries of other resource types,
and Observations that are not vital signs, are reported as skipped."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
from core.records.notes import checked_body
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
# Reading a bundle takes some 30-40 times its size in memory (the parsed JSON, then a
# model of every resource, all held until every reference is resolved): 64 MiB needs about
# 2.5 GB. A larger bundle is refused before it is read, rather than ending in the system
# killing Careline mid-import on a clinic PC.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


@dataclass(eq=False)  # compared and hashed as itself: two entries are never "equal"
class Entry:
    """One entry of the bundle, parsed, and what its mapping module read from it."""

    name: str  # Patient/p1, for messages (unique in a bundle read_bundle accepts)
    rtype: str
    resource: Resource
    refs: set[str] = field(default_factory=set)  # how other entries may reference it
    fields: Any = None  # what the resource's mapping module read from it


@dataclass
class Chart:
    """A bundle patient and the entries on their chart."""

    entry: Entry
    key: str  # source key (meta)
    entries: list[Entry] = field(default_factory=list)


def _too_large(size: int) -> FhirError:
    return FhirError(
        "bundle",
        f"is {size:,} bytes, more than the {MAX_BUNDLE_BYTES:,} a bundle may be (reading "
        "one takes some 35 times its size in memory): import it in parts, e.g. a bundle "
        "per group of patients (careline fhir export --patient P)",
    )


def read_file(path: Path) -> bytes:
    """The bundle file at ``path``, refused (FhirError) past ``MAX_BUNDLE_BYTES`` before
    it is read; OSError when it cannot be read."""
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise _too_large(size)
    return path.read_bytes()


def _load(data: bytes | str) -> dict[str, Any]:
    if len(data) > MAX_BUNDLE_BYTES:
        raise _too_large(len(data))
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirError("bundle", f"is not JSON ({exc})") from None
    except RecursionError:  # nested past the parser's depth: no bundle is
        raise FhirError("bundle", "is nested too deeply to be a FHIR bundle") from None
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


class _Identities:
    """The ``fullUrl`` and ``resourceType/id`` of each entry read so far. FHIR requires a
    bundle's fullUrls to be unique; a repeated ``Type/id`` (bundles from two systems
    concatenated, or a hostile file) would let a later entry take an earlier one's
    references, filing one patient's records on another's chart. Either refuses the whole
    bundle, naming both entries."""

    def __init__(self) -> None:
        self._owners: dict[tuple[str, str], tuple[int, str]] = {}

    def add(self, index: int, name: str, type_id: str | None, full_url: str | None) -> None:
        """Note entry ``index``'s identities; FhirError when one is an earlier entry's."""
        for kind, value in (("fullUrl", full_url), ("resourceType/id", type_id)):
            if value is None:
                continue
            label = name if full_url is None else f"{name}, fullUrl {full_url}"
            earlier = self._owners.setdefault((kind, value), (index, label))
            if earlier[0] != index:
                raise FhirError(
                    f"Bundle.entry[{index}]",
                    f"{label} has the same {kind}, {value!r}, as Bundle.entry[{earlier[0]}] "
                    f"({earlier[1]}): two entries of one bundle cannot share it (which "
                    "records belong to which patient would be unknown); nothing was imported",
                )


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
            entry.fields = _checked_note(document.note_from_fhir(r, where), where)
    except FhirError:
        raise
    except ValidationError as exc:
        raise FhirError(where, str(exc)) from None


def _checked_note(n: document.NoteFields, where: str) -> document.NoteFields:
    """A note as ``Notes`` would take it: its text and every addendum's through the same
    checks as ``Notes.create``/``add_addendum`` (blank, ``MAX_NOTE``), addenda only on a
    signed note (``docStatus`` final or amended), the source's author as typed text is
    (control characters refused). FhirError names the element."""
    if n.addenda and n.signed_at is None:
        raise FhirError(
            f"{where}.docStatus",
            f"the note is not signed (docStatus is not final or amended) but has "
            f"{len(n.addenda)} addend{'um' if len(n.addenda) == 1 else 'a'}: Careline adds "
            "addenda to signed notes only. Mark the note final, or make the addenda part "
            "of its text",
        )
    for i, text in enumerate((n.body, *n.addenda)):
        try:
            checked_body(text)
        except ValidationError as exc:
            what = f"its addendum {i}" if i else "the note's text"
            why = exc.reason if text.strip() else "is blank"
            raise FhirError(f"{where}.content", f"{what} {why}") from None
    if n.source_author is not None:
        try:
            v.text("author", n.source_author)
        except ValidationError as exc:
            raise FhirError(f"{where}.author", exc.reason) from None
        # Shown in the audit views and the report: no C1 control (a terminal's CSI) or
        # format character (a right-to-left override) either, as the sync's user names.
        if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in n.source_author):
            raise FhirError(f"{where}.author", "contains control or format characters")
    return n


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
    seen = _Identities()
    raws: list[Any] = doc.pop("entry", None) or []
    del doc
    for i in range(len(raws)):
        # Each entry's JSON is let go once its model is made: not held twice meanwhile.
        raw, raws[i] = raws[i], None
        resource = raw.get("resource") if isinstance(raw, dict) else None
        if not isinstance(resource, dict):
            raise FhirError(f"Bundle.entry[{i}].resource", "is missing")
        rtype, rid = str(resource.get("resourceType")), resource.get("id")
        name = f"{rtype}/{rid}" if rid else f"{rtype} (entry {i})"
        full = raw.get("fullUrl")
        full = full if isinstance(full, str) and full else None
        seen.add(i, name, f"{rtype}/{rid}" if rid else None, full)
        if rtype not in MODELS:
            skipped.append(Outcome(name, None, f"{rtype} resources are not imported"))
            continue
        refs = {f"{rtype}/{rid}"} if rid else set()
        if full is not None:
            refs.add(full)
        entry = Entry(name, rtype, parse(MODELS[rtype], resource, name), refs)
        if rtype != "Provenance":
            try:
                _map(entry)
            except observation.NotAVitalSign as exc:
                skipped.append(Outcome(name, None, f"{exc}: not imported"))
                continue
        for ref in refs:
            by_ref[ref] = entry  # unique: _Identities refused any repeat
        entries.append(entry)
    # Keyed by the entry itself, never by a name: no two entries can share a chart's key.
    charts: dict[Entry, Chart] = {}
    by_key: dict[str, Entry] = {}
    for e in entries:
        if e.rtype == "Patient":
            f: patient.PatientFields = e.fields
            assert isinstance(e.resource, FhirPatient)
            identity = next(
                (f"{i.system}|{i.value}" for i in e.resource.identifier or [] if i.value),
                min(e.refs) if e.refs else e.name,
            )
            key = source_key("Patient", identity, f.birth_date)
            if key in by_key:  # the resume key: the second would pass for the first, imported
                raise FhirError(
                    "Bundle.entry",
                    f"{by_key[key].name} and {e.name} are the same patient "
                    f"(identifier {identity}, born {f.birth_date}) twice in one bundle: "
                    "nothing was imported. Remove one of them",
                )
            by_key[key] = e
            charts[e] = Chart(e, key)
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
        chart = None if owner is None else charts.get(owner)
        if chart is None:
            skipped.append(Outcome(e.name, None, "its patient is not in the bundle"))
            continue
        chart.entries.append(e)
    for chart in charts.values():
        _check_vital_sets(chart)
    return list(charts.values()), skipped


def _owner(e: Entry, by_ref: dict[str, Entry]) -> Entry | None:
    for ref in _patient_ref(e):
        found = by_ref.get(ref)
        if found is not None and found.rtype == "Patient":
            return found
    return None
