"""A patient's or the whole clinic's records as one FHIR Bundle (type ``collection``).

Only an admin exports (``fhir.export`` in the permission matrix), and the export is one
audit entry naming how many charts it holds. A chart whose clinical content the admin may
not see (``view_clinical``: a restricted chart outside their care team, or an admin who is
not also a clinician or nurse) is exported with its demographics only, and listed as
withheld. Every resource is built with the library's models and the whole bundle is parsed
back before it is returned, so what is written is valid by the library's definitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.resource import Resource

from core.records import authorize
from core.records.clinic import ClinicRecords
from core.records.fhir import (
    allergy,
    appointment,
    condition,
    document,
    encounter,
    medication,
    observation,
    patient,
    provenance,
)
from core.records.fhir.common import RECORD_ID, check
from core.records.list_history import ItemHistory, list_histories
from core.records.medications import ROW_FIELDS as MEDICATION_ROW
from core.records.medications import Medication
from core.records.models import Allergy, Patient
from core.records.notes import ON_CHART, load_note
from core.records.problems import Problem
from core.records.rows import hlc_time
from core.records.schedule import Appointment
from core.records.types import ALLERGIES, ENCOUNTER, MEDICATIONS, OBSERVATION, PROBLEMS
from core.records.visits import Visit
from core.records.vital_signs import Reading

# Not a server anyone can reach (.invalid is reserved): a base for the entries' full URLs,
# so the relative references between them resolve as FHIR's bundle rules say.
BASE_URL = "https://careline.invalid/fhir/"

Progress = Callable[[int, int], object]


@dataclass
class ExportResult:
    """The bundle, and what it holds."""

    bundle: Bundle
    counts: dict[str, int] = field(default_factory=dict)  # resource type -> how many
    withheld: list[str] = field(default_factory=list)  # charts exported without clinical content

    def json(self) -> str:
        """The bundle as FHIR JSON."""
        return str(self.bundle.model_dump_json(indent=1))

    def summary(self) -> dict[str, Any]:
        """For ``--json`` output and the admin dialog."""
        return {"resources": dict(sorted(self.counts.items())), "withheld": self.withheld}


class _Builder:
    """Collects a chart's resources and who recorded them."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records
        self.db = records.db
        self.resources: list[Resource] = []
        self.first_ops = self._first_ops()

    def _first_ops(self) -> dict[str, tuple[str, str]]:
        """Record id -> (author, HLC) of its first op: who recorded it, and when."""
        rows = self.db.query("SELECT record_id, author, min(hlc) FROM oplog GROUP BY record_id")
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

    def add(self, resource: Resource, author: str | None = None, when: str | None = None) -> None:
        """A resource, and its Provenance when its author is known."""
        self.resources.append(resource)
        rid = str(resource.id)
        if author is None:
            found = self.first_ops.get(rid)
            if found is not None:
                author, when = found[0], hlc_time(found[1])
        if author and when:
            rtype = resource.get_resource_type()
            self.resources.append(provenance.to_fhir(rtype, rid, author, when))

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.db.query(sql, params)]

    def chart(self, p: Patient) -> None:
        """Everything on one patient's chart."""
        pid = p.id
        if p.allergy_status == "nka":
            self.add(allergy.no_known_allergies(pid))
        for row in self.rows(
            f"SELECT {', '.join(ALLERGIES.column_names)} FROM allergies WHERE patient_id = ? "
            "ORDER BY recorded_at, id",
            (pid,),
        ):
            a = Allergy(*row)
            self.add(allergy.to_fhir(a), a.recorded_by, a.recorded_at)
        stamps = self._list_stamps(pid)
        for row in self.rows(
            f"SELECT {', '.join(PROBLEMS.column_names)} FROM conditions WHERE patient_id = ? "
            "ORDER BY id",
            (pid,),
        ):
            problem = Problem(*row)
            self.add_listed(condition.to_fhir(problem), stamps.get(problem.id))
        order = MEDICATION_ROW
        for row in self.rows(
            f"SELECT {', '.join(order)} FROM medications WHERE patient_id = ? ORDER BY id", (pid,)
        ):
            med = Medication(*row)
            self.add_listed(medication.to_fhir(med), stamps.get(med.id))
        for row in self.rows(
            "SELECT id, patient_id, '', starts_at, ends_at, reason, status, clinician, "
            "arrived_at, cancel_reason FROM appointments WHERE patient_id = ? ORDER BY id",
            (pid,),
        ):
            self.add(appointment.to_fhir(Appointment(*row)))
        for row in self.rows(
            f"SELECT {', '.join(ENCOUNTER.column_names)} FROM encounters WHERE patient_id = ? "
            "ORDER BY id",
            (pid,),
        ):
            self.add(encounter.to_fhir(Visit(*row)))
        readings = [
            Reading(*row)
            for row in self.rows(
                f"SELECT {', '.join(OBSERVATION.column_names)} FROM observations "
                "WHERE patient_id = ? ORDER BY id",
                (pid,),
            )
        ]
        for found, set_key in observation.pair_pressures(readings):
            if isinstance(found, tuple):
                self.add(observation.blood_pressure_to_fhir(*found, set_key))
            else:
                self.add(observation.to_fhir(found, set_key))
        for (note_id,) in self.rows(
            f"SELECT id FROM notes WHERE patient_id = ? AND {ON_CHART} ORDER BY id", (pid,)
        ):  # the whole clinic, under fhir.export's check (an admin's: not a clinical read)
            self.add(document.note_to_fhir(load_note(self.db, str(note_id))))
        columns = ("id", "patient_id", "filename", "media_type", "size", "sha256", "created_at")
        for row in self.rows(
            f"SELECT {', '.join(columns)} FROM attachments WHERE patient_id = ? ORDER BY id",
            (pid,),
        ):
            self.add(document.attachment_to_fhir(dict(zip(columns, row, strict=True))))

    def _list_stamps(self, patient_id: str) -> dict[str, ItemHistory]:
        """Problem and medication item id -> what the list's history says of it: who
        recorded its line and when, and who resolved or stopped it (``list_history``). Not
        the item's own stamp: resolving or stopping replaces an item by a copy, whose stamp
        names whoever ended it, so crediting that would say they recorded it."""
        found: dict[str, ItemHistory] = {}
        for name in (PROBLEMS.name, MEDICATIONS.name):
            found.update(list_histories(self.db, name, [patient_id]))
        return found

    def add_listed(self, resource: Resource, history: ItemHistory | None) -> None:
        """A problem or medication and its Provenance: who recorded it, and, once resolved
        or stopped, a second one (activity UPDATE) naming who ended it and when."""
        if history is None or not (history.recorded_by and history.recorded_at):
            self.add(resource)
            return
        self.add(resource, history.recorded_by, history.recorded_at)
        if history.ended_by and history.ended_at:
            self.resources.append(
                provenance.to_fhir(
                    resource.get_resource_type(),
                    str(resource.id),
                    history.ended_by,
                    history.ended_at,
                    ended=True,
                )
            )


def export_bundle(
    records: ClinicRecords, patient_id: str | None = None, on_progress: Progress | None = None
) -> ExportResult:
    """One patient's chart (``patient_id``) or every chart, as a FHIR Bundle; see the module
    docstring. NotAllowedError (audited) for anyone but an admin; NotFoundError for an
    unknown patient."""
    patient_cols = ", ".join(f.name for f in dataclasses.fields(Patient))
    if patient_id is not None:
        records.get_patient(patient_id)  # NotFoundError names it
        rows = records.db.query(f"SELECT {patient_cols} FROM patients WHERE id = ?", (patient_id,))
    else:
        rows = records.db.query(f"SELECT {patient_cols} FROM patients ORDER BY sort_key, id")
    patients = [Patient(*r) for r in rows]
    details = {"patients": len(patients), "patient": patient_id}
    with records.db.write(records.actor, "fhir.export", "clinic", "clinic", details):
        pass  # the gate refuses anyone but an admin before anything is read
    builder = _Builder(records)
    withheld: list[str] = []
    for done, p in enumerate(patients, 1):
        builder.add(patient.to_fhir(p))
        if authorize.may(records.db, records.actor, "view_clinical", p.id):
            builder.chart(p)
        else:
            withheld.append(p.id)
        if on_progress is not None:
            on_progress(done, len(patients))
    entries = [
        BundleEntry(fullUrl=f"{BASE_URL}{r.get_resource_type()}/{r.id}", resource=r)
        for r in builder.resources
    ]
    now = dt.datetime.now(dt.UTC)
    bundle = Bundle(
        id=secrets.token_hex(8),
        meta=Meta(lastUpdated=now),
        identifier=Identifier(system=RECORD_ID, value=f"export-{secrets.token_hex(8)}"),
        type="collection",
        timestamp=now,
        entry=entries or None,
    )
    checked = check(bundle, "Bundle")  # parsed back: valid by the library's definitions
    if not isinstance(checked, Bundle):  # pragma: no cover (parse returns the model given)
        raise TypeError("the bundle did not parse back as a Bundle")
    counts: dict[str, int] = {}
    for r in builder.resources:
        counts[r.get_resource_type()] = counts.get(r.get_resource_type(), 0) + 1
    return ExportResult(checked, counts, withheld)
