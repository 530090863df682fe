"""``careline pair code|join``: let a LAN workstation join, or join through one."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.joining import code_arguments, join, recovery_text
from core.cli.registry import CommandGroup, actions


def arguments(parser: argparse.ArgumentParser) -> None:
    """pair code [--ttl MINUTES] | pair join (--code CODE | --code-stdin | --code-file FILE)
    [--peer HOST:PORT]."""
    pair = actions(parser, dest="pair_command")
    pcode = pair.add_parser("code", help="print a one-time code that lets a LAN workstation join")
    pcode.add_argument("--ttl", type=float, default=10.0, help="minutes the code stays valid")
    pjoin = pair.add_parser("join", help="join the clinic of the peer that showed the code")
    code_arguments(pjoin, "pairing code shown by 'careline pair code' on the other workstation")
    pjoin.add_argument("--peer", metavar="HOST:PORT", help="the peer (default: found over mDNS)")


def run(ctx: Context) -> int:
    """pair code | pair join."""
    if ctx.args.pair_command == "code":
        return _code(ctx)
    return _join(ctx)


def _code(ctx: Context) -> int:
    from core.sync.lan import identity as lan_id

    args, records = ctx.args, ctx.open_records()
    lan_id.ensure_identity(records.db, records.actor)
    code = lan_id.new_pair_code(records.db, records.actor, args.ttl)
    ctx.emit(
        {"code": code, "ttl_minutes": args.ttl},
        f"Pairing code (valid {args.ttl:g} minutes, once): {code}\n"
        "Keep 'careline serve' running here while the other workstation joins.",
    )
    return EXIT_OK


def peer_address(address: str) -> str:
    """``--peer HOST:PORT``, checked (a bad one is bad usage)."""
    from core.sync.lan.pairing import PairingError, split_address

    try:
        split_address(address)
    except PairingError as exc:
        raise CliError(f"--peer: {exc}", EXIT_USAGE) from None
    return address


def _join(ctx: Context) -> int:
    from core.sync.lan import discovery

    args = ctx.args
    if args.peer:
        peer = peer_address(args.peer)
    else:
        seen = discovery.browse(2.0)
        if not seen:
            raise CliError("no LAN peer found over mDNS; give --peer HOST:PORT")
        peer = f"{seen[0].host}:{seen[0].port}"
    result = join(ctx, "pair_code", peer=peer)
    doc = {
        "device_id": result.device_id,
        "records": result.records,
        "recovery_key": result.recovery_key,
    }
    ctx.emit(
        doc,
        f"Paired as device {result.device_id}; {result.records} records received."
        + recovery_text(result),
    )
    return EXIT_OK


GROUP = CommandGroup("pair", "pair LAN workstations", arguments, run)
