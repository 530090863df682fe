"""``careline break-glass PATIENT --reason TEXT | list [--pending] | review ID``."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, CliError, Context
from core.cli.registry import CommandGroup
from core.records.break_glass import BreakGlass
from core.records.break_glass_audit import Grant, system_clock


def arguments(parser: argparse.ArgumentParser) -> None:
    """break-glass PATIENT --reason TEXT [--minutes N]; break-glass list [--pending];
    break-glass review ID."""
    parser.add_argument(
        "target", metavar="PATIENT|list|review", help="a patient id, or list, or review"
    )
    parser.add_argument("grant_id", nargs="?", metavar="ID", help="with review: the opening")
    parser.add_argument("--reason", help="why the chart is opened in an emergency (required)")
    parser.add_argument(
        "--minutes", type=int, help="how long access lasts (default: break_glass_minutes, 60)"
    )
    parser.add_argument("--pending", action="store_true", help="with list: not yet reviewed")


def _line(g: Grant) -> str:
    review = f"reviewed by {g.reviewed_by} at {g.reviewed_at}" if g.reviewed_at else "PENDING"
    return (
        f"{g.id}  patient {g.patient_id}  by {g.username}  {g.opened_at} -> {g.expires_at}  "
        f"{review}\n    reason: {g.reason}"
    )


def run(ctx: Context) -> int:
    """Open a chart in an emergency, list openings, or mark one reviewed."""
    args = ctx.args
    if args.target == "list":
        openings = BreakGlass(ctx.open_records()).openings(pending_only=args.pending)
        text = "\n".join(_line(g) for g in openings) or (
            "No break-glass openings waiting for review."
            if args.pending
            else "No break-glass openings."
        )
        now = system_clock()
        doc = [{**g.to_dict(), "active": g.active(now)} for g in openings]
        ctx.emit({"openings": doc}, text)
        return EXIT_OK
    if args.target == "review":
        if not args.grant_id:
            raise CliError("break-glass review needs the opening's ID (see break-glass list)")
        g = BreakGlass(ctx.open_records()).mark_reviewed(args.grant_id)
        ctx.emit(g.to_dict(), f"Break-glass opening {g.id} reviewed by {g.reviewed_by}.")
        return EXIT_OK
    if args.grant_id:
        raise CliError(f"unexpected argument {args.grant_id!r} after the patient id")
    if not (args.reason or "").strip():
        raise CliError("break-glass needs --reason: say why the chart is opened in an emergency")
    minutes = args.minutes or int(ctx.settings["break_glass_minutes"])
    g = BreakGlass(ctx.open_records()).open(args.target, args.reason, minutes)
    ctx.emit(
        g.to_dict(),
        f"Emergency access to patient {g.patient_id} for {g.username} until {g.expires_at} "
        f"(opening {g.id}). Every view and change is recorded and reviewed.",
    )
    return EXIT_OK


GROUP = CommandGroup("break-glass", "emergency access to a chart, and its review", arguments, run)
