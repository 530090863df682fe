"""``careline pair code|join|devices|revoke``: let a LAN workstation join, join through
one, and, on the clinic's LAN CA holder, list the workstations it certified and revoke
one (a lost or retired computer)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.joining import code_arguments, join, recovery_fields, recovery_text
from core.cli.registry import CommandGroup, actions

if TYPE_CHECKING:  # imported where used: the CLI starts quicker without it
    from core.sync.lan.identity import IssuedDevice


def arguments(parser: argparse.ArgumentParser) -> None:
    """pair code [--ttl MINUTES] | pair join (--code CODE | --code-stdin | --code-file FILE)
    [--peer HOST:PORT]."""
    pair = actions(parser, dest="pair_command")
    pcode = pair.add_parser("code", help="print a one-time code that lets a LAN workstation join")
    pcode.add_argument("--ttl", type=float, default=10.0, help="minutes the code stays valid")
    pjoin = pair.add_parser("join", help="join the clinic of the peer that showed the code")
    code_arguments(pjoin, "pairing code shown by 'careline pair code' on the other workstation")
    pjoin.add_argument("--peer", metavar="HOST:PORT", help="the peer (default: found over mDNS)")
    pair.add_parser(
        "devices", help="the workstations this one (the clinic's LAN CA holder) certified"
    )
    prevoke = pair.add_parser(
        "revoke", help="shut a lost or retired workstation out of the clinic's LAN sync"
    )
    prevoke.add_argument("device_id", help="as 'careline pair devices' lists it")


def run(ctx: Context) -> int:
    """pair code | pair join | pair devices | pair revoke."""
    command = ctx.args.pair_command
    if command == "code":
        return _code(ctx)
    if command == "devices":
        return _devices(ctx)
    if command == "revoke":
        return _revoke(ctx)
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


def _devices(ctx: Context) -> int:
    from core.sync.lan import identity as lan_id

    records = ctx.open_records()
    records.require("lan.devices.list", None)
    if not lan_id.has_ca_key(records.db):
        raise CliError(
            "this workstation does not hold the clinic's LAN CA, so it certified no "
            "workstations; run this on the workstation that created it"
        )
    devices = lan_id.issued_devices(records.db)
    lines = []
    for d in devices:
        state = "revoked" if d.revoked else "this workstation" if d.this_device else "active"
        bound = f"replica {d.replica}" if d.replica else "no replica named (0.1.0)"
        serials = ", ".join(str(s) for s in d.serials)
        lines.append(f"{d.device_id}  {state}  since {_utc(d.first_issued)}  {bound}  "
                     f"{_seen(d)}  certificate serials {serials}")  # fmt: skip
    ctx.emit(
        [
            {
                "device_id": d.device_id,
                "state": "revoked" if d.revoked else "active",
                "this_workstation": d.this_device,
                "first_issued": d.first_issued,
                "replica": d.replica,
                "serials": [str(s) for s in d.serials],
                "last_seen": d.last_seen.to_dict() if d.last_seen is not None else None,
            }
            for d in devices
        ],
        "\n".join(lines) or "No workstations certified yet.",
    )
    return EXIT_OK


def _utc(stamp: str) -> str:
    """An ISO time in UTC, to the minute."""
    return f"{stamp[:16].replace('T', ' ')} UTC"


def _seen(device: IssuedDevice) -> str:
    """``last seen ADDRESS at TIME`` (``paired from`` before any sync was seen)."""
    if device.this_device:
        return "this computer"
    seen = device.last_seen
    if seen is None:
        return "last seen: not recorded"
    what = "paired from" if seen.pairing else "last seen at"
    return f"{what} {seen.address} at {_utc(seen.at)}"


def _revoke(ctx: Context) -> int:
    from core.sync.lan import identity as lan_id

    records = ctx.open_records()
    serials = lan_id.revoke_device(records.db, ctx.args.device_id, records.actor)
    listed = ", ".join(str(s) for s in sorted(serials))
    ctx.emit(
        {"device_id": ctx.args.device_id, "revoked_serials": [str(s) for s in sorted(serials)]},
        f"Revoked workstation {ctx.args.device_id} (certificate serials {listed}). Workstations "
        "here refuse it now; the others at their next sync with this one or a workstation "
        "that synced since, and every workstation refuses its changes made from now on.",
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


def _note(text: str) -> None:
    """A line for the person on stderr (standard output holds the result)."""
    print(f"careline: {text}", file=sys.stderr)


def _join(ctx: Context) -> int:
    from core.sync.lan import discovery

    args = ctx.args
    if args.peer:
        result = join(ctx, "pair_code", peer=peer_address(args.peer))
    else:
        seen = discovery.browse(2.0)
        if not seen:
            raise CliError("no LAN peer found over mDNS; give --peer HOST:PORT")
        # Each is asked in turn (random order) until one proves it knows the code: only
        # the workstation holding the clinic's LAN CA listens for pairing.
        peers = tuple(dict.fromkeys(p.address for p in seen))
        result = join(ctx, "pair_code", peers_seen=peers, on_peer_skipped=_note)
    doc = {
        "device_id": result.device_id,
        "records": result.records,
        **recovery_fields(result),
    }
    ctx.emit(
        doc,
        f"Paired as device {result.device_id}; this computer now holds the clinic's "
        f"{result.records} records." + recovery_text(result),
    )
    return EXIT_OK


GROUP = CommandGroup("pair", "pair LAN workstations", arguments, run)
