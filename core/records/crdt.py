"""CRDT field kinds on pycrdt documents: multi-value registers, add-wins sets, text.

Registers and sets live in two root Maps, keyed ``<field>/<unique id>``. Root types never
conflict; nested maps created concurrently under one key would replace each other in Yjs
and lose data, and one flat map is read in a single call instead of one per field.

* register (root ``r``) -- key ``<field>/<write id>``, a JSON entry
  ``{"v": value, "h": hlc, "a": author, "s": [ids it supersedes], "o": [ids it observed]}``.
  A write deletes the entries it supersedes, so the map holds exactly the live values; two
  or more live values of a field are a conflict. Values are JSON strings/bools/None: pycrdt
  returns numbers as floats, so ids, doses and MRNs are stored as strings.
* set (root ``s``) -- key ``<field>/<element id>``: add-wins observed-remove. An add makes a
  new id; a remove deletes only ids it has seen, so a concurrent add survives.
* set history (root ``h``) -- key ``<field>/<change id>``, one JSON entry per change of a
  set, written in the same update as the change: ``{"h": hlc, "a": author, "p": [change ids
  it observed as latest], "+": {element id: value}, "-": {element id: value}}`` (``"r": 1``
  marks a conflict resolution; ``"e": visit id`` names the visit a change was made in, as a
  medication stopped or a problem resolved during one: releases before it ignore the key;
  ``"rx": 1`` says the change's author prescribed the active medication it adds, a start
  or a dose change by the prescribing clinician rather than one recorded from elsewhere:
  ignored by releases before it the same way).
  The parents make a causal graph, so every replica can tell which changes were concurrent;
  removed values are kept there so a conflict can show them.
* text ``t:<field>`` -- a pycrdt Text.

A pycrdt Doc is only ever used on the thread that made it, and only within one function.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import logging
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map, Text

from core.config.logs import exception_detail

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


@dataclass(frozen=True, eq=False)
class SetChange:
    """One recorded change of a set: what it added and removed, and what it had seen.

    Compared and hashed by identity: parsed entries are cached, so one entry is one object.
    """

    change_id: str
    hlc: str
    author: str
    parents: tuple[str, ...]
    added: dict[str, dict[str, Value]]
    removed: dict[str, dict[str, Value]]
    resolution: bool
    # The visit (encounter id) the change was made in, if it names one (``"e"``).
    visit: str | None = None
    # Its author prescribed the active medication it adds (``"rx"``).
    prescribed: bool = False

    @property
    def replica(self) -> str:
        """Replica that made it (the HLC's last part)."""
        return self.hlc.split(".", 2)[2]


def new_write_id() -> str:
    """Unique id for a register write or set element."""
    return secrets.token_hex(8)


class InvalidUpdateError(ValueError):
    """Bytes given as a Yjs update (an op's update, a snapshot's record state) that pycrdt
    cannot decode or integrate, or a document it cannot encode again once they are in it.

    The message names what, in Careline's words (:func:`invalid_update`), never pycrdt's own
    text: that is yrs's internals at best ("Cannot decode update: while trying to read more
    data ..."), and a panic's text may quote the content (a string sliced mid-character
    quotes the string). Refusals built on it reach the refusing side's log, the peer's reply
    and from there the peer's log and screen (``materialize.content_problem``)."""


# What every refusal of such bytes says.
NOT_YJS = "is not a valid Yjs update"

_log = logging.getLogger(__name__)


def invalid_update(what: str, exc: BaseException) -> InvalidUpdateError:
    """The error for ``what`` ("the update", "the record's state") that pycrdt refused or
    panicked on with ``exc``. pycrdt's own text goes to the debug log, and only where the
    process keeps exception messages (``core.config.logs.exception_detail``)."""
    _log.debug("pycrdt refused %s: %s", what, exception_detail(exc))
    return InvalidUpdateError(f"{what} {NOT_YJS}")


@contextlib.contextmanager
def refusing_panics(
    error: type[Exception] = ValueError, what: str = "the update"
) -> Iterator[None]:
    """Raise ``error`` where pycrdt's Rust core panics on a malformed document.

    Some malformed updates make yrs (0.28) panic, on applying them or later on encoding the
    document (a division by zero in its block store); pyo3 raises that as PanicException, a
    BaseException nothing would otherwise catch. The document must then be discarded."""
    try:
        yield
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise error(str(invalid_update(what, exc))) from None


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is pycrdt's PanicException (see ``refusing_panics``)."""
    return type(exc).__name__ == "PanicException"


def apply_update(doc: RecordDoc, update: bytes, what: str = "the update") -> None:
    """Apply a peer's Yjs update; InvalidUpdateError (a ValueError) naming ``what`` if it is
    malformed (pycrdt's own refusal, or a panic)."""
    try:  # ``refusing_panics``, inlined: this runs for every op applied
        doc.apply_update(update)
    except ValueError as exc:  # pycrdt's "Cannot decode update: ..."
        raise invalid_update(what, exc) from None
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise invalid_update(what, exc) from None


def load(state: bytes | None, client_id: int) -> RecordDoc:
    """A document with this replica's Yjs client id, from its encoded state."""
    doc: RecordDoc = Doc(client_id=client_id)
    if state:
        doc.apply_update(state)
    return doc


def empty(client_id: int) -> RecordDoc:
    """A new, empty document with this replica's Yjs client id."""
    doc: RecordDoc = Doc(client_id=client_id)
    return doc


def _native(txn: Any) -> Any:
    """The Rust transaction inside an entered pycrdt transaction: reads made on pycrdt's
    Rust objects with it skip the Python wrappers (pycrdt's own methods make the very same
    calls), which cost more than the reads on the hot paths below. These attributes are
    pycrdt's internals: pyproject.toml bounds pycrdt below 0.15 for that reason, and every
    path through them runs in the golden, differential and convergence tests."""
    return txn._txn


def load_update(state: bytes, client_id: int) -> RecordDoc:
    """A document with this replica's Yjs client id, from a peer's encoded state: ``empty``
    then ``apply_update`` (the same one pycrdt transaction, the same ValueError for a
    malformed state), minus pycrdt's Python wrapper around the update call."""
    doc: RecordDoc = Doc(client_id=client_id)
    try:  # ``refusing_panics``, inlined: this runs for every record of a first download
        with doc.transaction() as txn:
            doc._doc.apply_update(_native(txn), state)
    except ValueError as exc:
        raise invalid_update(STATE, exc) from None
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise invalid_update(STATE, exc) from None
    return doc


# What a snapshot's record state is called in refusals.
STATE = "the record's state"


def load_with_vector(state: bytes | None, client_id: int) -> tuple[RecordDoc, bytes]:
    """``load``, and the loaded document's state vector, in one pycrdt transaction (the
    vector is complete as soon as the update is integrated; commit only tidies)."""
    doc: RecordDoc = Doc(client_id=client_id)
    # pycrdt's Rust calls under its Python wrappers (see ``_native``): this runs for every
    # record an op of a remote batch touches.
    with doc.transaction() as txn:
        native = _native(txn)
        if state:
            doc._doc.apply_update(native, state)
        vector: bytes = doc._doc.get_state(native)
    return doc, vector


def _registers(doc: RecordDoc) -> Map[Any]:
    reg: Map[Any] = doc.get("r", type=Map)
    return reg


def _sets(doc: RecordDoc) -> Map[Any]:
    elements: Map[Any] = doc.get("s", type=Map)
    return elements


_DECODER = json.JSONDecoder()  # configured as json.loads' own default decoder
_SCAN: Any = _DECODER.scan_once  # type: ignore[attr-defined]  # set by its __init__


def parse_json(raw: Any) -> Any:
    """``json.loads(raw)``, minus its Python-level whitespace scans (most of its cost on
    the small strings read here) when ``raw`` is one compact JSON object; anything else
    goes through json.loads itself, so every result and error is exactly json.loads'."""
    if type(raw) is str and raw[:1] == "{":
        # raw_decode's own scanner, called directly (raw_decode only adds a Python frame
        # and turns StopIteration into its error, which json.loads below raises anyway).
        try:
            value, end = _SCAN(raw, 0)
        except (ValueError, StopIteration):
            return json.loads(raw)  # raises json.loads' own error
        if end == len(raw):
            return value
    return json.loads(raw)


def _history(doc: RecordDoc) -> Map[Any]:
    changes: Map[Any] = doc.get("h", type=Map)
    return changes


def _split(key: str) -> tuple[str, str]:
    field, _, unique = key.partition("/")
    if not unique:
        raise ValueError(f"malformed key {key!r}")
    return field, unique


def text(doc: RecordDoc, field: str) -> Text:
    """The shared text of a text field."""
    shared: Text = doc.get(f"t:{field}", type=Text)
    return shared


def _parse_entry(write_id: str, raw: str) -> RegisterEntry:
    data = parse_json(raw)
    # The frozen dataclass's __init__ costs more than the parse; filling the instance's
    # dict makes the very same object (every field, in declaration order; a first
    # download parses every entry once, so this runs for each).
    entry: RegisterEntry = _new(RegisterEntry)
    fields = entry.__dict__
    fields["write_id"] = write_id
    fields["value"] = data["v"]
    fields["hlc"] = data["h"]
    fields["author"] = data["a"]
    fields["supersedes"] = tuple(data.get("s", ()))
    fields["observes"] = tuple(data.get("o", ()))
    return entry


def parse_entry(write_id: str, raw: Any) -> RegisterEntry:
    """One register entry as stored (its JSON text), parsed; the errors of a malformed one
    are the parser's (ValueError, KeyError, TypeError, ...)."""
    return _parse_entry(write_id, raw)


_new = object.__new__
# Entries never change once written, and each record is re-derived after every change, so
# the same entries are parsed over and over: cache them (immutable results).
_cached_entry = functools.lru_cache(maxsize=32_768)(_parse_entry)


# Words, runs of spaces and single punctuation marks: the units a text edit is diffed in.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def replace_text(doc: RecordDoc, field: str, new: str) -> None:
    """Turn a shared text into ``new`` with the smallest edits, so that concurrent edits
    to other parts of it merge instead of overwriting each other.

    The diff is taken over words, spaces and punctuation, not characters: a character diff
    may express an inserted sentence by reusing letters of a neighbouring one that reads
    alike, and a concurrent deletion of that neighbour then takes them along, leaving text
    neither person wrote ("BP normal. " deleted while "RR normal. " was added next to it).
    """
    shared = text(doc, field)
    old = str(shared)
    a, b = _tokens(old), _tokens(new)
    # What both share at the start and at the end is kept as it is, so an insertion lands
    # after the untouched text before it (a plain LCS diff may instead insert "normal. RR"
    # after "BP", reusing the old "normal.").
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    # Offsets of every token boundary, to turn token indices into text positions. pycrdt
    # hands positions to yrs unconverted, and yrs counts UTF-8 bytes: a character index
    # past an "é" or "日" would land mid-character (yrs panics) or on the wrong letter.
    starts_a = [0]
    for token in a:
        starts_a.append(starts_a[-1] + len(token.encode("utf-8")))
    middle_a, middle_b = a[head : len(a) - tail], b[head : len(b) - tail]
    ops = difflib.SequenceMatcher(a=middle_a, b=middle_b, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(ops):  # from the end, so indices stay valid
        start, end = starts_a[head + i1], starts_a[head + i2]
        if tag in ("replace", "delete"):
            del shared[start:end]
        if tag in ("replace", "insert"):
            shared.insert(start, "".join(middle_b[j1:j2]))


def _edits(base: list[str], new: list[str]) -> list[tuple[int, int, list[str]]]:
    """The edits turning token list ``base`` into ``new``: (start, end, replacement)."""
    ops = difflib.SequenceMatcher(a=base, b=new, autojunk=False).get_opcodes()
    return [(i1, i2, new[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


# Whole runs without whitespace, and runs of whitespace: the units a merge works in. A
# number with its punctuation and unit ("120/80", "37.2", "5mg") is one unit, so a merge
# can never take "130" from one person and "/90" from another.
_MERGE_TOKEN = re.compile(r"\S+|\s+")

# How the other side's text is kept where both people changed the same words.
CONFLICT_MARK = "[also from {other}: {text}]"
CONFLICT_REMOVED = "[{other} removed: {text}]"


def _reach(base: list[str], start: int, end: int) -> tuple[int, int]:
    """The region [start, end) widened over the whitespace around it: two regions whose
    widened reaches meet change the same or neighbouring words."""
    while start > 0 and base[start - 1].isspace():
        start -= 1
    while end < len(base) and base[end].isspace():
        end += 1
    return start, end


def _apply(base: list[str], start: int, end: int, edits: list[tuple[int, int, list[str]]]) -> str:
    """Base tokens [start, end) with ``edits`` (all inside that region) made."""
    out: list[str] = []
    pos = start
    for s, e, replacement in sorted(edits, key=lambda x: (x[0], x[1])):
        out += base[pos:s]
        out += replacement
        pos = max(pos, e)
    out += base[pos:end]
    return "".join(out)


def _join(pieces: list[tuple[str, bool]]) -> str:
    """Concatenate, with a space between a conflict mark and a word it would touch (a
    mark glued to a word would make a new word out of both)."""
    out = ""
    previous_mark = False
    for piece, mark in pieces:
        if not piece:
            continue
        if out and (mark or previous_mark) and not out[-1].isspace() and not piece[0].isspace():
            out += " "
        out += piece
        previous_mark = mark
    return out


def merge_edits(base: str, ours: str, theirs: str, other: str = "another workstation") -> str:
    """``theirs`` with the edits that turned ``base`` into ``ours`` made as well: a
    three-way merge over whole words, for an editor whose text started from ``base`` while
    another workstation's edits (``theirs``) arrived.

    Where both changed the same or neighbouring words (regions of ``base`` that overlap or
    touch, whitespace aside), the two are never spliced: this person's text stands there,
    followed by the other's in a mark, ``[also from <other>: ...]`` (or ``[<other>
    removed: ...]``). Splicing is how "BP 130/80" and "BP 120/90" became "BP 130/90", a
    value nobody typed. Keeping both, visibly, rather than refusing the save: the editor
    saves as the clinician types and when it closes (signing out), so a refused save would
    leave their typing unsaved, and the other person's edit hidden; the mark puts both on
    the screen in the place they concern, loses neither, and signing refuses a note that
    still holds one (``notes.sign``) until the clinician has chosen.
    """
    b = _MERGE_TOKEN.findall(base)
    mine = [(e, 1) for e in _edits(b, _MERGE_TOKEN.findall(ours))]
    other_edits = [(e, 0) for e in _edits(b, _MERGE_TOKEN.findall(theirs))]
    # Group edits whose widened reaches meet (transitively); a group with both sides in
    # it is a conflict. Sorted by reach start, a group is a run of overlapping reaches.
    tagged = sorted(mine + other_edits, key=lambda t: (_reach(b, t[0][0], t[0][1]), t[1]))
    groups: list[list[tuple[tuple[int, int, list[str]], int]]] = []
    group_end = -1
    for item in tagged:
        reach_start, reach_end = _reach(b, item[0][0], item[0][1])
        if groups and reach_start <= group_end:
            groups[-1].append(item)
            group_end = max(group_end, reach_end)
        else:
            groups.append([item])
            group_end = reach_end
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for group in groups:
        start = min(e[0] for e, _ in group)
        end = max(e[1] for e, _ in group)
        pieces.append(("".join(b[pos:start]), False))
        ours_part = _apply(b, start, end, [e for e, who in group if who == 1])
        theirs_part = _apply(b, start, end, [e for e, who in group if who == 0])
        if len({who for _, who in group}) == 1:  # one side only: its edits, as it made them
            pieces.append((_apply(b, start, end, [e for e, _ in group]), False))
        elif ours_part == theirs_part:  # both made the same change
            pieces.append((ours_part, False))
        else:
            kept = ours_part.rstrip()
            if theirs_part.strip():
                mark = CONFLICT_MARK.format(other=other, text=theirs_part.strip())
            else:
                mark = CONFLICT_REMOVED.format(other=other, text="".join(b[start:end]).strip())
            pieces += [(kept, False), (mark, True), (ours_part[len(kept) :], False)]
        pos = end
    pieces.append(("".join(b[pos:]), False))
    return _join(pieces)


def _newest_first(entries: list[RegisterEntry]) -> list[RegisterEntry]:
    return sorted(entries, key=lambda e: (e.hlc, e.write_id), reverse=True)


def parse_entries(raw: Mapping[str, str]) -> list[RegisterEntry]:
    """A register's live entries as stored (write id -> JSON text, as ``raw_entries`` keys
    them after the field name), parsed, newest first: the first one is the winner. For
    reading a register as it stood before a change (a remote-apply summary)."""
    return _newest_first([_parse_entry(write_id, content) for write_id, content in raw.items()])


def root_names(doc: RecordDoc) -> set[str]:
    """Names of the document's root types. A root nothing was ever written under does not
    exist (in a document loaded from its state): reading it would find nothing."""
    # Straight from pycrdt's Rust document: ``doc.keys()`` wraps every root in a Python
    # shared type first, only for its name to be kept.
    with doc.transaction() as txn:
        return set(doc._doc.roots(_native(txn)))


def text_value(doc: RecordDoc, field: str) -> str:
    """``str(text(doc, field))``, without building pycrdt's Python wrapper of the root."""
    with doc.transaction() as txn:
        native = _native(txn)
        result: str = doc._doc.get_or_insert_text(native, f"t:{field}").get_string(native)
        return result


def _read_root(
    doc: RecordDoc, root: str, in_transaction: bool, roots: set[str] | None = None
) -> dict[str, Any]:
    """One root map's content. ``in_transaction``: the caller holds a pycrdt transaction
    (a hint only: the read joins the transaction held, if any). ``roots``: the document's
    ``root_names``, to skip a root that does not exist (reading it would create it empty)."""
    if roots is not None and root not in roots:
        return {}
    # One pycrdt transaction for the root lookup and the read (the caller's, if it holds
    # one), made on pycrdt's Rust objects: ``doc.get(root, type=Map)`` would build a Python
    # wrapper around the very same ``get_or_insert_map`` call, costing more than the read.
    with doc.transaction() as txn:
        native = _native(txn)
        shared: Any = doc._doc.get_or_insert_map(native, root)  # ``keys``: not in its stub
        if root != "r" and not shared.len(native):  # cheaper than serialising it empty
            return {}
        # Entry by entry: Careline writes every entry as a JSON string, which ``get``
        # returns as it is (serialising the map to JSON escapes each of them only for
        # ``parse_json`` to unescape it). Any other value (only a malformed update puts one
        # there) is read through the JSON form as before, so it fails as it did.
        data = {key: shared.get(native, key) for key in shared.keys(native)}
        if all(type(value) is str for value in data.values()):
            return data
        data = parse_json(shared.to_json(native))
    if not isinstance(data, dict):
        raise ValueError("shared map did not serialise to an object")
    return data


def all_live(
    doc: RecordDoc, in_transaction: bool = False, cache: bool = True
) -> dict[str, list[RegisterEntry]]:
    """Every register's live values, newest first, read in one call. ``cache=False``: a
    document read once (a first download's record) parses its entries without keeping
    them (the same entries; caching them would only evict entries read again)."""
    data = _read_root(doc, "r", in_transaction)
    _entry = _cached_entry if cache else _parse_entry
    by_field: dict[str, list[RegisterEntry]] = {}
    for key, raw in data.items():
        field, _, write_id = key.partition("/")  # _split, inlined: this loop is hot
        if not write_id:
            raise ValueError(f"malformed key {key!r}")
        entries = by_field.get(field)
        if entries is None:
            by_field[field] = [_entry(write_id, raw)]
        else:
            entries.append(_entry(write_id, raw))
    for field, entries in by_field.items():
        if len(entries) > 1:  # a one-element sort compares nothing: skip it
            by_field[field] = _newest_first(entries)
    return by_field


def live_ids(doc: RecordDoc) -> dict[str, frozenset[str]]:
    """Every register's live write ids, without parsing the entries (``all_live`` parses
    them, and refuses a malformed one: this is for comparing a document before and after
    a change, which is derived, and so checked, afterwards)."""
    by_field: dict[str, set[str]] = {}
    # The register map's keys straight from pycrdt's Rust map (what ``Map.keys`` reads):
    # the same keys ``_read_root`` would return, without serialising and parsing every
    # entry only to drop it (this runs twice per op at remote apply).
    with doc.transaction() as txn:
        native = _native(txn)
        shared: Any = doc._doc.get_or_insert_map(native, "r")  # ``keys`` is not in its stub
        keys: list[str] = list(shared.keys(native))
    for key in keys:
        field, _, write_id = key.partition("/")
        if not write_id:
            raise ValueError(f"malformed key {key!r}")
        by_field.setdefault(field, set()).add(write_id)
    return {field: frozenset(ids) for field, ids in by_field.items()}


def live(doc: RecordDoc, field: str) -> list[RegisterEntry]:
    """Live values of a register, newest first (the first one is the displayed winner)."""
    return all_live(doc).get(field, [])


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
    reg = _registers(doc)
    gone = [e.write_id for e in live(doc, field)] if supersede is None else supersede
    write_id = new_write_id()
    entry = {"v": value, "h": hlc, "a": author, "s": sorted(gone)}
    if observe:
        entry["o"] = sorted(observe)
    for old in gone:
        if f"{field}/{old}" in reg:
            del reg[f"{field}/{old}"]
    reg[f"{field}/{write_id}"] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return write_id


def elements(doc: RecordDoc, field: str) -> list[SetElement]:
    """Elements of a set, in id order (deterministic)."""
    return all_elements(doc).get(field, [])


def all_elements(
    doc: RecordDoc, in_transaction: bool = False, roots: set[str] | None = None
) -> dict[str, list[SetElement]]:
    """Every set's elements (oldest first), read in one call (see ``_read_root``)."""
    data = _read_root(doc, "s", in_transaction, roots)
    by_field: dict[str, list[SetElement]] = {}
    for key, raw in data.items():
        field, element_id = _split(key)
        data = parse_json(raw)
        by_field.setdefault(field, []).append(
            SetElement(element_id, data["v"], data["h"], data["a"])
        )
    return {f: sorted(es, key=lambda e: (e.hlc, e.element_id)) for f, es in by_field.items()}


def raw_entries(doc: RecordDoc, root: str) -> dict[str, Any]:
    """Every entry of a root map (``r``, ``s`` or ``h``) as stored (``<field>/<id>`` -> its
    JSON text, or whatever a malformed update left there), unparsed: for telling whether
    an op rewrote an entry in place (the same key with other content)."""
    return _read_root(doc, root, in_transaction=True)


def raw_set_entries(doc: RecordDoc) -> dict[str, Any]:
    """Every set element as stored (``<field>/<element id>`` -> its JSON text), unparsed:
    for checks that an element was neither removed nor rewritten."""
    return _read_root(doc, "s", in_transaction=False)


def add(
    doc: RecordDoc,
    field: str,
    value: dict[str, Value],
    hlc: str,
    author: str,
    prescribed: bool = False,
) -> str:
    """Add an element (and record the change, ``prescribed`` as ``record_change`` says);
    returns its id."""
    element_id = new_write_id()
    _put_element(doc, field, element_id, value, hlc, author)
    record_change(doc, field, hlc, author, added={element_id: value}, prescribed=prescribed)
    return element_id


def _put_element(
    doc: RecordDoc, field: str, element_id: str, value: dict[str, Value], hlc: str, author: str
) -> None:
    _sets(doc)[f"{field}/{element_id}"] = json.dumps(
        {"v": value, "h": hlc, "a": author}, sort_keys=True, separators=(",", ":")
    )


def remove(doc: RecordDoc, field: str, element_id: str, hlc: str, author: str) -> bool:
    """Remove an element this replica has seen (and record it); False if it is not there."""
    elements = _sets(doc)
    key = f"{field}/{element_id}"
    if key not in elements:
        return False
    value = json.loads(elements[key])["v"]
    del elements[key]
    record_change(doc, field, hlc, author, removed={element_id: value})
    return True


def restore(
    doc: RecordDoc, field: str, element_id: str, value: dict[str, Value], hlc: str, author: str
) -> None:
    """Put a removed element back under its old id (a conflict resolution; not recorded:
    the caller records the whole resolution as one change)."""
    _put_element(doc, field, element_id, value, hlc, author)


def drop(doc: RecordDoc, field: str, element_id: str) -> dict[str, Value] | None:
    """Remove an element without recording it (the caller records one change); its value."""
    elements = _sets(doc)
    key = f"{field}/{element_id}"
    if key not in elements:
        return None
    value: dict[str, Value] = json.loads(elements[key])["v"]
    del elements[key]
    return value


def all_history(
    doc: RecordDoc, in_transaction: bool = False, roots: set[str] | None = None
) -> dict[str, list[SetChange]]:
    """Every set's recorded changes, in (HLC, id) order, read in one call (see
    ``_read_root``)."""
    data = _read_root(doc, "h", in_transaction, roots)
    by_field: dict[str, list[SetChange]] = {}
    for key, raw in data.items():
        field, change_id = _split(key)
        by_field.setdefault(field, []).append(_set_change(key, change_id, raw))
    return {f: sorted(cs, key=lambda c: (c.hlc, c.change_id)) for f, cs in by_field.items()}


@functools.lru_cache(maxsize=32_768)
def _set_change(key: str, change_id: str, raw: str) -> SetChange:
    # Like register entries: immutable once written, re-read after every change of the
    # record, so parse each once (callers never mutate the result).
    data = parse_json(raw)
    change = SetChange(
        change_id=change_id,
        hlc=str(data["h"]),
        author=str(data["a"]),
        parents=tuple(data.get("p", ())),
        added=data.get("+", {}),
        removed=data.get("-", {}),
        resolution=bool(data.get("r")),
        # Only a text names a visit: anything else (no release writes it) names none.
        visit=data["e"] if isinstance(data.get("e"), str) and data["e"] else None,
        # Only the one a release writes says so: anything else says nothing.
        prescribed=data.get("rx") == 1,
    )
    # Entries arrive from other replicas: refuse shapes the conflict code cannot read.
    parts = (change.added, change.removed)
    if (
        not all(isinstance(p, str) for p in change.parents)
        or not all(isinstance(part, dict) for part in parts)
        or not all(isinstance(v, dict) for part in parts for v in part.values())
    ):
        raise ValueError(f"malformed set history entry {key!r}")
    return change


def history_heads(changes: list[SetChange]) -> list[str]:
    """Ids of the changes no other change has observed (the latest ones), sorted."""
    observed = {p for c in changes for p in c.parents}
    return sorted(c.change_id for c in changes if c.change_id not in observed)


def record_change(
    doc: RecordDoc,
    field: str,
    hlc: str,
    author: str,
    added: dict[str, dict[str, Value]] | None = None,
    removed: dict[str, dict[str, Value]] | None = None,
    resolution: bool = False,
    visit: str | None = None,
    prescribed: bool = False,
) -> str:
    """Record one change of a set, observing every change this replica holds; its id.
    ``visit``: the visit (encounter id) it was made in, if any; ``prescribed``: its author
    prescribed the active medication it adds.

    Several changes of one field inside one mutation chain up: each observes the last.
    """
    parents = history_heads(all_history(doc).get(field, []))
    change_id = new_write_id()
    entry: dict[str, Any] = {"h": hlc, "a": author, "p": parents}
    if added:
        entry["+"] = added
    if removed:
        entry["-"] = removed
    if resolution:
        entry["r"] = 1
    if visit:
        entry["e"] = visit
    if prescribed:
        entry["rx"] = 1
    _history(doc)[f"{field}/{change_id}"] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return change_id


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


def missing_dependencies(doc: RecordDoc, deps: bytes, state: bytes | None = None) -> dict[int, int]:
    """Clients whose changes ``deps`` requires but ``doc`` does not hold yet (``state``:
    the document's current state vector, when the caller already has it)."""
    if state is None:
        state = doc.get_state()
    if deps == state:  # the usual case: the op builds on exactly what this replica holds
        return {}
    have = decode_state_vector(state)
    need = decode_state_vector(deps)
    return {c: clock for c, clock in need.items() if have.get(c, 0) < clock}


def covers(deps: bytes, state: bytes) -> bool:
    """Whether an op with dependencies ``deps`` had seen everything in document ``state``."""
    if deps == state:
        return True
    need = decode_state_vector(deps)
    return all(need.get(c, 0) >= clock for c, clock in decode_state_vector(state).items())
