"""``careline serve``: run headless as a LAN peer (mutual TLS + mDNS) until stopped."""

from __future__ import annotations

import argparse
import logging
import sys

from core.cli.context import EXIT_OK, CliError, Context
from core.cli.registry import CommandGroup

IDENTITY_CHECK_TICKS = 10  # of half a second: look for a replaced certificate every 5 s


def arguments(parser: argparse.ArgumentParser) -> None:
    """serve [--port P] [--host H] [--mdns-interface ADDRESS]."""
    parser.add_argument("--port", type=int, default=47390, help="sync port (pairing: PORT+1)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
    parser.add_argument(
        "--mdns-interface", default=None, help="announce on this address (default: --host)"
    )


def run(ctx: Context) -> int:
    """Serve LAN peers (mutual TLS + mDNS) until interrupted."""
    import signal
    import threading

    from core.config.logs import configure_logging, log_settings
    from core.config.settings import load_settings
    from core.sync.lan import discovery
    from core.sync.lan import identity as lan_id
    from core.sync.lan.server import PeerServer

    # A long-running service: its log (refused peers, pairings) goes to stderr, as JSON
    # lines unless CARELINE_LOG_FORMAT=text; CARELINE_LOG_LEVEL sets the level.
    logs = load_settings(log_settings("CARELINE_"))
    configure_logging(logs["LOG_FORMAT"], logs["LOG_LEVEL"])
    args = ctx.args
    records = ctx.open_records()
    identity = lan_id.ensure_identity(records.db, records.actor)
    server = PeerServer(records.db, identity, args.host, args.port)
    try:
        server.start()
    except OSError as exc:
        raise CliError(f"--port {args.port}: cannot listen: {exc.strerror}") from None
    announce = args.mdns_interface or (args.host if args.host != "0.0.0.0" else None)  # noqa: S104
    advertiser = None
    try:
        advertiser = discovery.Advertiser(server.port, announce, [announce] if announce else None)
    except OSError as exc:
        logging.getLogger(__name__).warning("mDNS announcement unavailable: %s", exc)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ctx.emit(
        {"port": server.port, "pairing_port": server.pairing_port, "device_id": identity.device_id},
        f"Serving LAN peers on {args.host}:{server.port}"
        + (f" (pairing on {server.pairing_port})" if server.pairing_port else ""),
    )
    sys.stdout.flush()
    try:
        # Wake up now and then: a signal the kernel hands to another thread (the listener
        # has one per connection) only runs its Python handler once the main thread runs
        # bytecode, and an untimed wait never returns to do so.
        ticks = 0
        while not stop.wait(0.5):
            ticks += 1
            if ticks % IDENTITY_CHECK_TICKS == 0:
                # `careline sync` may have re-certified this device meanwhile (the old
                # certificate is then revoked): serve with the new one; and refuse in the
                # handshake what a newer revocation list names (`pair revoke`, a sync).
                try:
                    server.refresh_identity()
                except Exception as exc:  # keep serving with the certificate it has
                    logging.getLogger(__name__).warning("cannot take up a new certificate: %s",
                                                        exc)  # fmt: skip
    finally:
        if advertiser is not None:
            advertiser.close()
        server.stop()
    return EXIT_OK


GROUP = CommandGroup("serve", "run headless as a LAN peer until stopped", arguments, run)
