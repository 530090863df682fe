"""How a visit reads on screen: the timeline's entries, the notes' one-line summaries,
and the visit view's document (what was done in the visit), with local times and staff
names."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import Any

from core.records import vitals
from core.records.clinic import ClinicRecords
from core.records.notes import Note
from core.records.visits import Visit, VisitContents, Visits


def visit_title(visit: Visit) -> str:
    """``2026-12-04 09:30 · Open`` over ``Cough``: one entry of the timeline."""
    when = visit.started_at.replace("T", " ")
    return f"{when} · {visit.status.capitalize()}\n{visit.reason or 'No reason recorded'}"


def local_time(stamp: str | None) -> str:
    """A UTC time core stamped (signed, closed, added) as this computer's local time, to
    the minute; a time without a zone (a visit's start, typed local) as it is."""
    if not stamp:
        return ""
    try:
        parsed = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone()
    return parsed.strftime("%Y-%m-%d %H:%M")


_SOAP_HEADINGS = {"subjective:", "objective:", "assessment:", "plan:"}


def note_summary(note: Note, names: dict[str, str] | None = None) -> str:
    """``Signed 2026-12-04 10:02 by mgarcia · Dry cough…``: a note in the visit's list,
    named by its first line of content (not a SOAP heading)."""
    lines = (line.strip() for line in note.body.splitlines())
    first = next((x for x in lines if x and x.lower() not in _SOAP_HEADINGS), "")
    author = (names or {}).get(note.author, note.author)
    if note.signed_at:
        state = f"Signed {local_time(note.signed_at)} by {author}"
    else:
        state = f"Draft by {author}"
    extra = f" · {len(note.addenda)} addend{'um' if len(note.addenda) == 1 else 'a'}"
    return f"{state}{extra if note.addenda else ''} · {first[:70]}"


def staff_names(records: ClinicRecords, contents: VisitContents) -> dict[str, str]:
    """Full names of the clinician and the notes' authors, by user name (on the worker); a
    user name with no account or no full name stands for itself."""
    people = {contents.visit.clinician or "", contents.visit.closed_by or ""}
    people |= {n.author for n in contents.notes}
    people |= {a.recorded_by for n in contents.notes for a in n.addenda}
    names = {}
    for name in people - {""}:
        user = records.user(name)
        names[name] = (user.full_name if user else "") or name
    return names


def contents_html(contents: VisitContents, names: dict[str, str] | None = None) -> str:
    """What was done in a visit, as the visit view shows it (``names``: full names by user
    name)."""
    e = html.escape
    v = contents.visit
    known = names or {}

    def who(user: str | None) -> str:
        return e(known.get(user or "", user or ""))

    parts = [f"<h3>Visit {e(v.started_at.replace('T', ' '))}</h3>"]
    closed = f"Closed {e(local_time(v.closed_at))} by {who(v.closed_by)}"
    parts.append(
        f"<p><b>Reason:</b> {e(v.reason or 'not recorded')}<br>"
        f"<b>Clinician:</b> {who(v.clinician) or 'not recorded'}<br>"
        f"<b>Status:</b> {'Open' if v.is_open else closed if v.closed_at else 'Closed'}"
        + (f"<br><b>From appointment:</b> {e(v.appointment_id)}" if v.appointment_id else "")
        + "</p>"
    )
    sections: tuple[tuple[str, tuple[dict[str, Any], ...], Callable[[dict[str, Any]], str]], ...]
    sections = (
        ("Vitals and observations", contents.observations, _observation),
        ("Problems", contents.problems, _problem),
        ("Medication changes", contents.medications, _medication),
    )
    for title, items, describe in sections:
        if items:
            parts.append(f"<h4>{title}</h4><ul>")
            parts += [f"<li>{e(describe(i))}</li>" for i in items]
            parts.append("</ul>")
    parts.append("<h4>Notes</h4>")
    if not contents.notes:
        parts.append("<p><i>No notes yet.</i></p>")
    for n in contents.notes:
        state = f"signed {e(local_time(n.signed_at))}" if n.signed_at else "draft"
        parts.append(f"<p><b>Note by {who(n.author)}</b> ({state})</p>")
        parts.append(f"<pre style='white-space: pre-wrap'>{e(n.body)}</pre>")
        for a in n.addenda:
            when = e(local_time(a.recorded_at))
            parts.append(
                f"<p><b>Addendum</b> {when} by {who(a.recorded_by)}</p>"
                f"<pre style='white-space: pre-wrap'>{e(a.body)}</pre>"
            )
    return "".join(parts)


def _observation(o: dict[str, Any]) -> str:
    """``Temperature: 100.4 °F``: named and shown as the person typed it, not by LOINC
    code and UCUM unit."""
    code = str(o["code"])
    known = vitals.BY_CODE.get(code)
    return f"{known.label if known else code}: {vitals.as_entered(code, o)}"


def _problem(p: dict[str, Any]) -> str:
    code = f"{p['code']} " if p.get("code") else ""
    return f"{code}{p.get('description', '')}"


def _medication(m: dict[str, Any]) -> str:
    rest = " ".join(str(m[k]) for k in ("dose", "route", "frequency") if m.get(k))
    return f"{m.get('name', '')} {rest}".rstrip()


def read_visit(records: ClinicRecords, visit_id: str) -> tuple[VisitContents, dict[str, str]]:
    """A visit's contents and the names of the staff in it (on the worker)."""
    contents = Visits(records).contents(visit_id)
    return contents, staff_names(records, contents)
