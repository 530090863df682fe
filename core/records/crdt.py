"""CRDT field kinds on pycrdt documents: multi-value registers, add-wins sets, text.

Each field is a root-level shared type named ``<kind>:<field>``; root types never conflict
with each other, whereas nested maps created concurrently under one key would replace
each other in Yjs and lose data.

* register ``r:<field>`` -- a Map from unique write id to a JSON entry
  ``{"v": value, "h": hlc, "a": author, "s": [ids it supersedes], "o": [ids it observed]}``.
  A write deletes the entries it supersedes, so the map holds exactly the live values; two
  or more live values are a conflict. Values are JSON strings/bools/None: pycrdt returns
  numbers as floats, so ids, doses and MRNs are stored as strings.
* set ``s:<field>`` -- a Map from unique element id to a JSON entry: add-wins observed-remove.
  An add makes a new id; a remove deletes only ids it has seen, so a concurrent add survives.
* text ``t:<field>`` -- a pycrdt Text.

A pycrdt Doc is only ever used on the thread that made it, and only within one function.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map, Text

Value = str | bool | None
RecordDoc = Doc[Any]


@dataclass(frozen=True)
class RegisterEntry:
    """One live (or historic) value of a register."""

    write_id: str
    value: Value
    hlc: str
    author: str
    supersedes: tuple[str, ...]
    observes: tuple[str, ...]

    @property
    def replica(self) -> str:
        """Replica that wrote it (the HLC's last part)."""
        return self.hlc.split(".", 2)[2]


@dataclass(frozen=True)
class SetElement:
    """One element of an add-wins set."""

    element_id: str
    value: dict[str, Value]
    hlc: str
    author: str


def new_write_id() -> str:
    """Unique id for a register write or set element."""
    return secrets.token_hex(8)


def load(state: bytes | None, client_id: int) -> RecordDoc:
    """A document with this replica's Yjs client id, from its encoded state."""
    doc: RecordDoc = Doc(client_id=client_id)
    if state:
        doc.apply_update(state)
    return doc


def _reg(doc: RecordDoc, field: str) -> Map[Any]:
    reg: Map[Any] = doc.get(f"r:{field}", type=Map)
    return reg


def _set(doc: RecordDoc, field: str) -> Map[Any]:
    elements: Map[Any] = doc.get(f"s:{field}", type=Map)
    return elements


def text(doc: RecordDoc, field: str) -> Text:
    """The shared text of a text field."""
    shared: Text = doc.get(f"t:{field}", type=Text)
    return shared


def _entry(write_id: str, raw: Any) -> RegisterEntry:
    data = json.loads(raw)
    return RegisterEntry(
        write_id=write_id,
        value=data["v"],
        hlc=data["h"],
        author=data["a"],
        supersedes=tuple(data.get("s", ())),
        observes=tuple(data.get("o", ())),
    )


def live(doc: RecordDoc, field: str) -> list[RegisterEntry]:
    """Live values of a register, newest first (the first one is the displayed winner)."""
    entries = [_entry(k, v) for k, v in _reg(doc, field).items()]
    return sorted(entries, key=lambda e: (e.hlc, e.write_id), reverse=True)


def winner(doc: RecordDoc, field: str) -> RegisterEntry | None:
    """Deterministic displayed value: newest HLC, then replica id (inside the HLC)."""
    values = live(doc, field)
    return values[0] if values else None


def write(
    doc: RecordDoc,
    field: str,
    value: Value,
    hlc: str,
    author: str,
    supersede: list[str] | None = None,
    observe: list[str] | None = None,
) -> str:
    """Write a value superseding ``supersede`` (default: every live value of the field)."""
    reg = _reg(doc, field)
    gone = list(reg.keys()) if supersede is None else supersede
    write_id = new_write_id()
    entry = {"v": value, "h": hlc, "a": author, "s": sorted(gone)}
    if observe:
        entry["o"] = sorted(observe)
    for old in gone:
        if old in reg:
            del reg[old]
    reg[write_id] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return write_id


def elements(doc: RecordDoc, field: str) -> list[SetElement]:
    """Elements of a set, in id order (deterministic)."""
    out = []
    for key, raw in _set(doc, field).items():
        data = json.loads(raw)
        out.append(SetElement(key, data["v"], data["h"], data["a"]))
    return sorted(out, key=lambda e: (e.hlc, e.element_id))


def add(doc: RecordDoc, field: str, value: dict[str, Value], hlc: str, author: str) -> str:
    """Add an element; returns its id."""
    element_id = new_write_id()
    _set(doc, field)[element_id] = json.dumps(
        {"v": value, "h": hlc, "a": author}, sort_keys=True, separators=(",", ":")
    )
    return element_id


def remove(doc: RecordDoc, field: str, element_id: str) -> bool:
    """Remove an element this replica has seen; False if it is not there."""
    s = _set(doc, field)
    if element_id not in s:
        return False
    del s[element_id]
    return True


# ----- causal readiness -------------------------------------------------------------------


def _read_varuint(data: bytes, pos: int) -> tuple[int, int]:
    """lib0 variable-length unsigned integer (7 bits a byte, high bit = more)."""
    result, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("state vector is truncated")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("state vector integer is too long")


def decode_state_vector(data: bytes) -> dict[int, int]:
    """Yjs state vector ``{client id: clock}`` (pycrdt exposes only the encoded form)."""
    count, pos = _read_varuint(data, 0)
    if count > 100_000:
        raise ValueError("state vector lists too many clients")
    vector: dict[int, int] = {}
    for _ in range(count):
        client, pos = _read_varuint(data, pos)
        clock, pos = _read_varuint(data, pos)
        vector[client] = clock
    if pos != len(data):
        raise ValueError("state vector has trailing bytes")
    return vector


def missing_dependencies(doc: RecordDoc, deps: bytes) -> dict[int, int]:
    """Clients whose changes ``deps`` requires but ``doc`` does not hold yet."""
    have = decode_state_vector(doc.get_state())
    need = decode_state_vector(deps)
    return {c: clock for c, clock in need.items() if have.get(c, 0) < clock}
