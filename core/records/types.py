"""The record types: one declaration each (the vocabulary is in ``spec.py``, which also
says how to add a type)."""

from __future__ import annotations

from typing import Any

from core.records import validation as v
from core.records import vitals
from core.records.measured_time import not_ahead
from core.records.reading_conflicts import settle_move, settle_reading
from core.records.signed_notes import DISCARDED, SignedNoteRules
from core.records.signed_notes import NOTE_EDITED as NOTE_EDITED
from core.records.spec import Column, Field, ListSpec, default_label
from core.records.spec import RecordType as RecordType
from core.store.search import sort_key

# Shared fields: a record on a patient's chart points at its patient (checked against the
# patients table by the API, so no check here).
_PATIENT_ID = Field("patient_id", "Patient")
_REASON = Field("reason", "Reason", v.optional_text)
# The import a record came from (``fhir:<bundle patient>|<resource type>/<id>``, written by
# core/records/fhir/importer.py in the op creating it): kept and replicated, not shown.
# Older releases store and relay it as a field they do not know.
SOURCE = "source"
# Why a file was taken off a chart (an attachment's register, see ATTACHMENT).
REMOVED_REASON = "removed_reason"


def _patient_sort_key(values: dict[str, Any]) -> str:
    return sort_key(values["family"], values["given"] or "")


ALLERGIES = ListSpec(
    "allergies",
    "Allergies",
    "allergies",
    "patient_id",
    (
        Field("substance", "Substance", v.required_text, required=True),
        Field("reaction", "Reaction", v.optional_text),
        Field("severity", "Severity", choices=v.SEVERITY_VALUES),
    ),
    key=("substance",),
    stamped=True,
)
PROBLEM_STATUSES = ("active", "resolved")
PROBLEMS = ListSpec(
    "problems",
    "Problems",
    "conditions",
    "patient_id",
    (
        Field("description", "Problem", v.required_text, required=True),
        Field("code", "Code", v.optional_text),
        Field("status", "Status", default="active", choices=PROBLEM_STATUSES),
        Field("onset", "Onset", v.partial_date),
        Field("resolved", "Resolved", v.past_date),
        Field("encounter_id", "Visit", v.optional_text),
    ),
    key=("code", "description"),
    row_order=("code", "description", "status", "onset", "resolved", "encounter_id"),
)
MEDICATION_STATUSES = ("active", "stopped")


def _medication_active(values: dict[str, Any]) -> int:
    return 0 if values.get("status") == "stopped" else 1


MEDICATIONS = ListSpec(
    "medications",
    "Medications",
    "medications",
    "patient_id",
    (
        Field("name", "Medication", v.required_text, required=True),
        Field("strength", "Strength", v.optional_text),
        Field("dose", "Dose", v.optional_text),
        Field("route", "Route", v.optional_text),
        Field("frequency", "Frequency", v.optional_text),
        Field("start", "Start", v.past_date),
        Field("stop", "Stop", v.past_date),
        Field("reason", "Reason", v.optional_text),
        Field("prescriber", "Prescriber", v.optional_text),
        Field("encounter_id", "Visit", v.optional_text),
        Field("status", "Status", default="active", choices=MEDICATION_STATUSES),
    ),
    key=("name",),
    # V1 fixed the first four; V6 appended the rest.
    row_order=(
        *("name", "dose", "route", "frequency"),
        *("strength", "start", "stop", "reason", "prescriber", "encounter_id", "status"),
    ),
    # V1's column, kept true for readers of the table that know only V1's columns: 0 once
    # the medication is stopped.
    computed=(Column("active", compute=_medication_active),),
)

PATIENT = RecordType(
    "patient",
    "patients",
    (
        Field("family", "Family name", v.required_text, required=True),
        Field("given", "Given name", v.required_text, required=True),
        Field("birth_date", "Date of birth", v.date_of_birth, required=True),
        Field("sex", "Sex", choices=v.SEX_VALUES),
        Field("mrn", "MRN", v.medical_record_number),
        Field("phone", "Phone", v.phone_number),
        # Set by code (core/records/allergy_status.py): "nka" when the patient was asked
        # and has no known allergies, "allergies" once one is recorded; unset: not asked.
        Field("allergy_status", "Allergy status"),
        # V12 (merging duplicates, core/records/merges.py): the survivor's id on a duplicate
        # merged into it ("" once unmerged), and why; set by code, in one op. Older releases
        # store and relay these as fields they do not know.
        Field("merged_into", "Merged into"),
        Field("merge_reason", "Reason for merging"),
        # V15 (FHIR import, core/records/fhir/importer.py): the bundle patient a record was
        # imported from (re-runs skip it), and the patient it likely duplicates (a bundle
        # patient matching one already registered, offered for merge). Set by code.
        Field("source", "Imported from"),
        Field("duplicate_of", "Likely duplicate of"),
    ),
    lists=(ALLERGIES, PROBLEMS, MEDICATIONS),
    columns=(
        "family",
        Column("given", ""),
        Column("birth_date", ""),
        "sex",
        "mrn",
        "phone",
        Column("sort_key", compute=_patient_sort_key),
        Column("created_at", ""),
        Column("updated_at", ""),
        "allergy_status",
        Column("merged_into", ""),
        Column("source", ""),
        Column("duplicate_of", ""),
    ),
    row_requires="family",
    search=("family", "given", "mrn", "birth_date"),
    search_computed=("names",),
)


def _active(values: dict[str, Any]) -> int:
    return 0 if values["active"] is False else 1


def _role(values: dict[str, Any]) -> str:
    return str(values.get("staff_role") or values.get("role") or "front_desk")


def _must_change_password(values: dict[str, Any]) -> int:
    return 1 if values.get("must_change_password") is True else 0


USER = RecordType(
    "user",
    "users",
    (
        Field("username", "User name"),
        Field("full_name", "Full name"),
        Field("role", "Role"),
        Field("verifier", "Password verifier"),
        Field("active", "Active"),
        # V9 (staff management): a password someone else set (a new account's first one, an
        # admin's reset) must be changed at the next sign-in; an admin's TOTP secret (base32,
        # "" or absent: no second factor), which syncs inside the encrypted database.
        Field("must_change_password", "Must change password"),
        Field("totp_secret", "Two-factor secret"),
        # V9: the role when it is one earlier releases do not know (``nurse``), which they
        # would refuse to store; ``role`` then holds the nearest role they know
        # (validation.legacy_role). The users table's role column shows this one.
        Field("staff_role", "Role"),
        # V10 (authorization): roles held beside the primary one, space-separated (an admin
        # who is also a clinician). On the user record rather than as ``relation`` records,
        # so releases without ``relation`` keep syncing every clinic: they store and relay
        # an unknown field of a known type, but cannot store a record of an unknown type.
        # ``other_roles_since``: set by the upgrade from releases without authorization,
        # the first value counts from that HLC (the clinic's start), not from its own.
        Field("other_roles", "Other roles"),
        Field("other_roles_since", "Other roles since"),
    ),
    columns=(
        "username",
        Column("full_name", ""),
        Column("role", compute=_role),
        Column("verifier", ""),
        Column("active", compute=_active),
        Column("created_at", ""),
        Column("updated_at", ""),
        Column("must_change_password", compute=_must_change_password),
        Column("totp_secret", ""),
        Column("other_roles", ""),
    ),
    row_requires="username",
)

NOTE = RecordType(
    "note",
    "notes",
    (
        _PATIENT_ID,
        Field("encounter_id", "Visit"),
        Field("author", "Author"),
        Field("signed_at", "Signed at"),
        Field("signed_body", "Signed text"),
    ),
    texts=(Field("body", "Note text"),),
    # ``discarded_at``: a draft discarded (V20, ``Notes.discard``); what it means is the
    # derive hook's to decide (a signed note is never discarded), so it is no plain field.
    # Older releases store and relay it as a field they do not know (and show the draft).
    bookkeeping=(NOTE_EDITED, SOURCE, DISCARDED),
    lists=(
        ListSpec(
            "addenda",
            "Addenda",
            "note_addenda",
            "note_id",
            (Field("body", "Addendum"),),
            stamped=True,
        ),
    ),
    # ``body`` is the text as shown: the signed text once signed; ``signed_by`` who signed
    # it, the author of the signature's entry (V19), which may not be the note's author
    # (a nurse drafts, a clinician signs); ``discarded_at`` when a draft was discarded
    # (V20: None while on the chart; every listing leaves the others out). All three from
    # SignedNoteRules.derive.
    columns=(
        "patient_id",
        "encounter_id",
        "author",
        "body",
        "signed_at",
        Column("signed_by", compute=lambda values: values["signed_by"]),
        Column(DISCARDED, compute=lambda values: values[DISCARDED]),
    ),
    row_requires="patient_id",
    derive_hook=SignedNoteRules.derive,
    settle_hook=SignedNoteRules.settle,
    remote_check=SignedNoteRules(),
)

# booked -> arrived -> in_visit -> done, or cancelled / no_show; the moves allowed between
# them are core/records/schedule.py's TRANSITIONS.
APPOINTMENT_STATUSES = ("booked", "arrived", "in_visit", "done", "cancelled", "no_show")
APPOINTMENT = RecordType(
    "appointment",
    "appointments",
    (
        _PATIENT_ID,
        # The clinic's local wall-clock time, no offset (validation.local_datetime says why).
        Field("starts_at", "Starts", v.local_datetime, required=True),
        Field("ends_at", "Ends", v.local_datetime, required=True),
        _REASON,
        Field("status", "Status", required=True, choices=APPOINTMENT_STATUSES),
        # The clinician's user name (checked against the staff by core/records/schedule.py).
        Field("clinician", "Clinician", v.optional_text),
        # Set by code when the patient is checked in (local time, to the second): the
        # waiting room counts from it.
        Field("arrived_at", "Arrived at"),
        Field("cancel_reason", "Reason for cancelling", v.optional_text),
    ),
    chart_entry=True,
    bookkeeping=(SOURCE,),
    settle_hook=settle_move,  # choosing one side of a move keeps that move's start and end
)


def _encounter_status(values: dict[str, Any]) -> str:
    return "closed" if values["closed_at"] else "open"


ENCOUNTER_STATUSES = ("open", "closed")
ENCOUNTER = RecordType(
    "encounter",
    "encounters",
    (
        _PATIENT_ID,
        Field("started_at", "Started", v.timestamp, required=True),
        _REASON,
        Field("clinician", "Clinician", v.optional_text),
        # V4: the appointment a visit was started from (none for a walk-in), and who closed
        # it when (set by core/records/visits.py, so no check: nobody types them).
        Field("appointment_id", "Appointment", v.optional_text),
        Field("closed_at", "Closed at"),
        Field("closed_by", "Closed by"),
    ),
    # The status is derived from closed_at, so it can never disagree with it.
    columns=(
        "patient_id",
        "started_at",
        "reason",
        "clinician",
        "appointment_id",
        Column("status", compute=_encounter_status),
        "closed_at",
        "closed_by",
        # Orders visits started in the same minute (started_at is kept to the minute).
        Column("created_at", ""),
    ),
    chart_entry=True,
    bookkeeping=(SOURCE,),
)

_OBSERVATION_FIELDS = (
    _PATIENT_ID,
    Field("encounter_id", "Visit", v.optional_text),
    Field("code", "Measurement", v.required_text, required=True),
    Field("value", "Value", v.required_text, required=True),
    Field("unit", "Unit", v.optional_text),
    # Typed here (an edit, a typed resolution), a time ahead of this computer's clock is
    # refused, as at entry (VitalSigns.record); one synced from a workstation whose clock
    # runs ahead is applied (core/records/measured_time.py).
    Field("observed_at", "Measured at", v.timestamp, required=True, at_entry=not_ahead),
    # Vitals (core/records/vital_signs.py) also keep what was typed, in the unit typed,
    # and the flag for the patient's age (value and unit are the canonical ones).
    Field("entered_value", "Value as entered"),
    Field("entered_unit", "Unit as entered"),
    Field("flag", "Outside the normal range"),
    # V18: the id shared by the readings recorded together (one set of vitals), set by code;
    # a chart shows a set as one row, so two sets taken in the same minute stay two rows.
    # Older releases store and relay it as a field they do not know.
    Field("set_id", "Recorded with"),
)
OBSERVATION = RecordType(
    "observation",
    "observations",
    _OBSERVATION_FIELDS,
    # created_at (V18): when the reading was recorded. Readings made before set_id share it
    # with the rest of their set (VitalSigns.record wrote one time for all), which is how
    # they are told apart from another set measured in the same minute.
    columns=(*(f.name for f in _OBSERVATION_FIELDS), "created_at"),
    chart_entry=True,
    bookkeeping=(SOURCE,),
    settle_hook=settle_reading,  # choosing one side of a reading keeps all of that side
)

ATTACHMENT = RecordType(
    "attachment",
    "attachments",
    (
        _PATIENT_ID,
        Field("filename", "File name", v.required_text, required=True),
        Field("media_type", "File type", v.required_text, required=True),
        Field("size", "Size", v.whole_number, required=True),
        # SHA-256 of the ciphertext the workstation uploaded (what the server verifies); the
        # file itself is encrypted on the workstation (core/sync/attachments.py).
        Field("sha256", "SHA-256", v.sha256_hex, required=True),
        # Issue #16 (schema V13): what the chart shows, and where the encrypted file is:
        # its blob id (keyed content id) and the clinic attachment key its data key is
        # wrapped for. Older replicas keep and relay these as unknown fields.
        Field("title", "Title", v.optional_text),
        Field("date", "Date", v.past_date),
        Field("category", "Category", v.optional_text),
        Field("blob_id", "Blob id", v.sha256_hex),
        Field("key_id", "Attachment key", v.optional_text),
        Field("added_by", "Added by", v.optional_text),
    ),
    columns=(
        "patient_id",
        "filename",
        "media_type",
        "size",
        "sha256",
        Column("created_at", ""),
        "title",
        "date",
        "category",
        "blob_id",
        "key_id",
        "added_by",
    ),
    chart_entry=True,
    # A file taken off the chart (core/records/removed_attachments.py) is deleted as any
    # record is (the ``deleted`` register, which every release understands, so the file
    # leaves the chart on a workstation not yet upgraded too), with why in this register,
    # written in the same op. Bookkeeping: two people removing the same file at once are
    # no conflict. Older releases store and relay it as a field they do not know.
    bookkeeping=(REMOVED_REASON,),
)

CLINIC = RecordType("clinic", "clinic", (Field("name", "Clinic name", v.required_text, True),))

# Emergency access to a chart (core/records/break_glass.py): who opened which patient's chart,
# why, until when, and the admin who reviewed the opening. Times are UTC ISO-8601, set by
# code; the grant counts while opened_at <= now < expires_at (expiry is read, not stored).
BREAK_GLASS = RecordType(
    "break_glass",
    "break_glass",
    (
        _PATIENT_ID,
        Field("username", "User name"),  # who opened it; labelled as the user type does
        Field("reason", "Reason", v.required_text, required=True),
        Field("opened_at", "Opened at"),
        Field("expires_at", "Expires at"),
        Field("reviewed_by", "Reviewed by"),
        Field("reviewed_at", "Reviewed at"),
    ),
    row_requires="patient_id",
)


def _granted(values: dict[str, Any]) -> int:
    return 1 if values["granted"] is True else 0


# A relation tuple of the authorization schema (core/authz/clinic.fga):
# ``object#relation@subject``, such as ``patient:4f2a#care_team@user:alice``. The record id
# is derived from the tuple (core/records/relations.py), so the same grant made on two
# workstations is one record, and a grant concurrent with a revoke is a conflict on
# ``granted`` shown in the conflict inbox.
RELATION = RecordType(
    "relation",
    "relations",
    (
        Field("object", "Object"),
        Field("relation", "Relation"),
        Field("subject", "Who"),
        Field("granted", "Granted"),
        # Set only by the upgrade from releases without authorization: the first grant
        # counts from this HLC (the clinic's start), not from its own.
        Field("since", "Since"),
    ),
    columns=(
        "object",
        "relation",
        "subject",
        Column("granted", compute=_granted),
        Column("created_at", ""),
        Column("updated_at", ""),
    ),
    row_requires="object",
)

# Registers whose every value is kept with its HLC (table ``authz_writes``): remote apply
# judges an op by the permissions at its own time (core/records/remote_authz.py).
AUTHZ_HISTORY: dict[str, tuple[str, ...]] = {
    "user": ("username", "role", "staff_role", "active", "other_roles", "other_roles_since"),
    "relation": ("object", "relation", "subject", "granted", "since"),
}

RECORD_TYPES: dict[str, RecordType] = {
    t.name: t
    for t in (
        *(PATIENT, USER, NOTE, APPOINTMENT, ENCOUNTER, OBSERVATION, ATTACHMENT, CLINIC),
        BREAK_GLASS,
        RELATION,
    )
}
SYSTEM_REGISTERS = ("created_at", "deleted")

# Names in validation errors that are not a record's field: what a form asks for.
_FORM_LABELS = {"clinic": "Clinic name", "password": "Password", "deleted": "Deleted or kept",
                DISCARDED: "Discarded draft"}  # fmt: skip


def record_type(name: str) -> RecordType:
    """Look up a type by name; ValueError names an unknown one."""
    try:
        return RECORD_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown record type {name!r}") from None


def list_spec(name: str) -> ListSpec | None:
    """A list field (``allergies``) of any type, by name."""
    return LISTS.get(name)


LISTS: dict[str, ListSpec] = {s.name: s for t in RECORD_TYPES.values() for s in t.lists}


def _labels() -> dict[str, str]:
    """Field name -> label over every type, for messages that name only a field.

    A name two types label differently (``name``: the clinic's, a medication's) is left
    out: ``field_label`` then needs the record type to say which it means.
    """
    seen: dict[str, set[str]] = {}
    for t in RECORD_TYPES.values():
        for f in (*t.fields, *t.texts):
            seen.setdefault(f.name, set()).add(f.label)
        for s in t.lists:
            seen.setdefault(s.name, set()).add(s.label)
            for f in s.items:
                seen.setdefault(f.name, set()).add(f.label)
    labels = {name: next(iter(found)) for name, found in seen.items() if len(found) == 1}
    # A vital's value is refused under its own name ("spo2"): the form's label for it.
    return {**labels, **vitals.FIELD_LABELS, **_FORM_LABELS}


FIELD_LABELS: dict[str, str] = _labels()


def field_label(name: str, type_name: str | None = None) -> str:
    """How forms, the conflict inbox and error messages name a field: ``birth_date`` ->
    ``Date of birth`` (of ``type_name``'s field when given and known)."""
    rtype = RECORD_TYPES.get(type_name or "")
    if rtype is not None and (rtype.field_named(name) or rtype.list_spec(name)):
        return rtype.label(name)
    return FIELD_LABELS.get(name) or default_label(name)


# A coded choice whose label is not simply its word capitalised.
_CHOICE_LABELS = {"no_show": "No-show"}


def choice_label(value: str) -> str:
    """How screens and printed reports word a coded choice: ``severe`` -> ``Severe``,
    ``in_visit`` -> ``In visit``, ``no_show`` -> ``No-show`` (the one table of them, so a
    code never reaches paper other than as the screen shows it)."""
    return _CHOICE_LABELS.get(value) or value.replace("_", " ").capitalize()
