"""``careline peers``: LAN peers seen over mDNS, and which of them are trusted."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup


def arguments(parser: argparse.ArgumentParser) -> None:
    """peers [--seconds S] [--interface ADDRESS]."""
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to listen")
    parser.add_argument("--interface", default=None, help="browse on this address")


def run(ctx: Context) -> int:
    """List peers announced over mDNS, and whether each passes a mutual-TLS hello."""
    from core.sync.lan import discovery
    from core.sync.lan import identity as lan_id
    from core.sync.lan.transport import LanTransport
    from core.sync.transport import TransportError

    args = ctx.args
    records = ctx.open_records()
    identity = lan_id.load_identity(records.db)
    seen = discovery.browse(args.seconds, [args.interface] if args.interface else None)
    rows = []
    for peer in seen:
        trusted = False
        if identity is not None:
            try:
                with LanTransport(
                    peer.address, identity, lan_id.revoked_serials(records.db), timeout=5
                ) as transport:
                    transport.hello()
                trusted = True
            except TransportError:
                trusted = False
        rows.append({"instance": peer.instance, "address": peer.address, "trusted": trusted})
    lines = [
        f"{r['address']}  {r['instance']}  {'trusted' if r['trusted'] else 'NOT trusted'}"
        for r in rows
    ]
    ctx.emit(rows, "\n".join(lines) or "No LAN peers seen.")
    return EXIT_OK


GROUP = CommandGroup("peers", "LAN peers seen over mDNS, and which are trusted", arguments, run)
