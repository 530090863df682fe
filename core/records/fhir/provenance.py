"""Provenance: who recorded a record, and when (from the record's stamps or its first op
in the op log)."""

from __future__ import annotations

import datetime as dt

from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent
from fhir.resources.R4B.reference import Reference

from core.records.fhir.common import ref, staff


def to_fhir(resource_type: str, record_id: str, author: str, recorded: str) -> Provenance:
    """``author`` recorded ``resource_type/record_id`` at ``recorded`` (UTC ISO-8601)."""
    who = staff(author) or Reference(display="unknown")
    return Provenance(
        id=f"prov-{resource_type.lower()}-{record_id}"[:64],
        target=[ref(resource_type, record_id)],
        recorded=dt.datetime.fromisoformat(recorded),
        agent=[ProvenanceAgent(who=who)],
    )
