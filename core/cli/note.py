"""``careline note add|edit|sign|discard|addendum|list``: note text comes from ``--text`` or, for
long text, from standard input (after the password line when ``--password-stdin``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from core.cli.context import EXIT_OK, EXIT_USAGE, CliError, Context
from core.cli.registry import CommandGroup, actions
from core.records.notes import Note, Notes
from core.records.visits import SOAP_TEMPLATE, Visits


def arguments(parser: argparse.ArgumentParser) -> None:
    """The note actions and their options."""
    note = actions(parser)
    add = note.add_parser("add", help="write a note in a visit (text: --text or stdin)")
    add.add_argument("patient_id")
    add.add_argument("--visit", required=True, help="the visit the note belongs to")
    add.add_argument("--text", help="the note's text (else read from standard input)")
    add.add_argument("--soap", action="store_true", help="start from the SOAP headings")
    edit = note.add_parser("edit", help="replace an unsigned note's text (from stdin)")
    edit.add_argument("id")
    sign = note.add_parser("sign", help="sign a note: its text is frozen")
    sign.add_argument("id")
    discard = note.add_parser(
        "discard", help="take an unsigned note off the chart (started on the wrong one)"
    )
    discard.add_argument("id")
    addendum = note.add_parser("addendum", help="add to a signed note (text from stdin)")
    addendum.add_argument("id")
    listing = note.add_parser("list", help="notes of a patient or a visit")
    listing.add_argument("--patient")
    listing.add_argument("--visit")


def stdin_text(what: str) -> str:
    """The rest of standard input: the text of a note or an addendum."""
    if sys.stdin is None or sys.stdin.isatty():
        raise CliError(f"give the {what} on standard input", EXIT_USAGE)
    return sys.stdin.read()


def note_text(n: Note) -> str:
    """A note as the terminal shows it: a heading line, the text, its addenda."""
    state = f"signed {n.signed_at} by {n.signed_by or n.author}" if n.signed_at else "unsigned"
    who = f"{n.author}, edited by {', '.join(n.editors)}" if n.editors else n.author
    lines = [f"{n.id}  patient {n.patient_id}  visit {n.encounter_id or '-'}  {who}  {state}"]
    lines += [f"  {line}" for line in n.body.splitlines()]
    for a in n.addenda:
        lines.append(f"  Addendum {a.recorded_at} by {a.recorded_by}:")
        lines += [f"    {line}" for line in a.body.splitlines()]
    return "\n".join(lines)


def run(ctx: Context) -> int:
    """note add/edit/sign/discard/addendum/list."""
    args = ctx.args
    records = ctx.open_records()  # reads the password line first, then the text follows
    notes, visits = Notes(records), Visits(records)
    if args.action == "add":
        text = args.text
        if text is None:
            text = SOAP_TEMPLATE if args.soap else stdin_text("note's text")
        visit = visits.get(args.visit)
        if visit.patient_id != args.patient_id:
            raise CliError(f"visit {visit.id} is not patient {args.patient_id}'s")
        n = visits.add_note(visit.id, text)
        ctx.emit(asdict(n), f"Added note {n.id}")
    elif args.action == "edit":
        n = notes.edit(args.id, stdin_text("note's new text"))
        ctx.emit(asdict(n), f"Saved note {n.id}")
    elif args.action == "sign":
        n = notes.sign(args.id)
        ctx.emit(asdict(n), f"Signed note {n.id} at {n.signed_at} as {n.signed_by}")
    elif args.action == "discard":
        n = notes.discard(args.id)
        ctx.emit(asdict(n), f"Discarded note {n.id} at {n.discarded_at}: it is off the chart")
    elif args.action == "addendum":
        n = notes.add_addendum(args.id, stdin_text("addendum"))
        ctx.emit(asdict(n), f"Added an addendum to note {n.id}")
    elif args.action == "list":
        if args.visit:
            found = visits.visit_notes(args.visit)
            if args.patient:
                found = [n for n in found if n.patient_id == args.patient]
        elif args.patient:
            found = notes.for_patient(args.patient)
        else:
            raise CliError("note list needs --patient or --visit", EXIT_USAGE)
        ctx.emit([asdict(n) for n in found], "\n\n".join(map(note_text, found)) or "No notes.")
    return EXIT_OK


GROUP = CommandGroup("note", "clinical notes", arguments, run)
