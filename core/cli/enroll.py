"""``careline enroll``: join a server's clinic with a one-time code."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.context import EXIT_OK, CliError, Context
from core.cli.joining import code_arguments, join, recovery_text
from core.cli.registry import CommandGroup


def arguments(parser: argparse.ArgumentParser) -> None:
    """enroll --server URL (--code CODE | --code-stdin | --code-file FILE) [--ca-file PEM]
    [--device-name NAME]."""
    parser.add_argument("--server", required=True, help="https://host:port")
    code_arguments(parser, "enrollment code from 'careline-server admin enroll-code'")
    parser.add_argument("--ca-file", type=Path, help="pin this CA for the server's TLS")
    parser.add_argument("--device-name", help="how the server lists this workstation")


def run(ctx: Context) -> int:
    """Join a server's clinic; on an empty data dir, create the local database first."""
    args = ctx.args
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
        device_name=args.device_name,
    )
    doc = {
        "device_id": result.device_id,
        "clinic": result.clinic_name,
        "records": result.records,
        "recovery_key": result.recovery_key,
    }
    ctx.emit(
        doc,
        f"Enrolled as device {result.device_id} of {result.clinic_name}; "
        f"{result.records} records received." + recovery_text(result),
    )
    return EXIT_OK


GROUP = CommandGroup("enroll", "join a clinic server with a one-time code", arguments, run)
