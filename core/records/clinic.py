"""Clinical operations: the one write path the UI and the CLI both call.

Each public write is one unit of work (``Database.write``): the row changes, the full-text
index (kept by triggers), and the audit entry commit together. The next layer down can
change how a change is stored (CRDT documents, the op log) without touching any caller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from core.authz.tuples import RelationTuple
from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params, hash_password, verify_password
from core.records import (
    authorize,
    break_glass_audit,
    crdt,
    edit_base,
    merged,
    patient_search,
    relations,
    set_conflicts,
)
from core.records import validation as v
from core.records.changes import change, load_record
from core.records.crdt import RecordDoc
from core.records.duplicates import DuplicatePatientError, find_possible_duplicates
from core.records.edit_base import ChangedField, ChangedSinceOpened
from core.records.errors import (
    AccountDeactivatedError,
    AuthenticationError,
    NotAllowedError,
    NotFoundError,
    UnknownAccountError,
    ValidationError,
)
from core.records.materialize import hlc_time
from core.records.models import (
    CLINICAL_HIDDEN as CLINICAL_HIDDEN,
)
from core.records.models import (
    PATIENT_EDITABLE,
    Allergy,
    Chart,
    Conflict,
    ConflictCandidate,
    ConflictSide,
    ListEdit,
    ListItem,
    Patient,
    PatientSummary,
    User,
    item_label,
)
from core.records.permissions import CLINIC_OBJECT
from core.records.spec import ListSpec
from core.records.types import ALLERGIES, PATIENT, RecordType, record_type
from core.records.workstation_names import workstation_names
from core.store import oplog
from core.store.database import Database, Row, Transaction, utc_now
from core.store.search import fts_prefix_query

# The models' fields are columns of the specs' tables (test_types_schema checks).
_PATIENT_COLS = ", ".join(f.name for f in dataclasses.fields(Patient))
_SUMMARY_COLS = ", ".join(f"p.{f.name}" for f in dataclasses.fields(PatientSummary))
_ALLERGY_COLS = ", ".join(ALLERGIES.column_names)
# Lists and searches show a merged duplicate's survivor only (core/records/merged.py).
_SHOWN = "p.id NOT IN (SELECT value FROM json_each(?))"


_NO_STATUS = crdt.RegisterEntry("", None, "", "", (), ())


def new_id() -> str:
    """A random 64-bit record id, unique across replicas for practical purposes."""
    return secrets.token_hex(8)


def new_user(username: str, full_name: str, role: str, password: str) -> User:
    """Validate a new account's fields and give it an id (nothing is written).

    The id derives from the login name, so the same account created on two offline
    workstations is one record (its fields merge) rather than two clashing ones.
    """
    name = v.username(username)
    v.password(password, (name, full_name))
    return User(
        id=f"user:{name}",
        username=v.username(username),
        full_name=v.text("full_name", full_name) or "",
        role=v.role(role),
        active=True,
    )


def _clean(rtype: RecordType, name: str, value: str | None) -> str | None:
    """A typed value of one field, checked by the type's spec (unchecked fields as given)."""
    found = rtype.field_named(name)
    return value if found is None else found.clean(value)


def patient_value(field: str, text: str | None) -> crdt.Value:
    """``text`` as a patient's ``field`` would store it, or as given when it could not be
    stored (so it differs from every stored value): for comparing, never for writing."""
    try:
        return _clean(PATIENT, field, text)
    except ValidationError:
        return text


def clean_item(spec: ListSpec, values: Mapping[str, str | None]) -> dict[str, crdt.Value]:
    """A list item's values as stored, each checked by the list's spec, in its order."""
    return {f.name: f.clean(values.get(f.name)) for f in spec.items}


def _patient(row: Row) -> Patient:
    return Patient(*row)


def _summary(row: Row) -> PatientSummary:
    return PatientSummary(*row)


_USER_COLS = "id, username, full_name, role, active, must_change_password, totp_secret != ''"
_N_USER_COLS = 7

# Checks an enrolled account's second factor at sign-in: (user, TOTP secret) -> None or raises.
SecondFactor = Callable[[User, str], None]


def _user(r: Row) -> User:
    return User(r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), bool(r[6]))


def verifier_digest(verifier: str) -> str:
    """SHA-256 of a synced password verifier (what a key slot is labelled with)."""
    return hashlib.sha256(verifier.encode()).hexdigest()


class ClinicRecords:
    """Operations on one unlocked clinic database, on behalf of one signed-in person."""

    def __init__(self, db: Database, actor: str, kdf_params: Argon2Params = DEFAULT_PARAMS) -> None:
        self.db = db
        self.actor = actor
        self._kdf_params = kdf_params
        # Work on a chart opened by break-glass is audited as such, whoever calls.
        break_glass_audit.install(db)
        authorize.install(db)

    def require(self, read: str, patient_id: str | None = None) -> None:
        """Refuse (audited) a read the signed-in person may not make (permission matrix
        name, such as ``notes.list``)."""
        authorize.require(self.db, self.actor, read, patient_id)

    def permitted(self, patient_id: str) -> frozenset[str]:
        """Every permission the signed-in person holds on the patient's chart (``{"*"}``
        while permissions are not enforced): what the screens enable."""
        if not authorize.ENFORCING:
            return frozenset({"*"})
        return authorize.permitted(self.db, self.actor, f"patient:{patient_id}")

    def may(self, permission: str, patient_id: str | None = None) -> bool:
        """Whether the signed-in person holds ``permission`` on the patient (or clinic)."""
        return authorize.may(self.db, self.actor, permission, patient_id)

    # ----- clinic and users -------------------------------------------------------------

    def set_up_clinic(self, clinic_name: str, username: str, full_name: str, password: str) -> User:
        """Record the clinic's name and create its first admin (a brand-new database only)."""
        name = v.text("clinic", clinic_name)
        if self.db.query("SELECT 1 FROM users LIMIT 1"):
            raise ValidationError("clinic", "this database already has users")
        user = new_user(username, full_name, "admin", password)
        self.actor = user.username
        with self.db.write(user.username, "clinic.create", "clinic", "clinic") as tx:
            change(tx, self.actor, "clinic", "clinic", self.setter({"name": name}))
            self._insert_user(tx, user, password)
            # A small clinic's founder is its admin AND a clinician (an explicit role
            # tuple, which an admin can revoke once the clinic has other clinicians).
            relations.write_tuple(
                tx, self.actor, RelationTuple(CLINIC_OBJECT, "clinician", user.id), True
            )
        return user

    def _insert_user(
        self, tx: Transaction, user: User, password: str, must_change_password: bool = False
    ) -> None:
        if tx.query("SELECT 1 FROM users WHERE username = ?", (user.username,)):
            raise ValidationError("username", f"{user.username!r} already exists")
        verifier = hash_password(password, self._kdf_params)
        now = utc_now()

        def create(doc: RecordDoc, hlc: str) -> None:
            for field, value in (
                ("username", user.username),
                ("full_name", user.full_name),
                ("role", v.legacy_role(user.role)),
                ("verifier", verifier),
                ("active", True),
                ("created_at", now),
            ):
                crdt.write(doc, field, value, hlc, self.actor)
            if user.role != v.legacy_role(user.role):  # see types.USER's staff_role
                crdt.write(doc, "staff_role", user.role, hlc, self.actor)
            if must_change_password:  # older accounts have no such field: False
                crdt.write(doc, "must_change_password", True, hlc, self.actor)

        change(tx, self.actor, user.id, "user", create)

    def add_user(
        self,
        username: str,
        full_name: str,
        role: str,
        password: str,
        must_change_password: bool = False,
    ) -> User:
        """Create a staff account (no permission check: core/records/staff.py is the way
        people add staff; this is its write, and the way tests and set-up make accounts).
        ``must_change_password``: the password is a first one someone else chose."""
        user = new_user(username, full_name, role, password)
        user = dataclasses.replace(user, must_change_password=must_change_password)
        details = {"role": user.role, "must_change_password": must_change_password}
        with self.db.write(self.actor, "user.create", "user", user.id, details) as tx:
            self._insert_user(tx, user, password, must_change_password)
        return user

    def set_clinic_name(self, name: str) -> None:
        """Name (or rename) the clinic."""
        cleaned = v.text("clinic", name)
        with self.db.write(self.actor, "clinic.rename", "clinic", "clinic") as tx:
            change(tx, self.actor, "clinic", "clinic", self.setter({"name": cleaned}))

    def clinic_name(self) -> str:
        """The clinic's name as set at init."""
        rows = self.db.query("SELECT name FROM clinic WHERE id = 'clinic'")
        return str(rows[0][0]) if rows else ""

    def user(self, username: str) -> User | None:
        """Look up an account by login name."""
        rows = self.db.query(
            f"SELECT {_USER_COLS} FROM users WHERE username = ?", (username.strip().lower(),)
        )
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        """Every account, active or not, by user name."""
        rows = self.db.query(f"SELECT {_USER_COLS} FROM users ORDER BY username")
        return [_user(r) for r in rows]

    def authenticate(self, username: str, password: str) -> User:
        """Check a password against the user's synced Argon2id verifier, and audit sign-in."""
        return self.authenticate_against(username, password)[0]

    def authenticate_against(
        self, username: str, password: str, second_factor: SecondFactor | None = None
    ) -> tuple[User, str]:
        """:meth:`authenticate`, also returning the digest of the verifier the password
        matched (read once, before the slow check: another process may change it meanwhile,
        and a key slot made from this password must be labelled with what it really matched).

        ``second_factor(user, totp_secret)`` is called for an account with TOTP enrolled,
        after the password is checked and before the sign-in is audited; it raises to refuse.
        """
        name = username.strip().lower()
        rows = self.db.query(
            f"SELECT {_USER_COLS}, verifier, totp_secret FROM users WHERE username = ?", (name,)
        )
        if not rows:
            raise UnknownAccountError("wrong user name or password")
        if not verify_password(password, rows[0][_N_USER_COLS]):
            raise AuthenticationError("wrong user name or password")
        r = rows[0]
        user = _user(r)
        if not user.active:
            raise AccountDeactivatedError(
                f"the account {name!r} has been deactivated by the clinic's administrator"
            )
        if user.two_factor and second_factor is not None:
            second_factor(user, str(r[_N_USER_COLS + 1]))
        with self.db.write(name, "user.sign_in", "user", r[0]):
            pass
        return user, verifier_digest(str(r[_N_USER_COLS]))

    def verifier_digest(self, username: str) -> str | None:
        """SHA-256 of the user's synced password verifier: changes whenever their password
        is changed on any workstation (it reveals nothing the key file does not)."""
        rows = self.db.query(
            "SELECT verifier FROM users WHERE username = ?", (username.strip().lower(),)
        )
        if not rows or rows[0][0] is None:
            return None
        return verifier_digest(str(rows[0][0]))

    def change_password(
        self, username: str, new_password: str, must_change_password: bool = False
    ) -> str:
        """Replace a user's verifier (the caller re-wraps their key slot); returns the new
        verifier's digest. ``must_change_password``: someone else chose it (an admin's
        reset, audited as ``user.password_reset``), so the person must change it at their
        next sign-in; otherwise a pending forced change is done."""
        user = self.user(username)
        if user is None:
            raise NotFoundError(f"no user {username!r}")
        v.password(new_password, (user.username, user.full_name))
        verifier = hash_password(new_password, self._kdf_params)
        fields: dict[str, crdt.Value] = {"verifier": verifier}
        if must_change_password or user.must_change_password:
            fields["must_change_password"] = must_change_password
        action = "user.password_reset" if must_change_password else "user.password_change"
        with self.db.write(self.actor, action, "user", user.id) as tx:
            change(tx, self.actor, user.id, "user", self.setter(fields))
        return verifier_digest(verifier)

    # ----- patients ---------------------------------------------------------------------

    def add_patient(
        self,
        family: str,
        given: str,
        birth_date: str,
        sex: str | None = None,
        mrn: str | None = None,
        phone: str | None = None,
        allow_duplicate: bool = True,
        audit_details: dict[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Patient:
        """Register a new patient (``audit_details``: more for the audit entry, such as the
        import it belongs to; ``extra``: fields set by code in the same op, such as an
        import's ``source`` and ``duplicate_of``).

        With ``allow_duplicate=False`` (what a person registering someone gets: the desktop
        dialog and ``careline patient add``), a patient born the same day under the same or a
        similar name refuses the registration with ``DuplicatePatientError`` naming them;
        the check and the write are one transaction.
        """
        fields = {
            "family": v.text("family", family),
            "given": v.text("given", given),
            "birth_date": v.birth_date(birth_date),
            "sex": v.sex(sex),
            "mrn": v.mrn(mrn),
            "phone": v.phone_number("phone", phone),
        }
        pid = new_id()
        fields["created_at"] = utc_now()
        fields |= {k: val for k, val in (extra or {}).items() if val}
        with self.db.write(self.actor, "patient.create", "patient", pid, audit_details) as tx:
            if not allow_duplicate:
                self._check_not_registered(tx, fields)
            self._check_mrn_free(tx, fields["mrn"], pid)
            change(tx, self.actor, pid, "patient", self.setter(fields))
        return self.get_patient(pid)

    def apply(
        self, tx: Transaction, record_id: str, type_name: str, fields: Mapping[str, crdt.Value]
    ) -> None:
        """Set registers of an existing record as one op inside ``tx`` (a ``db.write``)."""
        change(tx, self.actor, record_id, type_name, self.setter(fields))

    def setter(self, fields: Mapping[str, crdt.Value]) -> Callable[[RecordDoc, str], None]:
        """A mutation writing each field, superseding every value this replica has seen."""

        def mutate(doc: RecordDoc, hlc: str) -> None:
            for field, value in fields.items():
                crdt.write(doc, field, value, hlc, self.actor)

        return mutate

    @staticmethod
    def _check_not_registered(tx: Transaction, fields: Mapping[str, str | None]) -> None:
        matches = find_possible_duplicates(
            tx, fields["family"] or "", fields["given"] or "", fields["birth_date"] or ""
        )
        if matches:
            raise DuplicatePatientError(matches)

    @staticmethod
    def _check_mrn_free(tx: Any, mrn: str | None, patient_id: str) -> None:
        if mrn is None:
            return
        # Letter case does not make another MRN (search finds tst-001 and TST-001 alike);
        # NOCASE is exact here, an MRN being ASCII (validation), and has its index (V21).
        clash = tx.query(
            "SELECT mrn FROM patients WHERE mrn = ? COLLATE NOCASE AND id != ? LIMIT 1",
            (mrn, patient_id),
        )
        if clash:
            held = str(clash[0][0])
            written = "" if held == mrn else f" (as {held!r})"
            raise ValidationError("mrn", f"{mrn!r} is already used by another patient{written}")

    def update_patient(
        self,
        patient_id: str,
        changes: Mapping[str, str | None],
        based_on: Mapping[str, crdt.Value] | None = None,
    ) -> Patient:
        """Change demographic fields; the audit entry names the fields, not their values.

        ``based_on``: what each changed field held when the person began the edit (a form's
        base, ``core/records/edit_base.py``). A changed field holding something else now
        (someone saved it since) refuses the whole save with ``ChangedSinceOpened``, checked
        and written in one transaction; a field missing from it has an unknown base. None:
        no base (the command line sets what it is told)."""
        unknown = sorted(set(changes) - set(PATIENT_EDITABLE))
        if unknown:
            raise ValidationError(
                unknown[0], f"is not a patient field (one of {', '.join(PATIENT_EDITABLE)})"
            )
        current = self.get_patient(patient_id)
        cleaned = {field: _clean(PATIENT, field, value) for field, value in changes.items()}
        changed = {f: val for f, val in cleaned.items() if getattr(current, f) != val}
        if not changed:
            return current
        write = self.setter(changed)
        if based_on is not None:
            write = self._unless_changed_since(write, changed, based_on)
        details = {"fields": sorted(changed)}
        try:
            with self.db.write(self.actor, "patient.update", "patient", patient_id, details) as tx:
                if "mrn" in changed:
                    self._check_mrn_free(tx, changed["mrn"], patient_id)
                change(tx, self.actor, patient_id, "patient", write)
        except ChangedSinceOpened as exc:
            raise exc.named(
                self.full_names(f.author for f in exc.fields), workstation_names(self.db)
            ) from None
        return self.get_patient(patient_id)

    def patient_changed_since(
        self, patient_id: str, saving: Mapping[str, str | None], based_on: Mapping[str, crdt.Value]
    ) -> tuple[ChangedField, ...]:
        """What ``update_patient(patient_id, saving, based_on)`` would refuse now, without
        writing: for a form kept as a draft, to tell the person as it comes back."""
        typed = {field: patient_value(field, value) for field, value in saving.items()}
        with self.db.reading() as tx:
            me = oplog.identity(tx)
            doc = load_record(tx, patient_id, "patient", me.client_id).doc
            found = edit_base.changed_since(doc, PATIENT, typed, based_on, me.replica_id)
        named = ChangedSinceOpened(found).named(
            self.full_names(f.author for f in found), workstation_names(self.db)
        )
        return named.fields

    def _unless_changed_since(
        self,
        write: Callable[[RecordDoc, str], None],
        saving: Mapping[str, crdt.Value],
        based_on: Mapping[str, crdt.Value],
    ) -> Callable[[RecordDoc, str], None]:
        """``write``, refused with ``ChangedSinceOpened`` if a field it changes no longer
        holds its base (read from the document inside the write's own transaction)."""

        def checked(doc: RecordDoc, hlc: str) -> None:
            here = hlc.split(".", 2)[2]  # this replica's clock stamps its own writes
            found = edit_base.changed_since(doc, PATIENT, saving, based_on, here)
            if found:
                raise ChangedSinceOpened(found)
            write(doc, hlc)

        return checked

    def full_names(self, usernames: Iterable[str]) -> dict[str, str]:
        """user name -> full name, for those with an account and a full name."""
        names: dict[str, str] = {}
        for username in set(usernames):
            user = self.user(username) if username else None
            if user is not None and user.full_name:
                names[username] = user.full_name
        return names

    def get_patient(self, patient_id: str) -> Patient:
        """Demographics without an audit entry (for the write path's own use and lists)."""
        rows = self.db.query(f"SELECT {_PATIENT_COLS} FROM patients WHERE id = ?", (patient_id,))
        if not rows:
            raise NotFoundError(f"no patient with id {patient_id!r}")
        return _patient(rows[0])

    def open_chart(self, patient_id: str) -> Chart:
        """Open a patient's chart: demographics and allergies, audited as a chart opening."""
        with self.db.read_audited(self.actor, "chart.open", "patient", patient_id) as tx:
            # A merged duplicate's chart is its survivor's (core/records/merged.py).
            shown = merged.survivor(tx, patient_id)
            rows = tx.query(f"SELECT {_PATIENT_COLS} FROM patients WHERE id = ?", (shown,))
            if not rows:
                raise NotFoundError(f"no patient with id {patient_id!r}")
            clinical = authorize.may(tx, self.actor, "view_clinical", patient_id)
            allergies = (
                tx.query(
                    f"SELECT {_ALLERGY_COLS} FROM allergies WHERE {merged.IN_CHART} "
                    "ORDER BY recorded_at, id",
                    (merged.chart_ids_json(tx, shown),),
                )
                if clinical
                else []
            )
        return Chart(_patient(rows[0]), tuple(Allergy(*a) for a in allergies), clinical)

    def count_patients(self) -> int:
        """Number of patients in the clinic."""
        hidden = self._hidden()
        rows = self.db.query(f"SELECT count(*) FROM patients p{hidden[0]}", hidden[1])
        return int(rows[0][0])

    def _hidden(self) -> tuple[str, tuple[str, ...]]:
        """A WHERE clause leaving out merged duplicates (their survivors stand for them)
        and its parameters; none while nothing is merged, the usual case."""
        if not merged.pointers(self.db):
            return "", ()
        return f" WHERE {_SHOWN}", (merged.hidden_json(self.db),)

    def list_patients(self, limit: int = 200, offset: int = 0) -> list[PatientSummary]:
        """Patients in name order, a page at a time."""
        where, params = self._hidden()
        rows = self.db.query(
            f"SELECT {_SUMMARY_COLS} FROM patients p{where} "
            "ORDER BY p.sort_key, p.id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_summary(r) for r in rows]

    def search_patients(
        self,
        text: str,
        limit: int = 50,
        offset: int = 0,
        broad_at: int = patient_search.BROAD_MATCHES,
    ) -> list[PatientSummary]:
        """Prefix search over family and given names, MRN and birth date, in name order.
        A merged duplicate's name or MRN finds its survivor (core/records/merged.py).
        A query matching more than ``broad_at`` patients walks the name order for its page
        instead of sorting every match (core/records/patient_search.py); same results."""
        self.require("patients.search")
        query = fts_prefix_query(text)
        if query is None:
            return self.list_patients(limit, offset)
        if limit > 0 and offset >= 0 and patient_search.broad(self.db, query, broad_at):
            found = patient_search.first_rowids(self.db, query, offset + limit, broad_at)
            if found is not None:
                page = found[offset:]
                rows = self.db.query(
                    f"SELECT {_SUMMARY_COLS} FROM patients p WHERE p.rowid IN "
                    "(SELECT value FROM json_each(?)) ORDER BY p.sort_key, p.id",
                    (json.dumps(page),),
                )
                return [_summary(r) for r in rows]
        return self._sorted_search(query, limit, offset)

    def _sorted_search(self, query: str, limit: int, offset: int) -> list[PatientSummary]:
        """Every match of the FTS5 ``query`` sorted by name, then the page."""
        where, params = self._hidden()
        if not where:
            rows = self.db.query(
                f"SELECT {_SUMMARY_COLS} FROM patients_fts f JOIN patients p ON p.rowid = f.rowid "
                "WHERE patients_fts MATCH ? ORDER BY p.sort_key, p.id LIMIT ? OFFSET ?",
                (query, limit, offset),
            )
            return [_summary(r) for r in rows]
        rows = self.db.query(
            f"SELECT {_SUMMARY_COLS} FROM patients p WHERE p.id IN ("
            "SELECT coalesce(json_extract(?, '$.\"' || q.id || '\"'), q.id) "
            "FROM patients_fts f JOIN patients q ON q.rowid = f.rowid WHERE patients_fts MATCH ?"
            f") AND {_SHOWN} ORDER BY p.sort_key, p.id LIMIT ? OFFSET ?",
            (merged.survivors_json(self.db), query, *params, limit, offset),
        )
        return [_summary(r) for r in rows]

    # ----- allergies --------------------------------------------------------------------

    def add_allergy(
        self,
        patient_id: str,
        substance: str,
        reaction: str | None = None,
        severity: str | None = None,
    ) -> Allergy:
        """Record an allergy on a patient's chart."""
        self.get_patient(patient_id)
        value = clean_item(
            ALLERGIES, {"substance": substance, "reaction": reaction, "severity": severity}
        )
        holder: list[str] = []

        def add(doc: RecordDoc, hlc: str) -> None:
            holder.append(crdt.add(doc, ALLERGIES.name, value, hlc, self.actor))
            # Ends "No known allergies" (core/records/allergy_status.py).
            if (crdt.winner(doc, "allergy_status") or _NO_STATUS).value != "allergies":
                crdt.write(doc, "allergy_status", "allergies", hlc, self.actor)

        details = {"patient_id": patient_id}
        with self.db.write(self.actor, "allergy.add", "patient", patient_id, details) as tx:
            change(tx, self.actor, patient_id, "patient", add)
        return next(a for a in self.allergies(patient_id) if a.id == holder[0])

    def remove_allergy(self, allergy_id: str) -> None:
        """Remove an allergy entered in error (a concurrent re-add elsewhere survives)."""
        rows = self.db.query("SELECT patient_id FROM allergies WHERE id = ?", (allergy_id,))
        if not rows:
            raise NotFoundError(f"no allergy with id {allergy_id!r}")
        patient_id = str(rows[0][0])
        details = {"allergy_id": allergy_id}

        def remove(doc: RecordDoc, hlc: str) -> None:
            crdt.remove(doc, ALLERGIES.name, allergy_id, hlc, self.actor)

        with self.db.write(self.actor, "allergy.remove", "patient", patient_id, details) as tx:
            change(tx, self.actor, patient_id, "patient", remove)

    def allergies(self, patient_id: str) -> list[Allergy]:
        """A patient's allergies, oldest first."""
        self.require("allergies.list", patient_id)
        rows = self.db.query(
            f"SELECT {_ALLERGY_COLS} FROM allergies WHERE {merged.IN_CHART} "
            "ORDER BY recorded_at, id",
            (merged.chart_ids_json(self.db, patient_id),),
        )
        return [Allergy(*r) for r in rows]

    def deleter(self, type_name: str) -> Callable[[RecordDoc, str], None]:
        """A mutation deleting a record, observing every live value it has seen."""
        rtype = record_type(type_name)

        def delete(doc: RecordDoc, hlc: str) -> None:
            live = crdt.all_live(doc)
            seen = [e.write_id for f in rtype.registers for e in live.get(f, [])]
            crdt.write(doc, "deleted", True, hlc, self.actor, observe=seen)

        return delete

    def delete_patient(self, patient_id: str) -> None:
        """Delete a patient's record. An edit made elsewhere concurrently becomes a conflict."""
        self.get_patient(patient_id)
        with self.db.write(self.actor, "patient.delete", "patient", patient_id) as tx:
            change(tx, self.actor, patient_id, "patient", self.deleter("patient"))

    # ----- conflicts --------------------------------------------------------------------

    def review_conflicts(self) -> list[Conflict]:
        """Open conflicts about to be shown to a person: their values are clinical data, so
        the viewing is audited (one ``conflicts.view`` entry naming the records). Only
        those the person may read (:meth:`conflicts`)."""
        found = self.conflicts()
        if found:
            records = sorted({c.record_id for c in found})
            with self.db.write(
                self.actor, "conflicts.view", "conflicts", "inbox", {"records": records}
            ):
                pass
        return found

    def conflicts(self, record_id: str | None = None) -> list[Conflict]:
        """Open conflicts (of one record, or all), oldest record first: only those the
        signed-in person may read every competing value of (the read each field needs:
        ``permissions.read_permission``; on a restricted chart, clinical values for its
        care team only). The others are counted by :meth:`withheld_conflicts`, never
        listed: not even which record they are on."""
        seen: dict[tuple[str, str], bool] = {}
        return [c for c in self._all_conflicts(record_id) if self._may_read(c, seen)[0]]

    def withheld_conflicts(self) -> int:
        """How many open conflicts are on records (or fields) the signed-in person may not
        read: the inbox says that many more wait for someone who may."""
        seen: dict[tuple[str, str], bool] = {}
        return sum(1 for c in self._all_conflicts() if not self._may_read(c, seen)[0])

    def _may_read(self, conflict: Conflict, seen: dict[tuple[str, str], bool]) -> tuple[bool, str]:
        """Whether the signed-in person may read every value of ``conflict`` (the field in
        conflict, and each candidate's: an edit against a deletion names the edit's), and
        who may (the first field refused)."""
        fields = {conflict.field} | {c.field for c in conflict.candidates}
        for name in sorted(fields):
            ok, who = authorize.may_read_field(
                self.db, self.actor, conflict.record_type, conflict.record_id, name, seen
            )
            if not ok:
                return False, who
        return True, ""

    def _all_conflicts(self, record_id: str | None = None) -> list[Conflict]:
        """Every open conflict (of one record, or all), unchecked."""
        sql = "SELECT id, record_id, record_type, field, candidates FROM conflicts"
        params: tuple[Any, ...] = ()
        if record_id is not None:
            sql += " WHERE record_id = ?"
            params = (record_id,)
        rows = self.db.query(sql + " ORDER BY record_id, field", params)
        found = []
        for r in rows:
            stored = json.loads(r[4])
            if isinstance(stored, dict) and stored.get("kind") == "set":
                found.append(_list_conflict(r[0], r[1], r[2], r[3], stored))
                continue
            found.append(
                Conflict(
                    id=r[0],
                    record_id=r[1],
                    record_type=r[2],
                    field=r[3],
                    candidates=tuple(ConflictCandidate(**c) for c in stored),
                )
            )
        return found

    def _readable_conflict(self, conflict_id: str) -> Conflict | None:
        """The open conflict ``conflict_id`` (None: there is none), refused (audited) if the
        signed-in person may not read its values: settling it shows them, and needs more."""
        found = [c for c in self._all_conflicts() if c.id == conflict_id]
        if not found:
            return None
        ok, who = self._may_read(found[0], {})
        if not ok:
            message = f"Only {who} can open this conflict"
            details = {"action": "conflict.resolve", "reason": message}
            self.db.audit_refusal(self.actor, "conflicts", conflict_id, details)
            raise NotAllowedError(message)
        return found[0]

    def resolve_conflict(
        self,
        conflict_id: str,
        choose: str | None = None,
        value: str | None = None,
        keep: Collection[str] | None = None,
    ) -> None:
        """Settle a conflict with one op superseding every live value.

        ``choose`` picks a candidate by id; ``value`` enters a new value instead. For an
        edit-vs-delete conflict, choosing the deletion deletes; anything else keeps the record.
        A list conflict is settled by ``choose="merged"`` (keep the list as shown), ``choose``
        a side's id (apply that side's additions and removals), or ``keep`` the ids of the
        involved items that stay on the list.
        """
        readable = self._readable_conflict(conflict_id)
        found = [] if readable is None else [readable]
        if found and found[0].kind == "set":
            self._resolve_list_conflict(found[0], choose, value, keep)
            return
        if keep is not None:
            raise ValidationError("keep", "only a list conflict is settled by items to keep")
        if (choose is None) == (value is None):
            raise ValidationError("resolution", "give exactly one of a candidate or a new value")
        if not found:
            raise NotFoundError(f"no open conflict with id {conflict_id!r}")
        conflict = found[0]
        chosen = None
        if choose is not None:
            chosen = next((c for c in conflict.candidates if c.id == choose), None)
            if chosen is None:
                ids = ", ".join(c.id for c in conflict.candidates)
                raise ValidationError("choose", f"{choose!r} is not one of the values ({ids})")
        rtype = record_type(conflict.record_type)
        candidates = {c.id: c.value for c in conflict.candidates}
        special = None
        if rtype.settle_hook is not None:  # a conflict the type's own rules raised
            special = rtype.settle_hook(conflict.field, candidates, choose, value, self.actor)
        if special is not None:
            settle = special
        elif conflict.field == "deleted":
            delete = chosen is not None and chosen.field == "deleted"

            def settle(doc: RecordDoc, hlc: str) -> None:
                seen = [e.write_id for f in rtype.registers for e in crdt.live(doc, f)]
                crdt.write(doc, "deleted", delete, hlc, self.actor, observe=seen)

        else:
            new_value = chosen.value if chosen is not None else value
            if chosen is None:  # typed in: checked as the field is everywhere else
                new_value = _clean(rtype, conflict.field, value)

            def settle(doc: RecordDoc, hlc: str) -> None:
                crdt.write(doc, conflict.field, new_value, hlc, self.actor)

        details = {"conflict_id": conflict_id, "field": conflict.field}
        with self.db.write(
            self.actor, "conflict.resolve", conflict.record_type, conflict.record_id, details
        ) as tx:
            change(tx, self.actor, conflict.record_id, conflict.record_type, settle)

    def _resolve_list_conflict(
        self,
        conflict: Conflict,
        choose: str | None,
        value: str | None,
        keep: Collection[str] | None,
    ) -> None:
        """One op on the list: drop and restore involved items, and record the resolution
        (which settles every conflicting change it has seen, on every replica)."""
        if value is not None or (choose is None) == (keep is None):
            raise ValidationError(
                "resolution",
                "a list conflict is settled by 'merged', one side's id, or the items to keep",
            )
        items = {i.id for i in conflict.items}
        if choose is not None:
            presets = {set_conflicts.MERGED: conflict.merged} | {
                s.id: s.keep for s in conflict.sides
            }
            if choose not in presets:
                ids = ", ".join(presets)
                raise ValidationError("choose", f"{choose!r} is not one of the choices ({ids})")
            wanted = set(presets[choose])
        else:
            wanted = set(keep or ())
            unknown = sorted(wanted - items)
            if unknown:
                listed = ", ".join(sorted(items))
                raise ValidationError(
                    "keep", f"{unknown[0]!r} is not one of the items in conflict ({listed})"
                )
        list_field = conflict.field

        def settle(doc: RecordDoc, hlc: str) -> None:
            # Re-derived from the document inside the transaction: what is settled is
            # exactly what is there, even if a sync landed since the conflict was listed.
            current = set_conflicts.analyse(
                list_field,
                crdt.all_history(doc).get(list_field, []),
                crdt.elements(doc, list_field),
            )
            if current is None:
                raise NotFoundError(f"the conflict {conflict.id!r} is already settled")
            dropped: dict[str, dict[str, crdt.Value]] = {}
            restored: dict[str, dict[str, crdt.Value]] = {}
            for eid, (item, present) in current.items.items():
                if present and eid not in wanted:
                    dropped[eid] = crdt.drop(doc, list_field, eid) or item
                elif not present and eid in wanted:
                    crdt.restore(doc, list_field, eid, item, hlc, self.actor)
                    restored[eid] = item
            crdt.record_change(
                doc, list_field, hlc, self.actor, added=restored, removed=dropped, resolution=True
            )

        merged = set(conflict.merged)
        details = {
            "conflict_id": conflict.id,
            "field": list_field,
            "choice": choose if choose is not None else "items",
            "removed": sorted(merged - wanted),
            "restored": sorted(wanted - merged),
        }
        with self.db.write(
            self.actor, "conflict.resolve", conflict.record_type, conflict.record_id, details
        ) as tx:
            change(tx, self.actor, conflict.record_id, conflict.record_type, settle)


def _list_conflict(
    conflict_id: str, record_id: str, record_type: str, list_field: str, stored: dict[str, Any]
) -> Conflict:
    """A list conflict from its stored document (see ``set_conflicts.SetConflict``)."""
    items = tuple(
        ListItem(i["id"], item_label(list_field, i["value"]), i["value"], bool(i["present"]))
        for i in stored["items"]
    )

    def edits(side: dict[str, Any], action: str) -> list[ListEdit]:
        return [
            ListEdit(
                item=e["id"],
                label=item_label(list_field, e["value"]),
                action=action,
                author=e["author"],
                replica=e["replica"],
                time=hlc_time(e["hlc"]),
                hlc=e["hlc"],
            )
            for e in side[action]
        ]

    sides = tuple(
        ConflictSide(s["id"], tuple(edits(s, "added") + edits(s, "removed")), tuple(s["keep"]))
        for s in stored["sides"]
    )
    return Conflict(
        conflict_id, record_id, record_type, list_field, (), kind="set", items=items, sides=sides
    )
