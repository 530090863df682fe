"""The permission matrix: every action of the app, CLI and server, and every clinical read,
mapped to a permission of the clinic schema (core/authz/clinic.fga) on the patient or the
clinic. This table is the one place; the gate (core/records/authorize.py), remote apply
(core/records/remote_authz.py), the README's table and the matrix test all read it.

An action is the audit action name of its ``Database.write`` (``note.sign``); a read is
named the same way (``notes.list``). ``None``: needs no permission (signing in, the
replica's own bookkeeping: sync, re-deriving, signing ops).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.records.errors import NotAllowedError

CLINIC_OBJECT = "clinic:clinic"
ROLES = ("admin", "clinician", "nurse", "front_desk")

# Who holds each permission, as a refusal names them ("Only <who> can <what>").
WHO = {
    "member": "clinic staff",
    "view_demographics": "clinic staff",
    "register_patient": "clinic staff",
    "edit_demographics": "front desk staff, or a nurse or clinician with access to the chart",
    "schedule": "front desk staff, a nurse or a clinician",
    "view_clinical": "a nurse or a clinician (on the care team, for a restricted chart)",
    "record_vitals": "a nurse or a clinician (on the care team, for a restricted chart)",
    "record_allergy": "a nurse or a clinician (on the care team, for a restricted chart)",
    "write_note": "a nurse or a clinician (on the care team, for a restricted chart)",
    "manage_visit": "a nurse or a clinician (on the care team, for a restricted chart)",
    "sign_note": "a clinician",
    "prescribe": "a clinician",
    "diagnose": "a clinician",
    "manage_access": "a clinician with access to the chart, or an admin",
    "delete_patient": "an admin",
    "merge_patients": "a clinician with access to the charts, or an admin",
    "manage_staff": "an admin",
    "review_audit": "an admin",
}


@dataclass(frozen=True)
class Rule:
    """What an action needs: ``permission`` on the patient it concerns or on the clinic."""

    permission: str
    on: str  # "patient" or "clinic"
    what: str  # "sign a note": the refusal reads "Only a clinician can sign a note"

    @property
    def who(self) -> str:
        """Who may do it, in words."""
        return WHO[self.permission]

    def refusal(self) -> str:
        """The message a refused person reads."""
        return f"Only {self.who} can {self.what}"


def _p(permission: str, what: str) -> Rule:
    return Rule(permission, "patient", what)


def _c(permission: str, what: str) -> Rule:
    return Rule(permission, "clinic", what)


# Writes (audit action names) -> what they need.
ACTIONS: dict[str, Rule | None] = {
    # Demographics and registration
    "patient.create": _c("register_patient", "register a patient"),
    "patient.update": _p("edit_demographics", "change a patient's details"),
    "patient.delete": _p("delete_patient", "delete a patient"),
    # Duplicates (core/records/merges.py): checked on both patients of a merge.
    "patient.merge": _p("merge_patients", "merge duplicate patients"),
    "patient.unmerge": _p("merge_patients", "undo a merge of duplicate patients"),
    # "Not a duplicate" (core/records/dismissals.py): checked on both patients too.
    "patient.not_duplicate": _p("merge_patients", "dismiss a possible duplicate"),
    "patient.not_duplicate_undo": _p("merge_patients", "undo a duplicate's dismissal"),
    # Clinical: allergies, vitals, notes, visits, problems, medications
    "allergy.add": _p("record_allergy", "record an allergy"),
    "allergy.remove": _p("record_allergy", "remove an allergy"),
    "allergy.edit": _p("record_allergy", "change an allergy"),
    "allergy.none_known": _p("record_allergy", "record no known allergies"),
    "vitals.record": _p("record_vitals", "record vital signs"),
    "observation.create": _p("record_vitals", "record a measurement"),
    "observation.update": _p("record_vitals", "correct a measurement"),
    "observation.delete": _p("record_vitals", "delete a measurement"),
    "note.create": _p("write_note", "write a note"),
    "note.edit": _p("write_note", "edit a note"),
    # Discarding a draft is an edit of it (who may write it may take it off the chart).
    "note.discard": _p("write_note", "discard a draft note"),
    "note.sign": _p("sign_note", "sign a note"),
    "note.addendum": _p("sign_note", "add an addendum to a signed note"),
    "encounter.create": _p("manage_visit", "start a visit"),
    "encounter.update": _p("manage_visit", "change a visit"),
    "encounter.close": _p("manage_visit", "close a visit"),
    "encounter.reopen": _p("manage_visit", "reopen a visit"),
    "encounter.delete": _p("manage_visit", "delete a visit"),
    "attachment.create": _p("write_note", "attach a file to a chart"),
    # Correcting a file's title, date or category; taking it off the chart with a reason
    # (core/records/removed_attachments.py: kept, and listed as removed).
    "attachment.update": _p("write_note", "change a file's details in a chart"),
    "attachment.delete": _p("write_note", "remove a file from a chart"),
    "problem.add": _p("diagnose", "add a problem"),
    "problem.resolve": _p("diagnose", "resolve a problem"),
    "problems.add": _p("diagnose", "add a problem"),
    "problems.remove": _p("diagnose", "remove a problem"),
    "medication.start": _p("prescribe", "start a medication"),
    "medication.stop": _p("prescribe", "stop a medication"),
    "medication.change_dose": _p("prescribe", "change a medication's dose"),
    # The allergy warning heeded: "Don't start" (core/records/medications.py).
    "medication.not_started": _p("prescribe", "decide not to start a medication"),
    "medications.add": _p("prescribe", "start a medication"),
    "medications.remove": _p("prescribe", "stop a medication"),
    # Schedule
    "appointment.create": _c("schedule", "book an appointment"),
    "appointment.move": _c("schedule", "move an appointment"),
    "appointment.status": _c("schedule", "check a patient in or change an appointment"),
    "appointment.cancel": _c("schedule", "cancel an appointment"),
    "appointment.update": _c("schedule", "change an appointment"),
    "appointment.delete": _c("schedule", "delete an appointment"),
    # Access to a chart (relation tuples on a patient) and staff roles (on the clinic):
    # decided by the tuple's object (core/records/relations.py).
    "access.grant": _p("manage_access", "change who may see a chart"),
    "access.revoke": _p("manage_access", "change who may see a chart"),
    "role.grant": _c("manage_staff", "change a staff member's roles"),
    "role.revoke": _c("manage_staff", "change a staff member's roles"),
    # Staff, keys and settings
    "user.create": _c("manage_staff", "add a staff member"),
    "user.role": _c("manage_staff", "change a staff member's role"),
    "user.deactivate": _c("manage_staff", "deactivate a staff member"),
    "user.reactivate": _c("manage_staff", "reactivate a staff member"),
    "user.reset_password": _c("manage_staff", "reset a staff member's password"),
    # The names the staff branch writes (same rules).
    "user.role_change": _c("manage_staff", "change a staff member's role"),
    "user.password_reset": _c("manage_staff", "reset a staff member's password"),
    "user.totp_disable": _c("manage_staff", "turn off a staff member's two-factor sign-in"),
    "clinic.rename": _c("manage_staff", "rename the clinic"),
    # A pairing code lets a new workstation join and receive every record; revoking one
    # shuts a lost or retired workstation out (the LAN CA holder's own bookkeeping else).
    "lan.pair.code": _c("manage_staff", "let a new workstation join the clinic"),
    "lan.device.revoke": _c("manage_staff", "revoke a workstation"),
    "lan.devices.list": _c("manage_staff", "see which workstations were let join"),
    "settings.change": _c("manage_staff", "change the clinic's settings"),
    "keys.recovery_replace": _c("manage_staff", "issue a new recovery key"),
    "keys.rekey": _c("manage_staff", "re-encrypt the database"),
    "backup.create": _c("manage_staff", "back up the clinic's records"),
    "demo.create": _c("manage_staff", "fill the clinic with demo patients"),
    "patient.import": _c("manage_staff", "import a patient list"),
    # FHIR bundles (core/records/fhir): each record an import writes also needs its own
    # permission (the importing admin must hold the clinical ones: other replicas check them).
    "fhir.export": _c("manage_staff", "export the clinic's records as FHIR"),
    "fhir.import": _c("manage_staff", "import records from a FHIR bundle"),
    # Audit review and break-glass review
    "audit.list": _c("review_audit", "read the clinic's audit log"),
    "audit.export": _c("review_audit", "export the clinic's audit log"),
    "break_glass.review": _c("review_audit", "review break-glass openings"),
    # The conflict inbox: clinic staff open it; it lists a conflict only to someone who may
    # read its values (read_permission below), and resolving one needs that read and the
    # permission of the record's type and field (authorize._conflict_rule).
    "conflicts.view": _c("member", "see the conflict inbox"),
    # A person's own password (anyone else's: user.reset_password) and session.
    "user.password_change": None,
    "user.sign_in": None,
    "user.sign_out": None,
    "user.sign_in_failed": None,
    "keys.slot_add": None,
    "keys.slot_rewrap": None,
    "keys.slot_remove": None,  # a deactivated person's slot, removed at the next open
    "user.totp_enrol": None,  # one's own second factor
    # Break-glass is for those without access: opening one needs a role on the clinic's
    # clinical side, checked by core/records/break_glass.py itself.
    "break_glass.open": None,
    # The replica's own bookkeeping, on behalf of nobody in particular.
    "clinic.create": None,
    "sync.apply": None,
    "sync.snapshot": None,
    "sync.snapshot_done": None,
    "sync.snapshot_image": None,  # core.sync.snapshot_image: a first download as one file
    "sync.refused_elsewhere": None,
    "records.rederive": None,
    "device.signing": None,
    "oplog.sign": None,
    "action.refused": None,
    "sync.clock_offset": None,
    "sync.acknowledged": None,  # how far another replica holds this one's ops (sync.sent)
    "sync.refused": None,
    # Device identity, enrollment, pairing and the server's own records: the device's or
    # the server's bookkeeping (enrollment codes and pairing codes are their own proof).
    # Issuing a LAN pairing code and revoking a LAN device are gated above (manage_staff);
    # the server's enrollment codes are issued by its operator.
    "device.enroll": None,
    "device.certify": None,
    "device.revoke": None,
    "device.revocations": None,
    "device.names": None,  # the server's list of workstation names, for display
    "enroll_code.issue": None,
    "lan.identity.save": None,
    "lan.ca.create": None,
    "lan.identity.bind": None,
    "lan.revocations.learn": None,
    "lan.pair.redeem": None,
    "lan.device.issue": None,
    "lan.device.seen": None,  # where the CA holder last saw a workstation it let join
    # A scheduled backup is the workstation's own (set up by an admin in the settings);
    # a restore is checked by core.sync.backup itself (an admin's sign-in on the backup).
    "backup.scheduled": None,
    "backup.restore": None,
    "key.store": None,
    "key.promote": None,
    "server.identity": None,
    "server.trust": None,
    "oplog.vouch": None,
    "audit.anchor": None,
    "audit.anchor_refused": None,
    "attachment.read": None,
    "attachment.upload": None,
    # The clinic attachment key is the workstation's own (core/sync/attachments.py); using
    # it is gated by the attachments.list read where files are added, listed or opened.
    "attachment_key.create": None,
    "attachment_key.import": None,
}

# Reads of clinical data (named like actions; core/records read methods check them).
READS: dict[str, Rule] = {
    "chart.open": _p("view_demographics", "open a chart"),
    "access.show": _p("view_demographics", "see who may read a chart"),
    "patients.search": _c("member", "search patients"),
    "patients.duplicates": _c("merge_patients", "review likely duplicate patients"),
    "allergies.list": _p("view_clinical", "see a patient's allergies"),
    "notes.list": _p("view_clinical", "read a patient's notes"),
    "vitals.list": _p("view_clinical", "see a patient's vital signs"),
    "medications.list": _p("view_clinical", "see a patient's medications"),
    "problems.list": _p("view_clinical", "see a patient's problems"),
    "visits.list": _p("view_clinical", "see a patient's visits"),
    "attachments.list": _p("view_clinical", "see a patient's attachments"),
    # A file's plaintext leaving the encrypted cache, audited as printing is.
    "attachment.view": _p("view_clinical", "open a file in a chart"),
    "attachment.save": _p("view_clinical", "save a copy of a file in a chart"),
    "print.summary": _p("view_clinical", "print a patient summary"),
    "print.visit": _p("view_clinical", "print a visit"),
    "print.day": _c("schedule", "print the day's list"),
    "schedule.view": _c("schedule", "see the schedule"),
}

MATRIX: dict[str, Rule | None] = {**ACTIONS, **READS}


class UnknownActionError(NotAllowedError):
    """An action the matrix does not list: refused, so a new action cannot slip past."""


def rule_for(action: str) -> Rule | None:
    """What ``action`` needs (None: nothing). UnknownActionError for an unlisted action."""
    try:
        return MATRIX[action]
    except KeyError:
        raise UnknownActionError(
            f"the action {action!r} is not in the permission matrix "
            "(core/records/permissions.py), so nobody may do it"
        ) from None


# ----- what an op changes -> the permission it needs (remote apply) ----------------------

# Per record type: field or list -> permission (on the record's patient). ``*``: any other.
_PATIENT_FIELDS = {
    "allergies": "record_allergy",
    "allergy_status": "record_allergy",
    "problems": "diagnose",
    "medications": "prescribe",
    "deleted": "delete_patient",
    "merged_into": "merge_patients",
    "merge_reason": "merge_patients",
    "*": "edit_demographics",
}
_NOTE_FIELDS = {
    "signed_at": "sign_note",
    "signed_body": "sign_note",
    "addenda": "sign_note",
    "*": "write_note",
}
OP_FIELDS: dict[str, dict[str, str]] = {
    "patient": _PATIENT_FIELDS,
    "note": _NOTE_FIELDS,
    "observation": {"*": "record_vitals"},
    "encounter": {"*": "manage_visit"},
    "attachment": {"*": "write_note"},
}
# Types on the clinic: needs this permission on clinic:clinic. A break-glass grant is
# opened by the person it is for (break_glass.open, checked by core/records/break_glass.py)
# and then only reviewed: settling a conflict in one is a review. Remote apply judges its
# ops on what they write (core/records/remote_break_glass.py).
OP_CLINIC = {"user": "manage_staff", "clinic": "manage_staff", "appointment": "schedule",
             "break_glass": "review_audit"}  # fmt: skip


def field_permission(type_name: str, field: str) -> tuple[str, str] | None:
    """``(permission, "patient"|"clinic")`` a change of ``field`` of a ``type_name`` record
    needs, or None for a type the matrix does not govern (a newer version's)."""
    if type_name in OP_CLINIC:
        return OP_CLINIC[type_name], "clinic"
    if type_name == "relation":
        return "manage_access", "patient"  # or manage_staff on the clinic: by its object
    fields = OP_FIELDS.get(type_name)
    if fields is None:
        return None
    if type_name == "patient" and field in ("created_at",):
        return "register_patient", "clinic"
    return fields.get(field, fields["*"]), "patient"


# ----- what reading a record's field needs (the conflict inbox shows its values) ---------

# A patient's clinical fields; the patient's other fields are demographics.
CLINICAL_PATIENT_FIELDS = frozenset({"allergies", "allergy_status", "problems", "medications"})
# Types on the clinic: reading them needs this permission on clinic:clinic. A user record
# holds password verifiers and second factors; a break-glass record who opened which chart.
_READ_CLINIC = {
    "appointment": "schedule",
    "user": "manage_staff",
    "clinic": "manage_staff",
    "break_glass": "review_audit",
}


def read_permission(type_name: str, field: str) -> tuple[str, str]:
    """``(permission, "patient"|"clinic")`` reading ``field`` of a ``type_name`` record
    needs: clinical record types and a patient's clinical lists ``view_clinical`` on the
    patient, demographics ``view_demographics``, appointments ``schedule``. A type this
    release does not govern (a newer version's): ``manage_staff``, the administrators who
    deal with what a newer release wrote. (Tuples, ``relation``: by their object, see
    ``authorize.may_read_field``.)"""
    if type_name in _READ_CLINIC:
        return _READ_CLINIC[type_name], "clinic"
    if type_name == "patient":
        clinical = field in CLINICAL_PATIENT_FIELDS
        return ("view_clinical" if clinical else "view_demographics"), "patient"
    if type_name in OP_FIELDS:
        return "view_clinical", "patient"
    return "manage_staff", "clinic"


def describe(permission: str) -> str:
    """``Only a clinician can`` style wording for a permission without an action."""
    return WHO.get(permission, permission)


_ROLE_SETS = (
    ("Admin", frozenset({"admin"})),
    ("Clinician", frozenset({"clinician"})),
    ("Nurse", frozenset({"nurse"})),
    ("Front desk", frozenset({"front_desk"})),
    ("Admin + clinician", frozenset({"admin", "clinician"})),
)
# Which plain roles hold each permission on an ordinary (not restricted) chart: the clinic
# schema's rewrites spelled out for the README (tests/unit/records/test_permission_readme.py
# checks them against the engine).
HOLDERS: dict[str, frozenset[str]] = {
    "member": frozenset(ROLES),
    "view_demographics": frozenset(ROLES),
    "register_patient": frozenset(ROLES),
    "edit_demographics": frozenset({"clinician", "nurse", "front_desk"}),
    "schedule": frozenset({"clinician", "nurse", "front_desk"}),
    **{p: frozenset({"clinician", "nurse"}) for p in (
        "view_clinical", "record_vitals", "record_allergy", "write_note", "manage_visit")},
    **{p: frozenset({"clinician"}) for p in ("sign_note", "prescribe", "diagnose")},
    "manage_access": frozenset({"clinician", "admin"}),
    "delete_patient": frozenset({"admin"}),
    "merge_patients": frozenset({"clinician", "admin"}),
    "manage_staff": frozenset({"admin"}),
    "review_audit": frozenset({"admin"}),
}  # fmt: skip


def markdown_table() -> str:
    """The permission matrix as the README shows it (generated from ``MATRIX``)."""
    head = "| Action | Permission (on) | " + " | ".join(n for n, _ in _ROLE_SETS) + " |"
    rule = "|" + "---|" * (2 + len(_ROLE_SETS))
    lines = [head, rule]
    for action, found in MATRIX.items():
        if found is None:
            continue
        cells = ["yes" if roles & HOLDERS[found.permission] else "-" for _, roles in _ROLE_SETS]
        lines.append(
            f"| `{action}` | {found.permission} ({found.on}) | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)
