"""The vocabulary of record-type declarations (the declarations are in ``types.py``).

One ``RecordType`` says everything the rest of Careline needs to know about a kind of
record: its fields and their kinds (register, set, text), how each is checked and labelled,
the derived table and its columns, each list's child table, the search fields, and named
hooks for what a table cannot say (a signed note's rules, the patient's sort key). The
materializer, the conflict inbox, validation, messages, the CLI and the forms read it.

Adding a record type
--------------------
1. Declare it in ``core/records/types.py`` (one ``RecordType``; add it to ``RECORD_TYPES``).
   A record added to a patient's chart through ``ClinicalEntries`` sets
   ``chart_entry=True``; a list on an existing record is one more ``ListSpec``.
2. Write its table in a new hand-written migration in ``core/store/migrations.py`` (append
   ``(N, _VN)`` to ``MIGRATIONS``). ``tests/unit/records/test_types_schema.py`` fails until
   the migrated schema has exactly the spec's tables and columns.
That is all for storage, sync, materialization, conflicts, validation and labels; a screen
or CLI command that shows the new type is written against the spec (labels, fields).
The materialized bytes of existing types must not change (``test_golden_materialization``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.records.crdt import RecordDoc
from core.records.rows import Rows
from core.records.validation import Check, one_of


@dataclass(frozen=True, eq=False)
class Field:
    """One field a person (or the code) writes: a register, a text, or a list item's value."""

    name: str
    label: str  # as forms, the conflict inbox and error messages name it
    check: Check | None = None  # validates and normalises what was typed; None: set by code
    required: bool = False
    default: str | None = None  # stored when a list item leaves it blank
    choices: tuple[str, ...] = ()  # the allowed values (then checked against them)
    # A further check of a value a person writes on this workstation (an entry, an edit, a
    # value typed to settle a conflict), given the field's name and the checked value:
    # one that depends on this computer (a measured time not ahead of its clock). ``clean``
    # makes it; ``check`` never does, so the field's rules stay those any replica can
    # hold another workstation's value to (remote apply never refuses a time because this
    # computer's clock is behind the one that wrote it: README, "Clocks").
    at_entry: Callable[[str, str], None] | None = None

    def __post_init__(self) -> None:
        if self.choices and self.check is None:
            object.__setattr__(self, "check", one_of(*self.choices))

    def clean(self, value: str | None) -> str | None:
        """The value to store for what was typed here (ValidationError names the problem):
        checked by ``check``, then ``at_entry``. For local writes only."""
        if self.check is None:
            return value
        cleaned = self.check(self.name, value) if (self.required or value) else None
        if cleaned is not None and self.at_entry is not None:
            self.at_entry(self.name, cleaned)
        return self.default if cleaned is None else cleaned


@dataclass(frozen=True, eq=False)
class Column:
    """A derived-table column that is not simply its field's value."""

    name: str
    fallback: Any = None  # written instead of an empty value (``value or fallback``)
    compute: Callable[[dict[str, Any]], Any] | None = None  # from the record's values


@dataclass(frozen=True, eq=False)
class ListSpec:
    """A set (add-wins list) field and the child table its items are materialized into."""

    name: str  # the field in the document: "allergies"
    label: str
    table: str
    parent: str  # the child table's column holding the record id
    items: tuple[Field, ...]  # an item's values, in the order entered and read (first names it)
    key: tuple[str, ...] = ()  # columns naming "the same item" (first non-empty): list conflicts
    stamped: bool = False  # rows also carry the time added and by whom
    # The child table's column order, where V1 fixed one other than ``items`` (the stored
    # row digests depend on it).
    row_order: tuple[str, ...] | None = None
    sql_only: tuple[str, ...] = ()  # columns left to their SQL default by the materializer
    # Columns worked out from an item's values (after the stamps), for readers of the table
    # that do not read the item's own fields.
    computed: tuple[Column, ...] = ()
    column_names: tuple[str, ...] = field(init=False)
    value_columns: tuple[str, ...] = field(init=False)  # filled from an item's value

    def __post_init__(self) -> None:
        order = self.row_order or tuple(f.name for f in self.items)
        stamps = ("recorded_at", "recorded_by") if self.stamped else ()
        worked_out = tuple(c.name for c in self.computed)
        object.__setattr__(self, "column_names", ("id", self.parent, *order, *stamps, *worked_out))
        object.__setattr__(self, "value_columns", order)

    def item(self, name: str) -> Field:
        """One of the item's fields; ValueError names one the list lacks."""
        for f in self.items:
            if f.name == name:
                return f
        raise ValueError(f"{self.name} items have no field {name!r}")


class DeriveHook(Protocol):
    """Special derivation: may add computed values (read by columns) and returns extra
    conflict rows. Runs after the register conflicts, before the row is built."""

    def __call__(self, record_id: str, doc: RecordDoc, values: dict[str, Any]) -> Rows:
        """Extra conflict rows of this record."""


Mutation = Callable[[RecordDoc, str], None]


class SettleHook(Protocol):
    """Settles a conflict the type's own derive hook raised: the mutation to apply, or None
    for an ordinary register conflict. ``candidates``: candidate id -> value; ``chosen``
    the id a person picked, or ``typed`` the value they entered instead."""

    def __call__(
        self,
        field: str,
        candidates: dict[str, Any],
        chosen: str | None,
        typed: str | None,
        author: str,
    ) -> Mutation | None:
        """The settling mutation, or None."""


class RemoteCheck(Protocol):
    """Refuses a remote op that breaks a rule of the type: ``protect`` reads what must
    survive before the op is applied, ``violation`` says how the op broke it (or None)."""

    def protect(self, doc: RecordDoc) -> Any:
        """What of the document must survive, or None if nothing needs protecting now."""

    def violation(self, protected: Any, doc: RecordDoc, saw_everything: bool) -> str | None:
        """How the op just applied breaks the rule, or None."""


# Column plan entries: (name, fallback, compute).
_Plan = tuple[tuple[str, Any, Callable[[dict[str, Any]], Any] | None], ...]


@dataclass(frozen=True, eq=False)
class RecordType:
    """Everything about one kind of record document.

    Every type also has the registers ``created_at`` (written once) and ``deleted``
    (deletion is a register, so an edit concurrent with a delete is a conflict).
    """

    name: str
    table: str
    fields: tuple[Field, ...]  # registers, in the order they are written
    texts: tuple[Field, ...] = ()  # collaborative text (pycrdt Text)
    lists: tuple[ListSpec, ...] = ()  # add-wins sets
    # The derived table's columns after ``id``: a name is its field's value (or a text's,
    # or a system register's: created_at, updated_at). Default: every register, then texts.
    columns: tuple[str | Column, ...] | None = None
    row_requires: str | None = None  # no row while this value is missing
    search: tuple[str, ...] = ()  # full-text indexed columns (the index itself: migrations)
    # Index-only columns that the migration's search view computes from the row (the
    # patient's names without apostrophes, hyphens and spaces, so obrien finds O'Brien).
    search_computed: tuple[str, ...] = ()
    chart_entry: bool = False  # created on a patient's chart through ClinicalEntries
    derive_hook: DeriveHook | None = None
    settle_hook: SettleHook | None = None
    remote_check: RemoteCheck | None = None
    # Registers the type's own rules write and read (a note's "edited"), neither shown nor
    # conflict-checked; declared so a replica can tell them from a newer version's fields.
    bookkeeping: tuple[str, ...] = ()
    # Derived from the above.
    registers: tuple[str, ...] = field(init=False)
    sets: tuple[str, ...] = field(init=False)
    column_names: tuple[str, ...] = field(init=False)
    plan: _Plan = field(init=False)

    def __post_init__(self) -> None:
        columns = self.columns
        if columns is None:
            columns = (*(f.name for f in self.fields), *(t.name for t in self.texts))
        plan = tuple(
            (c, None, None) if isinstance(c, str) else (c.name, c.fallback, c.compute)
            for c in columns
        )
        object.__setattr__(self, "registers", tuple(f.name for f in self.fields))
        object.__setattr__(self, "sets", tuple(s.name for s in self.lists))
        object.__setattr__(self, "column_names", ("id", *(p[0] for p in plan)))
        object.__setattr__(self, "plan", plan)

    def field_named(self, name: str) -> Field | None:
        """A register or text field by name (None if the type has no such field)."""
        return next((f for f in (*self.fields, *self.texts) if f.name == name), None)

    def field_spec(self, name: str) -> Field:
        """A register or text field by name; ValueError names one the type lacks."""
        found = self.field_named(name)
        if found is None:
            raise ValueError(f"a {self.name} has no field {name!r}")
        return found

    def list_spec(self, name: str) -> ListSpec | None:
        """A list field by name."""
        return next((s for s in self.lists if s.name == name), None)

    @property
    def writable(self) -> tuple[Field, ...]:
        """Fields a person writes directly (those with a check), in writing order."""
        return tuple(f for f in self.fields if f.check is not None)

    def label(self, name: str) -> str:
        """How forms and messages name one of this type's fields or lists."""
        found = self.field_named(name) or self.list_spec(name)
        return found.label if found is not None else default_label(name)


def spoken_list(values: tuple[str, ...]) -> str:
    """``mild, moderate, severe or unknown``: allowed values as help texts read them."""
    return f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else "".join(values)


def default_label(name: str) -> str:
    """``birth_date`` -> ``Birth date``, for a name no spec labels."""
    return name.replace("_", " ").capitalize()
