"""Schema migrations, one transaction each; the version is kept in ``schema_version``.

``migrate`` takes the list to apply (``Database.create``/``open`` pass theirs through), so
the server's registry has its own list and tests can inject newer versions.
"""

from __future__ import annotations

from typing import Any

import sqlcipher3

from core.store.errors import MigrationError, SchemaTooNewError
from core.store.search import register_sql_functions
from core.store.state_codec import pack_state

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- This replica's identity: a random id for the op log and a random 52-bit Yjs client id.
INSERT INTO meta (key, value) VALUES ('replica_id', lower(hex(randomblob(8))));
INSERT INTO meta (key, value)
    VALUES ('yjs_client_id', CAST(abs(random()) % 4503599627370496 AS TEXT));

-- The clinic itself (its name), synced like every other record.
CREATE TABLE clinic (id TEXT PRIMARY KEY, name TEXT NOT NULL);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'clinician', 'front_desk')),
    verifier TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    mrn TEXT,
    family TEXT NOT NULL,
    given TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT,
    phone TEXT,
    sort_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX patients_by_name ON patients (sort_key, id);
-- Not UNIQUE: two offline workstations may register the same MRN; both records must survive
-- replication, and the duplicate is shown to a person rather than failing the sync.
CREATE INDEX patients_by_mrn ON patients (mrn) WHERE mrn IS NOT NULL;

-- Full-text index over the encrypted file's own pages: it is encrypted like everything else.
CREATE VIRTUAL TABLE patients_fts USING fts5 (
    family, given, mrn, birth_date,
    content = 'patients', content_rowid = 'rowid',
    prefix = '1 2 3', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER patients_fts_insert AFTER INSERT ON patients BEGIN
    INSERT INTO patients_fts (rowid, family, given, mrn, birth_date)
    VALUES (new.rowid, new.family, new.given, new.mrn, new.birth_date);
END;
CREATE TRIGGER patients_fts_delete AFTER DELETE ON patients BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, family, given, mrn, birth_date)
    VALUES ('delete', old.rowid, old.family, old.given, old.mrn, old.birth_date);
END;
-- Only searchable fields touch the index: a phone number change leaves FTS alone.
CREATE TRIGGER patients_fts_update AFTER UPDATE ON patients
WHEN old.family IS NOT new.family OR old.given IS NOT new.given
    OR old.mrn IS NOT new.mrn OR old.birth_date IS NOT new.birth_date
BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, family, given, mrn, birth_date)
    VALUES ('delete', old.rowid, old.family, old.given, old.mrn, old.birth_date);
    INSERT INTO patients_fts (rowid, family, given, mrn, birth_date)
    VALUES (new.rowid, new.family, new.given, new.mrn, new.birth_date);
END;

-- Records that point at other records carry no FOREIGN KEY: replicas receive records in any
-- order (a snapshot arrives sorted by id), and a patient deleted on one workstation may still
-- have an appointment added on another. Rows of one record's own sets do reference it.
CREATE TABLE appointments (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    reason TEXT,
    status TEXT NOT NULL DEFAULT 'booked'
);
CREATE INDEX appointments_by_patient ON appointments (patient_id, starts_at);

CREATE TABLE encounters (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    reason TEXT,
    clinician TEXT
);
CREATE INDEX encounters_by_patient ON encounters (patient_id, started_at);

CREATE TABLE observations (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    encounter_id TEXT,
    code TEXT NOT NULL,
    value TEXT NOT NULL,
    unit TEXT,
    observed_at TEXT NOT NULL
);
CREATE INDEX observations_by_patient ON observations (patient_id, observed_at);

CREATE TABLE allergies (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    substance TEXT NOT NULL,
    reaction TEXT,
    severity TEXT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX allergies_by_patient ON allergies (patient_id);

CREATE TABLE medications (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    name TEXT NOT NULL,
    dose TEXT,
    route TEXT,
    frequency TEXT,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX medications_by_patient ON medications (patient_id);

CREATE TABLE conditions (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    code TEXT,
    description TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    onset TEXT
);
CREATE INDEX conditions_by_patient ON conditions (patient_id);

CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    encounter_id TEXT,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    signed_at TEXT
);
CREATE INDEX notes_by_patient ON notes (patient_id);

-- A signed note is immutable: later additions are addenda.
CREATE TABLE note_addenda (
    id TEXT PRIMARY KEY,
    note_id TEXT NOT NULL REFERENCES notes (id),
    body TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX note_addenda_by_note ON note_addenda (note_id);

CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX attachments_by_patient ON attachments (patient_id);

-- Every clinical record is a pycrdt document; its encoded state is the source of truth and
-- the tables above are derived from it in the same transaction.
CREATE TABLE record_states (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    state BLOB NOT NULL,
    derived TEXT NOT NULL DEFAULT '{}'  -- digests of the derived rows, to skip unchanged ones
);

-- The op log is the sync queue: one row per change, by origin replica and sequence number.
-- rowid is the local arrival order, which respects causality; ops are sent in that order.
CREATE TABLE oplog (
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    record_type TEXT NOT NULL,
    doc_update BLOB NOT NULL,
    deps BLOB NOT NULL,
    hlc TEXT NOT NULL,
    author TEXT NOT NULL,
    UNIQUE (origin, seq)
);

-- Highest contiguous seq held per origin; ops at or below floor may be absent from this
-- replica's log (it was bootstrapped from a snapshot) and are then served as a snapshot.
CREATE TABLE version_vector (
    origin TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    floor INTEGER NOT NULL DEFAULT 0
);

-- Open conflicts, derived from record documents (two or more live register values).
CREATE TABLE conflicts (
    id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    record_type TEXT NOT NULL,
    field TEXT NOT NULL,
    candidates TEXT NOT NULL
);
CREATE INDEX conflicts_by_record ON conflicts (record_id);

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""


def _fold(column: str) -> str:
    """SQL giving a name without the marks people type or leave out at will (apostrophes,
    hyphens, dots, spaces): ``O'Brien`` -> ``OBrien``. Case and accents are left to the
    index's tokenizer. Must drop exactly ``core.store.search.NAME_JOINERS``."""
    expr = column
    for mark in ("'", "\u2019", "\u2018", "\u02bc", "`", "\u00b4", "-", "\u2010", "\u2011",
                 "\u2013", "\u2014", ".", " "):  # fmt: skip
        quoted = mark.replace("'", "''")
        expr = f"replace({expr}, '{quoted}', '')"
    return expr


# Search finds O'Brien by "obrien" and Jean-Luc by "jeanluc": the full-text index gains a
# ``names`` column holding family and given name without joining marks. Its content is a
# view over the patients table, so the table's columns (and the materializer that writes
# them) stay as they were and FTS5 can still rebuild and check itself from its content.
# Birth dates get an index: a registration looks up patients born the same day.
_V2 = f"""
CREATE INDEX patients_by_birth_date ON patients (birth_date);

DROP TRIGGER patients_fts_insert;
DROP TRIGGER patients_fts_delete;
DROP TRIGGER patients_fts_update;
DROP TABLE patients_fts;
CREATE VIEW patients_search AS
    SELECT rowid AS row_id, family, given, mrn, birth_date,
        {_fold("family")} || ' ' || {_fold("given")} AS names
    FROM patients;
CREATE VIRTUAL TABLE patients_fts USING fts5 (
    family, given, mrn, birth_date, names,
    content = 'patients_search', content_rowid = 'row_id',
    prefix = '1 2 3', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO patients_fts (patients_fts) VALUES ('rebuild');
CREATE TRIGGER patients_fts_insert AFTER INSERT ON patients BEGIN
    INSERT INTO patients_fts (rowid, family, given, mrn, birth_date, names)
    VALUES (new.rowid, new.family, new.given, new.mrn, new.birth_date,
        {_fold("new.family")} || ' ' || {_fold("new.given")});
END;
CREATE TRIGGER patients_fts_delete AFTER DELETE ON patients BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, family, given, mrn, birth_date, names)
    VALUES ('delete', old.rowid, old.family, old.given, old.mrn, old.birth_date,
        {_fold("old.family")} || ' ' || {_fold("old.given")});
END;
CREATE TRIGGER patients_fts_update AFTER UPDATE ON patients
WHEN old.family IS NOT new.family OR old.given IS NOT new.given
    OR old.mrn IS NOT new.mrn OR old.birth_date IS NOT new.birth_date
BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, family, given, mrn, birth_date, names)
    VALUES ('delete', old.rowid, old.family, old.given, old.mrn, old.birth_date,
        {_fold("old.family")} || ' ' || {_fold("old.given")});
    INSERT INTO patients_fts (rowid, family, given, mrn, birth_date, names)
    VALUES (new.rowid, new.family, new.given, new.mrn, new.birth_date,
        {_fold("new.family")} || ' ' || {_fold("new.given")});
END;
"""

# The schedule: an appointment's clinician, when the patient arrived (the waiting room counts
# from it) and why it was cancelled. Older rows keep NULL (no clinician named, never
# checked in by this version). Day and week views read appointments by start time.
_V3 = """
ALTER TABLE appointments ADD COLUMN clinician TEXT;
ALTER TABLE appointments ADD COLUMN arrived_at TEXT;
ALTER TABLE appointments ADD COLUMN cancel_reason TEXT;
CREATE INDEX appointments_by_start ON appointments (starts_at);
CREATE INDEX appointments_by_clinician ON appointments (clinician, starts_at);
"""

# Visits: the appointment a visit was started from, its closing (status derived from
# closed_at; rows of earlier versions are open visits), and when it was recorded (orders
# visits started in the same minute; '' for earlier rows until their next write).
_V4 = """
ALTER TABLE encounters ADD COLUMN appointment_id TEXT;
ALTER TABLE encounters ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
ALTER TABLE encounters ADD COLUMN closed_at TEXT;
ALTER TABLE encounters ADD COLUMN closed_by TEXT;
ALTER TABLE encounters ADD COLUMN created_at TEXT NOT NULL DEFAULT '';
CREATE INDEX encounters_by_status ON encounters (status, started_at);
"""

# Vitals: an observation also keeps the value and unit as typed (102 degF, stored as 38.89
# Cel) and its flag for the patient's age (high, low); a visit lists its observations.
# Existing rows keep NULL there: their documents hold no such values.
_V5 = """
ALTER TABLE observations ADD COLUMN entered_value TEXT;
ALTER TABLE observations ADD COLUMN entered_unit TEXT;
ALTER TABLE observations ADD COLUMN flag TEXT;
CREATE INDEX observations_by_encounter ON observations (encounter_id)
    WHERE encounter_id IS NOT NULL;
"""

# Problems, medications and allergies in use (issue #10, "meds"): a problem's resolved date
# and the visit it was made in; a medication's strength, start and stop, reason, prescriber,
# visit and status (a stopped one stays on the list as history); the patient's allergy
# status ("No known allergies" is an answer, unlike nothing recorded). Added columns are
# NULL on rows made before: items recorded then had none of these values.
_V6 = """
ALTER TABLE conditions ADD COLUMN resolved TEXT;
ALTER TABLE conditions ADD COLUMN encounter_id TEXT;
ALTER TABLE medications ADD COLUMN strength TEXT;
ALTER TABLE medications ADD COLUMN start TEXT;
ALTER TABLE medications ADD COLUMN stop TEXT;
ALTER TABLE medications ADD COLUMN reason TEXT;
ALTER TABLE medications ADD COLUMN prescriber TEXT;
ALTER TABLE medications ADD COLUMN encounter_id TEXT;
ALTER TABLE medications ADD COLUMN status TEXT;
ALTER TABLE patients ADD COLUMN allergy_status TEXT;
"""

# Upgrades without a flag day (issue #11): records this version cannot fully show (a newer
# version's record type, fields, lists or list values), kept in record_states and relayed,
# are listed here with what was not understood ("Update Careline to see N newer records").
# Releases before this one neither kept such records nor listed them, and may have derived
# rows from documents holding values they did not know (a medication's status written by a
# newer workstation): every record is listed for one re-derivation by the upgraded code
# ('recheck'), which core.records.unknown.refresh runs after the database is opened. Every
# later migration that changes what a record type derives (a new column, a value read
# differently) lists that type's records the same way, so their rows and digests follow.
_V7 = """
CREATE TABLE unknown_records (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    parts TEXT NOT NULL
);
INSERT INTO unknown_records (id, type, parts) SELECT id, type, 'recheck' FROM record_states;
"""

# V8: device-signed ops (core.crypto.op_signature, core.records.op_trust). Each op keeps
# the chain value before it, its signature and who signed it ('' for ops made before
# signing: their origin signs its own once it holds a bound certificate, and the clinic
# CA vouches for the rest; see README "Signed ops"). Certificates of the clinic's devices
# travel with the ops they signed and are kept here; ops refused by verification are
# kept aside with their reason, and refusals of our own ops reported by the other side.
_V8 = """
ALTER TABLE oplog ADD COLUMN prev BLOB NOT NULL DEFAULT x'';
ALTER TABLE oplog ADD COLUMN sig BLOB NOT NULL DEFAULT x'';
ALTER TABLE oplog ADD COLUMN signer TEXT NOT NULL DEFAULT '';
CREATE TABLE device_certs (
    replica_id TEXT PRIMARY KEY,
    yjs_client INTEGER NOT NULL,
    serial TEXT NOT NULL,
    certificate TEXT NOT NULL
);
CREATE TABLE quarantine (
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    record_type TEXT NOT NULL,
    doc_update BLOB NOT NULL,
    deps BLOB NOT NULL,
    hlc TEXT NOT NULL,
    author TEXT NOT NULL,
    prev BLOB NOT NULL,
    sig BLOB NOT NULL,
    signer TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_from TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (origin, seq)
);
CREATE TABLE refused_elsewhere (
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    refused_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (origin, seq, refused_by)
);
"""

# V9: staff management (issue #14). The role CHECK gains ``nurse``: SQLite cannot alter a
# CHECK, so the users table is rebuilt with the same rows (nothing references it by rowid).
# A person whose password someone else set must change it at the next sign-in
# (must_change_password; 0 on every older account), and an admin's TOTP secret ('' for
# none). User records are listed for re-derivation, as V7 says every such change must be.
_V9 = """
CREATE TABLE users_v9 (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'clinician', 'nurse', 'front_desk')),
    verifier TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    totp_secret TEXT NOT NULL DEFAULT ''
);
INSERT INTO users_v9 (id, username, full_name, role, verifier, active, created_at, updated_at)
    SELECT id, username, full_name, role, verifier, active, created_at, updated_at FROM users;
DROP TABLE users;
ALTER TABLE users_v9 RENAME TO users;
INSERT INTO unknown_records (id, type, parts) SELECT id, type, 'recheck' FROM record_states
    WHERE type = 'user' ON CONFLICT (id) DO NOTHING;
"""

# Authorization (issue #14): relation tuples are records (type ``relation``, derived into
# ``relations``), and every value a user's role/active or a tuple's ``granted`` register
# has held on this replica is kept in ``authz_writes`` with its HLC, so a remote op is
# judged against the permissions as of its own time (core/records/remote_authz.py). Roles
# beside a person's primary one live on the user record (``other_roles``, derived into
# users.other_roles), which older releases can store.
_V10 = """
CREATE TABLE relations (
    id TEXT PRIMARY KEY,
    object TEXT NOT NULL,
    relation TEXT NOT NULL,
    subject TEXT NOT NULL,
    granted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT,
    updated_at TEXT
);
CREATE INDEX relations_object ON relations (object, relation);
CREATE TABLE authz_writes (
    write_id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT,
    hlc TEXT NOT NULL
);
CREATE INDEX authz_writes_record ON authz_writes (record_id, field, hlc);
ALTER TABLE users ADD COLUMN other_roles TEXT NOT NULL DEFAULT '';
"""


# V11 (issue #14, break-glass and audit review): emergency openings of a chart
# (core/records/break_glass.py), synced like any record; the audit log gains indexes for the
# audit review screens and ``careline audit list`` (by patient or record, by person, by time)
# and a table of the audit entries other workstations proved to the clinic server at sync
# (core/sync/audit_anchor.py): the server keeps them so the clinic's admins can list them.
_V11 = """
CREATE TABLE break_glass (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    username TEXT,
    reason TEXT,
    opened_at TEXT,
    expires_at TEXT,
    reviewed_by TEXT,
    reviewed_at TEXT
);
CREATE INDEX break_glass_by_patient ON break_glass (patient_id, username, expires_at);
CREATE INDEX break_glass_pending ON break_glass (opened_at) WHERE reviewed_at IS NULL;
CREATE INDEX audit_log_by_entity ON audit_log (entity_id, seq);
CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_by_ts ON audit_log (ts);
CREATE TABLE device_audit (
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    details TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device, seq)
);
CREATE INDEX device_audit_by_ts ON device_audit (ts);
"""

# V12 (issue #16, duplicate patients): a duplicate merged into another patient keeps its
# record, pointing at the survivor (core/records/merges.py); reads follow the pointer.
# Patients are listed for one re-derivation (core.records.unknown.refresh): one merged on a
# newer workstation and relayed to this one before its upgrade gets its column filled.
_V12 = """
ALTER TABLE patients ADD COLUMN merged_into TEXT NOT NULL DEFAULT '';
CREATE INDEX patients_merged ON patients (merged_into) WHERE merged_into != '';
INSERT OR IGNORE INTO unknown_records (id, type, parts)
    SELECT id, type, 'recheck' FROM record_states WHERE type = 'patient';
"""

# Attachments in the chart (issue #16): title, date and category, the blob id of the file
# the workstation encrypted and the clinic attachment key it is wrapped for.
_V13 = """
ALTER TABLE attachments ADD COLUMN title TEXT;
ALTER TABLE attachments ADD COLUMN date TEXT;
ALTER TABLE attachments ADD COLUMN category TEXT;
ALTER TABLE attachments ADD COLUMN blob_id TEXT;
ALTER TABLE attachments ADD COLUMN key_id TEXT;
ALTER TABLE attachments ADD COLUMN added_by TEXT;
"""

# V14 (issue #17, a workstation a third the size): the full-text index keeps, per term and
# patient, the columns it occurs in but no longer the positions within them (detail=column),
# and no per-patient token counts (columnsize=0, read only by ranking functions, which
# search does not use; it orders by name). Search asks only for prefixes of single words,
# ANDed, and for a prefix within one column (``names``): both work exactly as before
# (core.store.search never builds a phrase, which detail=column cannot answer). The prefix
# indexes stay: without them a one-letter prefix at 100,000 patients is ten times slower.
# Measured at 10,000 bench patients: 100.8 -> 52.8 bytes per patient (README, Performance).
# Same columns, content and triggers: the table is rebuilt from its content.
_V14 = """
DROP TABLE patients_fts;
CREATE VIRTUAL TABLE patients_fts USING fts5 (
    family, given, mrn, birth_date, names,
    content = 'patients_search', content_rowid = 'row_id',
    prefix = '1 2 3', tokenize = 'unicode61 remove_diacritics 2',
    detail = column, columnsize = 0
);
INSERT INTO patients_fts (patients_fts) VALUES ('rebuild');
"""

# V15 (issue #16, FHIR import): an imported patient names its source (the bundle patient's
# identity, core/records/fhir/importer.py), so a re-run of the same bundle, here or on
# another workstation after sync, finds it; a bundle patient that matched one already
# registered is created beside it naming it in ``duplicate_of``, for the review list.
# Patients are listed for one re-derivation, as in V12 (a newer workstation's import relayed
# here before the upgrade gets its columns filled).
_V15 = """
ALTER TABLE patients ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE patients ADD COLUMN duplicate_of TEXT NOT NULL DEFAULT '';
CREATE INDEX patients_source ON patients (source) WHERE source != '';
CREATE INDEX patients_duplicate_of ON patients (duplicate_of) WHERE duplicate_of != '';
INSERT OR IGNORE INTO unknown_records (id, type, parts)
    SELECT id, type, 'recheck' FROM record_states WHERE type = 'patient';
"""

# V16 (issue #17, incremental sync that does not grow with the clinic): every remote batch
# loads the permission history from the user and tuple records
# (core.records.remote_authz.load_history); with no index on ``type`` that read scanned every
# record state, so syncing one op took 3 ms at 1,000 records of history and 33 ms at 100,000.
# A partial index holds only those two types: a few bytes per account and tuple, nothing per
# patient (the queries name the types with IN, which is what lets SQLite use it).
_V16 = """
CREATE INDEX record_states_authz ON record_states (type) WHERE type IN ('user', 'relation');
"""

# V17 (issue #17, a workstation a third the size, and fewer pages per local write):
# - Record states are kept deflated with a preset dictionary of Careline's field names and
#   entry shape (core.store.state_codec): 341 -> about 146 bytes for a three-field patient.
#   Only the at-rest form changes: every reader inflates, and snapshot pages, ops and peers
#   still see the plain Yjs state. ``careline_pack_state`` is that codec, registered on the
#   connection by ``migrate`` (it leaves a state already packed as it is).
# - The table stays a rowid table: stored by its id alone (WITHOUT ROWID) it skips the
#   index of ids in a compacted copy, but a file filled by a first download was no smaller
#   (2,268 pages against 2,270 at 20,000 records: its in-order inserts leave the id-keyed
#   pages part empty) and a local add wrote 2.6 pages of it against 2.8 (README).
# - The audit log's index by entity id served only the user filter's "failed sign-ins
#   naming this account" branch (the patient filter's OR with the details' patient cannot
#   use an index): a partial index of failed sign-ins does that, and an ordinary write (an
#   add, an edit, a chart view) no longer writes a page of it.
# - The search index merges its per-write segments once two are waiting instead of four
#   (FTS5 ``automerge``): measured on a 20,000-patient replica, 4.1 -> 2.9 pages of it
#   written per local add, with no more segments for a search to read.
# The pages freed are reused by later writes (a VACUUM cannot run inside the migration's
# transaction, and would rewrite the whole file on a workstation's first start).
_V17 = """
UPDATE record_states SET state = careline_pack_state(state);
DROP INDEX audit_log_by_entity;
CREATE INDEX audit_log_failed_sign_ins ON audit_log (entity_id)
    WHERE action = 'user.sign_in_failed';
INSERT INTO patients_fts (patients_fts, rank) VALUES ('automerge', 2);
"""

# V18 (vitals taken in the same minute shown as one made-up set): a reading names the set it
# was recorded in (``set_id``), and its row keeps when it was recorded (``created_at``, the
# document's register): readings recorded before set_id existed share it with their set,
# so core.records.vital_signs.recordings can tell two sets of one minute apart. Observations
# are listed for one re-derivation (core.records.unknown.refresh), as V7 says, which fills
# both columns from the documents.
_V18 = """
ALTER TABLE observations ADD COLUMN set_id TEXT;
ALTER TABLE observations ADD COLUMN created_at TEXT;
INSERT OR IGNORE INTO unknown_records (id, type, parts)
    SELECT id, type, 'recheck' FROM record_states WHERE type = 'observation';
"""

# V19 (a note a nurse wrote and a clinician signed was shown and printed as signed by the
# nurse): a note's row names who signed it (``signed_by``), the author of its signature's
# register entry, which every replica already holds; notes are listed for one
# re-derivation (core.records.unknown.refresh), as V18 does, which fills the column.
_V19 = """
ALTER TABLE notes ADD COLUMN signed_by TEXT;
INSERT OR IGNORE INTO unknown_records (id, type, parts)
    SELECT id, type, 'recheck' FROM record_states WHERE type = 'note';
"""

# V20 (a note started on the wrong chart or visit could never leave it): a draft note can be
# discarded (core.records.notes.Notes.discard writes a ``discarded_at`` register); its row
# says when (``discarded_at``, NULL for a note on the chart), and every listing of notes
# leaves discarded ones out. Notes are listed for one re-derivation, as V19 does: a discard
# relayed by a newer workstation to a replica of the previous release was kept there as a
# field it did not know, and takes effect now.
_V20 = """
ALTER TABLE notes ADD COLUMN discarded_at TEXT;
INSERT OR IGNORE INTO unknown_records (id, type, parts)
    SELECT id, type, 'recheck' FROM record_states WHERE type = 'note';
"""


_V21_VALUES = (
    "careline_search_letters({p}family)",
    "careline_search_letters({p}given)",
    "{p}mrn",  # ASCII by validation (core.records.validation.mrn): nothing to fold
    "{p}birth_date",
    "careline_search_names({p}family, {p}given)",
)


def _v21_row(prefix: str, named: bool = False) -> str:
    """The search index's values for a patients row (``new.``, ``old.`` or none), through
    the functions ``core.store.search.register_sql_functions`` gives every connection;
    ``named``: each as its index column."""
    columns = ("family", "given", "mrn", "birth_date", "names")
    values = (v.format(p=prefix) for v in _V21_VALUES)
    return ", ".join(f"{v} AS {c}" if named else v for v, c in zip(values, columns, strict=True))


# V21 (search found Ødegård by "ødegård" but not by "odegard", nor Łukasz by "lukasz"): the
# tokenizer strips accents, but Ø, Ł, Æ, ß and the like are letters of their own to it. The
# index's content view and triggers now hold every name with them written as plain
# letters (core.store.search.FOLDED_LETTERS, through SQL functions every connection is given
# in ``migrate``) and the words typed are folded the same way, so either spelling finds the
# patient. The names column keeps V2's dropping of apostrophes and hyphens (``search_names``).
# The patients table keeps the names as typed; the index is rebuilt from the new view (it is
# derived locally: nothing synced changes). MRNs are unique regardless of letter case
# (registration checks with NOCASE; MRNs are ASCII): the MRN index compares so, to serve that
# check.
_V21 = f"""
DROP TRIGGER patients_fts_insert;
DROP TRIGGER patients_fts_delete;
DROP TRIGGER patients_fts_update;
DROP VIEW patients_search;
CREATE VIEW patients_search AS
    SELECT rowid AS row_id, {_v21_row("", named=True)} FROM patients;
INSERT INTO patients_fts (patients_fts) VALUES ('rebuild');
CREATE TRIGGER patients_fts_insert AFTER INSERT ON patients BEGIN
    INSERT INTO patients_fts (rowid, family, given, mrn, birth_date, names)
    VALUES (new.rowid, {_v21_row("new.")});
END;
CREATE TRIGGER patients_fts_delete AFTER DELETE ON patients BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, family, given, mrn, birth_date, names)
    VALUES ('delete', old.rowid, {_v21_row("old.")});
END;
CREATE TRIGGER patients_fts_update AFTER UPDATE ON patients
WHEN old.family IS NOT new.family OR old.given IS NOT new.given
    OR old.mrn IS NOT new.mrn OR old.birth_date IS NOT new.birth_date
BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, family, given, mrn, birth_date, names)
    VALUES ('delete', old.rowid, {_v21_row("old.")});
    INSERT INTO patients_fts (rowid, family, given, mrn, birth_date, names)
    VALUES (new.rowid, {_v21_row("new.")});
END;
DROP INDEX patients_by_mrn;
CREATE INDEX patients_by_mrn ON patients (mrn COLLATE NOCASE) WHERE mrn IS NOT NULL;
"""

# V22 ("aase" did not find Åse, nor "mueller" Müller, though registration's duplicate check
# paired them; Ødegård and Łukasz were listed after Z): the search index's ``names`` column
# also holds a name with å, ä, ö, ü and ø spelled out (core.store.search.SPELLED_LETTERS),
# through the same SQL function V21's view and triggers call, whose output for such names
# changed. The index is rebuilt from the view so that every row holds what the function gives
# now (a row's delete must name the words it was indexed with). The patient list's sort key
# reads FOLDED_LETTERS as plain letters (core.store.search.sort_key): the rows whose key
# changes (names with such letters) get the new one. Local and derived: nothing synced
# changes, and no document is read.
_V22 = """
UPDATE patients SET sort_key = careline_sort_key(family, given)
WHERE careline_sort_key(family, given) IS NOT NULL
    AND sort_key IS NOT careline_sort_key(family, given);
INSERT INTO patients_fts (patients_fts) VALUES ('rebuild');
"""

Migrations = tuple[tuple[int, str], ...]
MIGRATIONS: Migrations = (
    (1, _V1), (2, _V2), (3, _V3), (4, _V4), (5, _V5), (6, _V6), (7, _V7), (8, _V8), (9, _V9),
    (10, _V10), (11, _V11), (12, _V12), (13, _V13), (14, _V14), (15, _V15),
    (16, _V16), (17, _V17), (18, _V18), (19, _V19), (20, _V20), (21, _V21), (22, _V22),
)  # fmt: skip
LATEST_VERSION = MIGRATIONS[-1][0]


def current_version(conn: Any) -> int:
    """Schema version recorded in the database (0 for a new one)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _describe(conn: Any) -> str:
    """The database file's path, for messages."""
    rows = conn.execute("PRAGMA database_list").fetchall()
    path = next((str(row[2]) for row in rows if row[1] == "main" and row[2]), "")
    return f"database file {path}" if path else "the in-memory database"


def _pack_state_sql(plain: bytes) -> bytes:
    """``state_codec.pack_state`` for SQL (V17)."""
    return pack_state(bytes(plain))


def migrate(conn: Any, migrations: Migrations = MIGRATIONS) -> int:
    """Bring the schema up to date; refuse a database newer than this code.

    Each migration runs with its version row in one transaction: one that fails is rolled
    back whole (schema and version as before) and its error names the version it was for.
    """
    version = current_version(conn)
    latest = migrations[-1][0]
    if version > latest:
        # Checked before anything is written (schema_version exists, so the CREATE above
        # was a no-op): a newer file is left exactly as it was.
        raise SchemaTooNewError(
            f"{_describe(conn)} has schema version {version}, newer than the {latest} this "
            "Careline supports: it was written by a newer Careline. Update Careline to open "
            "it; the file was not changed"
        )
    # Migrations that rewrite stored record states call the codec from SQL.
    conn.create_function("careline_pack_state", 1, _pack_state_sql, deterministic=True)
    # Every connection to a Careline database is configured through here, and the search
    # index's triggers (V21) call these on every write of a patient.
    register_sql_functions(conn)
    for target, script in migrations:
        if target <= version:
            continue
        # One script, one transaction: a failed migration leaves the previous schema intact.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\n"
                f"INSERT INTO schema_version (version) VALUES ({int(target)});\nCOMMIT;"
            )
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlcipher3.DatabaseError):
                # Not damage: the file is as it was; say what was undone.
                raise MigrationError(
                    f"{_describe(conn)}: migration to schema version {target} failed and was "
                    f"rolled back (the schema is still at version {version}): {exc}"
                ) from exc
            raise
        version = target
    return version
