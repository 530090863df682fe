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
- ``check(object, relation, object#relation)`` is true (a userset contains itself);
- a relation that no subject of the asked subject's type can ever reach, judged from the
  model alone, is "not allowed" without reading a tuple (OpenFGA's ``PathExists`` pruning, at
  every step; this also means a cycle there is never met, which matters under ``but not``).

Each call memoizes the sub-answers that did not depend on a cycle, so a check over the clinic
schema reads each tuple list at most once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import StaleReplicaError, UnknownRelationError
from .model import (
    AuthorizationModel,
    ComputedUserset,
    Exclusion,
    Intersection,
    RelationDef,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from .tuples import ObjectIndex, TupleReader

__all__ = ["Engine", "StaleReplicaError", "UnknownRelationError", "UsersetTree"]


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


# (allowed, cycle, steps): cycle marks a "not allowed" that came from meeting a cycle; steps
# estimates how soon OpenFGA, which evaluates operands concurrently, has that answer (see
# _Check.rewrite).
_Result = tuple[bool, bool, int]


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
        self.reaching = subject_kinds(model)
        # The kinds of direct subject each relation accepts: "user", "user:*", "group#member".
        self.accepts = {
            (t.name, r.name): frozenset(str(x) for x in r.directly_related)
            for t in model.types.values()
            for r in t.relations.values()
        }
        self._recursive: dict[str, frozenset[tuple[str, str]]] = {}
        # With no relation that can reach itself, no tuples can make a cycle, and "and" /
        # "but not" may stop at their first decisive operand (the clinic schema is so).
        self.acyclic = all(node not in seen for node, seen in relation_graph(model)[1].items())

    def with_tuples(self, tuples: TupleReader) -> Engine:
        """This engine over other tuples, sharing its analysis of the model (which costs more
        than a typical check: a bulk write checks thousands of times)."""
        other = copy.copy(self)
        other.tuples = tuples
        return other

    def recursive_relations(self, subject_type: str) -> frozenset[tuple[str, str]]:
        """The relations OpenFGA resolves for a ``subject_type`` subject with its recursive
        strategy (memoized per subject type; see :func:`recursive_relations`)."""
        found = self._recursive.get(subject_type)
        if found is None:
            found = self._recursive[subject_type] = recursive_relations(
                self.model, self.reaching, subject_type
            )
        return found

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


def subject_kinds(model: AuthorizationModel) -> dict[tuple[str, str], frozenset[str]]:
    """For each ``type#relation``, the kinds of subject that could ever hold it, whatever the
    tuples: ``user`` (an object of that type), ``user:*`` (its wildcard) and usersets
    ``group#member`` (including the relation itself, which holds itself).

    This is reachability in the model's graph, as OpenFGA's ``PathExists`` computes it: every
    operand of a rewrite counts, the subtracted one too.
    """
    kinds: dict[tuple[str, str], set[str]] = {
        (t.name, r): {f"{t.name}#{r}"} for t in model.types.values() for r in t.relations
    }

    def gather(type_name: str, rel: RelationDef, rw: Rewrite, out: set[str]) -> None:
        if isinstance(rw, This):
            for r in rel.directly_related:
                if r.relation is not None:
                    out.add(f"{r.type}#{r.relation}")
                    out |= kinds[(r.type, r.relation)]
                else:
                    out.add(f"{r.type}:*" if r.wildcard else r.type)
        elif isinstance(rw, ComputedUserset):
            out |= kinds[(type_name, rw.relation)]
        elif isinstance(rw, TupleToUserset):
            tupleset = model.relation(type_name, rw.tupleset)
            for r in tupleset.directly_related if tupleset else ():
                if (r.type, rw.computed) in kinds:
                    out |= kinds[(r.type, rw.computed)]
        elif isinstance(rw, Union | Intersection):
            for child in rw.children:
                gather(type_name, rel, child, out)
        else:
            gather(type_name, rel, rw.base, out)
            gather(type_name, rel, rw.subtract, out)

    changed = True
    while changed:  # a fixed point: relations may reach each other in a cycle
        changed = False
        for t in model.types.values():
            for rel in t.relations.values():
                out = kinds[(t.name, rel.name)]
                before = len(out)
                gather(t.name, rel, rel.rewrite, out)
                changed = changed or len(out) != before
    return {key: frozenset(value) for key, value in kinds.items()}


def _edges(model: AuthorizationModel, type_name: str, rw: Rewrite) -> list[tuple[str, str, bool]]:
    """The relations ``rw`` leads to: ``(type, relation, through_tuples)``, where
    ``through_tuples`` marks a userset restriction or tuple-to-userset (not a computed one)."""
    rel_of = model.types[type_name].relations
    out: list[tuple[str, str, bool]] = []
    if isinstance(rw, ComputedUserset):
        out.append((type_name, rw.relation, False))
    elif isinstance(rw, TupleToUserset):
        for r in rel_of[rw.tupleset].directly_related:
            if model.relation(r.type, rw.computed) is not None:
                out.append((r.type, rw.computed, True))
    elif isinstance(rw, Union | Intersection):
        for child in rw.children:
            out += _edges(model, type_name, child)
    elif isinstance(rw, Exclusion):
        out += _edges(model, type_name, rw.base) + _edges(model, type_name, rw.subtract)
    return out


_Node = tuple[str, str]


def relation_graph(
    model: AuthorizationModel,
) -> tuple[dict[_Node, list[tuple[str, str, bool]]], dict[_Node, set[_Node]]]:
    """The model's relations as a graph (edges: userset restrictions, computed usersets,
    tuple-to-userset targets) and, for each relation, every relation it reaches."""
    nodes = [(t.name, r) for t in model.types.values() for r in t.relations]

    def edges(node: _Node) -> list[tuple[str, str, bool]]:
        rel = model.types[node[0]].relations[node[1]]
        out = [(r.type, r.relation, True) for r in rel.directly_related if r.relation]
        return out + _edges(model, node[0], rel.rewrite)

    graph = {node: edges(node) for node in nodes}
    reach: dict[_Node, set[_Node]] = {}
    for node in nodes:
        seen: set[_Node] = set()
        stack = [node]
        while stack:
            for t, r, _ in graph[stack.pop()]:
                if (t, r) not in seen:
                    seen.add((t, r))
                    stack.append((t, r))
        reach[node] = seen
    return graph, reach


def recursive_relations(
    model: AuthorizationModel,
    reaching: Mapping[tuple[str, str], frozenset[str]],
    subject_type: str,
) -> frozenset[tuple[str, str]]:
    """The relations OpenFGA answers, for a subject of ``subject_type``, with its recursive
    strategy (a breadth-first walk that meets no "cycle"), rather than its default one.

    OpenFGA uses it when a relation refers to itself through a userset
    (``define member: [user, group#member]``), is in no cycle with other relations, and
    reaches the subject's type in one step by every other way. A cycle of tuples met there
    is then simply "not allowed", with no cycle reported upwards: under ``but not`` this is
    the difference between allowed and not.
    """
    kinds = {subject_type, f"{subject_type}:*"}
    nodes = [(t.name, r) for t in model.types.values() for r in t.relations]
    graph, reach = relation_graph(model)

    found = set()
    for node in nodes:
        if kinds.isdisjoint(reaching[node]):
            continue
        # A self-referring userset restriction ([group#member] on group#member). OpenFGA
        # has a recursive strategy for tuple-to-userset too, but its planner starts from
        # the default one there, and that is what it answers with (the differential test).
        rel = model.types[node[0]].relations[node[1]]
        if not rel.allows(node[0], node[1], wildcard=False):
            continue
        if any(node in reach[other] for other in reach[node] if other != node):
            continue  # in a cycle with another relation: OpenFGA's default strategy
        # Every other way must reach the subject's type in one step: no userset or
        # tuple-to-userset that leads to it, directly or through computed relations.
        if all(
            not through or kinds.isdisjoint(reaching[(t, r)])
            for t, r, through in _all_edges(graph, node)
            if (t, r) != node
        ):
            found.add(node)
    return frozenset(found)


def _all_edges(
    graph: Mapping[tuple[str, str], list[tuple[str, str, bool]]], node: tuple[str, str]
) -> list[tuple[str, str, bool]]:
    """The edges of ``node`` and of the relations it reaches through computed ones only."""
    out: list[tuple[str, str, bool]] = []
    seen = {node}
    stack = [node]
    while stack:
        for t, r, through in graph[stack.pop()]:
            out.append((t, r, through))
            if not through and (t, r) not in seen:
                seen.add((t, r))
                stack.append((t, r))
    return out


def subject_kind(subject: str) -> str:
    """What kind of subject a tuple names: ``user``, ``user:*`` or ``group#member``."""
    obj, _, rel = subject.partition("#")
    type_name, _, ident = obj.partition(":")
    if rel:
        return subject if ident == "*" else f"{type_name}#{rel}"
    return f"{type_name}:*" if ident == "*" else type_name


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
        s_rel = subject.partition("#")[2]
        # The kinds of subject node the asked subject is, for the reachability pruning.
        self.subject_kinds = (
            {f"{self.subject_type}#{s_rel}"}
            if s_rel
            else {self.subject_type, f"{self.subject_type}:*"}
        )
        self.reaching = engine.reaching
        self.accepts = engine.accepts
        self.kind = subject_kind(subject)
        # Where OpenFGA walks recursively, a cycle is plain "not allowed" (see
        # recursive_relations); usersets always get the default strategy.
        self.recursive = frozenset() if s_rel else engine.recursive_relations(self.subject_type)
        self.acyclic = engine.acyclic
        self.memo: dict[tuple[str, str], tuple[bool, int]] = {}
        self.reads: dict[tuple[str, str], tuple[str, ...]] = {}
        # Bumped whenever a cycle is met; an answer reached while it moved depended on the
        # path it was asked from, so it is not memoized.
        self.cycles = 0

    def resolve(self, obj: str, relation: str, visited: frozenset[tuple[str, str]]) -> _Result:
        key = (obj, relation)
        cached = self.memo.get(key)
        if cached is not None:
            return (cached[0], False, cached[1])
        if key in visited:
            self.cycles += 1
            recursive = (obj.partition(":")[0], relation) in self.recursive
            return (False, not recursive, 1)
        if self.subject == f"{obj}#{relation}":
            return (True, False, 1)
        type_name = obj.partition(":")[0]
        rel = self.model.relation(type_name, relation)
        if rel is None or self.subject_kinds.isdisjoint(self.reaching[(type_name, relation)]):
            return (False, False, 1)
        before = self.cycles
        allowed, cycle, steps = self.rewrite(obj, rel, rel.rewrite, visited | {key})
        if self.cycles == before:
            self.memo[key] = (allowed, steps + 1)
        return (allowed, cycle, steps + 1)

    def read(self, obj: str, relation: str) -> tuple[str, ...]:
        """The subjects of ``obj#relation``, read once per question."""
        key = (obj, relation)
        subjects = self.reads.get(key)
        if subjects is None:
            subjects = self.reads[key] = tuple(self.tuples.read(obj, relation))
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
            return _any_of(self.rewrite(obj, rel, c, visited) for c in rw.children)
        # Intersection and exclusion: OpenFGA evaluates the operands concurrently and the
        # first decisive one wins: for "and", an operand that is "no" or met a cycle; for
        # "but not", a base that is "no" or a subtracted set that is "yes", or either meeting
        # a cycle. When a plain "no" races a cycle, which one OpenFGA reports depends on
        # which arrives first, and that matters under an enclosing "but not": the engine
        # takes the one reached in fewer steps (a cycle costs no read), as OpenFGA's
        # goroutines in practice do.
        if self.acyclic:  # no cycle can be met: plain short-circuits give the same answer
            if isinstance(rw, Intersection):
                for c in rw.children:
                    if not self.rewrite(obj, rel, c, visited)[0]:
                        return (False, False, 1)
                return (True, False, 1)
            if not self.rewrite(obj, rel, rw.base, visited)[0]:
                return (False, False, 1)
            return (not self.rewrite(obj, rel, rw.subtract, visited)[0], False, 1)
        if isinstance(rw, Intersection):
            results = [self.rewrite(obj, rel, c, visited) for c in rw.children]
            decisive = [r for r in results if r[1] or not r[0]]
            if decisive:
                first = min(decisive, key=lambda r: (r[2], not r[1]))
                return (False, first[1], first[2])
            return (True, False, max(r[2] for r in results))
        base = self.rewrite(obj, rel, rw.base, visited)
        sub = self.rewrite(obj, rel, rw.subtract, visited)
        decisive = [r for r, d in ((base, base[1] or not base[0]), (sub, sub[1] or sub[0])) if d]
        if decisive:
            first = min(decisive, key=lambda r: (r[2], not r[1]))
            return (False, first[1], first[2])
        return (True, False, max(base[2], sub[2]))

    def this(self, obj: str, rel: RelationDef, visited: frozenset[tuple[str, str]]) -> _Result:
        # Only subjects that fit the relation's type restrictions count, as in OpenFGA.
        accepts = self.accepts[(obj.partition(":")[0], rel.name)]
        subjects = self.read(obj, rel.name)
        if self.kind in accepts and self.subject in subjects:
            return (True, False, 1)
        usersets = []
        for s in subjects:
            if "#" in s:
                if subject_kind(s) in accepts:
                    usersets.append(s.partition("#"))
            elif s.endswith(":*") and s in accepts and s[:-2] == self.subject_type:
                return (True, False, 1)
        return _any_of(
            (self.resolve(s_obj, s_rel, visited) for s_obj, _, s_rel in usersets), read=True
        )

    def tuple_to_userset(
        self, obj: str, rw: TupleToUserset, visited: frozenset[tuple[str, str]]
    ) -> _Result:
        # Only plain objects of the tupleset's types are followed, and only to types that
        # define the computed relation.
        accepts = self.accepts[(obj.partition(":")[0], rw.tupleset)]
        parents = [
            parent
            for parent in self.read(obj, rw.tupleset)
            if "#" not in parent
            and not parent.endswith(":*")
            and parent.partition(":")[0] in accepts
            and self.model.relation(parent.partition(":")[0], rw.computed) is not None
        ]
        return _any_of((self.resolve(p, rw.computed, visited) for p in parents), read=True)


def _any_of(results: Iterable[_Result], read: bool = False) -> _Result:
    """A union: the first "yes" ends it; else "no", with a cycle if any operand met one.
    ``read`` adds the step of reading the tuples the operands came from."""
    extra = 1 if read else 0
    cycle = False
    steps = extra
    for allowed, child_cycle, child_steps in results:
        if allowed:
            return (True, False, child_steps + extra)
        cycle = cycle or child_cycle
        steps = max(steps, child_steps + extra)
    return (False, cycle, steps)
