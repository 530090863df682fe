"""``careline problem add|resolve|list|codes``: the problem list, coded with ICD-10-CM.

Adding a problem already active on the chart (the same code, or the same text but for
case) is refused with the one already there named (when it was recorded, by whom) unless
``--allow-duplicate`` says the operator has seen it, as ``appointment add`` refuses a clash
without ``--allow-overlap``. Every problem says who recorded (and resolved) it, and when.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context, refuse_duplicate
from core.cli.registry import CommandGroup, actions
from core.records import icd10
from core.records.chart_lists import DuplicateWarning
from core.records.clinic import ClinicRecords
from core.records.list_history import people
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
    add.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="record it even though the patient has it as an active problem already",
    )
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


def said(p: Problem, names: Mapping[str, str]) -> str:
    """Who recorded (and resolved) the problem when, by full name (``names``: user name
    -> full name), indented on lines of their own."""
    return "".join(f"\n    {x}" for x in p.history_lines(names))


def _names(records: ClinicRecords, problems: list[Problem]) -> dict[str, str]:
    return records.full_names(people(problems))


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
    records = ctx.open_records()
    problems = Problems(records)
    if args.action == "add":
        try:
            p = problems.add(
                args.patient_id, args.code, args.uncoded, args.onset, args.visit,
                allow_duplicate=args.allow_duplicate,
            )  # fmt: skip
        except DuplicateWarning as exc:
            refuse_duplicate(ctx, exc, lambda item, names: line(item) + said(item, names))
        ctx.emit(p.to_dict(), f"Recorded problem {line(p)}")
    elif args.action == "resolve":
        if problems.get(args.item_id).patient_id != args.patient_id:
            raise CliError(f"problem {args.item_id} is not on patient {args.patient_id}'s list")
        p = problems.resolve(args.item_id, args.date, args.visit)
        headline = f"Resolved {line(p)}" + (f" in visit {args.visit}" if args.visit else "")
        ctx.emit(p.to_dict(), headline)
    else:
        found = problems.list(args.patient_id, include_resolved=args.all)
        names = _names(records, found)
        ctx.emit(
            [p.to_dict() for p in found],
            "\n".join(line(p) + said(p, names) for p in found) or "No problems recorded.",
        )
    return EXIT_OK


GROUP = CommandGroup("problem", "problems (diagnoses) coded with ICD-10-CM", arguments, run)
