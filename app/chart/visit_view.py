"""How a visit reads on screen: the timeline's entries, the notes' one-line summaries,
and the visit view's document (what was done in the visit), with local times and staff
names."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import QLabel

from app.operations import Operations
from core.records.clinic import ClinicRecords
from core.records.errors import NotFoundError
from core.records.notes import Note
from core.records.schedule import Schedule
from core.records.visits import Visit, VisitContents, Visits
from core.records.vital_signs import Reading, VitalSigns, recordings
from core.reports.vital_text import VitalGroup, set_texts, visit_groups


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


def authorship(note: Note, names: dict[str, str] | None = None) -> str:
    """``Dr. Amara Okafor, edited by Nina Rossi, Dr. M Chen``: who started the note, and
    who else changed its text (``Note.editors``), by full name where known."""
    known = names or {}
    author = known.get(note.author, note.author)
    if not note.editors:
        return author
    return f"{author}, edited by {editor_names(note, known)}"


def editor_names(note: Note, names: dict[str, str] | None = None) -> str:
    """``Nina Rossi, Dr. M Chen``: the note's editors, by full name where known."""
    return ", ".join((names or {}).get(e, e) for e in note.editors)


def note_summary(note: Note, names: dict[str, str] | None = None) -> str:
    """``Signed 2026-12-04 10:02 by mgarcia · Dry cough…``: a note in the visit's list,
    named by its first line of content (not a SOAP heading); everyone who wrote it named
    (``Draft by Dr. Amara Okafor, edited by Nina Rossi``)."""
    lines = (line.strip() for line in note.body.splitlines())
    first = next((x for x in lines if x and x.lower() not in _SOAP_HEADINGS), "")
    if note.signed_at:
        signer = note.signed_by or note.author
        state = f"Signed {local_time(note.signed_at)} by {(names or {}).get(signer, signer)}"
        if signer != note.author:
            state += f" · written by {authorship(note, names)}"
        elif note.editors:
            state += f" · edited by {editor_names(note, names)}"
    else:
        state = f"Draft by {authorship(note, names)}"
    parts = [state]
    if note.addenda:
        parts.append(f"{len(note.addenda)} addend{'um' if len(note.addenda) == 1 else 'a'}")
    if first:  # an empty draft has no first line to show
        parts.append(first[:70])
    return " · ".join(parts)


def staff_names(records: ClinicRecords, contents: VisitContents) -> dict[str, str]:
    """Full names of the clinician, the notes' authors and editors and whoever recorded
    the vitals, by user name (on the worker); a user name with no account or no full name
    stands for itself."""
    people = {contents.visit.clinician or "", contents.visit.closed_by or ""}
    people |= {a for n in contents.notes for a in n.authors}
    people |= {n.signed_by or "" for n in contents.notes}
    people |= {a.recorded_by for n in contents.notes for a in n.addenda}
    if isinstance(contents, ShownVisit):
        people |= {g.recorded_by for g in contents.vitals}
    return full_names(records, people - {""})


def full_names(records: ClinicRecords, people: set[str]) -> dict[str, str]:
    """Each user name's full name (on the worker); the user name where there is none."""
    names = {}
    for name in people:
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
        + (f"<br><b>From appointment:</b> {e(_booked(contents))}" if v.appointment_id else "")
        + "</p>"
    )
    groups = contents.vitals if isinstance(contents, ShownVisit) else _vitals_of(contents)
    if groups:
        # One list per recording under its time: a recheck's blood pressure, listed on
        # with the first set's, read as two conflicting values of one observation.
        parts.append("<h4>Vitals and observations</h4>")
        sets = [g for g in groups if g.observed_at]
        for group in groups:
            if not group.observed_at:
                heading = "Other observations"
            else:
                heading = f"Measured {group.observed_at.replace('T', ' ')}"
                if group.recorded_by:  # named as a note's author is: by full name
                    heading += f", recorded by {known.get(group.recorded_by, group.recorded_by)}"
                if len(sets) > 1:
                    heading += f" (set {sets.index(group) + 1} of {len(sets)})"
            parts.append(f"<p><b>{e(heading)}</b></p><ul>")
            parts += [f"<li><b>{e(t.label)}:</b> {e(t.value)}</li>" for t in group.texts]
            parts.append("</ul>")
    sections: tuple[tuple[str, tuple[dict[str, Any], ...], Callable[[dict[str, Any]], str]], ...]
    sections = (
        ("Diagnoses", contents.problems, _problem),
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
        if n.signed_at:
            state = f"signed {e(local_time(n.signed_at))} by {who(n.signed_by or n.author)}"
        else:
            state = "draft"
        parts.append(f"<p><b>Note by {e(authorship(n, known))}</b> ({state})</p>")
        parts.append(f"<pre style='white-space: pre-wrap'>{e(n.body)}</pre>")
        for a in n.addenda:
            when = e(local_time(a.recorded_at))
            parts.append(
                f"<p><b>Addendum</b> {when} by {who(a.recorded_by)}</p>"
                f"<pre style='white-space: pre-wrap'>{e(a.body)}</pre>"
            )
    return "".join(parts)


@dataclass(frozen=True)
class ShownVisit(VisitContents):
    """A visit's contents with its vitals worded as entered (``102 °F ▲``, the BMI worked
    out from the patient's heights) and the appointment it was started from as booked,
    read on the worker by :func:`read_visit`."""

    vitals: tuple[VitalGroup, ...] = ()  # one per recording (``visit_groups``)
    appointment: str = ""  # "2026-12-05 09:00–09:15 with Dr Sam Lee"


# A visit's appointment that is not on this computer (not synced here yet, say).
APPOINTMENT_NOT_HERE = "an appointment not on this computer yet"


def _booked(contents: VisitContents) -> str:
    """The appointment a visit was started from, as a person knows it: its time and
    clinician (never its id)."""
    shown = contents.appointment if isinstance(contents, ShownVisit) else ""
    return shown or APPOINTMENT_NOT_HERE


def appointment_text(records: ClinicRecords, appointment_id: str) -> str:
    """``2026-12-05 09:00–09:15 with Dr Sam Lee``: the appointment as booked (on the
    worker); "" when it is not on this computer."""
    try:
        a = Schedule(records).get(appointment_id)
    except NotFoundError:
        return ""
    when = f"{a.starts_at[:10]} {a.starts_at[11:16]}–{a.ends_at[11:16]}"
    if not a.clinician:
        return when
    user = records.user(a.clinician)
    return f"{when} with {(user.full_name if user else '') or a.clinician}"


def _vitals_of(contents: VisitContents) -> list[VitalGroup]:
    """The vitals of contents read without :func:`read_visit`: as entered and flagged, the
    BMI left out (it needs the patient's earlier heights)."""
    readings = [Reading(**o) for o in contents.observations]
    # One set per recording (two sets of the same minute are never merged), oldest first.
    groups = [
        VitalGroup(
            group[0].observed_at,
            tuple(set_texts({r.vital.key: r for r in group if r.vital is not None})),
            group[0].recorded_by,
        )
        for group in reversed(recordings(r for r in readings if r.vital is not None))
    ]
    return groups + visit_groups((), readings)


def _problem(p: dict[str, Any]) -> str:
    code = f"{p['code']} " if p.get("code") else ""
    resolved = f" (resolved {p['resolved']})" if p.get("status") == "resolved" else ""
    return f"{code}{p.get('description', '')}{resolved}"


def _medication(m: dict[str, Any]) -> str:
    """``Metformin 500 mg, 1 tablet by mouth twice daily (from 2026-12-04)``; an old dose
    ``(from 2026-11-02, stopped 2026-12-04: dose changed)``."""
    how = " ".join(str(m[k]) for k in ("dose", "route", "frequency") if m.get(k))
    instructions = ", ".join(x for x in (str(m.get("strength") or ""), how) if x)
    dates = f"from {m['start']}" if m.get("start") else ""
    if m.get("status") == "stopped" or m.get("stop"):
        dates = f"{dates}, stopped {m.get('stop') or ''}".strip(", ")
        if m.get("changed_to"):  # the new dose is listed next (visit_list_items)
            dates += ": dose changed"
    when = f" ({dates})" if dates else ""
    return f"{m.get('name', '')} {instructions}".rstrip() + when


def read_visit(records: ClinicRecords, visit_id: str) -> tuple[VisitContents, dict[str, str]]:
    """A visit's contents (its vitals worded) and the names of the staff in it (on the
    worker)."""
    contents = Visits(records).contents(visit_id)
    vital_signs = VitalSigns(records)
    sets = [s for s in vital_signs.sets(contents.visit.patient_id) if s.encounter_id == visit_id]
    vitals = visit_groups(sets, vital_signs.for_visit(visit_id))
    appointment_id = contents.visit.appointment_id
    shown = ShownVisit(
        contents.visit,
        contents.notes,
        contents.observations,
        contents.problems,
        contents.medications,
        tuple(vitals),
        appointment_text(records, appointment_id) if appointment_id else "",
    )
    return shown, staff_names(records, shown)


# ----- the visit a new problem or medication is recorded in -------------------------------


def newest_open_visit(records: ClinicRecords, patient_id: str) -> Visit | None:
    """The patient's newest open visit, if any: what a problem or medication recorded now
    on ``patient_id``'s list belongs to (on the worker).

    Only a visit of that very patient: on a merged chart the visits shown include the
    merged registrations', but a list item is recorded in a visit of its own patient only
    (``chart_lists.check_visit``; remote apply quarantines anything else, and a merge that
    has not reached a replica yet would make it look misplaced there). A medication from a
    merged-in registration stopped during the kept registration's visit is recorded in no
    visit, as before visits recorded stops, rather than refused."""
    found = Visits(records).list_visits(patient_id, open_only=True)
    own = [v for v in found if v.patient_id == patient_id]
    return own[0] if own else None


class OpenVisitLink:
    """Finds (on the worker) the patient's open visit when a problem or medication form
    opens, and says on the form that what is saved is recorded in it: "Recorded in today's
    visit (Cough)". What is saved carries that visit's id as ``encounter_id``."""

    READ = "open visit"

    def __init__(
        self,
        operations: Operations,
        records: Callable[[], ClinicRecords],
        patient_id: str,
    ) -> None:
        self.label = QLabel()
        self.label.setObjectName("visitLink")
        self.label.setWordWrap(True)
        self.label.hide()
        self._records = records
        self._patient_id = patient_id
        self.visit: Visit | None = None
        self.known = False  # the read has come back
        self._operations = operations
        self._key = f"{self.READ} {id(self)}"
        operations.read(
            self._key,
            lambda: newest_open_visit(records(), patient_id),
            self._found,
            self._failed,
        )

    def _found(self, visit: Visit | None) -> None:
        self.visit, self.known = visit, True
        if visit is not None:
            self.label.setText(f"Recorded in {visit_name(visit)}")
            self.label.show()

    def _failed(self, _exc: Exception) -> None:
        """Not shown: the open visit is looked up again when saving."""

    def encounter(self) -> Callable[[], str | None]:
        """What a save links to, for the worker: the visit the form names, or (if it was
        not found yet) the patient's open visit then. Called on the GUI thread."""
        known, visit = self.known, self.visit
        records, patient_id = self._records, self._patient_id

        def find() -> str | None:
            found = visit if known else newest_open_visit(records(), patient_id)
            return found.id if found is not None else None

        return find

    def cancel(self) -> None:
        """The form closed: its read is not delivered."""
        self._operations.cancel(self._key)


def visit_name(visit: Visit) -> str:
    """``today's visit (Cough)``, or ``the visit of 2026-12-03 09:30 (Cough)``."""
    reason = f" ({visit.reason})" if visit.reason else ""
    day = visit.started_at[:10]
    if day == dt.date.today().isoformat():
        return f"today's visit{reason}"
    return f"the open visit of {visit.started_at.replace('T', ' ')}{reason}"
