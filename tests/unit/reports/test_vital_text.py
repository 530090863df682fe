"""Vitals worded for people (``core.reports.vital_text``): as typed, with the unit symbol
people read and the high/low mark, for every vital of the catalogue."""

from __future__ import annotations

from core.records.entries import ClinicalEntries
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation
from core.reports.vital_text import latest_texts, set_texts, visit_texts


def test_every_vital_reads_as_typed_with_its_flag(workstation: Workstation) -> None:
    records = workstation.records
    adult = records.add_patient("Kim", "Min", "1980-05-01")
    VitalSigns(records).record(
        adult.id,
        {"systolic": "118", "diastolic": "55", "pulse": "48", "temperature": "35.2",
         "respiratory_rate": "16", "spo2": "91", "weight": "176.5", "height": "60",
         "pain": "4"},
        {"weight": "lb", "height": "in", "temperature": "C"},
        "2026-11-30T09:00",
    )  # fmt: skip
    [found] = VitalSigns(records).sets(adult.id)
    texts = [(t.label, t.value) for t in set_texts(found.readings, found.bmi, found.bmi_flag)]
    assert texts == [
        ("Blood pressure", "118/55 mmHg ▼"),  # the diastolic is low
        ("Pulse", "48/min ▼"),
        ("Temperature", "35.2 °C ▼"),
        ("Respiratory rate", "16/min"),
        ("Oxygen saturation", "91% ▼"),
        ("Weight", "176.5 lb"),
        ("Height", "60 in"),
        ("BMI", "34.5 kg/m² ▲"),  # worked out from 176.5 lb and 60 in
        ("Pain score", "4/10"),
    ]


def test_latest_takes_each_vital_from_its_newest_set(workstation: Workstation) -> None:
    records = workstation.records
    p = records.add_patient("Kim", "Min", "1980-05-01")
    vitals = VitalSigns(records)
    vitals.record(p.id, {"systolic": "150", "diastolic": "95", "weight": "80"},
                  {"weight": "kg"}, "2026-11-01T09:00")  # fmt: skip
    vitals.record(p.id, {"temperature": "102"}, {"temperature": "F"}, "2026-11-30T09:00")
    texts = [(t.label, t.value) for t in latest_texts(vitals.sets(p.id))]
    assert texts == [
        ("Blood pressure", "150/95 mmHg ▲"),
        ("Temperature", "102 °F ▲"),
        ("Weight", "80 kg"),
    ]


def test_an_observation_stored_before_entered_values_reads_with_its_unit_symbol(
    workstation: Workstation,
) -> None:
    records = workstation.records
    p = records.add_patient("Kim", "Min", "1980-05-01")
    entries = ClinicalEntries(records)
    for code, value, unit in (("8310-5", "38.4", "Cel"), ("1234-5", "7", "mmol/L")):
        entries.add(
            "observation",
            p.id,
            {"code": code, "value": value, "unit": unit, "observed_at": "2026-11-30T09:00"},
        )
    vitals = VitalSigns(records)
    readings = vitals.readings(p.id)
    texts = [(t.label, t.value) for t in visit_texts(vitals.sets(p.id), readings)]
    assert texts == [("Temperature", "38.4 °C"), ("1234-5", "7 mmol/L")]
