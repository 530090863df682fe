"""A workstation's pairing listener answers a malformed pairing request with 400, whatever
its bytes (found by fuzzing: tests/fuzz/corpus/pairing_request/crash-*)."""

from __future__ import annotations

import json
import os

import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.store.database import Database
from core.sync.lan import identity as ident
from core.sync.lan.server import PeerServer


@pytest.fixture
def peer() -> PeerServer:
    """A workstation holding its clinic's LAN CA and showing a pairing code (not listening:
    requests are handed to it directly)."""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    db = ClinicRecords(Database.in_memory(key), "admin", FAST_PARAMS).db
    server = PeerServer(db, ident.ensure_identity(db, "admin"))
    ident.new_pair_code(db, "admin")
    return server


@pytest.mark.parametrize(
    "request_doc",
    [
        {"csr": "T", "proof": "ɯROOF@"},  # a non-ASCII proof: hmac.compare_digest raised
        {"csr": "\ud800", "proof": "0" * 64},  # a lone surrogate: encoding the CSR raised
        {"csr": "é", "proof": "0" * 64},
    ],
)
def test_a_request_that_is_not_ascii_is_malformed(
    peer: PeerServer, request_doc: dict[str, str]
) -> None:
    status, doc = peer.pair(json.dumps(request_doc).encode(), "192.0.2.1:40000")
    assert (status, doc) == (400, {"detail": "malformed pairing request"})


def test_a_wrong_proof_is_still_refused_as_a_wrong_code(peer: PeerServer) -> None:
    csr = certs.make_csr(certs.new_private_key(), "pending")
    status, _ = peer.pair(json.dumps({"csr": csr, "proof": "0" * 64}).encode(), "192.0.2.1:1")
    assert status == 403
