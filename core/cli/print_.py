"""``careline print summary PATIENT|visit VISIT|day [DATE] -o FILE``: the printed reports
as PDF files, headless (audited: printing patient data is a disclosure)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.registry import CommandGroup, actions


def arguments(parser: argparse.ArgumentParser) -> None:
    """The print actions and their options."""
    reports = actions(parser)
    summary = reports.add_parser("summary", help="a patient summary (audited)")
    summary.add_argument("patient", metavar="PATIENT", help="patient id")
    visit = reports.add_parser("visit", help="a visit note (audited)")
    visit.add_argument("visit", metavar="VISIT", help="visit id")
    day = reports.add_parser("day", help="the day's appointment list (audited)")
    day.add_argument("date", metavar="DATE", nargs="?", help="YYYY-MM-DD, default today")
    for sub in (summary, visit, day):
        sub.add_argument("-o", "--output", type=Path, required=True, help="PDF file to write")
        sub.add_argument("--force", action="store_true", help="replace an existing file")


def run(ctx: Context) -> int:
    """Gather (and audit), lay out, and write the PDF."""
    # Imported here: the PDF library would otherwise load with every command.
    from core.reports import data, pdf

    args = ctx.args
    output: Path = args.output
    if output.exists() and not args.force:
        raise CliError(f"{output} already exists; add --force to replace it", EXIT_USAGE)
    if not output.parent.is_dir():
        raise CliError(f"folder {output.parent} does not exist", EXIT_USAGE)
    records = ctx.open_records()
    if args.action == "summary":
        document = pdf.summary_pdf(data.summary_report(records, args.patient))
    elif args.action == "visit":
        document = pdf.visit_pdf(data.visit_report(records, args.visit))
    else:
        document = pdf.day_pdf(data.day_report(records, args.date))
    pdf.save(output, document)
    ctx.emit(
        {"report": args.action, "file": str(output), "bytes": len(document)},
        f"Wrote {output} ({len(document):,} bytes). It holds patient data: keep it safe.",
    )
    return EXIT_OK


GROUP = CommandGroup("print", "print reports as PDF (summary, visit, day)", arguments, run)
