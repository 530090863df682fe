"""``careline patient add|show|search|set|duplicates|merge|unmerge|not-duplicate``."""

from __future__ import annotations

import argparse
from typing import NoReturn

from core.cli.context import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records.allergy_status import AllergyState, allergy_state
from core.records.chart_access import is_restricted, merge_warning
from core.records.clinic import patient_value
from core.records.duplicates import DuplicatePatientError, describe
from core.records.edit_base import ChangedField, ChangedSinceOpened
from core.records.merges import Merges, describe_pair
from core.records.models import CLINICAL_HIDDEN, PATIENT_EDITABLE, Patient, PatientSummary
from core.records.spec import spoken_list
from core.records.types import PATIENT

# What "allergies:" says when none is listed: an answer, or nobody asked yet.
NO_ALLERGIES_SHOWN = {
    AllergyState.NONE_KNOWN: "no known allergies",
    AllergyState.NOT_RECORDED: "not recorded yet",
}


def arguments(parser: argparse.ArgumentParser) -> None:
    """The patient actions and their options."""
    patient = actions(parser)
    add = patient.add_parser("add", help="register a patient")
    add.add_argument("--family", required=True)
    add.add_argument("--given", required=True)
    add.add_argument("--birth-date", required=True, help="YYYY-MM-DD")
    add.add_argument("--mrn")
    add.add_argument("--sex", help=spoken_list(PATIENT.field_spec("sex").choices))
    add.add_argument("--phone")
    add.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="register even if a patient born the same day has the same or a similar name",
    )
    show = patient.add_parser("show", help="open a chart (audited)")
    show.add_argument("id")
    search = patient.add_parser("search", help="search by name prefix, MRN or birth date")
    search.add_argument("text")
    search.add_argument("--limit", type=int, default=20)
    setp = patient.add_parser("set", help="change one field")
    setp.add_argument("id")
    setp.add_argument("field", choices=PATIENT_EDITABLE)
    setp.add_argument("value", help='the new value ("" clears it)')
    setp.add_argument(
        "--expect",
        metavar="OLD",
        help='change it only if it still holds OLD ("" for empty): a script\'s guard '
        "against replacing what someone else saved since it read the chart",
    )
    patient.add_parser(
        "duplicates", help="pairs of charts that may be one person's (clinicians and admins)"
    )
    merge = patient.add_parser("merge", help="merge a duplicate chart into another (undoable)")
    merge.add_argument("duplicate", help="the chart that goes (its records move)")
    merge.add_argument("--into", required=True, metavar="SURVIVOR", help="the chart that stays")
    merge.add_argument("--reason", required=True, help="why they are one person")
    unmerge = patient.add_parser("unmerge", help="undo a merge: the duplicate's chart is back")
    unmerge.add_argument("id")
    dismiss = patient.add_parser(
        "not-duplicate", help="two people: take a pair off the duplicates list (everywhere)"
    )
    dismiss.add_argument("first")
    dismiss.add_argument("second")
    dismiss.add_argument("--undo", action="store_true", help="list the pair again")


def summary_line(p: PatientSummary | Patient) -> str:
    """One line naming a patient."""
    mrn = f"  MRN {p.mrn}" if p.mrn else ""
    return f"{p.id}  {p.family.upper()}, {p.given}  born {p.birth_date}{mrn}"


def run(ctx: Context) -> int:
    """patient add/show/search/set/duplicates/merge/unmerge/not-duplicate."""
    args, records = ctx.args, ctx.open_records()
    if args.action == "add":
        try:
            p = records.add_patient(
                args.family, args.given, args.birth_date, args.sex, args.mrn, args.phone,
                allow_duplicate=args.allow_duplicate,
            )  # fmt: skip
        except DuplicatePatientError as exc:
            refuse_duplicate(ctx, exc)
        ctx.emit(p.to_dict(records.may("view_clinical", p.id)), f"Added {summary_line(p)}")
    elif args.action == "show":
        chart = records.open_chart(args.id)
        p = chart.patient
        lines = [summary_line(p), f"  sex: {p.sex or '-'}   phone: {p.phone or '-'}"]
        if chart.clinical:
            state = allergy_state(p, chart.allergies)
            lines.append("  allergies: " + NO_ALLERGIES_SHOWN.get(state, ""))
        else:  # as the app's chart says it: no allergy line, whose answer would be a guess
            lines.append(f"  {CLINICAL_HIDDEN}")
        for a in chart.allergies:
            extra = ", ".join(x for x in (a.reaction, a.severity) if x)
            lines.append(f"    {a.substance}" + (f" ({extra})" if extra else ""))
        shown = chart.to_dict()
        # Restricted when it or any chart merged into it is (core/records/chart_access.py).
        shown["restricted"] = is_restricted(records.db, p.id)
        if shown["restricted"]:
            lines.insert(1, "  restricted chart: only its care team reads clinical records")
        merges = Merges(records).merged_from(p.id)
        if merges:  # the duplicates whose records this chart gathers, as they stand now
            shown["merged_from"] = [
                {**d.to_dict(chart.clinical), "merge": m.to_dict()} for d, m in merges
            ]
            lines.append("  merged from:")
            lines += [f"    {summary_line(d)}  ({m.by}, {m.at}: {m.reason})" for d, m in merges]
        ctx.emit(shown, "\n".join(lines))
    elif args.action == "search":
        if not 1 <= args.limit <= 1000:
            raise CliError("--limit must be between 1 and 1000", EXIT_USAGE)
        found = records.search_patients(args.text, limit=args.limit)
        ctx.emit(
            [s.to_dict() for s in found],
            "\n".join(summary_line(s) for s in found) or "No patients match.",
        )
    elif args.action == "set":
        value = args.value if args.value != "" else None
        based_on = None
        if args.expect is not None:
            based_on = {args.field: patient_value(args.field, args.expect or None)}
        try:
            p = records.update_patient(args.id, {args.field: value}, based_on=based_on)
        except ChangedSinceOpened as exc:
            raise CliError(f"not changed: {_held_instead(exc.fields[0])}", EXIT_ERROR) from None
        # The front desk changes demographics: the reply holds no clinical field.
        ctx.emit(p.to_dict(records.may("view_clinical", p.id)), f"Updated {summary_line(p)}")
    elif args.action == "duplicates":
        pairs = Merges(records).candidates()
        # Said of each pair: merging a restricted chart keeps the merged chart restricted.
        said = [(pair, merge_warning(records, pair.first.id, pair.second.id)) for pair in pairs]
        ctx.emit(
            {"pairs": [{**pair.to_dict(), **({"warning": w} if w else {})} for pair, w in said]},
            "\n".join(describe_pair(pair) + (f"\n  {w}" if w else "") for pair, w in said)
            or "No likely duplicates.",
        )
    elif args.action == "merge":
        # Said before the merge's state changes it: which chart was restricted.
        warning = merge_warning(records, args.duplicate, args.into)
        done = Merges(records).merge(args.duplicate, args.into, args.reason)
        shown = {**done.to_dict(), "restricted": is_restricted(records.db, done.survivor)}
        if warning:
            shown["warning"] = warning
        text = f"Merged {done.duplicate} into {done.survivor}"
        ctx.emit(shown, f"{text}\n{warning}" if warning else text)
    elif args.action == "unmerge":
        undone = Merges(records).unmerge(args.id)
        ctx.emit(
            {"unmerged": undone.duplicate, "was_into": undone.survivor},
            f"Unmerged {undone.duplicate} (was merged into {undone.survivor})",
        )
    elif args.action == "not-duplicate":
        reviewing = Merges(records)
        (reviewing.undismiss if args.undo else reviewing.dismiss)(args.first, args.second)
        ctx.emit(
            {"pair": [args.first, args.second], "dismissed": not args.undo},
            f"{'Listed again' if args.undo else 'Marked as two people'}: "
            f"{args.first} and {args.second}",
        )
    return EXIT_OK


def _held_instead(changed: ChangedField) -> str:
    """What a field holds instead of the value ``--expect`` named, and who saved it."""
    now = "nothing" if changed.current is None else repr(changed.current)
    expected = "empty" if changed.base is None else repr(changed.base)
    who = changed.author_name or changed.author or "someone"
    return (
        f"{changed.field} holds {now}, not {expected} as --expect said "
        f"(saved by {who} at {changed.time})"
    )


def refuse_duplicate(ctx: Context, exc: DuplicatePatientError) -> NoReturn:
    """Name the patients this registration may duplicate (nothing was added), and fail."""
    if ctx.args.json:
        ctx.emit({"added": None, "possible_duplicates": [m.to_dict() for m in exc.matches]}, "")
    lines = "\n".join(f"  {describe(m)}" for m in exc.matches)
    raise CliError(
        "not added: this patient may already be registered:\n"
        f"{lines}\nOpen the existing chart (careline patient show ID), or add "
        "--allow-duplicate if this is a different person",
        EXIT_ERROR,
    )


GROUP = CommandGroup("patient", "patients", arguments, run)
