"""``careline init``: a new encrypted clinic database and its first admin."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup


def arguments(parser: argparse.ArgumentParser) -> None:
    """init --clinic NAME --user NAME [--full-name F]."""
    parser.add_argument("--clinic", required=True, help="clinic name")
    parser.add_argument("--user", dest="init_user", required=True, help="first admin's login")
    parser.add_argument("--full-name", help="first admin's full name (default: the login)")


def run(ctx: Context) -> int:
    """Create the clinic database and first admin; print the recovery key once."""
    from core.cli.passwords import prompt_new_password

    args = ctx.args
    password = ctx.password() or prompt_new_password()
    ws = ctx.workstation
    recovery = ws.init(args.clinic, args.init_user, args.full_name or args.init_user, password)
    ws.lock()
    doc = {
        "data_dir": str(ctx.data_dir),
        "clinic": args.clinic,
        "user": args.init_user.strip().lower(),
        "recovery_key": recovery,
        "keyring_slot": ws.keyring_note is None,
    }
    keyring_line = (
        "An OS-keyring slot was added: this account can open the database without a password."
        if ws.keyring_note is None
        else f"No OS-keyring slot: {ws.keyring_note}."
    )
    ctx.emit(
        doc,
        f"Created clinic {args.clinic!r} in {ctx.data_dir}.\n"
        f"{keyring_line}\n\n"
        f"RECOVERY KEY (shown only now; store it offline, e.g. printed in the clinic safe):\n\n"
        f"    {recovery}\n",
    )
    return EXIT_OK


GROUP = CommandGroup("init", "create a new encrypted clinic database", arguments, run)
