"""What ``careline enroll`` and ``careline pair join`` share: core's one join workflow
(:func:`core.sync.join.join_clinic`) with the CLI's way of naming the person."""

from __future__ import annotations

from typing import Any

from core.cli.context import EXIT_USAGE, CliError, Context
from core.sync.join import JoinRequest, JoinResult, join_clinic


def join(ctx: Context, **where: Any) -> JoinResult:
    """Join with ``where`` (the server or peer fields of :class:`JoinRequest`).

    A workstation that holds a clinic joins as the person who unlocks it; an empty data
    folder gets a new database for ``--user`` (password from --password-stdin or
    CARELINE_PASSWORD_FILE), removed again if joining fails.
    """
    ws = ctx.workstation
    if ws.is_initialized():
        records = ctx.open_records()
        return join_clinic(ws, JoinRequest(records.actor, **where))
    if not ctx.args.user:
        raise CliError("--user is required to create this workstation's database", EXIT_USAGE)
    password = ctx.password()
    if password is None:
        raise CliError(
            "give the password with --password-stdin or CARELINE_PASSWORD_FILE", EXIT_USAGE
        )
    return join_clinic(ws, JoinRequest(ctx.args.user, password, **where))


def recovery_text(result: JoinResult) -> str:
    """The new replica's recovery key, shown once (nothing for an existing replica)."""
    if result.recovery_key is None:
        return ""
    return f"\n\nRECOVERY KEY for this workstation (shown only now):\n\n    {result.recovery_key}\n"
