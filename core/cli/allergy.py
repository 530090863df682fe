"""``careline allergy add``."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records.spec import spoken_list
from core.records.types import ALLERGIES


def arguments(parser: argparse.ArgumentParser) -> None:
    """allergy add PATIENT_ID SUBSTANCE [--reaction R] [--severity S]."""
    add = actions(parser).add_parser("add", help="record an allergy")
    add.add_argument("patient_id")
    add.add_argument("substance")
    add.add_argument("--reaction")
    add.add_argument("--severity", help=spoken_list(ALLERGIES.item("severity").choices))


def run(ctx: Context) -> int:
    """allergy add."""
    args, records = ctx.args, ctx.open_records()
    a = records.add_allergy(args.patient_id, args.substance, args.reaction, args.severity)
    ctx.emit(a.to_dict(), f"Recorded allergy {a.id}: {a.substance} for patient {a.patient_id}")
    return EXIT_OK


GROUP = CommandGroup("allergy", "allergies", arguments, run)
