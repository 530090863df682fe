"""``careline audit verify | list``: check the audit log's hash chain, or read it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.audit.verify import verify_audit_log
from core.cli.context import EXIT_CHECK_FAILED, EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records.audit_review import (
    AuditFilter,
    AuditRow,
    entries_about,
    export_csv,
    require_reviewer,
)


def arguments(parser: argparse.ArgumentParser) -> None:
    """audit verify; audit list [--patient P] [--user U] [--since DATE] [--until DATE]
    [--action A] [--limit N] [--csv FILE]."""
    audit = actions(parser)
    audit.add_parser("verify", help="check the hash chain; name any altered entry")
    listing = audit.add_parser("list", help="this workstation's audit entries, newest first")
    listing.add_argument("--patient", help="entries about this patient's chart (id or name)")
    listing.add_argument("--user", dest="person", metavar="USER", help="entries by this person")
    listing.add_argument(
        "--action",
        dest="action_filter",
        metavar="ACTION",
        help="an action (chart.open) or a kind of action (chart)",
    )
    listing.add_argument("--since", help="from this day (YYYY-MM-DD, local) or time")
    listing.add_argument("--until", help="up to the end of this day (YYYY-MM-DD) or this time")
    listing.add_argument("--limit", type=int, help="at most N entries")
    listing.add_argument("--csv", type=Path, metavar="FILE", help="write the entries as CSV")


def _line(r: AuditRow) -> str:
    extra = f"  [break-glass {r.break_glass}]" if r.break_glass else ""
    return (
        f"{r.seq:>6}  {r.local_time}  {r.actor:<14} {r.action:<22} {r.entity} {r.entity_id}{extra}"
    )


def _list(ctx: Context) -> int:
    args = ctx.args
    records = ctx.open_records()
    if not args.patient:
        require_reviewer(records)
    wanted = AuditFilter(
        args.patient, args.person, args.action_filter, args.since, args.until, args.limit
    )
    if args.csv is not None:
        if str(args.csv) == "-":
            export_csv(records, wanted, sys.stdout)
            return EXIT_OK
        with args.csv.open("w", encoding="utf-8", newline="") as fh:
            count = export_csv(records, wanted, fh)
        ctx.emit({"written": count, "file": str(args.csv)}, f"Wrote {count} entries to {args.csv}")
        return EXIT_OK
    rows = entries_about(records, wanted)
    text = "\n".join(_line(r) for r in rows) or "No audit entries match."
    ctx.emit({"entries": [r.to_dict() for r in rows]}, text)
    return EXIT_OK


def run(ctx: Context) -> int:
    """audit verify: exit 4 when the chain is broken, naming each problem; audit list."""
    if ctx.args.action == "list":
        return _list(ctx)
    ctx.open_records()
    report = verify_audit_log(ctx.workstation.database)
    doc = {"ok": report.ok, "entries": report.entries, "problems": list(report.problems)}
    if report.ok:
        ctx.emit(doc, f"Audit log intact: {report.entries} entries, hash chain verified.")
        return EXIT_OK
    ctx.emit(doc, "Audit log FAILED verification:\n" + "\n".join(f"  {p}" for p in report.problems))
    return EXIT_CHECK_FAILED


GROUP = CommandGroup("audit", "audit log", arguments, run)
