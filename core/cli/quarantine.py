"""``careline quarantine list``: ops refused by verification, here and elsewhere.

Two kinds: ops another replica sent that failed verification here (kept aside, never
applied: core.records.op_trust), and this workstation's own ops another replica refused
(it said why at a sync).
"""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records import op_trust


def arguments(parser: argparse.ArgumentParser) -> None:
    """quarantine list."""
    sub = actions(parser)
    sub.add_parser("list", help="ops refused here, and this workstation's ops refused elsewhere")


def run(ctx: Context) -> int:
    """quarantine list (human text or ``--json``)."""
    records = ctx.open_records()
    held = op_trust.quarantined(records.db)
    refused = op_trust.refused_elsewhere(records.db)
    document = {
        "quarantined": [q.to_dict() for q in held],
        "refused_elsewhere": [
            {"origin": o, "seq": s, "refused_by": by, "reason": why, "seen_at": when}
            for o, s, by, why, when in refused
        ],
    }
    ctx.emit(document, "\n".join(_lines(held, refused)))
    return EXIT_OK


def _lines(
    held: list[op_trust.Quarantined], refused: list[tuple[str, int, str, str, str]]
) -> list[str]:
    lines: list[str] = []
    if held:
        lines.append(
            f"Refused here ({len(held)}): changes other workstations sent that failed "
            "verification. They are kept aside and were NOT applied to any record."
        )
        for q in held:
            lines += [
                f"  {q.origin}:{q.seq}  {q.record_type} {q.record_id}  by {q.author}",
                f"      why: {q.reason}",
                f"      received from {q.received_from}; first seen {q.first_seen}, "
                f"last seen {q.last_seen}",
            ]
    else:
        lines.append("Refused here: none (every change received passed verification).")
    if refused:
        lines.append(
            f"Refused elsewhere ({len(refused)}): changes made on this computer that another "
            "replica would not accept; they were not applied there. Tell your administrator."
        )
        for origin, seq, by, why, when in refused:
            lines += [f"  {origin}:{seq}  refused by {by} (told {when})", f"      why: {why}"]
    else:
        lines.append("Refused elsewhere: none.")
    return lines


GROUP = CommandGroup("quarantine", "changes refused by signature checks", arguments, run)
