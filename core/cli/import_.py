"""``careline import patients FILE.csv``: move a clinic's patient list in (admins)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.context import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records import csv_table
from core.records.import_rows import (
    DATE_FORMATS,
    FIELDS,
    IGNORE,
    MappingError,
    ReadOptions,
    RowProblem,
    check_mapping,
    override_mapping,
    suggest_mapping,
)
from core.records.patient_import import AlreadyPresent, plan_import, run_import

SHOWN_PROBLEMS = 50  # in the text output; --json lists them all


def arguments(parser: argparse.ArgumentParser) -> None:
    """import patients FILE [--map COLUMN=FIELD ...] [--date-format F] [--dry-run]."""
    what = actions(parser)
    patients = what.add_parser(
        "patients",
        help="import a patient list from a CSV file (admins)",
        description="Rows that cannot be read are listed and left out; patients already "
        "registered (same MRN, or same name and birth date) are not added again, so running "
        "the same file twice adds nothing. Exit status 4 when any row has a problem.",
    )
    patients.add_argument("file", type=Path, help="the CSV file (UTF-8 or Windows-1252)")
    patients.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help=f"map a column to a field ({', '.join((*FIELDS, IGNORE))}); columns are "
        "otherwise mapped from their names",
    )
    patients.add_argument(
        "--date-format",
        choices=DATE_FORMATS,
        default=DATE_FORMATS[0],
        help="how the file writes birth dates (default %(default)s; never guessed)",
    )
    patients.add_argument(
        "--year-pivot",
        type=int,
        metavar="YY",
        help="read two-digit years: below YY is 20YY, else 19YY (default: refused)",
    )
    patients.add_argument(
        "--allergy-separator", default=";", help="between allergies in a cell (default ';')"
    )
    patients.add_argument(
        "--dry-run", action="store_true", help="check every row and report; write nothing"
    )


def run(ctx: Context) -> int:
    """import patients."""
    args = ctx.args
    table = csv_table.read(args.file)
    try:
        mapping = override_mapping(suggest_mapping(table.header), table.header, args.map)
        check_mapping(mapping)
        options = ReadOptions(args.date_format, args.allergy_separator, args.year_pivot)
    except MappingError as exc:
        raise CliError(
            f"{exc} (the file's columns: {_columns(table.header)})", EXIT_USAGE
        ) from None
    records = ctx.open_records()
    plan = plan_import(records, table, mapping, options)
    head = [
        f"{args.file}: {plan.rows} rows, read as {table.encoding}",
        "columns: " + ", ".join(f"{c} -> {f}" for c, f in mapping.items()),
    ]
    if args.dry_run:
        document = {"dry_run": True, "mapping": mapping, **plan.to_dict()}
        lines = [
            *head,
            f"would add {len(plan.to_add)}, already present {len(plan.already_present)}, "
            f"rows with problems {_rows(plan.problems)}",
            *_details(plan.problems, plan.already_present),
        ]
        ctx.emit(document, "\n".join(lines))
        return EXIT_CHECK_FAILED if plan.problems else EXIT_OK

    def progress(done: int, total: int) -> None:
        if not args.json:
            sys.stderr.write(f"\rimported {done}/{total}")
            if done == total:
                sys.stderr.write("\n")

    result = run_import(records, plan, progress)
    lines = [
        *head,
        f"added {result.added} patients ({result.allergies} allergies), already present "
        f"{len(result.already_present)}, rows with problems {_rows(result.problems)}",
        *_details(result.problems, result.already_present),
    ]
    ctx.emit({"dry_run": False, "mapping": mapping, **result.to_dict()}, "\n".join(lines))
    return EXIT_CHECK_FAILED if result.problems else EXIT_OK


def _columns(header: list[str]) -> str:
    return ", ".join(repr(c) for c in header)


def _rows(problems: list[RowProblem]) -> int:
    return len({p.row for p in problems})


def _details(problems: list[RowProblem], present: list[AlreadyPresent]) -> list[str]:
    lines = [f"  {p}" for p in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(problems) - SHOWN_PROBLEMS} more problems (--json: all)")
    lines += [f"  {a}" for a in present[:SHOWN_PROBLEMS]]
    if len(present) > SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(present) - SHOWN_PROBLEMS} more already present")
    return lines


GROUP = CommandGroup("import", "move a clinic in: import a patient list", arguments, run)
