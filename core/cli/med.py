"""``careline med start|stop|change|list``: medications, active and past."""

from __future__ import annotations

import argparse
import datetime as dt

from core.cli.context import EXIT_ERROR, EXIT_OK, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records.medications import AllergyWarning, Medication, Medications


def arguments(parser: argparse.ArgumentParser) -> None:
    """The medication actions and their options."""
    med = actions(parser)
    start = med.add_parser("start", help="start a medication")
    start.add_argument("patient_id")
    start.add_argument("--name", required=True)
    for option in ("strength", "dose", "route", "frequency", "reason", "prescriber"):
        start.add_argument(f"--{option}")
    start.add_argument("--start", help="YYYY-MM-DD (default: today)")
    start.add_argument("--visit", help="the visit (encounter id) it was started in")
    start.add_argument(
        "--confirm-allergy",
        action="store_true",
        help="start it even though its name matches a recorded allergy",
    )
    stop = med.add_parser("stop", help="stop a medication (it stays as history)")
    stop.add_argument("patient_id")
    stop.add_argument("item_id")
    stop.add_argument("--date", help="YYYY-MM-DD (default: today)")
    stop.add_argument("--visit", help="the visit (encounter id) it was stopped in: it lists it")
    change = med.add_parser("change", help="change the dose: stop and start again from --date")
    change.add_argument("patient_id")
    change.add_argument("item_id")
    for option in ("strength", "dose", "route", "frequency"):
        change.add_argument(f"--{option}")
    change.add_argument(
        "--prescriber",
        help="who prescribed the new dose (not carried over: none unless given); the "
        "reason is carried over, being the same indication",
    )
    change.add_argument("--date", help="YYYY-MM-DD (default: today)")
    change.add_argument(
        "--visit", help="the visit (encounter id) the dose was changed in: it lists both doses"
    )
    listing = med.add_parser("list", help="active medications (--all: past ones too)")
    listing.add_argument("patient_id")
    listing.add_argument("--all", action="store_true", help="include stopped medications")


def line(m: Medication) -> str:
    """One line naming a medication and when it was taken."""
    how = f"  {m.instructions}" if m.instructions else ""
    when = f"  from {m.start}" if m.start else ""
    if not m.active:
        when += f"  stopped {m.stop or '?'}"
    return f"{m.id}  {m.name}{how}{when}"


def _own(meds: Medications, ctx: Context) -> None:
    if meds.get(ctx.args.item_id).patient_id != ctx.args.patient_id:
        raise CliError(f"medication {ctx.args.item_id} is not on patient {ctx.args.patient_id}")


def run(ctx: Context) -> int:
    """med start/stop/change/list."""
    args = ctx.args
    meds = Medications(ctx.open_records())
    if args.action == "start":
        fields = {
            f: getattr(args, f)
            for f in ("name", "strength", "dose", "route", "frequency", "reason", "prescriber")
        }
        # No --start: today. --start "" (a script's empty variable) is no date: refused
        # below as the form refuses it, never read as today.
        start = dt.date.today().isoformat() if args.start is None else args.start
        fields |= {"start": start, "encounter_id": args.visit}
        try:
            m = meds.start(args.patient_id, fields, confirm_allergy=args.confirm_allergy)
        except AllergyWarning as exc:
            if args.json:
                ctx.emit(
                    {"started": None, "allergy_matches": [x.describe() for x in exc.matches]}, ""
                )
            raise CliError(
                f"not started: {exc}. Check with the patient; add --confirm-allergy to start "
                "it anyway",
                EXIT_ERROR,
            ) from None
        ctx.emit(m.to_dict(), f"Started {line(m)}")
    elif args.action == "stop":
        _own(meds, ctx)
        m = meds.stop(args.item_id, args.date, args.visit)
        ctx.emit(
            m.to_dict(), f"Stopped {line(m)}" + (f" in visit {args.visit}" if args.visit else "")
        )
    elif args.action == "change":
        _own(meds, ctx)
        changes = {
            f: getattr(args, f)
            for f in ("strength", "dose", "route", "frequency")
            if getattr(args, f) is not None
        }
        m = meds.change_dose(args.item_id, changes, args.date, args.prescriber, args.visit)
        ctx.emit(m.to_dict(), f"Changed: now {line(m)}")
    else:
        found = meds.list(args.patient_id, include_past=args.all)
        ctx.emit(
            [m.to_dict() for m in found],
            "\n".join(line(m) for m in found) or "No medications recorded.",
        )
    return EXIT_OK


GROUP = CommandGroup("med", "medications: start, stop, change dose, list", arguments, run)
