"""Reading the audit log for people: who saw or changed a chart, the clinic's log with
filters, and its CSV export.

The log holds who did what to which record (record ids, actions, field names), never
clinical values. A patient's entries are those naming the patient, a record on their chart
(a note, a visit, a reading, an attachment, an appointment) or a break-glass opening of
their chart. Dates given as ``YYYY-MM-DD`` are days on this computer's clock (local time);
``since`` includes its whole day and so does ``until`` (a time to the minute: its whole
minute). Entries are stamped in UTC.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import IO, Any

from core.records import validation as v
from core.records.break_glass_audit import worked_under
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.removed_attachments import removed_from
from core.records.types import RECORD_TYPES
from core.store.database import Database, Row

# Audited actions as a person reads them (others are shown as recorded).
ACTION_LABELS = {
    "chart.open": "Opened the chart",
    "patient.create": "Registered the patient",
    "patient.update": "Changed demographics",
    "patient.delete": "Deleted the patient",
    "allergy.add": "Recorded an allergy",
    "allergy.remove": "Removed an allergy",
    "encounter.close": "Closed a visit",
    "encounter.reopen": "Reopened a visit",
    "break_glass.open": "Broke the glass (emergency access)",
    "break_glass.review": "Reviewed a break-glass opening",
    "user.sign_in": "Signed in",
    "user.sign_in_failed": "Failed sign-in",
    "action.refused": "Refused action",
    "conflict.resolve": "Resolved a conflict",
    "audit.export": "Exported the audit log",
    "patient.import": "Imported a patient list",
    "fhir.export": "Exported charts as FHIR",
    "fhir.import": "Imported from a FHIR bundle",
    "patient.merge": "Merged a duplicate chart",
    "patient.unmerge": "Undid a merge",
    "patient.not_duplicate": "Marked as not a duplicate",
    "patient.not_duplicate_undo": "Undid a not-a-duplicate mark",
    "attachment.view": "Opened a file",
    "attachment.save": "Saved a copy of a file",
    "print.summary": "Printed the summary",
    "print.visit": "Printed a visit note",
}

# What kind of record an entry names, as a person reads it (others as recorded).
RECORD_LABELS = {
    "patient": "Chart",
    "user": "Staff account",
    "note": "Note",
    "encounter": "Visit",
    "appointment": "Appointment",
    "observation": "Observation",
    "attachment": "File",
    "clinic": "Clinic",
    "break_glass": "Break-glass opening",
    "relation": "Chart access",
    "audit_log": "Audit log",
    "schedule": "Schedule",
    "workstation": "Workstation",
    "device": "Device",
}

CSV_COLUMNS = ("seq", "time", "person", "workstation", "action", "entity", "entity_id",
               "patient", "break_glass", "details")  # fmt: skip


def describe(action: str) -> str:
    """``chart.open`` -> ``Opened the chart``; an action without a label as it is."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    kind, _, verb = action.partition(".")
    return f"{kind.replace('_', ' ').capitalize()}: {verb.replace('_', ' ')}" if verb else action


@dataclass(frozen=True)
class AuditFilter:
    """What to list: every given criterion must hold. ``action`` matches the action or,
    without a dot, every action of that kind (``chart`` finds ``chart.open``)."""

    patient: str | None = None
    user: str | None = None
    action: str | None = None
    since: str | None = None  # YYYY-MM-DD (local day) or an ISO-8601 time
    until: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class AuditRow:
    """One audit entry as the review screens and the CLI show it."""

    seq: int
    ts: str
    actor: str
    action: str
    entity: str
    entity_id: str
    details: dict[str, Any] = field(hash=False)
    workstation: str

    @property
    def break_glass(self) -> str | None:
        """The break-glass grant this was done under, or None (a review of an opening is
        about a grant, not done under one)."""
        return worked_under(self.action, self.details)

    @property
    def patient(self) -> str | None:
        """The patient named by the entry itself (not worked out from a record)."""
        if self.entity == "patient":
            return self.entity_id
        value = self.details.get("patient")
        if not value and self.entity == "relation":
            # A chart's restriction or care team: entries written before they carried
            # "patient" name the chart only as the tuple's object.
            obj = str(self.details.get("object") or "")
            value = obj[len("patient:") :] if obj.startswith("patient:") else None
        return str(value) if value else None

    @property
    def local_time(self) -> str:
        """The entry's time on this computer's clock, to the second."""
        try:
            moment = datetime.fromisoformat(self.ts)
        except ValueError:
            return self.ts
        return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")

    @property
    def description(self) -> str:
        """What was done, in words."""
        return describe(self.action)

    @property
    def record(self) -> str:
        """The kind of record the entry names, in words (``note`` -> ``Note``); one with
        no label as recorded, with its id."""
        label = RECORD_LABELS.get(self.entity)
        if label is None:
            return f"{self.entity.replace('_', ' ').capitalize()} {self.entity_id}".strip()
        return label

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "workstation": self.workstation,
            "action": self.action,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "patient": self.patient,
            "break_glass": self.break_glass,
            "details": self.details,
        }


def require_reviewer(records: ClinicRecords) -> None:
    """Refuse the clinic's whole audit log to anyone but an administrator (a chart's own
    history, :func:`chart_history`, is for whoever may open the chart)."""
    from core.records.workstation import NotAllowedError  # workstation imports much of core

    user = records.user(records.actor)
    if user is None or user.role != "admin":
        raise NotAllowedError("Only an administrator can read the clinic's audit log")


# What a From/To (``--since``/``--until``) takes, said when what was typed is neither.
BOUND_HINT = (
    "type a date (e.g. 2026-12-07) or a date and the clinic's local time (e.g. 2026-12-07 09:30)"
)


def bound(name: str, text: str, end: bool) -> str:
    """The UTC stamp a ``since``/``until`` value stands for: a day (read as every date
    field reads one, ``validation.calendar_date``: its start, or for ``end`` the next
    day's start) or a local time to the minute (``validation.local_datetime``: its start,
    or for ``end`` the next minute's, so To 22:12 holds an entry at 22:12:16); a stamp
    as the log prints it (seconds, an offset) is taken as given. ValidationError in the
    words every date field uses ("February 2026 has 28 days", "has the year last")."""
    text = text.strip()
    if ":" not in text:  # no time typed: a day
        try:
            day = v.calendar_date(name, text)
        except ValidationError as exc:
            if v.DATE_FORMAT_HINT not in str(exc):
                raise
            raise ValidationError(name, f"{text!r} is not a date: {BOUND_HINT}") from None
        start = datetime.combine(day + timedelta(days=1) if end else day, time()).astimezone()
        return start.astimezone(UTC).isoformat(timespec="milliseconds")
    try:
        moment = datetime.fromisoformat(v.local_datetime(name, text) or "")
        if end:  # a To typed to the minute holds that whole minute, as a To day its day
            moment += timedelta(minutes=1)
    except ValidationError as exc:
        try:
            moment = datetime.fromisoformat(text)  # 2026-12-05T09:30:12.345+00:00
        except ValueError:
            if v.TIME_FORMAT_HINT in str(exc):
                raise ValidationError(
                    name, f"{text!r} is not a date or time: {BOUND_HINT}"
                ) from None
            raise exc from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _chart_tables() -> list[str]:
    return list(_chart_types().values())


def _chart_types() -> dict[str, str]:
    """Record type -> its table, for the records that sit on a patient's chart."""
    return {
        t.name: t.table
        for t in RECORD_TYPES.values()
        if "patient_id" in t.column_names and t.name != "patient"
    }


def patients_of(db: Database, rows: Sequence[AuditRow]) -> dict[int, str]:
    """The patient each entry is about, by the entry's ``seq``: the one it names itself,
    else the patient whose chart holds the record it names (a note, a visit, an
    appointment, a file). Entries about no patient are left out. Only ids are read."""
    about = {r.seq: p for r in rows if (p := r.patient)}
    wanted: dict[str, set[str]] = {}
    tables = _chart_types()
    for r in rows:
        if r.seq not in about and r.entity in tables:
            wanted.setdefault(r.entity, set()).add(r.entity_id)
    holder: dict[tuple[str, str], str] = {}
    for entity, ids in wanted.items():
        listed = sorted(ids)
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            query = f"SELECT id, patient_id FROM {tables[entity]} WHERE id IN ({marks})"
            for record_id, patient_id in db.query(query, tuple(chunk)):
                if patient_id:
                    holder[(entity, str(record_id))] = str(patient_id)
    if "attachment" in wanted:  # a file taken off its chart: its document names the patient
        listed = [i for i in wanted["attachment"] if ("attachment", i) not in holder]
        for gone in removed_from(db, None, listed):
            holder[("attachment", gone.record_id)] = str(gone.values.get("patient_id") or "")
    for r in rows:
        if r.seq not in about and (found := holder.get((r.entity, r.entity_id))):
            about[r.seq] = found
    return about


def workstation_name(db: Database) -> str:
    """How this replica is named in the log's ``workstation`` column."""
    rows = db.query("SELECT value FROM meta WHERE key = 'replica_id'")
    return f"this workstation ({rows[0][0]})" if rows else "this workstation"


def _where(f: AuditFilter, removed: Sequence[str] = ()) -> tuple[str, list[Any]]:
    """The SQL condition and its parameters; ``removed``: the ids of files taken off the
    patient's chart (no row names their patient any more, their documents do)."""
    clauses: list[str] = []
    params: list[Any] = []
    if f.patient:
        records = " UNION ".join(
            [f"SELECT id FROM {t} WHERE patient_id = ?" for t in _chart_tables()]
            + [f"SELECT ?{'' if i else ' AS id'}" for i in range(len(removed))]
        )
        # A chart's restriction and care team (access.grant / access.revoke) name it as
        # the tuple's object: entries older than their "patient" detail are found so too.
        clauses.append(
            "((entity = 'patient' AND entity_id = ?) "
            "OR json_extract(details, '$.patient') = ? "
            "OR (entity = 'relation' AND json_extract(details, '$.object') = ?) "
            f"OR entity_id IN ({records}))"
        )
        params += [f.patient, f.patient, "patient:" + f.patient]
        params += [f.patient] * len(_chart_tables())
        params += list(removed)
    if f.user:
        # A failed sign-in is recorded by no one, naming the account tried.
        clauses.append("(actor = ? OR (action = 'user.sign_in_failed' AND entity_id = ?))")
        params += [f.user, f.user]
    if f.action:
        if "." in f.action:
            clauses.append("action = ?")
            params.append(f.action)
        else:
            clauses.append("(action = ? OR action LIKE ?)")
            params += [f.action, f"{f.action}.%"]
    if f.since:
        clauses.append("ts >= ?")
        params.append(bound("since", f.since, end=False))
    if f.until:
        clauses.append("ts < ?")
        params.append(bound("until", f.until, end=True))
    return (" AND ".join(clauses) or "1 = 1"), params


def _row(r: Row, workstation: str) -> AuditRow:
    try:
        details = json.loads(str(r[6]))
    except ValueError:
        details = {"unreadable": str(r[6])}
    if not isinstance(details, dict):
        details = {"value": details}
    return AuditRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), details,
                    workstation)  # fmt: skip


def list_entries(db: Database, f: AuditFilter = AuditFilter()) -> list[AuditRow]:
    """This workstation's audit entries matching ``f``, newest first."""
    removed = [r.record_id for r in removed_from(db, [f.patient])] if f.patient else []
    where, params = _where(f, removed)
    limit = f" LIMIT {int(f.limit)}" if f.limit else ""
    rows = db.query(
        "SELECT seq, ts, actor, action, entity, entity_id, details FROM audit_log "
        f"WHERE {where} ORDER BY seq DESC{limit}",
        tuple(params),
    )
    name = workstation_name(db)
    return [_row(r, name) for r in rows]


def entries_about(records: ClinicRecords, f: AuditFilter) -> list[AuditRow]:
    """Like :func:`list_entries`, but ``f.patient`` may also be a name (as the patient
    search finds it): the entries about every patient it finds, newest first."""
    if not f.patient or records.db.query("SELECT 1 FROM patients WHERE id = ?", (f.patient,)):
        return list_entries(records.db, f)
    found = records.search_patients(f.patient, limit=20)
    merged: dict[int, AuditRow] = {}
    for p in found:
        for row in list_entries(records.db, dataclasses.replace(f, patient=p.id)):
            merged[row.seq] = row
    rows = sorted(merged.values(), key=lambda r: r.seq, reverse=True)
    return rows[: f.limit] if f.limit else rows


def chart_history(db: Database, patient_id: str) -> list[AuditRow]:
    """Who has seen or changed ``patient_id``'s chart here, views included, newest first."""
    return list_entries(db, AuditFilter(patient=patient_id))


def write_csv(rows: Iterable[AuditRow], out: IO[str]) -> int:
    """Write ``rows`` as CSV (a header, then one line each); returns the number written.

    Cells a spreadsheet would run as a formula (starting with ``= + - @``) are prefixed
    with ``'``: the log holds names people typed (a user name, a failed sign-in's).
    """
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for r in rows:
        cells = (r.seq, r.ts, r.actor, r.workstation, r.action, r.entity, r.entity_id,
                 r.patient or "", r.break_glass or "",
                 json.dumps(r.details, sort_keys=True, ensure_ascii=False))  # fmt: skip
        writer.writerow([_safe_cell(c) for c in cells])
        count += 1
    return count


def export_csv(records: ClinicRecords, f: AuditFilter, out: IO[str]) -> int:
    """Write every entry matching ``f`` to ``out`` as CSV (see :func:`write_csv`) and audit
    the export (``audit.export``, naming which filters were used, not what was typed: a
    patient's name typed as a filter stays out of the log). Returns the entries written."""
    count = write_csv(entries_about(records, f), out)
    used = sorted(k for k, v in dataclasses.asdict(f).items() if v is not None and k != "limit")
    details = {"filters": used, "entries": count}
    with records.db.write(records.actor, "audit.export", "audit_log", "csv", details):
        pass
    return count


def _safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
