"""``careline med start|stop|change|list``: medications, active and past.

The ``--user`` starting a medication (or changing its dose) is recorded as its prescriber,
as the app's form does by default, unless ``--prescriber NAME`` names someone else or
``--prescribed-elsewhere`` says it was prescribed elsewhere by someone not known. Starting
one already active on the chart (the same name but for case) is refused with the one
already there named unless ``--allow-duplicate``, as ``appointment add`` refuses a clash
without ``--allow-overlap``. Every medication says who recorded, prescribed and stopped it
(or changed its dose: the old dose says so, it was not stopped), and when.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping

from core.cli.context import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError, Context, refuse_duplicate
from core.cli.registry import CommandGroup, actions
from core.records.chart_lists import DuplicateWarning
from core.records.clinic import ClinicRecords
from core.records.list_history import people
from core.records.medications import AllergyWarning, Medication, Medications


def arguments(parser: argparse.ArgumentParser) -> None:
    """The medication actions and their options."""
    med = actions(parser)
    start = med.add_parser("start", help="start a medication")
    start.add_argument("patient_id")
    start.add_argument("--name", required=True)
    for option in ("strength", "dose", "route", "frequency", "reason"):
        start.add_argument(f"--{option}")
    _prescriber_options(start, "it")
    start.add_argument("--start", help="YYYY-MM-DD (default: today)")
    start.add_argument("--visit", help="the visit (encounter id) it was started in")
    start.add_argument(
        "--confirm-allergy",
        action="store_true",
        help="start it even though its name matches a recorded allergy",
    )
    start.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="start it even though the patient takes a medication of that name already",
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
    _prescriber_options(change, "the new dose (not carried over from the old one)")
    change.add_argument("--date", help="YYYY-MM-DD (default: today)")
    change.add_argument(
        "--visit", help="the visit (encounter id) the dose was changed in: it lists both doses"
    )
    listing = med.add_parser("list", help="active medications (--all: past ones too)")
    listing.add_argument("patient_id")
    listing.add_argument("--all", action="store_true", help="include stopped medications")


def _prescriber_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--prescriber",
        metavar="NAME",
        help=f"who prescribed {what}, when it is not you (--user): you are only recording "
        "it; without this or --prescribed-elsewhere you are recorded as the prescriber",
    )
    parser.add_argument(
        "--prescribed-elsewhere",
        action="store_true",
        help=f"{what} was prescribed by someone else, not known: no prescriber is recorded",
    )


def _prescribing(ctx: Context) -> bool:
    """Whether the --user says they prescribe it (neither option naming someone else)."""
    args = ctx.args
    if args.prescribed_elsewhere and args.prescriber is not None:
        raise CliError(
            "--prescribed-elsewhere says the prescriber is not known, --prescriber names one: "
            "give one of them",
            EXIT_USAGE,
        )
    return not args.prescribed_elsewhere and args.prescriber is None


def line(m: Medication) -> str:
    """One line naming a medication and when it was taken (or its dose changed)."""
    how = f"  {m.instructions}" if m.instructions else ""
    when = f"  from {m.start}" if m.start else ""
    if not m.active:
        when += f"  {'dose changed' if m.changed_to else 'stopped'} {m.stop or '?'}"
    return f"{m.id}  {m.name}{how}{when}"


def said(
    m: Medication, names: Mapping[str, str], others: Mapping[str, Medication] | None = None
) -> str:
    """Who recorded, prescribed and stopped (or changed) the medication when, by full name
    (``names``: user name -> full name), indented on lines of their own."""
    return "".join(f"\n    {x}" for x in m.history_lines(names, others))


def _names(records: ClinicRecords, meds: list[Medication]) -> dict[str, str]:
    return records.full_names(people(meds))


def _own(meds: Medications, ctx: Context) -> None:
    if meds.get(ctx.args.item_id).patient_id != ctx.args.patient_id:
        raise CliError(f"medication {ctx.args.item_id} is not on patient {ctx.args.patient_id}")


def run(ctx: Context) -> int:
    """med start/stop/change/list."""
    args = ctx.args
    records = ctx.open_records()
    meds = Medications(records)
    if args.action == "start":
        prescribing = _prescribing(ctx)
        fields = {
            f: getattr(args, f)
            for f in ("name", "strength", "dose", "route", "frequency", "reason", "prescriber")
        }
        # No --start: today. --start "" (a script's empty variable) is no date: refused
        # below as the form refuses it, never read as today.
        start = dt.date.today().isoformat() if args.start is None else args.start
        fields |= {"start": start, "encounter_id": args.visit}
        try:
            m = meds.start(
                args.patient_id, fields, confirm_allergy=args.confirm_allergy,
                allow_duplicate=args.allow_duplicate, prescribing=prescribing,
            )  # fmt: skip
        except DuplicateWarning as exc:
            refuse_duplicate(ctx, exc, lambda item, names: line(item) + said(item, names))
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
        headline = f"Stopped {line(m)}" + (f" in visit {args.visit}" if args.visit else "")
        ctx.emit(m.to_dict(), headline)
    elif args.action == "change":
        _own(meds, ctx)
        changes = {
            f: getattr(args, f)
            for f in ("strength", "dose", "route", "frequency")
            if getattr(args, f) is not None
        }
        m = meds.change_dose(
            args.item_id, changes, args.date, args.prescriber, args.visit, _prescribing(ctx)
        )
        ctx.emit(m.to_dict(), f"Changed: now {line(m)}")
    else:
        found = meds.list(args.patient_id, include_past=args.all)
        names, by_id = _names(records, found), {m.id: m for m in found}
        ctx.emit(
            [m.to_dict() for m in found],
            "\n".join(line(m) + said(m, names, by_id) for m in found) or "No medications recorded.",
        )
    return EXIT_OK


GROUP = CommandGroup("med", "medications: start, stop, change dose, list", arguments, run)
