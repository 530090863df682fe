"""``careline problem add|resolve|list|codes``: the problem list, coded with ICD-10-CM."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records import icd10
from core.records.problems import Problem, Problems


def arguments(parser: argparse.ArgumentParser) -> None:
    """The problem actions and their options."""
    problem = actions(parser)
    add = problem.add_parser("add", help="record a problem (an ICD-10-CM code, or uncoded text)")
    add.add_argument("patient_id")
    which = add.add_mutually_exclusive_group(required=True)
    which.add_argument("--code", help="an ICD-10-CM code, e.g. I10 or E11.9")
    which.add_argument("--uncoded", metavar="TEXT", help="record text without a code")
    add.add_argument("--onset", help="2019, 2019-05 or 2019-05-14")
    add.add_argument("--visit", help="the visit (encounter id) it was made in")
    resolve = problem.add_parser("resolve", help="mark a problem resolved")
    resolve.add_argument("patient_id")
    resolve.add_argument("item_id")
    resolve.add_argument("--date", help="YYYY-MM-DD (default: today)")
    resolve.add_argument("--visit", help="the visit (encounter id) it was resolved in: it lists it")
    listing = problem.add_parser("list", help="active problems (--all: resolved ones too)")
    listing.add_argument("patient_id")
    listing.add_argument("--all", action="store_true", help="include resolved problems")
    codes = problem.add_parser("codes", help="search the ICD-10-CM code list")
    codes.add_argument("text", help="a code or its start (E11), or words (diabetes type 2)")
    codes.add_argument("--limit", type=int, default=20)


def line(p: Problem) -> str:
    """One line naming a problem."""
    when = f"  onset {p.onset}" if p.onset else ""
    if p.status == "resolved":
        when += f"  resolved {p.resolved or '?'}"
    return f"{p.id}  {p.label}{when}"


def run(ctx: Context) -> int:
    """problem add/resolve/list/codes."""
    args = ctx.args
    if args.action == "codes":
        if not 1 <= args.limit <= 200:
            raise CliError("--limit must be between 1 and 200", EXIT_USAGE)
        codes = icd10.search(args.text, args.limit)
        ctx.emit(
            [{"code": c.code, "description": c.description, "billable": c.billable} for c in codes],
            "\n".join(f"{c.code:<8} {c.description}" for c in codes) or "No codes match.",
        )
        return EXIT_OK
    problems = Problems(ctx.open_records())
    if args.action == "add":
        p = problems.add(args.patient_id, args.code, args.uncoded, args.onset, args.visit)
        ctx.emit(p.to_dict(), f"Recorded problem {line(p)}")
    elif args.action == "resolve":
        if problems.get(args.item_id).patient_id != args.patient_id:
            raise CliError(f"problem {args.item_id} is not on patient {args.patient_id}'s list")
        p = problems.resolve(args.item_id, args.date, args.visit)
        ctx.emit(
            p.to_dict(), f"Resolved {line(p)}" + (f" in visit {args.visit}" if args.visit else "")
        )
    else:
        found = problems.list(args.patient_id, include_resolved=args.all)
        ctx.emit(
            [p.to_dict() for p in found],
            "\n".join(line(p) for p in found) or "No problems recorded.",
        )
    return EXIT_OK


GROUP = CommandGroup("problem", "problems (diagnoses) coded with ICD-10-CM", arguments, run)
