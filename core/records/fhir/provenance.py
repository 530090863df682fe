"""Provenance: who recorded a record, and when (from the record's stamps, its list history
or its first op in the op log); for a problem resolved or a medication stopped, also who
ended it, and when (activity UPDATE)."""

from __future__ import annotations

import datetime as dt

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent
from fhir.resources.R4B.reference import Reference

from core.records.fhir.common import ref, staff

# HL7 v3 DataOperation: what the agent did to the target.
_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def to_fhir(
    resource_type: str, record_id: str, author: str, recorded: str, *, ended: bool = False
) -> Provenance:
    """``author`` recorded ``resource_type/record_id`` at ``recorded`` (UTC ISO-8601), or,
    with ``ended``, resolved or stopped it then (activity UPDATE)."""
    who = staff(author) or Reference(display="unknown")
    code, shown = ("UPDATE", "revise") if ended else ("CREATE", "create")
    # The suffix goes before any cut to 64 characters, so the two never share an id.
    suffix = "-ended" if ended else ""
    return Provenance(
        id=f"prov-{resource_type.lower()}-{record_id}"[: 64 - len(suffix)] + suffix,
        target=[ref(resource_type, record_id)],
        recorded=dt.datetime.fromisoformat(recorded),
        activity=CodeableConcept(coding=[Coding(system=_DATA_OPERATION, code=code, display=shown)]),
        agent=[ProvenanceAgent(who=who)],
    )
