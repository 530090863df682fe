"""Write the seed inputs of every fuzz target into ``tests/fuzz/corpus/<target>/``.

``python -m tests.fuzz.make_corpus``: a few valid inputs per target (real messages, files
and requests made by the code under test), named ``seed-*``; it replaces earlier seeds and
keeps every other file (minimised inputs the fuzzer found, crash regressions named
``crash-*``).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.crypto import certs
from core.crypto.kdf import Argon2Params
from core.crypto.keyslots import make_slot
from core.crypto.streaming import MIN_CHUNK_SIZE, encrypt_stream
from core.keys.keychain import KEYSLOT_FILE_NAME, Keychain
from core.records import replication
from core.store.state_codec import unpack_state
from core.sync import protocol as p
from core.sync.responder import Responder
from tests.fuzz.campaign import CORPUS
from tests.fuzz.clinic import seeded_replica
from tests.fuzz.targets import attachment_chunks, crdt_update

Seeds = Iterator[tuple[str, bytes]]


def _ops_and_states() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    source = seeded_replica("source")
    ops = [p.op_to_wire(op) for op in replication.ops_for(source.db, {}, 100)]
    page = replication.snapshot_page(source.db, None, 100)
    return ops, [p.record_to_wire(r) for r in page.records]


def sync_responder() -> Seeds:
    ops, _ = _ops_and_states()
    yield "pull", p.encode({"type": "pull", "vv": {}, "max_ops": 500, "audit_query": True})
    yield "pull-v1", p.encode({"type": "pull", "vv": {"abc": 1}, "max_ops": 2}, 1)
    head = {"seq": 3, "hash": "ab" * 32}
    yield "pull-head", p.encode({"type": "pull", "vv": {}, "max_ops": 10, "audit_head": head})
    yield "push", p.encode({"type": "push", "ops": ops})
    yield "push-one", p.encode({"type": "push", "ops": ops[:1]})
    yield "snapshot", p.encode({"type": "snapshot", "after": None, "max_records": 2000})
    yield "snapshot-v1", p.encode({"type": "snapshot", "after": "m", "max_records": 1}, 1)
    yield "version-3", p.encode({"type": "pull", "vv": {}, "max_ops": 1}, 3)


def sync_client() -> Seeds:
    server = seeded_replica("server")
    responder = Responder(server.db, "peer", revoked_serials=lambda: [5])
    for name, request in (
        ("ops", {"type": "pull", "vv": {}, "max_ops": 500}),
        ("ops-more", {"type": "pull", "vv": {}, "max_ops": 2}),
        ("snapshot-page", {"type": "snapshot", "after": None, "max_records": 2000}),
        ("snapshot-required-v1", {"type": "snapshot", "after": None, "max_records": 3}),
        ("error-version", {"type": "pull", "vv": {}, "max_ops": 1}),
    ):
        version = 1 if name.endswith("-v1") else 9 if name == "error-version" else 2
        yield name, responder.handle(p.encode(request, version))
    ops, _ = _ops_and_states()
    yield "ack", responder.handle(p.encode({"type": "push", "ops": ops}))
    yield "snapshot-required", p.encode({"type": "snapshot_required", "reason": "old"})


def crdt_update_seeds() -> Seeds:
    source = seeded_replica("source")
    rows = source.db.query("SELECT id, type FROM record_states")
    types = {str(i): str(t) for i, t in rows}
    signed = {
        str(r[0]) for r in source.db.query("SELECT id FROM notes WHERE signed_at IS NOT NULL")
    }
    for n, op in enumerate(replication.ops_for(source.db, {}, 100)):
        kind = types[op.record_id]
        # Creations as new records, later changes against the target's existing ones.
        first = op.seq == min(o.seq for o in replication.ops_for(source.db, {}, 100)
                              if o.record_id == op.record_id)  # fmt: skip
        if kind == "patient":
            selector = 0 if first else 1
        elif kind == "note":
            selector = 4 if first else 2 if op.record_id in signed else 3
        else:
            selector = 5
        yield f"op-{n}-{kind}", crdt_update.join(selector, op.deps, op.update)
    for n, (record_id, state) in enumerate(
        source.db.query("SELECT id, state FROM record_states ORDER BY id")
    ):
        selector = 0 if types[str(record_id)] == "patient" else 4
        yield (
            f"state-{n}",
            crdt_update.join(crdt_update.SNAPSHOT | selector, b"", unpack_state(state)),
        )


def keyslot_file() -> Seeds:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / KEYSLOT_FILE_NAME
        cheap = Argon2Params(iterations=1, lanes=1, memory_kib=1024)
        chain, keys, _ = Keychain.create(path, "admin", "correct horse battery", cheap)
        yield "created", path.read_bytes()
        chain.slots.append(
            make_slot(keys.kek.read(), chain.db_id, "keyring", "os-keyring", os.urandom(32), None)
        )
        chain.slot_verifiers["admin"] = "00" * 32
        chain.save()
        yield "keyring-slot", path.read_bytes()
        keys.close()


def enroll_request() -> Seeds:
    csr = certs.make_csr(certs.new_private_key(), "pending")
    body = {"code": "@CODE@", "device_name": "Front desk", "csr": csr}
    yield "valid", json.dumps(body).encode()
    yield "wrong-code", json.dumps({**body, "code": "AAAA-BBBB-CCCC-DDDD"}).encode()
    yield "bad-csr", json.dumps({**body, "csr": csr.replace("M", "N", 3)}).encode()


def pairing_request() -> Seeds:
    csr = certs.make_csr(certs.new_private_key(), "pending")
    yield "valid", json.dumps({"csr": csr, "proof": "@PROOF@"}).encode()
    yield "wrong-proof", json.dumps({"csr": csr, "proof": "0" * 64}).encode()


def attachment_seeds() -> Seeds:
    for how in range(4):
        yield f"upload-{how}", bytes([1 | how << 1]) + os.urandom(2500)
    yield "upload-empty", b"\x01"
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(b"x" * 3000), out, attachment_chunks.KEK, attachment_chunks.AAD,
                   MIN_CHUNK_SIZE)  # fmt: skip
    yield "stored", b"\x00" + out.getvalue()


SEEDS = {
    "sync_responder": sync_responder,
    "sync_client": sync_client,
    "crdt_update": crdt_update_seeds,
    "keyslot_file": keyslot_file,
    "enroll_request": enroll_request,
    "pairing_request": pairing_request,
    "attachment_chunks": attachment_seeds,
}


def main() -> None:
    """Regenerate every target's seeds."""
    for target, seeds in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in seeds():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(list(folder.iterdir()))} inputs")


if __name__ == "__main__":
    main()
