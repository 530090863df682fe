"""``careline attachment add|list|get|edit|remove|key``: files in a chart, encrypted on this
workstation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.context import EXIT_OK, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records.removed_attachments import WRONG_CHART
from core.sync.attachments import Attachment, Attachments, export_key, import_key, where_shown


def arguments(parser: argparse.ArgumentParser) -> None:
    """The attachment actions and their options."""
    attachment = actions(parser)
    add = attachment.add_parser(
        "add", help="add a file to a chart (encrypted here, uploaded at the next sync)"
    )
    add.add_argument("patient_id")
    add.add_argument("file", type=Path)
    add.add_argument("--title", required=True)
    add.add_argument("--date", help="the document's date, YYYY-MM-DD")
    add.add_argument("--category", help="e.g. letter, lab, imaging, photo")
    listing = attachment.add_parser(
        "list", help="a chart's files and where they are (--removed: those taken off too)"
    )
    listing.add_argument("patient_id")
    listing.add_argument("--removed", action="store_true",
                         help="also list the files taken off the chart, and why")  # fmt: skip
    edit = attachment.add_parser("edit", help="correct a file's title, date or category")
    edit.add_argument("attachment_id")
    edit.add_argument("--title")
    edit.add_argument("--date", help="the document's date, YYYY-MM-DD ('' clears it)")
    edit.add_argument("--category", help="e.g. letter, lab ('' clears it)")
    remove = attachment.add_parser(
        "remove",
        help="take a file off its chart (kept, and listed with 'list --removed')",
    )
    remove.add_argument("attachment_id")
    remove.add_argument("--reason", required=True,
                        help=f"why, e.g. '{WRONG_CHART}'")  # fmt: skip
    get = attachment.add_parser("get", help="save a copy of a file (fetched if needed)")
    get.add_argument("attachment_id")
    get.add_argument("-o", "--output", type=Path, required=True)
    get.add_argument("--peer", metavar="HOST:PORT",
                     help="also ask this LAN workstation (mutual TLS) for the file")  # fmt: skip
    key = attachment.add_parser("key", help="the clinic attachment key between workstations")
    key.add_argument("key_action", choices=("export", "import"),
                     help="export: print it; import: read it from standard input")  # fmt: skip
    key.add_argument(
        "--older-key",
        action="store_true",
        help="import: the key predates checked key ids and its id passes the check by chance "
        "(the import says when this is needed)",
    )


def line(a: Attachment, has_server: bool) -> str:
    """One line naming an attachment and where it is."""
    when = a.date or a.created_at[:10]
    kind = f" [{a.category}]" if a.category else ""
    where = where_shown(a.availability, has_server)
    text = f"{a.id}  {when}  {a.title}{kind}  {a.filename} ({a.size} bytes, {where})"
    if a.removed_at is not None:
        at = a.removed_at[:16].replace("T", " ")
        text += f"  REMOVED by {a.removed_by} at {at} UTC: {a.removed_reason}"
    return text


def run(ctx: Context) -> int:
    """attachment add/list/get/key."""
    from core.sync.enroll import load_credential

    args = ctx.args
    records = ctx.open_records()
    if args.action == "key":
        if args.key_action == "export":
            text = export_key(records)
            ctx.emit({"key": text}, text)
        else:
            from core.cli.passwords import read_stdin_line

            key_id = import_key(
                records,
                read_stdin_line("key import", "attachment key"),
                older_key=args.older_key,
            )
            ctx.emit({"key_id": key_id}, f"Kept clinic attachment key {key_id}.")
        return EXIT_OK
    peers = []
    if getattr(args, "peer", None):
        from core.cli.pair import peer_address
        from core.sync.lan import identity as lan_id
        from core.sync.lan.transport import LanTransport

        peer_address(args.peer)
        identity = lan_id.ready_identity(records.db, records.actor)
        if identity is None:
            raise CliError("this workstation has no LAN identity: run 'careline pair join' first")
        peers.append(LanTransport(args.peer, identity, lan_id.revoked_serials(records.db)))
    attachments = Attachments(
        records,
        ctx.data_dir,
        cache_mb=int(ctx.settings["attachment_cache_mb"]),
        credential=load_credential(records.db),
        peers=peers,
    )
    server = attachments.credential is not None
    if args.action == "add":
        if not args.file.is_file():
            raise CliError(f"no file {args.file}")
        a = attachments.add(
            args.patient_id, args.file, title=args.title, date=args.date, category=args.category
        )
        ctx.emit(a.to_dict(), f"Added {line(a, server)}")
    elif args.action == "list":
        found = attachments.for_patient(args.patient_id, include_removed=args.removed)
        ctx.emit([a.to_dict() for a in found],
                 "\n".join(line(a, server) for a in found) or "No attachments.")  # fmt: skip
    elif args.action == "edit":
        a = attachments.edit(
            args.attachment_id, title=args.title, date=args.date, category=args.category
        )
        ctx.emit(a.to_dict(), f"Changed {line(a, server)}")
    elif args.action == "remove":
        attachments.remove(args.attachment_id, args.reason)
        ctx.emit(
            {"id": args.attachment_id, "removed": True, "reason": args.reason},
            f"Removed attachment {args.attachment_id} from its chart ({args.reason}); it is "
            "kept, and listed by 'careline attachment list --removed'.",
        )
    else:

        def show(done: int, total: int) -> None:
            if not ctx.args.json:
                sys.stderr.write(f"\rcareline: {done} of {total} bytes")

        path = attachments.open_to(args.attachment_id, args.output, show)
        a = attachments.get(args.attachment_id)
        ctx.emit({**a.to_dict(), "output": str(path)}, f"Saved {a.title} to {path}")
    return EXIT_OK


GROUP = CommandGroup("attachment", "files in a chart (letters, lab PDFs, photos)", arguments, run)
