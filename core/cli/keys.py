"""``careline keys recovery|rekey|recover``: the recovery key, re-keying, and a forgotten
password."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_AUTH, EXIT_OK, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.keys.errors import NoSlotError, WrongSecretError
from core.records import validation


def arguments(parser: argparse.ArgumentParser) -> None:
    """keys recovery | keys rekey | keys recover --user NAME [--recovery-key-stdin]."""
    ksub = actions(parser)
    ksub.add_parser(
        "recovery", help="admin: print a new recovery key once; the old one stops working"
    )
    ksub.add_parser("rekey", help="admin: re-encrypt the database under a fresh key")
    recover = ksub.add_parser(
        "recover",
        help="forgotten password: unlock with the recovery key and set a user's new password",
    )
    recover.add_argument("--user", dest="recover_user", required=True, help="whose password to set")
    # Accepted here too; SUPPRESS keeps the global flag's value when this one is absent.
    recover.add_argument(
        "--recovery-key-stdin",
        action="store_true",
        default=argparse.SUPPRESS,
        help="read the recovery key, then the new password, from standard input",
    )


def run(ctx: Context) -> int:
    """keys recovery | rekey | recover."""
    if ctx.args.action == "recover":
        return _recover(ctx)
    ws = ctx.workstation
    ctx.sign_in_person()
    if ctx.args.action == "recovery":
        recovery = ws.new_recovery_key()
        ctx.emit(
            {"recovery_key": recovery},
            "New RECOVERY KEY for this workstation (shown only now; the previous key no longer "
            "opens it). Store it offline, e.g. printed in the clinic safe:\n\n"
            f"    {recovery}\n",
        )
        return EXIT_OK
    ws.rekey()
    chain = ws.keychain()
    generation = chain.db_key.generation
    keyring = " and the OS-keyring slot" if any(s.kind == "keyring" for s in chain.slots) else ""
    ctx.emit(
        {"rekeyed": True, "generation": generation},
        f"Re-encrypted {ws.db_path} under a new database key (generation {generation}). "
        f"Passwords, the recovery key{keyring} still open it.",
    )
    return EXIT_OK


def _recover(ctx: Context) -> int:
    """Unlock with the recovery key and set a user's new password (audited)."""
    from core.cli.passwords import prompt_new_password, prompt_secret, read_stdin_line

    args, ws = ctx.args, ctx.workstation
    ctx.require_clinic()
    user = validation.username(args.recover_user)
    if args.recovery_key_stdin:
        recovery = read_stdin_line("--recovery-key-stdin", "recovery key")
    else:
        recovery = prompt_secret("Recovery key: ", "recovery key", "--recovery-key-stdin")
    if args.recovery_key_stdin or args.password_stdin:
        flag = "--recovery-key-stdin" if args.recovery_key_stdin else "--password-stdin"
        new = read_stdin_line(flag, "new password")
    else:
        new = prompt_new_password(f"New password for {user}: ")
    try:
        ws.recover_password(recovery, user, new)
    except (WrongSecretError, NoSlotError) as exc:
        raise CliError(f"cannot unlock with the recovery key: {exc}", EXIT_AUTH) from None
    ctx.emit(
        {"user": user, "password_changed": True},
        f"New password set for {user!r} (audited as done with the recovery key). "
        f"{user!r} signs in with it from now on. The recovery key still works; if it may "
        "have been seen, an administrator can issue a new one with 'careline keys recovery'.",
    )
    return EXIT_OK


GROUP = CommandGroup("keys", "recovery key, re-keying, forgotten passwords", arguments, run)
