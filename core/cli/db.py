"""``careline db check``: integrity check of the encrypted database."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_CHECK_FAILED, EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.store.database import DriverError
from core.store.errors import DamagedDatabaseError, NotCarelineDatabaseError


def arguments(parser: argparse.ArgumentParser) -> None:
    """db check."""
    actions(parser).add_parser("check", help="integrity check of the encrypted database")


def run(ctx: Context) -> int:
    """db check: SQLite's and SQLCipher's integrity checks, then every record derived again
    from its document and compared with the tables (rows edited directly under the documents
    are named); a file too damaged to open is a failed check too (exit 4)."""
    from core.records.derived_check import derived_differences

    try:
        ctx.open_database()
        problems = ctx.workstation.database.integrity_problems()
        if not problems:
            problems = [
                f"differs from its record document: {p}"
                for p in derived_differences(ctx.workstation.database)
            ]
    except (DamagedDatabaseError, NotCarelineDatabaseError, DriverError) as exc:
        problems = [str(exc)]
    doc = {"ok": not problems, "problems": problems, "path": str(ctx.workstation.db_path)}
    if not problems:
        ctx.emit(
            doc,
            f"Database {ctx.workstation.db_path}: integrity and cipher checks passed; "
            "every table row matches its record document.",
        )
        return EXIT_OK
    ctx.emit(doc, "Database check FAILED:\n" + "\n".join(f"  {p}" for p in problems))
    return EXIT_CHECK_FAILED


GROUP = CommandGroup("db", "database", arguments, run)
