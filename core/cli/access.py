"""``careline access show|restrict|unrestrict|add|remove``: who may read a chart
(core/records/chart_access.py): its restricted flag and its care team."""

from __future__ import annotations

import argparse

from core.cli.context import EXIT_OK, Context
from core.cli.registry import CommandGroup, actions
from core.records import chart_access as ca


def arguments(parser: argparse.ArgumentParser) -> None:
    """The access actions."""
    access = actions(parser)
    access.add_parser(
        "show", help="whether the chart is restricted, and its care team"
    ).add_argument("patient_id", metavar="PATIENT")
    for name, what in (
        ("restrict", "only the care team (and break-glass) may read the chart's clinical data"),
        ("unrestrict", "every clinician and nurse may read the chart again"),
    ):
        access.add_parser(name, help=what).add_argument("patient_id", metavar="PATIENT")
    for name, what in (
        ("add", "put a staff member on the chart's care team"),
        ("remove", "take a staff member off the chart's care team"),
    ):
        sub = access.add_parser(name, help=what)
        sub.add_argument("patient_id", metavar="PATIENT")
        sub.add_argument("username", metavar="USER")


def describe(access: ca.ChartAccess) -> str:
    """The human text of ``access show`` (and of every change)."""
    p = access.patient
    state = (
        "RESTRICTED: only its care team (and break-glass)"
        if access.restricted
        else ("not restricted: every clinician and nurse")
    )
    lines = [f"Chart of {p.display_name} ({p.id}): {state} may read its clinical data."]
    if access.restricted_by:  # a merged chart: restricted by the charts it holds
        lines.append(
            "Restricted by the merged chart(s) "
            + ", ".join(access.restricted_by)
            + ": its care team is those on the care team of every one of them."
        )
    if access.care_team:
        lines.append("Care team:")
        for m in access.care_team:
            roles = "+".join(r.replace("_", " ") for r in m.roles) or "no such account"
            flag = "" if m.active else "  (DEACTIVATED)"
            lines.append(f"  {m.username:<16} {roles:<11} {m.full_name}{flag}")
    else:
        lines.append("Care team: nobody.")
    if not access.restricted and access.care_team:
        lines.append("(The care team matters once the chart is restricted.)")
    return "\n".join(lines)


def run(ctx: Context) -> int:
    """access ..."""
    args = ctx.args
    records = ctx.open_records()
    if args.action == "show":
        result = ca.chart_access(records, args.patient_id)
    elif args.action in ("restrict", "unrestrict"):
        result = ca.set_restricted(records, args.patient_id, args.action == "restrict")
    elif args.action == "add":
        result = ca.add_to_care_team(records, args.patient_id, args.username)
    else:
        result = ca.remove_from_care_team(records, args.patient_id, args.username)
    ctx.emit(result.to_dict(), describe(result))
    return EXIT_OK


GROUP = CommandGroup(
    "access", "who may read a chart: restricted charts, care teams", arguments, run
)
