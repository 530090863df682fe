"""``careline init``: a new encrypted clinic database and its first admin, or (``--demo``)
the demo clinic of sample data in its own folder."""

from __future__ import annotations

import argparse
import sys

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.registry import CommandGroup


def arguments(parser: argparse.ArgumentParser) -> None:
    """init --clinic NAME --user NAME [--full-name F] | init --demo [--seed N] [--patients N]."""
    parser.add_argument("--clinic", help="clinic name")
    parser.add_argument("--user", dest="init_user", help="first admin's login")
    parser.add_argument("--full-name", help="first admin's full name (default: the login)")
    parser.add_argument(
        "--demo",
        dest="init_demo",
        action="store_true",
        help="make the demo clinic (synthetic patients) beside the data folder instead",
    )
    parser.add_argument("--seed", type=int, help="--demo: the same seed gives the same clinic")
    parser.add_argument("--patients", type=int, help="--demo: how many patients")


def run(ctx: Context) -> int:
    """Create the clinic database and first admin; print the recovery key once."""
    from core.cli.passwords import prompt_new_password

    args = ctx.args
    if args.init_demo or ctx.demo_requested:
        return _demo(ctx)
    if not args.clinic or not args.init_user:
        raise CliError("init needs --clinic NAME and --user NAME (or --demo)", EXIT_USAGE)
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


def _demo(ctx: Context) -> int:
    """The demo clinic beside the data folder (which is not touched)."""
    from core.records import demo

    args = ctx.args
    if args.clinic or args.init_user:
        raise CliError("init --demo takes no --clinic or --user: the demo has its own", EXIT_USAGE)
    if args.patients is not None and not 1 <= args.patients <= 5000:
        raise CliError("--patients: give a number from 1 to 5000", EXIT_USAGE)

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rcareline: writing sample patients: {done} of {total}")
        if done == total:
            sys.stderr.write("\n")

    made = demo.create_demo(
        ctx.clinic_data_dir,
        seed=demo.DEFAULT_SEED if args.seed is None else args.seed,
        patients=args.patients or demo.DEFAULT_PATIENTS,
        on_progress=None if args.json else progress,
    )
    counts = made.counts.to_dict() if made.counts else {}
    doc = {
        "data_dir": str(made.folder),
        "clinic": demo.DEMO_CLINIC_NAME,
        "demo": True,
        "user": made.username,
        "password": made.password,
        "counts": counts,
    }
    listed = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
    ctx.emit(
        doc,
        f"Created the demo clinic ({demo.DEMO_NOTICE}) in {made.folder}: {listed}.\n"
        f"Sign in as {made.username!r} with the password {made.password!r}.\n"
        "Open it with 'careline --demo' (the desktop app) or 'careline --demo COMMAND'; "
        "plain 'careline' stays on your real clinic. The demo never syncs.",
    )
    return EXIT_OK


GROUP = CommandGroup("init", "create a new encrypted clinic database (or --demo)", arguments, run)
