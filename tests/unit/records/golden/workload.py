"""A fixed history of ops and the canonical dump of everything materialized from it.

The ops (``ops.json``) were recorded once from three replicas working through the public
API: patients (accented names for the sort key and the full-text index), allergies,
problems and medications added and removed, notes edited, signed and given addenda,
appointments, encounters, observations and attachments, users and the clinic, then
concurrent edits on two replicas that raise register, list, edit-vs-delete and
signed-note-body conflicts, some resolved on a third. Replaying those exact bytes on a
fresh replica must give exactly ``dump.txt``: every derived table, the conflicts and the
record documents, after every batch (``steps``) and in full at the end. So a reshaping of
the record-type code that changes one materialized byte fails
``test_golden_materialization``.

Regenerate (only when derived rows are meant to change, and say so in the commit):

    .venv/bin/python -m tests.unit.records.golden.workload --record   # new ops (random ids)
    .venv/bin/python -m tests.unit.records.golden.workload --dump     # dump of the same ops
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.notes import Notes
from core.records.replication import apply_ops
from core.store import oplog
from core.store.state_codec import unpack_state
from tests.clinic_identity import vouched
from tests.unit.sync.replicas import materialized, new_replica, sync_pair

HERE = Path(__file__).parent
OPS_FILE = HERE / "ops.json"
DUMP_FILE = HERE / "dump.txt"
# Replayed in batches of these sizes, in turn: single ops and batches of many (the batched
# write path groups statements across records), so stale-digest skips are exercised too.
BATCH_SIZES = (1, 2, 5, 1, 13, 3, 40)


def _record() -> list[oplog.Op]:
    """Run the workload on three fresh replicas; every op, in an order a replica received them."""
    a, b, c = new_replica("admin"), new_replica("admin"), new_replica("admin")
    a.set_up_clinic("Golden Clinic", "admin", "Ada Admin", "correct horse")
    a.add_user("drlee", "Dr Lee", "clinician", "battery staple")
    zoe = a.add_patient("Ångström", "Zoë", "1980-02-29", "female", "MRN-1", "555-0101")
    smith = a.add_patient("smith", "John", "1975-06-01", "male", None, None)
    muller = a.add_patient("Müller", "Jürgen", "1990-12-31", None, "MRN-3", "555-0103")
    gone = a.add_patient("Zed", "Gone", "2000-01-01")
    a.update_patient(smith.id, {"family": "Smith", "phone": "555-0102"})
    a.add_allergy(zoe.id, "Penicillin", "hives", "severe")
    latex = a.add_allergy(zoe.id, "Latex", None, "mild")
    a.add_allergy(muller.id, "Peanuts", "anaphylaxis", "severe")
    a.remove_allergy(latex.id)
    ea = ClinicalEntries(a)
    ea.add_to_list(zoe.id, "problems", {"description": "Asthma", "code": "J45"})
    hyp = ea.add_to_list(zoe.id, "problems", {"description": "Hypertension", "status": "active"})
    ea.remove_from_list(zoe.id, "problems", hyp)
    met = ea.add_to_list(
        zoe.id, "medications", {"name": "Metformin", "dose": "500 mg", "route": "oral"}
    )
    ea.add_to_list(zoe.id, "medications", {"name": "Salbutamol", "frequency": "as needed"})
    notes_a = Notes(a)
    signed = notes_a.create(zoe.id, "Seen for wheeze.")
    notes_a.edit(signed.id, "Seen for wheeze. Chest clear.")
    notes_a.sign(signed.id)
    notes_a.add_addendum(signed.id, "Peak flow 420 L/min.")
    racing = notes_a.create(smith.id, "Draft: knee pain.")
    appt = ea.add(
        "appointment",
        zoe.id,
        {"starts_at": "2026-12-01T09:00", "ends_at": "2026-12-01T09:15", "status": "booked"},
    )
    kept_appt = ea.add(
        "appointment",
        smith.id,
        {
            "starts_at": "2026-12-02 10:30",
            "ends_at": "2026-12-02T10:45",
            "reason": "Knee",
            "status": "booked",
        },  # fmt: skip,
    )
    ea.update("appointment", kept_appt, {"status": "arrived"})
    enc = ea.add("encounter", zoe.id, {"started_at": "2026-12-01T09:05", "reason": "wheeze"})
    ea.add(
        "observation",
        zoe.id,
        {
            "encounter_id": enc,
            "code": "bp-systolic",
            "value": "128",
            "unit": "mmHg",
            "observed_at": "2026-12-01T09:10",
        },
    )
    obs = ea.add(
        "observation", zoe.id, {"code": "temp", "value": "37.2", "observed_at": "2026-12-01T09:11"}
    )
    ea.delete("observation", obs)
    digest = hashlib.sha256(b"scan").hexdigest()
    ea.add(
        "attachment",
        zoe.id,
        {"filename": "scan.pdf", "media_type": "application/pdf", "size": "4", "sha256": digest},
    )
    a.delete_patient(gone.id)  # saw every value: no conflict, the row goes
    sync_pair(b, a)
    sync_pair(c, a)

    # Concurrent changes on a and b, neither having seen the other's.
    eb = ClinicalEntries(b)
    a.update_patient(zoe.id, {"family": "Ångström-Lind"})
    b.update_patient(zoe.id, {"family": "Angstrom"})
    a.update_patient(muller.id, {"phone": "555-9999"})
    b.update_patient(muller.id, {"phone": "555-9999"})  # the same fix typed twice: no conflict
    a.update_patient(smith.id, {"phone": "555-0200"})
    b.update_patient(smith.id, {"phone": "555-0300", "sex": "other"})  # phone stays open
    a.add_allergy(smith.id, "Penicillin", "anaphylaxis", "severe")
    b.add_allergy(smith.id, "penicillin", "rash", "mild")
    a.delete_patient(muller.id)
    b.update_patient(muller.id, {"given": "Juergen"})
    ea.delete("appointment", appt)
    eb.update("appointment", appt, {"reason": "Follow-up"})
    ea.remove_from_list(zoe.id, "medications", met)
    eb.add_to_list(zoe.id, "medications", {"name": "metformin", "dose": "1 g"})
    ea.add_to_list(smith.id, "problems", {"description": "Gout", "code": "M10"})
    eb.add_to_list(smith.id, "problems", {"description": "Gouty arthritis", "code": "m10"})
    notes_a.sign(racing.id)
    Notes(b).edit(racing.id, "Draft: knee pain, worse on stairs.")
    b.set_clinic_name("Golden Clinic North")
    sync_pair(a, b)
    sync_pair(b, a)
    sync_pair(c, a)

    # c settles two of them; the rest stay open.
    family = next(x for x in c.conflicts() if x.field == "family")
    c.resolve_conflict(family.id, value="Ångström Lind")
    allergy = next(x for x in c.conflicts() if x.field == "allergies")
    c.resolve_conflict(allergy.id, choose="merged")
    c.add_allergy(zoe.id, "Aspirin", None, "moderate")
    sync_pair(a, c)
    return _ops(a)


def _ops(replica: ClinicRecords) -> list[oplog.Op]:
    rows = replica.db.query(
        "SELECT origin, seq, record_id, record_type, doc_update, deps, hlc, author "
        "FROM oplog ORDER BY rowid"
    )
    return [oplog.Op(r[0], r[1], r[2], r[3], bytes(r[4]), bytes(r[5]), r[6], r[7]) for r in rows]


_BYTES = ("update", "deps")
_SIGNATURE = ("prev", "sig", "signer")


def _encode(ops: list[oplog.Op]) -> str:
    out = []
    for op in ops:
        # Content only: signatures are made at replay, by this run's test clinic CA.
        fields = {k: v for k, v in dataclasses.asdict(op).items() if k not in _SIGNATURE}
        out.append({**fields, **{k: base64.b64encode(fields[k]).decode() for k in _BYTES}})
    return json.dumps(out, indent=0)


def load_ops() -> list[oplog.Op]:
    """The recorded ops, byte for byte."""
    return [
        oplog.Op(**{**d, **{k: base64.b64decode(d[k]) for k in _BYTES}})
        for d in json.loads(OPS_FILE.read_text())
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "b64:" + base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot dump {type(value).__name__}")


def canonical_dump(replica: ClinicRecords) -> str:
    """Every derived table (``materialized``: all but the per-replica op log, audit log,
    meta and version bookkeeping), record states' exact bytes, and the conflict inbox as
    the API reads it, one ``table<TAB>row`` line each in a stable order."""
    lines = []
    for table, rows in sorted(materialized(replica).items()):
        lines += [f"{table}\t{json.dumps(list(row), default=_plain)}" for row in rows]
    for rid, state in replica.db.query("SELECT id, state FROM record_states ORDER BY id"):
        lines.append(f"record_state_bytes\t{json.dumps([rid, _plain(unpack_state(state))])}")
    for conflict in replica.conflicts():
        lines.append(f"inbox\t{json.dumps(conflict.to_dict(), sort_keys=True)}")
    return "\n".join(lines) + "\n"


def replay(ops: list[oplog.Op]) -> tuple[list[str], str]:
    """Apply ``ops`` to a fresh replica in batches: the dump's digest after each batch,
    and the full dump at the end."""
    replica = new_replica("golden")
    # Recorded before ops were signed: replayed as the clinic server vouches for such ops
    # (signed by the clinic CA). Signatures are not derived state: the dump is unchanged.
    ops = vouched(ops)
    steps, start, turn = [], 0, 0
    while start < len(ops):
        size = BATCH_SIZES[turn % len(BATCH_SIZES)]
        apply_ops(replica.db, ops[start : start + size], "golden")
        steps.append(hashlib.sha256(canonical_dump(replica).encode()).hexdigest()[:16])
        start, turn = start + size, turn + 1
    final = canonical_dump(replica)
    replica.db.close()
    return steps, final


def golden_text(steps: list[str], final: str) -> str:
    """What ``dump.txt`` holds: per-batch digests, then the final dump."""
    return "steps\t" + " ".join(steps) + "\n" + final


def main(argv: list[str]) -> None:
    """``--record`` writes new ops; ``--dump`` (also implied) writes their dump."""
    if "--record" in argv:
        OPS_FILE.write_text(_encode(_record()) + "\n")
    steps, final = replay(load_ops())
    DUMP_FILE.write_text(golden_text(steps, final))


if __name__ == "__main__":
    main(sys.argv[1:])
