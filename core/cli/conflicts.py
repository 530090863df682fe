"""``careline conflicts list|resolve``: concurrent edits waiting for a person's decision."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records.models import Conflict, withheld_text
from core.records.signed_notes import DISCARD_CHOICES, DISCARDED
from core.records.workstation_names import workstation_names


def arguments(parser: argparse.ArgumentParser) -> None:
    """conflicts list | conflicts resolve CONFLICT_ID (--choose | --value | --keep)."""
    csub = actions(parser)
    csub.add_parser("list", help="open conflicts with every competing value")
    resolve = csub.add_parser("resolve", help="settle a conflict (one audited change)")
    resolve.add_argument("conflict_id")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--choose",
        metavar="VALUE_ID",
        help="keep one of the listed values (a list conflict: 'merged' or a side's id)",
    )
    how.add_argument("--value", metavar="V", help="enter a new value instead")
    how.add_argument(
        "--keep",
        metavar="ITEM_ID[,ITEM_ID...]",
        help="a list conflict: the listed items to keep on the list ('' keeps none of them)",
    )


def run(ctx: Context) -> int:
    """conflicts list / resolve."""
    args, records = ctx.args, ctx.open_records()
    if args.action == "resolve":
        keep = None
        if args.keep is not None:
            keep = [item.strip() for item in args.keep.split(",") if item.strip()]
        records.resolve_conflict(args.conflict_id, choose=args.choose, value=args.value, keep=keep)
        ctx.emit({"resolved": args.conflict_id}, f"Resolved conflict {args.conflict_id}.")
        return EXIT_OK
    found = records.review_conflicts()
    desks = workstation_names(records.db)
    lines = []
    for c in found:
        if c.kind == "set":
            lines += _list_conflict_lines(c, desks)
            continue
        lines.append(f"{c.id}  {c.record_type} {c.record_id}  field {c.field}:")
        for v in c.candidates:
            shown = "(deleted)" if v.field == "deleted" else f"{v.field} = {v.value!r}"
            if v.field == DISCARDED:  # a draft discarded while edited elsewhere
                shown = DISCARD_CHOICES.get(v.id, shown)
            where = _named(v.replica, desks)
            lines.append(f"    {v.id}  {shown}  by {v.author} on {where} at {v.time}")
    withheld = records.withheld_conflicts()
    if withheld:
        lines.append(withheld_text(withheld))
        if ctx.args.json:
            # The JSON document stays the list scripts parse (the CLI contract); the
            # count goes where a person running the script still sees it.
            sys.stderr.write(f"careline: {withheld_text(withheld)}\n")
    ctx.emit([c.to_dict() for c in found], "\n".join(lines) or "No open conflicts.")
    return EXIT_OK


def _named(replica: str, desks: Mapping[str, str]) -> str:
    """A replica id, with its workstation's enrolled name and device id when known."""
    name = desks.get(replica)
    return f"{replica} [{name}]" if name else replica


def _list_conflict_lines(c: Conflict, desks: Mapping[str, str]) -> list[str]:
    """A list conflict as text: each side's additions and removals, then the choices."""
    labels = {i.id: i.label for i in c.items}
    lines = [f"{c.id}  {c.record_type} {c.record_id}  list {c.field} (same item changed twice):"]
    for side in c.sides:
        lines.append(f"    side {side.id}  (workstation {_named(side.id, desks)}):")
        for e in side.edits:
            lines.append(f"        {e.action:<7}  {e.item}  {e.label}  by {e.author} at {e.time}")
        if not side.edits:
            lines.append("        (no net change)")
        kept = ", ".join(labels[i] for i in side.keep) or "none of them"
        lines.append(f"        applying this side keeps: {kept}")
    merged = ", ".join(labels[i] for i in c.merged) or "none of them"
    lines.append(f"    merged (shown now) keeps: {merged}")
    lines.append("    resolve with --choose merged, --choose SIDE_ID or --keep ITEM_ID,...")
    return lines


GROUP = CommandGroup("conflicts", "concurrent edits waiting for a decision", arguments, run)
