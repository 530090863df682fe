"""``careline vitals add|list``: vital signs, read and checked by the catalogue
(``core/records/vitals.py``) exactly as the desktop form does."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records import vitals as cat
from core.records.errors import ValidationError
from core.records.vital_signs import Reading, VitalSet, VitalSigns, recordings

# --option -> vital key (blood pressure is one option for two vitals).
OPTIONS = {
    "pulse": "pulse",
    "temp": "temperature",
    "rr": "respiratory_rate",
    "spo2": "spo2",
    "weight": "weight",
    "height": "height",
    "pain": "pain",
}
# What --help shows for a vital typed with its unit (each one is measured by a test).
EXAMPLES = {"temperature": "37.5C", "weight": "70kg", "height": "170cm"}


def arguments(parser: argparse.ArgumentParser) -> None:
    """vitals add PATIENT [--visit V] [--at WHEN] --bp 120/80 --pulse 72 ... | vitals list
    PATIENT [--code C]."""
    sub = actions(parser)
    add = sub.add_parser("add", help="record a set of vital signs (one transaction)")
    add.add_argument("patient_id")
    add.add_argument("--visit", help="the visit (encounter id) they were taken in")
    add.add_argument(
        "--at",
        help="when measured: the date and the local time, e.g. 2026-12-01T09:30 "
        "(default: now; a date alone or a time zone is refused)",
    )
    add.add_argument("--bp", help="blood pressure, systolic/diastolic mmHg, e.g. 120/80")
    for option, key in OPTIONS.items():
        vital = cat.BY_KEY[key]
        units = f" ({vital.unit_list}: e.g. {EXAMPLES[key]})" if len(vital.units) > 1 else ""
        add.add_argument(f"--{option}", help=f"{vital.label.lower()}{units}")
    listing = sub.add_parser("list", help="a patient's vital signs, set by set, newest first")
    listing.add_argument("patient_id")
    listing.add_argument("--code", help="one vital: a LOINC code or a name such as pulse")


def _line(r: Reading) -> str:
    vital = r.vital
    label = vital.label if vital else r.code
    flag = f" ({r.flag})" if r.flag else ""
    return f"{r.observed_at}  {label}: {r.text}{flag}"


_ORDER = {v.code: i for i, v in enumerate(cat.VITALS)}


def by_set(readings: list[Reading]) -> list[list[Reading]]:
    """The readings set by set as recorded (newest first; each set's set_id in --json),
    each set in the catalogue's order: a recheck measured in the same minute is listed
    after or before its own set, never interleaved with it."""
    return [
        sorted(group, key=lambda r: (_ORDER.get(r.code, len(_ORDER)), r.code))
        for group in recordings(readings)
    ]


def _bmi(s: VitalSet) -> dict[str, Any]:
    """A set's worked-out BMI for --json, with the set_id of the set it was worked out in."""
    first = next(iter(s.readings.values()))
    return {"observed_at": s.observed_at, "value": str(s.bmi), "unit": "kg/m2",
            "flag": s.bmi_flag, "set_id": first.set_id}  # fmt: skip


def _bmi_line(b: dict[str, Any]) -> str:
    flag = f" ({b['flag']})" if b["flag"] else ""
    return f"{b['observed_at']}  BMI (worked out): {b['value']} kg/m²{flag}"


def _set_lines(groups: list[list[Reading]], sets: list[VitalSet]) -> list[str]:
    """The text of ``vitals list``: set by set, each BMI after the readings of the set it
    was worked out in (found by its readings' ids: readings older than set ids have none)."""
    bmi_of = {r.id: _bmi(s) for s in sets if s.bmi is not None for r in s.readings.values()}
    lines: list[str] = []
    for group in groups:
        lines += [_line(r) for r in group]
        found = next((bmi_of[r.id] for r in group if r.id in bmi_of), None)
        if found is not None:
            lines.append(_bmi_line(found))
    return lines


def run(ctx: Context) -> int:
    """vitals add | vitals list."""
    args = ctx.args
    signs = VitalSigns(ctx.open_records())
    if args.action == "add":
        values: dict[str, str] = {}
        if args.bp is not None:
            values["systolic"], values["diastolic"] = cat.split_pressure(args.bp)
        values |= {key: getattr(args, o) for o, key in OPTIONS.items() if getattr(args, o)}
        try:
            readings = signs.record(args.patient_id, values, None, args.at, args.visit)
        except ValidationError as exc:
            if exc.field != "observed_at":
                raise
            # Named as the person typed it: the option, not the stored field.
            raise ValidationError("--at", str(exc).removeprefix("observed_at: ")) from None
        document: dict[str, Any] = {
            "patient_id": args.patient_id,
            "readings": [r.as_json() for r in readings],
        }
        count = len(readings)
        text = (
            f"Recorded {count} vital sign{'' if count == 1 else 's'} "
            f"for patient {args.patient_id}:\n"
        )
        ctx.emit(document, text + "\n".join(_line(r) for r in readings))
        return EXIT_OK
    code = cat.vital(args.code).code if args.code else None
    sets = signs.sets(args.patient_id) if code in (None, cat.BMI.code) else []
    bmi = [_bmi(s) for s in sets if s.bmi is not None]
    if code == cat.BMI.code:  # BMI alone: worked out, no reading of its own
        readings = []
        lines = [_bmi_line(b) for b in bmi]
    else:
        groups = by_set(signs.readings(args.patient_id, code))
        readings = [r for group in groups for r in group]
        lines = _set_lines(groups, sets)
    ctx.emit(
        {"patient_id": args.patient_id, "readings": [r.as_json() for r in readings], "bmi": bmi},
        "\n".join(lines) or "No vital signs recorded.",
    )
    return EXIT_OK


GROUP = CommandGroup("vitals", "vital signs", arguments, run)
