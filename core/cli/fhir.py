"""``careline fhir export [--patient P] -o FILE | fhir import FILE``: FHIR R4 bundles out of
and into the clinic (admins only; core/records/fhir)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.registry import CommandGroup, actions


def arguments(parser: argparse.ArgumentParser) -> None:
    """The fhir actions and their options."""
    fhir = actions(parser)
    export = fhir.add_parser("export", help="write a FHIR Bundle of every chart, or one (audited)")
    export.add_argument("--patient", metavar="P", help="only this patient's chart (patient id)")
    export.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    export.add_argument("--force", action="store_true", help="replace an existing file")
    imported = fhir.add_parser(
        "import", help="read a FHIR Bundle (transaction or collection) into the clinic"
    )
    imported.add_argument("file", type=Path, metavar="FILE", help="the bundle (JSON)")


def run(ctx: Context) -> int:
    """Export to a file, or import one and report what was created, matched and skipped."""
    # Imported here: the FHIR models would otherwise load with every command.
    from core.records.fhir.export import export_bundle
    from core.records.fhir.importer import import_bundle
    from core.records.fhir.reader import read_file
    from core.reports.pdf import save  # owner-only file, replaced in one step

    args = ctx.args
    if args.action == "export":
        output: Path = args.output
        if output.exists() and not args.force:
            raise CliError(f"{output} already exists; add --force to replace it", EXIT_USAGE)
        if not output.parent.is_dir():
            raise CliError(f"folder {output.parent} does not exist", EXIT_USAGE)
        result = export_bundle(ctx.open_records(), args.patient)
        save(output, result.json().encode())
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(result.counts.items()))
        withheld = (
            f"\n{len(result.withheld)} chart(s) without clinical content: you may not see it."
            if result.withheld
            else ""
        )
        ctx.emit(
            {"file": str(output), **result.summary()},
            f"Wrote {output} ({counts}). It holds patient data: keep it safe.{withheld}",
        )
        return EXIT_OK
    path: Path = args.file
    try:
        data = read_file(path)  # a bundle past its size limit refused before it is read
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    report = import_bundle(ctx.open_records(), data)
    ctx.emit(report.to_dict(), report.text())
    return EXIT_OK


GROUP = CommandGroup("fhir", "FHIR R4 bundles: export charts, import a bundle", arguments, run)
