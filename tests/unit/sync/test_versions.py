"""Sync protocol versions: negotiated, with version 1 (Careline 0.1.0) still served.

A version-1 peer refuses record types it does not know, so it is sent only what it can
store; a current client falls back to version 1 with a 0.1.0 responder (emulated here by
its exact refusal; the real release is run in tests/e2e/test_mixed_releases.py).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import op_trust
from core.records.clinic import ClinicRecords
from core.store import op_signer
from core.store.database import Database
from core.sync import protocol as p
from core.sync.responder import Responder
from core.sync.session import SyncError, SyncSession
from tests import clinic_identity
from tests.newer_release import newer_code, newer_replica, refer
from tests.unit.sync.replicas import full_dump, new_replica, pull_from, sync_pair


def _newer_clinic() -> tuple[ClinicRecords, str]:
    """A newer replica whose log holds a patient, then a referral, then an edit."""
    newer = newer_replica("newer")
    with newer_code():
        pid = newer.add_patient("Okafor", "Ada", "1980-02-03").id
        refer(newer, pid, "Cardiology", "Murmur")
        newer.update_patient(pid, {"phone": "555-0101"})
    return newer, pid


class Release010Transport:
    """A 0.1.0 responder as seen on the wire: it speaks version 1 only and refuses any
    other with its own words, in a version-1 envelope without ``speaks``; it keeps no
    signatures, so the ops it sends carry none, and it sends no certificates."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.versions: list[object] = []

    def request(self, message: bytes) -> bytes:
        version = json.loads(message).get("v")
        self.versions.append(version)
        if version != 1:
            return json.dumps({
                "protocol": "careline-sync", "v": 1, "type": "error", "code": "version",
                "message": f"sync protocol version {version!r} is not supported (this side "
                "speaks 1)",
            }).encode()  # fmt: skip
        reply = json.loads(self.responder.handle(message))
        for unknown_to_0_1_0 in ("certificates", "crl", "quarantined"):
            reply.pop(unknown_to_0_1_0, None)
        if "ops" in reply:
            reply["ops"] = [
                {k: v for k, v in op.items() if k not in ("prev", "sig", "signer")}
                for op in reply["ops"]
            ]
        return json.dumps(reply).encode()


def test_a_version_1_peer_gets_every_op_it_can_store_and_is_never_sent_a_newer_type() -> None:
    newer, pid = _newer_clinic()
    other = new_replica("other")
    other.add_patient("Brun", "Lea", "1975-06-07")
    with newer_code():
        pull_from(newer, other)  # the newer replica also holds another origin's ops
    old = new_replica("old")
    old.add_patient("Chen", "Wei", "1990-01-01")

    report = pull_from(old, newer, protocol=1)

    assert report.protocol == 1
    types = {str(r[0]) for r in old.db.query("SELECT DISTINCT record_type FROM oplog")}
    assert "referral" not in types
    # The newer origin stops before its referral; the other origin arrives whole.
    names = {p.family for p in old.list_patients()}
    assert names == {"Okafor", "Brun", "Chen"}
    assert old.get_patient(pid).phone is None  # the edit after the referral waits
    again = pull_from(old, newer, protocol=1)
    assert again.pulled == 0  # and asking again sends nothing it cannot store


def test_a_version_1_peer_joining_a_clinic_with_newer_types_is_told_which_release() -> None:
    newer, _ = _newer_clinic()
    fresh = new_replica("fresh")
    before = full_dump(fresh)

    with pytest.raises(SyncError, match=r"update Careline on this workstation to 0\.2\.0"):
        pull_from(fresh, newer, protocol=1)
    assert full_dump(fresh) == before


def _release_010_server() -> ClinicRecords:
    """A clinic server's replica as Careline 0.1.0 left it: its ops unsigned. (It trusts the
    test clinic's CA only so that, standing in for 0.1.0 here, it accepts the pushes.)"""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    server = ClinicRecords(Database.in_memory(key), "server", FAST_PARAMS)
    with server.db.write("admin", "test.setup", "device", "server") as tx:
        op_trust.join_clinic(tx, clinic_identity.test_ca()[1])
    return server


def test_a_current_client_falls_back_to_version_1_with_a_0_1_0_server() -> None:
    server = _release_010_server()
    server.add_patient("Brun", "Lea", "1975-06-07")
    newer, pid = _newer_clinic()
    client = new_replica("client")
    client.add_patient("Chen", "Wei", "1990-01-01")
    pull_from(client, newer)  # the client relays a newer workstation's ops, referral too
    wire = Release010Transport(Responder(server.db, "peer"))

    report = SyncSession(client.db, wire, client.actor).run()

    assert wire.versions[0] == p.VERSION and set(wire.versions[1:]) == {1}
    assert report.protocol == 1
    # Everything the old server can store went; the referral and the edit made after it
    # wait for the server's upgrade, counted for the person at the workstation.
    assert {p.family for p in server.list_patients()} == {"Okafor", "Brun", "Chen"}
    assert server.get_patient(pid).phone is None
    assert not server.db.query("SELECT 1 FROM record_states WHERE type = 'referral'")
    assert report.held_back == 2
    # What the old server sends is unsigned: kept aside here, not applied, until the
    # server, upgraded, vouches for the ops it holds (signed by the clinic CA).
    assert {p.family for p in client.list_patients()} == {"Okafor", "Chen"}
    assert report.quarantined == 1
    [held] = op_trust.quarantined(client.db)
    assert (held.record_type, held.reason) == ("patient", "it carries no signature")
    _upgrade_to_clinic_server(server)
    sync_pair(client, server)
    assert {p.family for p in client.list_patients()} == {"Okafor", "Brun", "Chen"}
    assert op_trust.quarantined(client.db) == []


def _upgrade_to_clinic_server(replica: ClinicRecords) -> None:
    """The replica becomes the clinic server of the test clinic, holding its CA key: it
    signs what it holds unsigned (core.store.op_signer.sign_pending)."""
    ca_key, ca_pem = clinic_identity.test_ca()
    with replica.db.write("admin", "test.upgrade", "device", "server") as tx:
        op_signer.install(tx, "clinic-ca", certs.private_key_pem(ca_key).decode(), ca_pem)
    assert op_signer.sign_pending(replica.db, "admin") > 0


class _Replies:
    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply

    def request(self, message: bytes) -> bytes:
        return json.dumps({"protocol": "careline-sync", **self.reply}).encode()


def test_with_no_version_in_common_the_message_names_the_release_needed() -> None:
    replica = new_replica("ws")
    replica.add_patient("Brun", "Lea", "1975-06-07")
    before = full_dump(replica)
    far_newer = _Replies({
        "v": 2, "type": "error", "code": "version", "speaks": [3, 4], "release": "0.5.1",
        "needs_release": "0.4.0", "message": "sync protocol version 2 is not supported",
    })  # fmt: skip

    with pytest.raises(SyncError) as caught:
        SyncSession(replica.db, far_newer, replica.actor).run()

    assert str(caught.value) == (
        "the other side runs Careline 0.5.1, which no longer talks to Careline "
        f"{p.RELEASE}: update Careline on this computer to 0.4.0 or newer"
    )
    assert full_dump(replica) == before


# Version 0 never existed: that refusal is written in the oldest version spoken.
@pytest.mark.parametrize(("version", "envelope", "needs"), [(3, 3, None), (0, 1, "0.1.0")])
def test_a_request_in_a_version_not_spoken_is_answered_in_its_own_version(
    version: int, envelope: int, needs: str | None
) -> None:
    responder = Responder(new_replica("server").db)
    raw = json.dumps({"protocol": "careline-sync", "v": version, "type": "pull"}).encode()

    reply = json.loads(responder.handle(raw))

    assert (reply["v"], reply["type"], reply["code"]) == (envelope, "error", "version")
    assert reply["speaks"] == list(p.SPEAKS)
    assert reply.get("needs_release") == needs
    assert f"speaks versions {min(p.SPEAKS)} to {max(p.SPEAKS)}" in reply["message"]
