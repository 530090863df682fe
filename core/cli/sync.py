"""``careline sync``: with the enrolled server or a LAN peer, once or until stopped."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.context import EXIT_CHECK_FAILED, EXIT_OK, CliError, Context
from core.cli.joining import rejoin_command
from core.cli.pair import peer_address
from core.cli.registry import CommandGroup
from core.errors import CarelineError, plain_words
from core.records import unknown
from core.records.clinic import ClinicRecords
from core.sync import clock
from core.sync.backoff import backoff
from core.sync.session import SyncReport, held_back_notice
from core.sync.trust_notice import quarantine_state, trust_notice

if TYPE_CHECKING:  # imported when --prefetch asks (the CLI starts quicker without it)
    from core.sync.prefetch import Prefetcher

RETRY_CAP_SECONDS = 600.0


def arguments(parser: argparse.ArgumentParser) -> None:
    """sync [--server URL | --peer HOST:PORT] [--once] [--progress] [--prefetch]."""
    parser.add_argument("--server", help="server URL (default: the one enrolled with)")
    parser.add_argument("--peer", metavar="HOST:PORT", help="a LAN peer instead of the server")
    parser.add_argument(
        "--once",
        action="store_true",
        help="one session, then exit (without it: a session every 30 s until stopped)",
    )
    parser.add_argument(
        "--progress", action="store_true", help="report each applied batch on stderr"
    )
    parser.add_argument(
        "--prefetch",
        action="store_true",
        help="after each session, also fetch chart attachments not cached here (booked and "
        "in-visit patients' first), within attachment_prefetch_percent of the cache",
    )
    parser.add_argument("--interval", type=float, default=30.0, help=argparse.SUPPRESS)


def run(ctx: Context) -> int:
    """Sync once, or every ``--interval`` seconds until stopped; failures are retried with
    the same backoff as the desktop app (:func:`core.sync.backoff.backoff`)."""
    from core.sync.lan.identity import merge_revoked
    from core.sync.session import SyncError, sync
    from core.sync.transport import TransportError

    args = ctx.args
    records = ctx.open_records()
    transport = _transport(records, args.server, args.peer, ctx.data_dir)
    rng = random.Random()  # noqa: S311 (retry jitter, not a secret)
    failures = 0
    prefetcher = _prefetcher(ctx) if args.prefetch else None
    try:
        while True:
            try:
                report = sync(
                    records.db,
                    transport,
                    records.actor,
                    # Devices the server revoked are refused on the LAN too.
                    on_revoked=lambda serials: merge_revoked(records.db, serials, records.actor),
                    on_progress=_progress_printer() if args.progress else None,
                    # The server's clock is the clinic's; a LAN peer's is only compared with.
                    clock_reference=not args.peer,
                )
                uploaded = _push_attachments(ctx, records) if not args.peer else 0
                prefetched = (
                    _prefetch(ctx, records, prefetcher, transport if args.peer else None)
                    if prefetcher is not None
                    else None
                )
                newer = unknown.count(records.db)
                reason = quarantine_state(records.db)[1] if report.quarantined else None
                notice = clock.clock_notice(
                    report.clock_offset_ms, clock.PEER if args.peer else clock.SERVER
                )
                extra = {} if prefetched is None else {"attachments_prefetched": prefetched}
                ctx.emit(
                    {
                        **report.to_dict(),
                        "newer_records": newer,
                        "clock_notice": notice,
                        "attachments_uploaded": uploaded,
                        **extra,
                    },
                    _summary(report, newer, reason, notice)
                    + (f" {uploaded} attachment(s) uploaded." if uploaded else "")
                    + (f" {prefetched} attachment(s) fetched ahead." if prefetched else ""),
                )
                if report.audit_problem is not None:
                    # A security finding, not a sync failure: the records did sync.
                    sys.stderr.write(f"careline: warning: {report.audit_problem}\n")
                failures = 0
                if args.once:
                    return EXIT_OK if report.audit_problem is None else EXIT_CHECK_FAILED
                delay = args.interval
            except (SyncError, TransportError) as exc:
                if args.once:
                    raise CliError(f"sync failed: {plain_words(exc)}") from None
                failures += 1
                # Up to one interval at first, doubling up to the cap, with jitter.
                delay = backoff(failures, args.interval, RETRY_CAP_SECONDS, rng)
                sys.stderr.write(
                    f"careline: sync failed, retrying in {delay:.0f} s: {plain_words(exc)}\n"
                )
            time.sleep(delay)
    finally:
        transport.close()


def _summary(
    report: SyncReport,
    newer: int,
    quarantine_reason: str | None = None,
    clock_text: str | None = None,
) -> str:
    """The human line: what went each way, what waits for an update on either side, what
    signature checks refused this session (here, or ours on the other side), and how far
    this computer's clock is off when that is worth saying."""
    text = f"Synced: {report.pulled} received, {report.pushed} sent."
    waiting = held_back_notice(report.held_back)
    if waiting:
        text += f" {waiting} (it speaks sync protocol {report.protocol})."
    notice = unknown.notice(newer)
    if notice:
        text += f" {notice}."
    if clock_text:
        text += f" {clock_text}."
    refused = trust_notice(report.quarantined, quarantine_reason, report.refused)
    return f"{text} {refused}" if refused else text


def _push_attachments(ctx: Context, records: ClinicRecords) -> int:
    """Upload the files added here since the last sync (each resumes where it stopped)."""
    from core.sync.attachments import Attachments
    from core.sync.enroll import load_credential

    cache_mb = int(ctx.settings["attachment_cache_mb"])
    credential = load_credential(records.db)
    try:
        return Attachments(
            records, ctx.data_dir, cache_mb=cache_mb, credential=credential
        ).push_pending()
    except CarelineError as exc:
        # The records did sync; files go up at the next sync, from where they stopped.
        sys.stderr.write(f"careline: warning: {plain_words(exc)}\n")
        return 0


def _prefetcher(ctx: Context) -> Prefetcher:
    """The prefetch of ``--prefetch``, with this workstation's share setting."""
    from core.sync.prefetch import Prefetcher

    percent = int(ctx.settings["attachment_prefetch_percent"])
    if percent == 0:
        sys.stderr.write(
            "careline: warning: --prefetch does nothing: attachment_prefetch_percent is 0\n"
        )
    return Prefetcher(percent)


def _prefetch(ctx: Context, records: ClinicRecords, prefetcher: Prefetcher, peer: Any) -> int:
    """Fetch attachments ahead of need from the server (or the ``--peer``); returns how
    many arrived. Failures are warnings: the records did sync."""
    import datetime as dt

    from core.sync.attachments import Attachments
    from core.sync.enroll import load_credential

    attachments = Attachments(
        records, ctx.data_dir, cache_mb=int(ctx.settings["attachment_cache_mb"]),
        credential=None if peer is not None else load_credential(records.db),
        peers=() if peer is None else (peer,),
    )  # fmt: skip
    # The clinic's local date, as the schedule's (core.records.schedule.now_local).
    try:
        found = prefetcher.run(attachments, dt.datetime.now().date())
    except Exception as exc:  # promised: a prefetch failure is a warning
        sys.stderr.write(f"careline: warning: prefetch stopped: {plain_words(exc)}\n")
        return 0
    if found.error is not None:
        sys.stderr.write(f"careline: warning: prefetch stopped: {found.error}\n")
    for blob_id in found.refused:
        sys.stderr.write(f"careline: warning: attachment {blob_id} arrived damaged: dropped\n")
    for blob_id in found.skipped:
        sys.stderr.write(
            f"careline: warning: attachment {blob_id} was not fetched ahead (see the log); "
            "it is tried again later\n"
        )
    return len(found.fetched)


def _transport(records: ClinicRecords, server: str | None, peer: str | None, data_dir: Path) -> Any:
    """The enrolled server's transport, or a LAN peer's (``data_dir``: the data folder,
    named in the command that joins a restored workstation again)."""
    if peer:
        return _peer_transport(records, peer)
    from core.sync.certify import ensure_bound
    from core.sync.enroll import load_credential

    credential = load_credential(records.db)
    if credential is None:
        from core.sync.backup import restored_identity

        if (restored := restored_identity(records.db)) is not None:
            command = rejoin_command(data_dir, records.actor, restored.get("server_url"))
            raise CliError(
                "this workstation was restored from a backup and took a new identity: join "
                f"the clinic again with a new code: {command} (your password, then the code, "
                "on standard input)"
            )
        raise CliError("this workstation is not enrolled: run 'careline enroll' first")
    if server and server.rstrip("/") != credential.server_url:
        raise CliError(f"this workstation is enrolled with {credential.server_url}, not {server}")
    # Enrolled before ops were signed: a certificate bound to this replica first.
    return ensure_bound(records.db, credential, records.actor).transport()


def _peer_transport(records: ClinicRecords, address: str) -> Any:
    from core.sync.lan import identity as lan_id
    from core.sync.lan.transport import LanTransport

    peer_address(address)
    from core.sync.lan.certify import certify_if_unbound

    # The CA holder's certificate from before op signing is bound here; a paired
    # workstation's is bound by the CA holder, asked over this connection.
    identity = lan_id.ready_identity(records.db, records.actor)
    if identity is None:
        raise CliError("this workstation has no LAN identity: run 'careline pair join' first")
    transport = LanTransport(address, identity, lan_id.revoked_serials(records.db))
    certify_if_unbound(records.db, transport, records.actor)
    return transport


def _progress_printer() -> Callable[[SyncReport], None]:
    """Print one line per applied batch, flushed so a log shows how far a long pull got."""

    def show(report: SyncReport) -> None:
        received = report.pulled + report.snapshot_records
        sys.stderr.write(f"careline: sync: {received} received, {report.pushed} sent\n")
        sys.stderr.flush()

    return show


GROUP = CommandGroup(
    "sync", "sync with the clinic server or a LAN peer (every 30 s, or --once)", arguments, run
)
