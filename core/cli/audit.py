"""``careline audit verify``: check the audit log's hash chain."""

from __future__ import annotations

import argparse

from core.audit.verify import verify_audit_log
from core.cli.context import EXIT_CHECK_FAILED, EXIT_OK, Context
from core.cli.registry import CommandGroup, actions


def arguments(parser: argparse.ArgumentParser) -> None:
    """audit verify."""
    actions(parser).add_parser("verify", help="check the hash chain; name any altered entry")


def run(ctx: Context) -> int:
    """audit verify: exit 4 when the chain is broken, naming each problem."""
    ctx.open_records()
    report = verify_audit_log(ctx.workstation.database)
    doc = {"ok": report.ok, "entries": report.entries, "problems": list(report.problems)}
    if report.ok:
        ctx.emit(doc, f"Audit log intact: {report.entries} entries, hash chain verified.")
        return EXIT_OK
    ctx.emit(doc, "Audit log FAILED verification:\n" + "\n".join(f"  {p}" for p in report.problems))
    return EXIT_CHECK_FAILED


GROUP = CommandGroup("audit", "audit log", arguments, run)
