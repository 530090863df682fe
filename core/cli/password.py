"""``careline password change``: a person's own password (the synced verifier and this
workstation's slot). Reading secrets from stdin, a file or a prompt is
:mod:`core.cli.passwords`."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_AUTH, EXIT_OK, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records import validation
from core.records.errors import AuthenticationError


def arguments(parser: argparse.ArgumentParser) -> None:
    """password change."""
    actions(parser).add_parser(
        "change",
        help="change --user's password (--password-stdin: old, then new, then the two-factor "
        "code if the account has one, one per line)",
    )


def run(ctx: Context) -> int:
    """password change: the current password, then the new one; changes the synced
    verifier and this workstation's slot."""
    from core.cli.passwords import (
        PASSWORD_FILE_ENV,
        prompt_new_password,
        prompt_secret,
        read_stdin_line,
    )

    args, ws = ctx.args, ctx.workstation
    ctx.require_clinic()
    user = ctx.user()
    # Both passwords are read before the slow sign-in, so a missing line fails at once.
    old = ctx.password()
    if old is None:
        old = prompt_secret(
            f"Current password for {user}: ", "password", f"--password-stdin or {PASSWORD_FILE_ENV}"
        )
    if args.password_stdin:
        new = read_stdin_line("--password-stdin", "second (new password)")
    else:
        new = prompt_new_password()
    validation.password(new, (user,))
    if new == old:
        raise CliError("the new password is the same as the current one")
    try:
        ctx.sign_in_with(user, old)
        ws.change_password(user, old, new)
    except AuthenticationError as exc:
        raise CliError(str(exc), EXIT_AUTH) from None
    ctx.emit(
        {"user": user, "password_changed": True},
        f"Password changed for {user!r}. Use the new password from now on.",
    )
    return EXIT_OK


GROUP = CommandGroup("password", "your password", arguments, run)
