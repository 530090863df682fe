"""The embedded checker: ``check``, ``expand``, ``permitted`` and ``list_objects``.

Its answers are meant to equal OpenFGA's on the same model and tuples (a differential test
against OpenFGA's own engine holds it to that, tests/unit/authz/test_differential.py):

- a direct tuple counts only when its subject fits the relation's type restrictions (OpenFGA
  ignores tuples that do not fit the model);
- ``type:*`` grants every subject of that type; a userset subject (``group:g#member``) is
  resolved recursively;
- a cycle (the same ``object#relation`` reached again on one path) yields "not allowed", and
  the cycle is reported upwards as OpenFGA does: an intersection or exclusion with a cyclic
  operand is "not allowed";
- tuple-to-userset (``viewer from parent``) follows only the direct tuples of the tupleset
  relation, and skips parents whose type lacks the computed relation;
- ``check(object, relation, object#relation)`` is true (a userset contains itself).

Each call memoizes the sub-answers that did not depend on a cycle, so a check over the clinic
schema reads each tuple list at most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import StaleReplicaError, UnknownRelationError
from .model import (
    AuthorizationModel,
    ComputedUserset,
    Intersection,
    RelationDef,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from .tuples import ObjectIndex, TupleReader


@dataclass(frozen=True)
class UsersetTree:
    """One level of who holds ``object#relation``, shaped like the relation's rewrite.

    ``kind`` is ``direct`` (``users`` are the subjects of the direct tuples, as written:
    users, ``type:*`` and usersets), ``computed`` (``users`` is the one userset
    ``object#other``), ``tuple_to_userset`` (``tupleset`` is ``object#parent`` and ``users``
    the usersets ``parent_object#computed`` it leads to), or ``union`` / ``intersection`` /
    ``exclusion`` (``children``; for exclusion, the base then the subtracted set). Like
    OpenFGA's Expand, usersets are not expanded further: expand them in turn.
    """

    name: str
    kind: str
    users: tuple[str, ...] = ()
    tupleset: str | None = None
    children: tuple[UsersetTree, ...] = ()


# (allowed, cycle): cycle marks a "not allowed" that came from meeting a cycle.
_Result = tuple[bool, bool]
_ALLOWED: _Result = (True, False)
_DENIED: _Result = (False, False)
_CYCLE: _Result = (False, True)


def split_object(obj: str) -> tuple[str, str]:
    """``"patient:p1"`` -> ``("patient", "p1")``; ValueError when it is not ``type:id``."""
    type_name, sep, ident = obj.partition(":")
    if not sep or not type_name or not ident:
        raise ValueError(f"{obj!r} is not an object (type:id)")
    return type_name, ident


class Engine:
    """Answers authorization questions from a model and one replica's tuples."""

    def __init__(self, model: AuthorizationModel, tuples: TupleReader) -> None:
        self.model = model
        self.tuples = tuples

    # --- public API ---------------------------------------------------------------------------

    def check(
        self,
        object: str,
        relation: str,
        subject: str,
        at_least: Mapping[str, int] | None = None,
    ) -> bool:
        """Whether ``subject`` has ``relation`` on ``object``.

        ``at_least`` is a consistency token (a version vector): when given, the replica's
        tuples must be at least that fresh, else :class:`StaleReplicaError` (the caller asks
        again after syncing, or refuses). Unknown types, relations or malformed names raise
        :class:`UnknownRelationError`.
        """
        self.require_fresh(at_least)
        self._relation(object, relation)
        self._validate_subject(subject)
        return _Check(self, subject).resolve(object, relation, frozenset())[0]

    def permitted(self, object: str, subject: str) -> frozenset[str]:
        """Every relation and permission of ``object``'s type that ``subject`` has on it."""
        type_name = self._type_of(object)
        self._validate_subject(subject)
        checker = _Check(self, subject)
        return frozenset(
            name
            for name in self.model.types[type_name].relations
            if checker.resolve(object, name, frozenset())[0]
        )

    def list_objects(
        self,
        object_type: str,
        relation: str,
        subject: str,
        candidates: Iterable[str] | None = None,
    ) -> list[str]:
        """The objects of ``object_type`` on which ``subject`` has ``relation``, sorted.

        The objects tried are ``candidates`` when given, else every object of that type the
        tuple reader knows (it must then provide ``objects(type)``, as :class:`MemoryTuples`
        does).
        """
        if self.model.relation(object_type, relation) is None:
            raise UnknownRelationError(f"type {object_type!r} has no relation {relation!r}")
        self._validate_subject(subject)
        if candidates is None:
            if not isinstance(self.tuples, ObjectIndex):
                raise TypeError(
                    "list_objects needs candidates: this tuple reader cannot list objects"
                )
            candidates = self.tuples.objects(object_type)
        checker = _Check(self, subject)
        found = set()
        for obj in candidates:
            if self._type_of(obj) != object_type:
                raise UnknownRelationError(f"{obj!r} is not an object of type {object_type!r}")
            if checker.resolve(obj, relation, frozenset())[0]:
                found.add(obj)
        return sorted(found)

    def expand(self, object: str, relation: str) -> UsersetTree:
        """One level of who holds ``object#relation`` (see :class:`UsersetTree`)."""
        rel = self._relation(object, relation)
        return self._expand(object, rel, rel.rewrite)

    def require_fresh(self, at_least: Mapping[str, int] | None) -> None:
        """Raise :class:`StaleReplicaError` unless the tuples' version vector dominates
        ``at_least`` (for every replica, at least as many changes)."""
        if not at_least:
            return
        have = self.tuples.token()
        missing = sorted(r for r, seq in at_least.items() if have.get(r, 0) < seq)
        if missing:
            detail = ", ".join(f"{r} (has {have.get(r, 0)}, needs {at_least[r]})" for r in missing)
            raise StaleReplicaError(
                "this workstation has not yet received the permission changes this action "
                f"depends on; sync and try again (replica {detail})"
            )

    # --- helpers ------------------------------------------------------------------------------

    def _type_of(self, obj: str) -> str:
        try:
            type_name, ident = split_object(obj)
        except ValueError as exc:
            raise UnknownRelationError(str(exc)) from None
        if "#" in obj or ident == "*":
            raise UnknownRelationError(f"{obj!r} is not an object (type:id)")
        if type_name not in self.model.types:
            raise UnknownRelationError(f"the authorization model has no type {type_name!r}")
        return type_name

    def _relation(self, obj: str, relation: str) -> RelationDef:
        rel = self.model.relation(self._type_of(obj), relation)
        if rel is None:
            raise UnknownRelationError(
                f"type {obj.partition(':')[0]!r} has no relation {relation!r}"
            )
        return rel

    def _validate_subject(self, subject: str) -> None:
        obj, _, rel = subject.partition("#")
        try:
            type_name, ident = split_object(obj)
        except ValueError:
            raise UnknownRelationError(
                f"{subject!r} is not a subject (type:id, type:* or type:id#relation)"
            ) from None
        if type_name not in self.model.types:
            raise UnknownRelationError(f"the authorization model has no type {type_name!r}")
        if rel and (ident == "*" or self.model.relation(type_name, rel) is None):
            raise UnknownRelationError(f"{subject!r} names no relation of type {type_name!r}")

    def _expand(self, obj: str, rel: RelationDef, rw: Rewrite) -> UsersetTree:
        name = f"{obj}#{rel.name}"
        if isinstance(rw, This):
            return UsersetTree(name, "direct", users=tuple(_valid_direct(self.tuples, obj, rel)))
        if isinstance(rw, ComputedUserset):
            return UsersetTree(name, "computed", users=(f"{obj}#{rw.relation}",))
        if isinstance(rw, TupleToUserset):
            users = tuple(
                f"{parent}#{rw.computed}"
                for parent in _tupleset_objects(self.model, self.tuples, obj, rw)
            )
            return UsersetTree(
                name, "tuple_to_userset", users=users, tupleset=f"{obj}#{rw.tupleset}"
            )
        if isinstance(rw, Union | Intersection):
            kind = "union" if isinstance(rw, Union) else "intersection"
            return UsersetTree(
                name, kind, children=tuple(self._expand(obj, rel, c) for c in rw.children)
            )
        return UsersetTree(
            name,
            "exclusion",
            children=(self._expand(obj, rel, rw.base), self._expand(obj, rel, rw.subtract)),
        )


def _valid_direct(tuples: TupleReader, obj: str, rel: RelationDef) -> list[str]:
    """The subjects of ``obj#rel`` that fit its type restrictions (others are ignored)."""
    out = []
    for subject in tuples.read(obj, rel.name):
        s_obj, _, s_rel = subject.partition("#")
        s_type, _, s_id = s_obj.partition(":")
        wildcard = s_id == "*"
        if wildcard and s_rel:
            continue
        if rel.allows(s_type, s_rel or None, wildcard):
            out.append(subject)
    return out


def _tupleset_objects(
    model: AuthorizationModel, tuples: TupleReader, obj: str, rw: TupleToUserset
) -> list[str]:
    """The objects ``obj#tupleset`` points at whose type defines the computed relation."""
    type_name = obj.partition(":")[0]
    tupleset = model.relation(type_name, rw.tupleset)
    if tupleset is None:  # the model was validated; kept for safety
        return []
    return [
        parent
        for parent in _valid_direct(tuples, obj, tupleset)
        if "#" not in parent and model.relation(parent.partition(":")[0], rw.computed) is not None
    ]


class _Check:
    """One question's evaluation: a fixed subject, memoized sub-answers."""

    def __init__(self, engine: Engine, subject: str) -> None:
        self.model = engine.model
        self.tuples = engine.tuples
        self.subject = subject
        self.subject_type = subject.partition(":")[0]
        self.memo: dict[tuple[str, str], bool] = {}
        self.reads: dict[tuple[str, str], list[str]] = {}
        # Bumped whenever a cycle is met; an answer reached while it moved depended on the
        # path it was asked from, so it is not memoized.
        self.cycles = 0

    def resolve(self, obj: str, relation: str, visited: frozenset[tuple[str, str]]) -> _Result:
        key = (obj, relation)
        cached = self.memo.get(key)
        if cached is not None:
            return (cached, False)
        if key in visited:
            self.cycles += 1
            return _CYCLE
        if self.subject == f"{obj}#{relation}":
            return _ALLOWED
        rel = self.model.relation(obj.partition(":")[0], relation)
        if rel is None:
            return _DENIED
        before = self.cycles
        result = self.rewrite(obj, rel, rel.rewrite, visited | {key})
        if self.cycles == before:
            self.memo[key] = result[0]
        return result

    def direct(self, obj: str, rel: RelationDef) -> list[str]:
        key = (obj, rel.name)
        subjects = self.reads.get(key)
        if subjects is None:
            subjects = self.reads[key] = _valid_direct(self.tuples, obj, rel)
        return subjects

    def rewrite(
        self, obj: str, rel: RelationDef, rw: Rewrite, visited: frozenset[tuple[str, str]]
    ) -> _Result:
        if isinstance(rw, This):
            return self.this(obj, rel, visited)
        if isinstance(rw, ComputedUserset):
            return self.resolve(obj, rw.relation, visited)
        if isinstance(rw, TupleToUserset):
            return self.tuple_to_userset(obj, rw, visited)
        if isinstance(rw, Union):
            cycle = False
            for child in rw.children:
                allowed, child_cycle = self.rewrite(obj, rel, child, visited)
                if allowed:
                    return _ALLOWED
                cycle = cycle or child_cycle
            return _CYCLE if cycle else _DENIED
        if isinstance(rw, Intersection):
            # OpenFGA: the first operand that is not allowed, or met a cycle, decides.
            for child in rw.children:
                allowed, child_cycle = self.rewrite(obj, rel, child, visited)
                if child_cycle:
                    return _CYCLE
                if not allowed:
                    return _DENIED
            return _ALLOWED
        # Exclusion. OpenFGA: a cycle in either operand makes the answer "not allowed".
        base, base_cycle = self.rewrite(obj, rel, rw.base, visited)
        if base_cycle:
            return _CYCLE
        if not base:
            return _DENIED
        sub, sub_cycle = self.rewrite(obj, rel, rw.subtract, visited)
        if sub_cycle:
            return _CYCLE
        return _DENIED if sub else _ALLOWED

    def this(self, obj: str, rel: RelationDef, visited: frozenset[tuple[str, str]]) -> _Result:
        subjects = self.direct(obj, rel)
        if self.subject in subjects:
            return _ALLOWED
        cycle = False
        usersets = []
        for s in subjects:
            s_obj, _, s_rel = s.partition("#")
            if s_rel:
                usersets.append((s_obj, s_rel))
            elif s_obj.endswith(":*") and s_obj[:-2] == self.subject_type:
                return _ALLOWED
        for s_obj, s_rel in usersets:
            allowed, child_cycle = self.resolve(s_obj, s_rel, visited)
            if allowed:
                return _ALLOWED
            cycle = cycle or child_cycle
        return _CYCLE if cycle else _DENIED

    def tuple_to_userset(
        self, obj: str, rw: TupleToUserset, visited: frozenset[tuple[str, str]]
    ) -> _Result:
        tupleset = self.model.relation(obj.partition(":")[0], rw.tupleset)
        if tupleset is None:
            return _DENIED
        cycle = False
        for parent in self.direct(obj, tupleset):
            if "#" in parent or self.model.relation(parent.partition(":")[0], rw.computed) is None:
                continue
            allowed, child_cycle = self.resolve(parent, rw.computed, visited)
            if allowed:
                return _ALLOWED
            cycle = cycle or child_cycle
        return _CYCLE if cycle else _DENIED
