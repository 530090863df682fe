"""``careline allergy add|edit|none``."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records.allergy_status import AllergyRecords
from core.records.spec import spoken_list
from core.records.types import ALLERGIES


def arguments(parser: argparse.ArgumentParser) -> None:
    """allergy add PATIENT_ID SUBSTANCE [--reaction R] [--severity S]; allergy edit
    ALLERGY_ID [--reaction R] [--severity S]; allergy none PATIENT_ID."""
    allergy = actions(parser)
    severities = spoken_list(ALLERGIES.item("severity").choices)
    add = allergy.add_parser("add", help="record an allergy")
    add.add_argument("patient_id")
    add.add_argument("substance")
    add.add_argument("--reaction")
    add.add_argument("--severity", help=severities)
    edit = allergy.add_parser("edit", help="change an allergy's reaction and severity")
    edit.add_argument("allergy_id")
    edit.add_argument("--reaction", help="the reaction (blank: none recorded)")
    edit.add_argument("--severity", help=severities)
    none = allergy.add_parser("none", help="record that the patient has no known allergies")
    none.add_argument("patient_id")


def run(ctx: Context) -> int:
    """allergy add/edit/none."""
    args, records = ctx.args, ctx.open_records()
    if args.action == "add":
        a = records.add_allergy(args.patient_id, args.substance, args.reaction, args.severity)
        ctx.emit(a.to_dict(), f"Recorded allergy {a.id}: {a.substance} for patient {a.patient_id}")
    elif args.action == "edit":
        a = AllergyRecords(records).edit(args.allergy_id, args.reaction, args.severity)
        extra = ", ".join(x for x in (a.reaction, a.severity) if x) or "no details"
        ctx.emit(a.to_dict(), f"Allergy {a.id}: {a.substance} ({extra})")
    else:
        p = AllergyRecords(records).record_no_known_allergies(args.patient_id)
        ctx.emit(p.to_dict(), f"Recorded no known allergies for patient {p.id}")
    return EXIT_OK


GROUP = CommandGroup("allergy", "allergies", arguments, run)
