"""Relation tuples (``object#relation@subject``) and how the engine reads them.

The engine reads tuples through :class:`TupleReader`, so it does not care where they live: the
workstation's reader turns records (roles, care-team entries, break-glass grants) into tuples;
tests and tools use :class:`MemoryTuples`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RelationTuple:
    """``subject`` has ``relation`` on ``object``.

    ``object`` is ``type:id`` (``patient:4f2a...``, ``clinic:clinic``); ``subject`` is a user
    (``user:alice``), every user of a type (``user:*``) or a userset
    (``clinic:clinic#clinician``: everyone with that relation on that object).
    """

    object: str
    relation: str
    subject: str

    def __str__(self) -> str:
        return f"{self.object}#{self.relation}@{self.subject}"

    @classmethod
    def parse(cls, text: str) -> RelationTuple:
        """Read ``object#relation@subject`` (the form :meth:`__str__` writes)."""
        head, at, subject = text.partition("@")
        obj, hash_, relation = head.partition("#")
        if not (at and hash_ and obj and relation and subject):
            raise ValueError(f"{text!r} is not a relation tuple (object#relation@subject)")
        return cls(obj, relation, subject)


class TupleReader(Protocol):
    """Where the engine reads tuples from: one replica's view of them."""

    def read(self, object: str, relation: str) -> Iterable[str]:
        """The subjects of every tuple ``object#relation@subject``."""
        ...

    def token(self) -> Mapping[str, int]:
        """The replica's version vector ``{replica_id: highest contiguous seq}``: how fresh
        these tuples are, for consistency tokens."""
        ...


@runtime_checkable
class ObjectIndex(Protocol):
    """A reader that can also list the objects of a type (what ``list_objects`` walks)."""

    def objects(self, object_type: str) -> Iterable[str]:
        """Every object of ``object_type`` that appears in a tuple, as object or subject."""
        ...


class MemoryTuples:
    """Tuples held in memory (tests, tools, the server's per-request view)."""

    def __init__(
        self, tuples: Iterable[RelationTuple] = (), token: Mapping[str, int] | None = None
    ) -> None:
        self._subjects: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._objects: dict[str, set[str]] = defaultdict(set)
        self._token = MappingProxyType(dict(token or {}))
        for t in tuples:
            self.add(t)

    def add(self, t: RelationTuple) -> None:
        """Add one tuple (a duplicate is ignored)."""
        subjects = self._subjects[(t.object, t.relation)]
        if t.subject not in subjects:
            subjects.append(t.subject)
        self._note_object(t.object)
        self._note_object(t.subject.partition("#")[0])

    def _note_object(self, obj: str) -> None:
        type_name, _, ident = obj.partition(":")
        if ident and ident != "*":
            self._objects[type_name].add(obj)

    def read(self, object: str, relation: str) -> Iterable[str]:
        """The subjects of every tuple ``object#relation@subject``."""
        return tuple(self._subjects.get((object, relation), ()))

    def token(self) -> Mapping[str, int]:
        """The version vector given at construction (empty: no replica's changes)."""
        return self._token

    def objects(self, object_type: str) -> Iterable[str]:
        """Every object of ``object_type`` named in a tuple, sorted."""
        return sorted(self._objects.get(object_type, ()))
