"""``careline visit start|list|close|reopen``."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records.notes import Note
from core.records.visits import Visit, Visits


def arguments(parser: argparse.ArgumentParser) -> None:
    """visit start PATIENT [--appointment ID] [--reason R] [--clinician U] | list | close |
    reopen."""
    visit = actions(parser)
    start = visit.add_parser("start", help="start a visit (walk-in, or from an appointment)")
    start.add_argument("patient_id")
    start.add_argument(
        "--appointment",
        help="the appointment the visit is started from (arrived, on its day); it becomes "
        "in visit, and done when the visit is closed",
    )
    start.add_argument("--reason")
    start.add_argument("--clinician", help="user name (default: the signed-in user)")
    listing = visit.add_parser(
        "list",
        help="visits, newest first (the clinic's: the reason is withheld on charts you may "
        "not read clinically)",
    )
    listing.add_argument("--patient", help="one patient's visits")
    listing.add_argument("--open", action="store_true", help="only visits not closed yet")
    close = visit.add_parser(
        "close",
        help="close a visit (a draft note left in it is named in a warning: it stays unsigned)",
    )
    close.add_argument("id")
    reopen = visit.add_parser("reopen", help="open a closed visit again (closed by mistake)")
    reopen.add_argument("id")


def visit_line(v: Visit) -> str:
    """One line naming a visit."""
    closed = f" by {v.closed_by}" if v.closed_by else ""
    reason = "(reason withheld: clinical)" if v.reason_withheld else v.reason or ""
    return (
        f"{v.id}  {v.started_at}  {v.status}{closed}  patient {v.patient_id}  "
        f"{v.clinician or '-'}  {reason}"
    ).rstrip()


def drafts_warning(drafts: list[Note]) -> str:
    """The warning closing a visit with unsigned drafts gives: each draft, whose, since
    when, and what to do with it."""
    said = "; ".join(
        f"note {n.id} by {n.author}"
        + (f", edited by {', '.join(n.editors)}" if n.editors else "")
        + f", started {n.started_at or 'at an unknown time'}"
        for n in drafts
    )
    count = f"{len(drafts)} unsigned draft{'s' if len(drafts) > 1 else ''}"
    return (
        f"Warning: the visit has {count}, left unsigned: {said}. Sign each (careline note "
        "sign ID) or discard it (careline note discard ID)."
    )


def run(ctx: Context) -> int:
    """visit start/list/close/reopen."""
    args = ctx.args
    visits = Visits(ctx.open_records())
    if args.action == "start":
        v = visits.start(args.patient_id, args.reason, args.clinician, args.appointment)
        ctx.emit(v.to_dict(), f"Started visit {visit_line(v)}")
    elif args.action == "list":
        found = visits.list_visits(args.patient, open_only=args.open)
        ctx.emit(
            [v.to_dict() for v in found],
            "\n".join(visit_line(v) for v in found) or "No visits.",
        )
    elif args.action == "close":
        v = visits.close(args.id)
        shown, text = v.to_dict(), f"Closed visit {visit_line(v)}"
        drafts = [n for n in visits.visit_notes(v.id) if n.signed_at is None]
        if drafts:
            # Closed all the same, as before (scripts close visits): a draft can still be
            # signed or discarded in a closed visit, and the warning says which to do.
            shown["unsigned_drafts"] = [
                {"id": n.id, "author": n.author, "editors": list(n.editors),
                 "started_at": n.started_at}
                for n in drafts
            ]  # fmt: skip
            shown["warning"] = drafts_warning(drafts)
            text += f"\n{shown['warning']}"
        ctx.emit(shown, text)
    elif args.action == "reopen":
        v = visits.reopen(args.id)
        ctx.emit(v.to_dict(), f"Reopened visit {visit_line(v)}")
    return EXIT_OK


GROUP = CommandGroup("visit", "visits (encounters)", arguments, run)
