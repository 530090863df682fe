"""``careline`` as the next release would be, for end-to-end tests in real processes.

``python -m tests.releases.newer_cli [careline options] COMMAND ...`` runs the real CLI
inside :func:`tests.newer_release.newer_code` (its record types: ``referral``, a patient's
``preferred_name``), opening every database with ``NEWER_MIGRATIONS``, plus the command
the next release adds: ``referral add PATIENT --to CLINIC --reason TEXT`` and ``referral
list PATIENT``. Test-only: nothing ships it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.cli import workstation
from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.store.database import Database
from core.store.migrations import MIGRATIONS, Migrations
from tests.newer_release import NEWER_MIGRATIONS, newer_code, refer


def _arguments(parser: argparse.ArgumentParser) -> None:
    sub = actions(parser)
    add = sub.add_parser("add", help="refer a patient to another clinic")
    add.add_argument("patient_id")
    add.add_argument("--to", required=True)
    add.add_argument("--reason", required=True)
    listing = sub.add_parser("list", help="a patient's referrals")
    listing.add_argument("patient_id")


def _run(ctx: Context) -> int:
    records = ctx.open_records()
    if ctx.args.action == "add":
        record_id = refer(records, ctx.args.patient_id, ctx.args.to, ctx.args.reason)
        ctx.emit({"id": record_id}, f"Referred: {record_id}")
        return EXIT_OK
    rows = records.db.query(
        "SELECT id, to_clinic, reason FROM referrals WHERE patient_id = ? ORDER BY id",
        (ctx.args.patient_id,),
    )
    found = [{"id": r[0], "to_clinic": r[1], "reason": r[2]} for r in rows]
    ctx.emit(found, "\n".join(f"{r['id']}  {r['to_clinic']}  {r['reason']}" for r in found))
    return EXIT_OK


REFERRAL = CommandGroup("referral", "referrals (the next release's record type)", _arguments, _run)


def _with_newer_migrations() -> None:
    """Every database this process opens is migrated to the newer schema: the defaults of
    ``Database.create/open`` are bound at import, so their common step is wrapped."""
    configure = Database.__dict__["_configure"].__func__

    def newer(
        cls: type[Database], path: Path, conn: Any, migrations: Migrations = MIGRATIONS
    ) -> Any:
        return configure(
            cls, path, conn, NEWER_MIGRATIONS if migrations is MIGRATIONS else migrations
        )

    Database._configure = classmethod(newer)  # type: ignore[assignment,method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    """The real CLI, as the next release."""
    _with_newer_migrations()
    workstation.GROUPS = (*workstation.GROUPS, REFERRAL)
    with newer_code():
        return workstation.run(argv, lambda _args: 2)


if __name__ == "__main__":
    sys.exit(main())
