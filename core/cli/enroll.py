"""``careline enroll``: join a server's clinic with an enrollment code, given on the
command line or (``--machine``, silent install) by the machine-wide configuration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.joining import code_arguments, join, recovery_fields, recovery_text
from core.cli.registry import CommandGroup
from core.config.settings import check_server_url

# Where the Linux packages install the IT guide (installers/README.md): both carry it.
IT_GUIDE = "/usr/share/doc/careline/README.md"

if TYPE_CHECKING:
    from core.sync.join import JoinResult


def arguments(parser: argparse.ArgumentParser) -> None:
    """enroll --server URL (--code CODE | --code-stdin | --code-file FILE) [--ca-file PEM]
    [--ca-fingerprint SHA256] [--device-name NAME] | enroll --machine | enroll --resume |
    enroll --discard-unfinished."""
    parser.add_argument("--server", help="https://host:port")
    # Instead of a code: everything from the machine-wide configuration.
    given = code_arguments(parser, "enrollment code from 'careline-server admin enroll-code'")
    given.add_argument(
        "--machine",
        action="store_true",
        help="join the server named by the machine-wide configuration (server_url, "
        "server_ca_file or server_ca_fingerprint, enroll_code) with nobody at the keyboard; "
        "does nothing if this data folder already holds a clinic",
    )
    # After a first sync that failed once the server accepted the code (its use is spent).
    given.add_argument(
        "--resume",
        action="store_true",
        help="finish the unfinished join in this data folder with no code, as --user with "
        "their password (running the same enroll command again does the same)",
    )
    given.add_argument(
        "--discard-unfinished",
        action="store_true",
        help="remove the unfinished join in this data folder (its records, device credential "
        "and key file), to enroll again with a new code; a finished clinic is never removed",
    )
    parser.add_argument("--ca-file", type=Path, help="pin this CA for the server's TLS")
    parser.add_argument(
        "--ca-fingerprint",
        metavar="SHA256",
        help="pin the server's CA by its SHA-256 fingerprint (hex, colons allowed): the "
        "certificate the server presents with it, found before the code is sent",
    )
    parser.add_argument(
        "--device-name",
        help="how the server lists this workstation (1-64 printable characters; default: "
        "the computer's host name)",
    )


def run(ctx: Context) -> int:
    """Join a server's clinic; on an empty data dir, create the local database first."""
    args = ctx.args
    if args.machine:
        return _run_machine(ctx)
    if args.discard_unfinished:
        return _discard(ctx)
    if args.resume:
        return _resume(ctx)
    if args.server is None:
        raise CliError("give --server URL with the code, or --machine", EXIT_USAGE)
    _refuse_other_server(ctx, args.server)
    fingerprint = _fingerprint(args.ca_fingerprint)
    if args.device_name is not None:
        from core.sync.enroll import device_name_problem

        problem = device_name_problem(args.device_name)
        if problem is not None:
            raise CliError(f"--device-name: {problem}", EXIT_USAGE)
    ca_pem = None
    if args.ca_file is not None:
        try:
            ca_pem = args.ca_file.read_text(encoding="ascii")
        except OSError as exc:
            raise CliError(f"--ca-file: cannot read {args.ca_file}: {exc.strerror}") from None
    result = join(
        ctx,
        "enroll_code",
        server_url=args.server,
        ca_pem=ca_pem,
        ca_fingerprint=fingerprint,
        device_name=args.device_name,
    )
    return _enrolled(ctx, result)


def _fingerprint(given: str | None) -> str | None:
    """``--ca-fingerprint`` as 64 lowercase hex digits, or None; refused in words if it is
    not a whole SHA-256 fingerprint."""
    if given is None:
        return None
    from core.config.settings import check_fingerprint
    from core.sync.ca_pin import typed_fingerprint

    try:
        typed_fingerprint(given)
        return check_fingerprint(given)
    except ValueError as exc:
        raise CliError(f"--ca-fingerprint: {exc}", EXIT_USAGE) from None


def _enrolled(ctx: Context, result: JoinResult) -> int:
    doc = {
        "device_id": result.device_id,
        "clinic": result.clinic_name,
        "records": result.records,
        **recovery_fields(result),
    }
    ctx.emit(
        doc,
        f"Enrolled as device {result.device_id} of {result.clinic_name}; this computer now "
        f"holds the clinic's {result.records} records." + recovery_text(result),
    )
    return EXIT_OK


def _resume(ctx: Context) -> int:
    """``enroll --resume``: finish the kept, unfinished join here (no code is sent)."""
    from core.sync.join import first_sync_pending

    if not first_sync_pending(ctx.workstation):
        raise CliError(f"{ctx.data_dir} holds no unfinished join to resume", EXIT_USAGE)
    return _enrolled(ctx, join(ctx, "enroll_code", server_url=ctx.args.server or ""))


def _discard(ctx: Context) -> int:
    """``enroll --discard-unfinished``: remove the kept, unfinished join here."""
    from core.sync.join import discard_unfinished_join, discarded_words

    if not discard_unfinished_join(ctx.workstation):
        raise CliError(
            f"{ctx.data_dir} holds no unfinished join (a finished clinic is never removed)",
            EXIT_USAGE,
        )
    # The device's ID is in the removed credential, readable only with the person's password.
    words = discarded_words(None)
    text = words[0].upper() + words[1:] + "."
    ctx.emit({"discarded": True, "data_dir": str(ctx.data_dir)}, text)
    return EXIT_OK


def _refuse_other_server(ctx: Context, server: str) -> None:
    """IT's machine-wide configuration that locks server_url decides which server this
    computer joins: a person's own file and environment cannot change it, nor can this
    command's --server (it would send the clinic held here to another server)."""
    machine = ctx.machine
    locked = machine.values.get("server_url") if "server_url" in machine.locked else None
    if locked is None:
        return
    try:
        same = check_server_url(server) == locked
    except ValueError:
        same = False
    if not same:
        raise CliError(
            f"this computer joins only {locked}, which the machine-wide configuration "
            f"({machine.sources.get('server_url', 'machine configuration')}) locks; --server "
            f"{server} is refused (ask IT, or use 'careline enroll --machine')",
            EXIT_USAGE,
        )


def _run_machine(ctx: Context) -> int:
    """Silent enrollment from the machine-wide configuration (installers/README.md)."""
    from core.sync.join import first_sync_pending
    from core.sync.silent_join import MachineEnrollment, join_silently

    args = ctx.args
    given = [o for o, v in (("--server", args.server), ("--ca-file", args.ca_file),
             ("--ca-fingerprint", args.ca_fingerprint),
             ("--device-name", args.device_name)) if v]  # fmt: skip
    if given:
        raise CliError(
            f"--machine takes everything from the machine-wide configuration; drop {given[0]}",
            EXIT_USAGE,
        )
    if ctx.workstation.is_initialized() and not first_sync_pending(ctx.workstation):
        # Idempotent for deployment scripts run again on the same workstation (one enrolled
        # whose first sync failed is finished instead, without a code).
        ctx.emit(
            {"enrolled": False, "data_dir": str(ctx.data_dir)},
            f"{ctx.data_dir} already holds a clinic; nothing to do.",
        )
        return EXIT_OK
    enrollment = MachineEnrollment.from_settings(ctx.settings)
    if enrollment is None:
        raise CliError(
            "the machine-wide configuration names no server_url and enroll_code "
            "(see 'Silent install and mass enrollment' in the IT guide: "
            f"{IT_GUIDE} with the Linux packages, installers/README.md in the source)",
            EXIT_USAGE,
        )
    result = join_silently(ctx.workstation, enrollment)
    ctx.emit(
        {
            "enrolled": True,
            "device_id": result.device_id,
            "clinic": result.clinic_name,
            "records": result.records,
        },
        f"Enrolled as device {result.device_id} of {result.clinic_name}; this computer now "
        f"holds the clinic's {result.records} records. Staff sign in with their Careline "
        "password; an administrator makes this workstation's recovery key after signing in.",
    )
    return EXIT_OK


GROUP = CommandGroup(
    "enroll", "join a clinic server with an enrollment code (--machine: silent install)",
    arguments, run,
)  # fmt: skip
