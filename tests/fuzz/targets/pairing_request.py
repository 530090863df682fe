"""LAN pairing requests (``POST /v1/pair`` on a workstation's pairing listener): any bytes
as the request body, handed to ``PeerServer.pair`` of a real workstation holding the
clinic CA and a live pairing code (called directly rather than over TLS).

The text ``@PROOF@`` as an input's ``proof`` stands for the right proof of the code for
the input's own ``csr`` (the corpus uses it, so inputs reach the CSR parsing and signing
behind the proof check).

Contract: ``pair`` never raises; it answers 201 (paired), 400 (malformed request or CSR)
or 403 (wrong, expired or used code) with a JSON-serialisable document.
"""

from __future__ import annotations

import json
import os

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.store.database import Database
from core.sync.lan import identity as ident
from core.sync.lan.server import PeerServer

PLACEHOLDER = "@PROOF@"


class Target:
    """A workstation that created its clinic's LAN CA, showing one pairing code."""

    def __init__(self) -> None:
        key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
        records = ClinicRecords(Database.in_memory(key), "admin", FAST_PARAMS)
        # An administrator shows pairing codes (the permission matrix's lan.pair.code).
        records.set_up_clinic("Fuzz Clinic", "admin", "Ada Admin", "fuzzing pairing requests")
        self.db = records.db
        identity = ident.ensure_identity(self.db, "admin")
        self.peer = PeerServer(self.db, identity)
        self.secret = ident.code_secret(ident.new_pair_code(self.db, "admin"))
        # Every input meets the same live code: its state is put back after each one (a
        # wrong proof counts towards burning the codes, a right one uses the code up).
        [(self.codes,)] = self.db.query("SELECT value FROM meta WHERE key = ?", (ident.CODES_KEY,))
        self.fingerprint = self.peer._fingerprint

    def _with_proof(self, data: bytes) -> bytes:
        try:
            request = json.loads(data)
        except (ValueError, RecursionError):
            return data
        if not (isinstance(request, dict) and request.get("proof") == PLACEHOLDER):
            return data
        csr = request.get("csr")
        if not isinstance(csr, str):
            return data
        try:
            request["proof"] = ident.client_proof(self.secret, self.fingerprint, csr)
        except UnicodeEncodeError:
            return data  # no proof can be made for this csr: leave the placeholder
        return json.dumps(request).encode()

    def __call__(self, data: bytes) -> None:
        status, doc = self.peer.pair(self._with_proof(data), "192.0.2.1:40000")
        if status not in (201, 400, 403):
            raise AssertionError(f"pairing answered {status}: {doc}")
        json.dumps(doc)
        # Put back as a pairing code is made (an action the permission matrix lists).
        with self.db.write("admin", "lan.pair.code", "device", "pairing") as tx:
            tx.execute("UPDATE meta SET value = ? WHERE key = ?", (self.codes, ident.CODES_KEY))
