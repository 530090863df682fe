"""What ``careline enroll`` and ``careline pair join`` share: core's one join workflow
(:func:`core.sync.join.join_clinic`) with the CLI's way of naming the person."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.context import EXIT_USAGE, CliError, Context

if TYPE_CHECKING:
    from core.sync.join import JoinResult


def code_arguments(parser: argparse.ArgumentParser, what: str) -> Any:
    """The one-time code, from exactly one of ``--code``, ``--code-stdin``, ``--code-file``;
    returns that group.

    ``--code`` stays for scripts, but a command line is visible to every user of the
    computer (``ps``) while the command runs: the other two keep the code out of it.
    """
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument(
        "--code",
        help=f"the {what} (visible to other users in the process list while this runs: "
        "prefer --code-stdin or --code-file)",
    )
    given.add_argument(
        "--code-stdin",
        action="store_true",
        help="read the code from standard input (the line after the password when "
        "--password-stdin is given too)",
    )
    given.add_argument(
        "--code-file", type=Path, metavar="FILE", help="read the code from the first line of FILE"
    )
    return given  # argparse's group (its class is private): a caller may add another choice


def read_code(args: argparse.Namespace) -> str:
    """The code from ``--code``, ``--code-stdin`` or ``--code-file`` (see
    :func:`code_arguments`); surrounding spaces are dropped."""
    from core.cli.passwords import read_stdin_line

    if args.code_stdin:
        return read_stdin_line("--code-stdin", "code").strip()
    if args.code_file is not None:
        try:
            lines = args.code_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a text file"
            message = f"--code-file: cannot read {args.code_file}: {reason}"
            raise CliError(message, EXIT_USAGE) from None
        if not lines or not lines[0].strip():
            raise CliError(f"--code-file: {args.code_file} holds no code", EXIT_USAGE)
        return str(lines[0]).strip()
    return str(args.code).strip()


def join(ctx: Context, code_field: str, **where: Any) -> JoinResult:
    """Join with ``where`` (the server or peer fields of :class:`JoinRequest`) and the
    one-time code (read with :func:`read_code`, into the field ``code_field``).

    A workstation that holds a clinic joins as the person who unlocks it; an empty data
    folder gets a new database for ``--user`` (password from --password-stdin or
    CARELINE_PASSWORD_FILE), removed again if joining fails before the server accepted the
    code and kept after (the same command run again, or ``--resume``, finishes it). The
    password is read before the code: with both on standard input, the password comes
    first.
    """
    # Imported here: the join machinery (HTTP, TLS, certificates) would otherwise load
    # with every ``careline`` command.
    from core.sync.join import JoinRequest, first_sync_pending, join_clinic

    ws = ctx.workstation
    # An unfinished join kept here (the code was spent) is finished as the person who
    # started it, with their password: nobody can sign in before its records arrive.
    unfinished = first_sync_pending(ws)
    if ws.is_initialized() and not unfinished:
        records = ctx.open_records()
        where[code_field] = read_code(ctx.args)
        return join_clinic(ws, JoinRequest(records.actor, **where))
    if not ctx.args.user:
        what = "finish the join started here" if unfinished else "create the database here"
        raise CliError(f"--user is required to {what}", EXIT_USAGE)
    password = ctx.password()
    if password is None:
        raise CliError(
            "give the password with --password-stdin or CARELINE_PASSWORD_FILE", EXIT_USAGE
        )
    # A resume sends no code (the server already accepted it): --resume reads none.
    resume = unfinished and getattr(ctx.args, "resume", False)
    where[code_field] = "" if resume else read_code(ctx.args)
    return join_clinic(ws, JoinRequest(ctx.args.user, password, **where))


def recovery_fields(result: JoinResult) -> dict[str, str | None]:
    """The join's JSON fields about the recovery key: ``recovery_key`` (shown once, to an
    administrator only) or null, and ``recovery_key_reason``, null with a key, else why
    there is none (core.sync.join_recovery: ``not_an_administrator``, ...)."""
    return {"recovery_key": result.recovery_key, "recovery_key_reason": result.recovery_key_reason}


def recovery_text(result: JoinResult) -> str:
    """The new replica's recovery key, shown once to an administrator; else why there is
    none and who makes it (nothing for a workstation that already held the clinic)."""
    from core.sync.join_recovery import EXISTING_REPLICA

    if result.recovery_key is None:
        if result.recovery_key_reason in (None, EXISTING_REPLICA):
            return ""
        return "\n\n" + result.recovery.words
    return f"\n\nRECOVERY KEY for this workstation (shown only now):\n\n    {result.recovery_key}\n"


def rejoin_command(data_dir: Path, user: str, server_url: str | None) -> str:
    """The command that joins a restored workstation to its clinic again, as it can be run:
    the person's password, then the code, on standard input; a clinic with no server
    pairs with a LAN workstation instead. The server's certificate need not be given: the
    restored replica kept the one it had pinned (:func:`core.sync.backup.restored_server_pin`)."""
    prefix = f"careline --data-dir {shlex.quote(str(data_dir))} --user {shlex.quote(user)} "
    if server_url:
        return f"{prefix}--password-stdin enroll --server {shlex.quote(server_url)} --code-stdin"
    return f"{prefix}--password-stdin pair join --code-stdin"
