"""Every field of a sync message is parsed strictly at the edge, on every replica.

Values an attacker sent to the clinic server, which it accepted and replicated to a
workstation before (issue 12): a negative wall time, non-ASCII digits that ``int()``
accepts, a counter with spaces, control characters and a 1 MB replica part. Each is now
refused whole, with a message naming the field, by the responder (the server and LAN
peers) and by a workstation reading a reply (the sync session); nothing is applied.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from core.records.clinic import ClinicRecords
from core.records.workstation_names import workstation_names
from core.sync import protocol as p
from core.sync.responder import Responder
from core.sync.session import SyncError, sync
from core.sync.transport import LocalTransport
from tests.unit.sync.replicas import full_dump, new_replica

WALL = "1796421966332"
ARABIC_INDIC = "".join(chr(0x0660 + int(d)) for d in WALL)  # int() reads these as WALL

HOSTILE_OP_FIELDS: list[tuple[str, object]] = [
    ("hlc", "-000000000001.000000.3b573299fe18acb0"),  # negative wall time, still 13 chars
    ("hlc", f"{ARABIC_INDIC}.000000.3b573299fe18acb0"),
    ("hlc", f"{WALL}. 00001.3b573299fe18acb0"),  # counter with a space
    ("hlc", f"{WALL}.0_0001.3b573299fe18acb0"),  # int() allows underscores too
    ("hlc", f"{WALL}.000000.3b57\x1b[2J3299"),  # a terminal escape in the replica part
    ("hlc", f"{WALL}.000000.3b573299fe18acb0\n"),  # a trailing newline
    ("hlc", f"{WALL}.000000." + "a" * 1024 * 1024),  # a 1 MB replica part
    ("hlc", f"{WALL}.000000.ab.cd"),  # more parts than an HLC has
    ("hlc", 1796421966332),
    ("origin", "3b573299fe18acb0\n"),  # "$" in a regex would let this through
    ("origin", "３ｂ５７"),  # fullwidth: letters and digits to str.isalnum(), not ASCII
    ("origin", "o" * 129),
    ("record", "patient\x00x"),
    ("record", "ünïcode"),
    ("type", "patient\t"),
    ("author", "eve\x1b[2J"),  # would clear the terminal of whoever reads a history
    ("author", "eve\nadmin signed this note"),  # a forged second line
    ("author", "eve\u202e"),  # right-to-left override (format character)
    ("author", " eve"),
    ("author", "e" * (p.MAX_AUTHOR_CHARS + 1)),
    ("author", 7),
    ("seq", True),
    ("seq", 1.0),
]


@pytest.fixture
def pushed() -> dict[str, Any]:
    """A genuine op of another replica, as the wire carries it."""
    source = new_replica("eve")
    source.add_patient("Pushed", "Op", "1990-01-01")
    reply = json.loads(
        Responder(source.db).handle(p.encode({"type": "pull", "vv": {}, "max_ops": 10}))
    )
    op: dict[str, Any] = reply["ops"][0]
    return op


@pytest.mark.parametrize(("field", "value"), HOSTILE_OP_FIELDS)
def test_the_responder_refuses_a_hostile_op_field_naming_it_and_applies_nothing(
    pushed: dict[str, Any], field: str, value: object
) -> None:
    receiver = new_replica("ann")
    receiver.add_patient("Target", "Record", "1980-01-01")
    before = full_dump(receiver)
    # A good op first: a batch is refused whole, so it must not be applied either.
    later = {**pushed, "seq": 2, field: value}
    reply = json.loads(
        Responder(receiver.db).handle(p.encode({"type": "push", "ops": [pushed, later]}))
    )
    assert reply["type"] == "error" and reply["code"] == "malformed", reply
    assert str(reply["message"]).startswith(f"ops[1].{field} "), reply["message"]
    assert len(reply["message"]) < 400  # the 1 MB value is not echoed back
    assert full_dump(receiver) == before


def _one_op_behind() -> tuple[ClinicRecords, ClinicRecords]:
    """A server replica, and a workstation bootstrapped from it that has yet to pull the
    server's one newer op."""
    server = new_replica("server")
    server.add_patient("Any", "One", "1970-01-01")
    workstation = new_replica("ann")
    sync(workstation.db, LocalTransport(Responder(server.db)), "ann")  # bootstrapped
    server.add_patient("Some", "One", "1970-01-01")
    return server, workstation


@pytest.mark.parametrize(("field", "value"), HOSTILE_OP_FIELDS)
def test_a_workstation_refuses_a_hostile_op_from_the_server_and_applies_nothing(
    pushed: dict[str, Any], field: str, value: object
) -> None:
    class Hostile(LocalTransport):
        """A server whose database holds a hostile op (as it did before the fix)."""

        def request(self, message: bytes) -> bytes:
            reply = json.loads(super().request(message))
            if reply.get("type") == "ops" and reply["ops"]:
                reply["ops"][-1] = {**pushed, field: value}
            return json.dumps(reply).encode()

    server, workstation = _one_op_behind()
    before = full_dump(workstation)
    with pytest.raises(SyncError, match=rf"invalid message: ops\[0\]\.{field} "):
        sync(workstation.db, Hostile(Responder(server.db)), "ann")
    assert full_dump(workstation) == before


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ({"type": "pull", "vv": {"3b573299fe18acb0\n": 1}, "max_ops": 1}, "vv key"),
        ({"type": "pull", "vv": {"٣b57": 1}, "max_ops": 1}, "vv key"),
        ({"type": "pull", "vv": {"o" * 129: 1}, "max_ops": 1}, "vv key"),
        ({"type": "pull", "vv": {"abc": True}, "max_ops": 1}, "vv[abc]"),
        ({"type": "snapshot", "after": "rec\x00", "max_records": 5}, "after"),
        ({"type": "snapshot", "after": "a" * 1024 * 1024, "max_records": 5}, "after"),
        ({"type": "snapshot", "after": 5, "max_records": 5}, "after"),
    ],
)
def test_hostile_request_fields_are_refused_naming_the_field(
    message: dict[str, Any], named: str
) -> None:
    replica = new_replica("ann")
    replica.add_patient("Target", "Record", "1980-01-01")
    before = full_dump(replica)
    reply = json.loads(Responder(replica.db).handle(p.encode(message)))
    assert reply["type"] == "error" and reply["code"] == "malformed", reply
    assert str(reply["message"]).startswith(f"{named} must be"), reply["message"]
    assert full_dump(replica) == before


@pytest.mark.parametrize(
    ("record", "named"),
    [
        ({"id": "rec\n", "type": "patient", "state": "AA=="}, "records[0].id"),
        ({"id": "rec", "type": "pätient", "state": "AA=="}, "records[0].type"),
        ({"id": "rec", "type": "patient", "state": "AA==\n"}, "records[0].state"),
    ],
)
def test_hostile_snapshot_records_are_refused_naming_the_field(
    record: dict[str, Any], named: str
) -> None:
    with pytest.raises(p.ProtocolError, match="^" + re.escape(named) + " "):
        p.records_from_wire([record])


def test_workstation_names_that_cannot_be_shown_are_left_out_and_the_sync_goes_on() -> None:
    """The names a server sends are for display only: an entry with a terminal escape, a
    name no enrollment allows or an id that is not one is left out (and logged), and the
    sync goes on; they must never stop it (whether a character is printable depends on
    the Unicode version of the Python reading it)."""
    good = "3b573299fe18acb0"
    names = {
        good: {"name": "Front desk", "device": "56572a7b0502eb73"},
        "c0ffee00c0ffee00": {"name": "Front\x1b[2Jdesk", "device": "56572a7b0502eb74"},
        "d00dd00dd00dd00d": {"name": "x" * 65, "device": "56572a7b0502eb75"},
        "e0e0e0e0e0e0e0e0": {"name": 7, "device": "56572a7b0502eb76"},
        "f0f0f0f0f0f0f0f0": {"name": "Lab", "device": "bad id\n"},
        "3b57\n": {"name": "Exam room", "device": "56572a7b0502eb77"},
        "a0a0a0a0a0a0a0a0": "Pharmacy",
    }
    server, workstation = _one_op_behind()
    report = sync(workstation.db, _Naming(Responder(server.db), names), "ann", clock_reference=True)
    assert report.pulled == 1
    assert workstation_names(workstation.db) == {good: "Front desk (device 56572a7b)"}
    with pytest.raises(p.ProtocolError, match="device_names must be an object"):
        p.device_names_from_wire(["Front desk"])


def test_only_the_clinic_server_names_the_workstations() -> None:
    """A LAN peer's reply naming workstations is ignored: it could relabel every desk."""
    server, workstation = _one_op_behind()
    sync(
        workstation.db,
        _Naming(Responder(server.db), {"3b573299fe18acb0": {"name": "Boss", "device": "d1"}}),
        "ann",
    )
    assert workstation_names(workstation.db) == {}


class _Naming(LocalTransport):
    """A side whose ops replies carry ``names`` as ``device_names``."""

    def __init__(self, responder: Responder, names: object) -> None:
        super().__init__(responder)
        self.names = names

    def request(self, message: bytes) -> bytes:
        reply = json.loads(super().request(message))
        if reply.get("type") == "ops":
            reply["device_names"] = self.names
        return json.dumps(reply).encode()
