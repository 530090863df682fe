"""``careline appointment add|list|move|cancel|status``: the clinic's schedule.

Times are the clinic's local time, typed to the minute (``2026-12-07T09:30`` or
``2026-12-07 09:30``); an offset is refused. A booking or move that overlaps the
clinician's other appointments is refused with the clashes named unless ``--allow-overlap``
says the operator has seen them (the desktop app asks the person instead).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import NoReturn

from core.cli.context import EXIT_ERROR, EXIT_OK, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records import validation as v
from core.records.schedule import Appointment, OverlapError, Schedule, describe, week_start
from core.records.spec import spoken_list

_STATUS_TARGETS = ("booked", "arrived", "in_visit", "done", "no_show")


def arguments(parser: argparse.ArgumentParser) -> None:
    """The appointment actions and their options."""
    appointment = actions(parser)
    add = appointment.add_parser("add", help="book an appointment")
    add.add_argument("patient", metavar="PATIENT", help="the patient's id")
    add.add_argument("--start", required=True, help="local date and time, e.g. 2026-12-07T09:30")
    length = add.add_mutually_exclusive_group(required=True)
    length.add_argument("--minutes", help="length in minutes")
    length.add_argument("--end", help="local end time instead of --minutes")
    add.add_argument("--clinician", required=True, metavar="USER", help="the clinician's user name")
    add.add_argument("--reason")
    add.add_argument(
        "--allow-overlap",
        action="store_true",
        help="book even if the clinician has another appointment then",
    )
    listing = appointment.add_parser("list", help="a day's or a week's appointments")
    when = listing.add_mutually_exclusive_group()
    when.add_argument("--date", metavar="D", help="this day (default: today)")
    when.add_argument("--week", metavar="D", help="the week (Monday to Sunday) holding this day")
    listing.add_argument("--clinician", metavar="USER", help="only this clinician's")
    move = appointment.add_parser("move", help="move a booked appointment")
    move.add_argument("id")
    move.add_argument("--start", required=True, help="new local start time")
    new_length = move.add_mutually_exclusive_group()
    new_length.add_argument("--minutes", help="new length (default: as before)")
    new_length.add_argument("--end", help="new local end time")
    move.add_argument("--clinician", metavar="USER", help="move it to this clinician")
    move.add_argument("--allow-overlap", action="store_true")
    cancel = appointment.add_parser("cancel", help="cancel an appointment")
    cancel.add_argument("id")
    cancel.add_argument("--reason")
    status = appointment.add_parser("status", help="check in, start, finish or mark a no-show")
    status.add_argument("id")
    status.add_argument("status", choices=_STATUS_TARGETS, help=spoken_list(_STATUS_TARGETS))


def line(a: Appointment) -> str:
    """One line naming an appointment."""
    start, end = a.starts_at.replace("T", " "), a.ends_at.split("T")[1]
    who = a.patient_name or a.patient_id
    extras = [x for x in (a.reason, a.cancel_reason and f"cancelled: {a.cancel_reason}") if x]
    tail = f"  {'; '.join(extras)}" if extras else ""
    return f"{a.id}  {start}-{end}  {a.clinician or '-'}  {who}  {a.status_label}{tail}"


def run(ctx: Context) -> int:
    """appointment add/list/move/cancel/status."""
    args = ctx.args
    schedule = Schedule(ctx.open_records())
    try:
        if args.action == "add":
            a = schedule.book(
                args.patient, args.start, args.clinician, minutes=args.minutes,
                ends_at=args.end, reason=args.reason, allow_overlap=args.allow_overlap,
            )  # fmt: skip
            ctx.emit(a.to_dict(), f"Booked {line(a)}")
        elif args.action == "list":
            _list(ctx, schedule)
        elif args.action == "move":
            a = schedule.move(
                args.id, args.start, minutes=args.minutes, ends_at=args.end,
                clinician=args.clinician, allow_overlap=args.allow_overlap,
            )  # fmt: skip
            ctx.emit(a.to_dict(), f"Moved {line(a)}")
        elif args.action == "cancel":
            a = schedule.cancel(args.id, args.reason)
            ctx.emit(a.to_dict(), f"Cancelled {line(a)}")
        elif args.action == "status":
            a = schedule.set_status(args.id, args.status)
            ctx.emit(a.to_dict(), f"Now {a.status_label.lower()}: {line(a)}")
    except OverlapError as exc:
        refuse_overlap(ctx, exc)
    return EXIT_OK


def _list(ctx: Context, schedule: Schedule) -> None:
    args = ctx.args
    clinician = args.clinician.strip().lower() if args.clinician else None
    if args.week is not None:
        first = week_start(v.calendar_date("week", args.week))
        last = first + dt.timedelta(days=6)
    else:
        first = v.calendar_date("date", args.date) if args.date else dt.date.today()
        last = first
    found = schedule.between(first, last, clinician)
    document = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "clinician": clinician,
        "appointments": [a.to_dict() for a in found],
    }
    span = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
    heading = f"Appointments {span}" + (f" for {clinician}" if clinician else "")
    lines = [heading, *(line(a) for a in found)] if found else [f"{heading}: none."]
    ctx.emit(document, "\n".join(lines))


def refuse_overlap(ctx: Context, exc: OverlapError) -> NoReturn:
    """Name the appointments this one would overlap (nothing was written), and fail."""
    if ctx.args.json:
        ctx.emit(
            {
                "booked": None,
                "overlaps": [a.to_dict() for a in exc.clashes],
                "patient_overlaps": [a.to_dict() for a in exc.patient_clashes],
            },
            "",
        )
    said = []
    for who, clashes in (("clinician", exc.clashes), ("patient", exc.patient_clashes)):
        if clashes:
            # The patient's clashes say with whom, as the app's warning does.
            lines = "\n".join(
                f"  {describe(a)}"
                + (f" with {a.clinician}" if who == "patient" and a.clinician else "")
                for a in clashes
            )
            said.append(f"the {who} already has an appointment then:\n{lines}")
    listed = "\n".join(said)
    raise CliError(
        f"not saved: {listed}\nChoose another time, or add --allow-overlap to book it anyway",
        EXIT_ERROR,
    )


GROUP = CommandGroup("appointment", "the schedule", arguments, run)
