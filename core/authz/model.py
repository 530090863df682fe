"""An authorization model read from OpenFGA's modeling language (DSL, schema 1.1).

Careline does not invent a schema language: the clinic's schema (``clinic.fga``) is written in
OpenFGA's DSL so operators and auditors can read and test it with OpenFGA's own ``fga`` tool.
No maintained Python parser for that DSL exists, so this is a small hand-written
recursive-descent parser for the part of the language Careline uses:

- ``model`` / ``schema 1.1``, ``type NAME``, ``relations``, ``define NAME: EXPRESSION``;
- direct type restrictions ``[user, user:*, group#member]`` (the first operand only, perhaps
  inside opening parentheses, as in OpenFGA);
- rewrites: computed userset ``editor``, tuple-to-userset ``viewer from parent``, union ``or``,
  intersection ``and``, exclusion ``but not``, parentheses;
- ``#`` comments (at the start of a line, or after a space).

OpenFGA's precedence rule is that there is none: one level of an expression uses only one
operator (``a or b or c``, ``a and b``, or a single ``a but not b``); mixing them needs
parentheses. ``a or b and c`` is refused, as OpenFGA refuses it.

Not supported, and refused with an error that says so: conditions (``with``, ``condition``),
schema 1.0 and 1.2, modules (``module``, ``extend type``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import NoReturn

from .errors import ModelError

__all__ = [
    "AuthorizationModel",
    "ComputedUserset",
    "Exclusion",
    "Intersection",
    "ModelError",
    "RelationDef",
    "Rewrite",
    "This",
    "TupleToUserset",
    "TypeDef",
    "TypeRestriction",
    "Union",
    "load_clinic_model",
    "parse_model",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
_TOKEN = re.compile(r"\s*(?:(?P<punct>[\[\](),:#*])|(?P<word>[A-Za-z0-9_\-]+)|(?P<bad>\S))")


# --- The model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRestriction:
    """One entry of a direct type restriction: ``user``, ``user:*`` or ``group#member``."""

    type: str
    relation: str | None = None
    wildcard: bool = False

    def __str__(self) -> str:
        if self.wildcard:
            return f"{self.type}:*"
        return f"{self.type}#{self.relation}" if self.relation else self.type


@dataclass(frozen=True)
class This:
    """The relation's own (direct) tuples, restricted to its type restrictions."""


@dataclass(frozen=True)
class ComputedUserset:
    """Everyone with ``relation`` on the same object."""

    relation: str


@dataclass(frozen=True)
class TupleToUserset:
    """Everyone with ``computed`` on each object directly related through ``tupleset``."""

    tupleset: str
    computed: str


@dataclass(frozen=True)
class Union:
    """Anyone in any child."""

    children: tuple[Rewrite, ...]


@dataclass(frozen=True)
class Intersection:
    """Anyone in every child."""

    children: tuple[Rewrite, ...]


@dataclass(frozen=True)
class Exclusion:
    """Anyone in ``base`` who is not in ``subtract``."""

    base: Rewrite
    subtract: Rewrite


Rewrite = This | ComputedUserset | TupleToUserset | Union | Intersection | Exclusion


@dataclass(frozen=True)
class RelationDef:
    """One ``define`` line: the relation's rewrite and its direct type restrictions."""

    name: str
    rewrite: Rewrite
    directly_related: tuple[TypeRestriction, ...]
    line: int

    def allows(self, subject_type: str, subject_relation: str | None, wildcard: bool) -> bool:
        """Whether a direct tuple with this kind of subject is valid for this relation."""
        return any(
            r.type == subject_type and r.relation == subject_relation and r.wildcard == wildcard
            for r in self.directly_related
        )


@dataclass(frozen=True)
class TypeDef:
    """One ``type`` block and its relations, in the order they were defined."""

    name: str
    relations: Mapping[str, RelationDef]
    line: int


@dataclass(frozen=True)
class AuthorizationModel:
    """A parsed, validated authorization model."""

    schema_version: str
    types: Mapping[str, TypeDef]
    source: str = field(repr=False, compare=False, default="")

    def relation(self, type_name: str, relation: str) -> RelationDef | None:
        """The definition of ``type_name#relation``, or None when the model has none."""
        type_def = self.types.get(type_name)
        return None if type_def is None else type_def.relations.get(relation)


# --- Lines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    number: int
    indent: int
    text: str


def _strip_comment(text: str) -> str:
    # "#" starts a comment at the start of a line or after white space; inside a word it
    # is a userset ("group#member").
    for i, ch in enumerate(text):
        if ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i]
    return text


def _lines(text: str) -> Iterator[_Line]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            # Indentation carries meaning only loosely here, but mixing tabs hides mistakes.
            raw = raw.replace("\t", "    ")
        body = _strip_comment(raw).rstrip()
        if body.strip():
            yield _Line(number, len(body) - len(body.lstrip()), body.strip())


# --- Expressions -----------------------------------------------------------------------------


class _Expr:
    """Recursive descent over one ``define`` expression."""

    def __init__(self, text: str, line: int) -> None:
        self.line = line
        self.tokens: list[str] = []
        for m in _TOKEN.finditer(text):
            if m.group("bad"):
                self.fail(f"unexpected character {m.group('bad')!r}")
            self.tokens.append(m.group("punct") or m.group("word"))
        self.pos = 0
        self.direct: tuple[TypeRestriction, ...] = ()

    def fail(self, what: str) -> NoReturn:
        raise ModelError(f"line {self.line}: {what}")

    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            self.fail(f"expected {expected!r} but the line ended" if expected else "line ended")
        if expected is not None and tok != expected:
            self.fail(f"expected {expected!r} but found {tok!r}")
        self.pos += 1
        return tok

    def name(self, what: str) -> str:
        tok = self.peek()
        if tok is None or not _NAME.match(tok) or tok in ("or", "and", "but", "from"):
            self.fail(f"expected {what} but found {tok!r}" if tok else f"expected {what}")
        self.pos += 1
        return tok

    def parse(self) -> Rewrite:
        """relation-def := operand tail?  (the first operand may be a type restriction)"""
        result = self.tail(self.operand())
        if self.peek() is not None:
            tok = self.peek()
            if tok in ("or", "and", "but"):
                self.fail(
                    "'or', 'and' and 'but not' cannot be mixed without parentheses "
                    f"(found {tok!r} after a different operator)"
                )
            if tok == "with":
                self.fail("conditions ('with') are not supported by Careline's engine")
            self.fail(f"unexpected {tok!r}")
        return result

    def tail(self, first: Rewrite) -> Rewrite:
        """One operator repeated: ``or ...``, ``and ...`` or a single ``but not ...``."""
        op = self.peek()
        if op == "or" or op == "and":
            children = [first]
            while self.peek() == op:
                self.take()
                children.append(self.operand())
            return Union(tuple(children)) if op == "or" else Intersection(tuple(children))
        if op == "but":
            self.take()
            self.take("not")
            return Exclusion(first, self.operand())
        return first

    def operand(self) -> Rewrite:
        """operand := '(' operand tail ')' | NAME | NAME 'from' NAME"""
        tok = self.peek()
        if tok == "(":
            self.take()
            inner = self.tail(self.operand())
            if self.peek() != ")":
                if self.peek() in ("or", "and", "but"):
                    self.fail("'or', 'and' and 'but not' cannot be mixed without parentheses")
                self.take(")")
            self.take()
            return inner
        if tok == "[":
            # As in OpenFGA: only the very first operand, perhaps inside opening parentheses.
            if any(t != "(" for t in self.tokens[: self.pos]):
                self.fail("a type restriction [...] may only be the first operand")
            self.direct = self.restrictions()
            return This()
        relation = self.name("a relation name")
        if self.peek() == "from":
            self.take()
            return TupleToUserset(
                tupleset=self.name("a relation name after 'from'"), computed=relation
            )
        return ComputedUserset(relation)

    def restrictions(self) -> tuple[TypeRestriction, ...]:
        self.take("[")
        out: list[TypeRestriction] = []
        while True:
            type_name = self.name("a type name")
            if self.peek() == ":":
                self.take()
                self.take("*")
                out.append(TypeRestriction(type_name, wildcard=True))
            elif self.peek() == "#":
                self.take()
                out.append(TypeRestriction(type_name, relation=self.name("a relation name")))
            else:
                out.append(TypeRestriction(type_name))
            if self.peek() == "with":
                self.fail("conditions ('with') are not supported by Careline's engine")
            if self.peek() == ",":
                self.take()
                continue
            self.take("]")
            break
        if len(set(out)) != len(out):
            self.fail("a type restriction lists the same type twice")
        return tuple(out)


# --- The document ----------------------------------------------------------------------------


def parse_model(text: str) -> AuthorizationModel:
    """Parse and validate an OpenFGA DSL (schema 1.1) model.

    Raises :class:`ModelError` naming the line and what is wrong: a syntax error, an unknown
    type or relation, a tupleset that is not a plain direct relation, or a feature Careline's
    engine does not support (conditions, modules, other schema versions).
    """
    lines = list(_lines(text))
    if not lines or lines[0].text != "model":
        where = lines[0].number if lines else 1
        raise ModelError(f"line {where}: a model starts with 'model'")
    if len(lines) < 2 or not lines[1].text.startswith("schema"):
        raise ModelError(f"line {lines[0].number}: 'model' must be followed by 'schema 1.1'")
    schema = lines[1].text.split()
    if schema != ["schema", "1.1"]:
        version = schema[1] if len(schema) > 1 else "(none)"
        raise ModelError(
            f"line {lines[1].number}: schema {version} is not supported; only schema 1.1 is"
        )

    types: dict[str, TypeDef] = {}
    current: tuple[str, int, dict[str, RelationDef]] | None = None
    in_relations = False

    def close() -> None:
        if current is not None:
            types[current[0]] = TypeDef(current[0], dict(current[2]), current[1])

    for line in lines[2:]:
        words = line.text.split()
        keyword = words[0]
        if keyword == "type":
            close()
            if len(words) != 2 or not _NAME.match(words[1]):
                raise ModelError(f"line {line.number}: expected 'type NAME'")
            if words[1] in types or (current is not None and current[0] == words[1]):
                raise ModelError(f"line {line.number}: type {words[1]!r} is defined twice")
            current = (words[1], line.number, {})
            in_relations = False
        elif keyword == "relations":
            if current is None:
                raise ModelError(f"line {line.number}: 'relations' outside a type")
            if len(words) != 1:
                raise ModelError(f"line {line.number}: 'relations' stands alone on its line")
            in_relations = True
        elif keyword == "define":
            if current is None or not in_relations:
                raise ModelError(f"line {line.number}: 'define' outside a type's relations")
            head, sep, body = line.text[len("define") :].partition(":")
            name = head.strip()
            if not sep:
                raise ModelError(f"line {line.number}: expected 'define NAME: ...' (no ':')")
            if not _NAME.match(name):
                raise ModelError(f"line {line.number}: {name!r} is not a relation name")
            if name in current[2]:
                raise ModelError(
                    f"line {line.number}: relation {name!r} is defined twice in type {current[0]!r}"
                )
            if not body.strip():
                raise ModelError(f"line {line.number}: relation {name!r} has no definition")
            expr = _Expr(body, line.number)
            rewrite = expr.parse()
            current[2][name] = RelationDef(name, rewrite, expr.direct, line.number)
        elif keyword in ("condition", "with"):
            raise ModelError(
                f"line {line.number}: conditions are not supported by Careline's engine "
                "(grants that expire are filtered by the tuple reader instead)"
            )
        elif keyword in ("module", "extend"):
            raise ModelError(f"line {line.number}: modules ('{keyword}') are not supported")
        elif keyword in ("model", "schema"):
            raise ModelError(f"line {line.number}: {keyword!r} may appear only once, at the top")
        else:
            raise ModelError(f"line {line.number}: unexpected {keyword!r}")
    close()

    model = AuthorizationModel("1.1", types, source=text)
    _validate(model)
    return model


def _validate(model: AuthorizationModel) -> None:
    """Refuse references to unknown types and relations, as OpenFGA does."""
    for type_def in model.types.values():
        for rel in type_def.relations.values():
            where = f"line {rel.line}: {type_def.name}#{rel.name}"
            for r in rel.directly_related:
                if r.type not in model.types:
                    raise ModelError(f"{where}: unknown type {r.type!r} in [{r}]")
                if r.relation is not None and model.relation(r.type, r.relation) is None:
                    raise ModelError(f"{where}: type {r.type!r} has no relation {r.relation!r}")
            _validate_rewrite(model, type_def, rel, rel.rewrite, where)
    _validate_entrypoints(model)


def _validate_entrypoints(model: AuthorizationModel) -> None:
    """Refuse what OpenFGA refuses: a relation no user could ever hold whatever the tuples
    ("no entrypoints", such as ``define b: [doc#b]``), and a cycle of computed usersets
    (``define a: [user] or b`` with ``define b: a``).

    The entrypoint walk follows OpenFGA's own (typesystem ``hasEntrypoints``), visited set
    and all, so that the two agree on which models are valid: an exclusion needs an
    entrypoint on both sides, an intersection on every operand, a union on one.
    """
    relations = {t.name: t.relations for t in model.types.values()}

    def has_entrypoints(
        type_name: str, name: str, rw: Rewrite, visited: dict[str, dict[str, bool]]
    ) -> bool:
        v = dict(visited)  # shallow, like Go's maps.Clone: inner dicts are shared
        if type_name in v:
            v[type_name][name] = False
        else:
            v[type_name] = {name: False}
        rel = relations[type_name][name]
        if isinstance(rw, This):
            for r in rel.directly_related:
                if r.relation is None:
                    v[type_name][name] = True
                    return True
                if r.relation in v.get(r.type, {}):
                    continue
                target = relations[r.type][r.relation]
                if has_entrypoints(r.type, r.relation, target.rewrite, v):
                    return True
            return False
        if isinstance(rw, ComputedUserset):
            known = v[type_name].get(rw.relation)
            if known is not None:
                return known
            target = relations[type_name][rw.relation]
            return has_entrypoints(type_name, rw.relation, target.rewrite, v)
        if isinstance(rw, TupleToUserset):
            for r in relations[type_name][rw.tupleset].directly_related:
                parent_rel = relations[r.type].get(rw.computed)
                if parent_rel is None:
                    continue
                known = v.get(r.type, {}).get(rw.computed)
                if known is not None:
                    if known:
                        return True
                    continue
                if has_entrypoints(r.type, rw.computed, parent_rel.rewrite, v):
                    return True
            return False
        # The operators pass the visited set they were given, not their own copy.
        if isinstance(rw, Union):
            return any(has_entrypoints(type_name, name, c, visited) for c in rw.children)
        if isinstance(rw, Intersection):
            return all(has_entrypoints(type_name, name, c, visited) for c in rw.children)
        return has_entrypoints(type_name, name, rw.base, visited) and has_entrypoints(
            type_name, name, rw.subtract, visited
        )

    def computed_cycle(type_name: str, rw: Rewrite, path: tuple[str, ...]) -> bool:
        if isinstance(rw, ComputedUserset):
            if rw.relation in path:
                return True
            target = relations[type_name][rw.relation]
            return computed_cycle(type_name, target.rewrite, (*path, rw.relation))
        if isinstance(rw, Union | Intersection):
            return any(computed_cycle(type_name, c, path) for c in rw.children)
        if isinstance(rw, Exclusion):
            return computed_cycle(type_name, rw.base, path) or computed_cycle(
                type_name, rw.subtract, path
            )
        return False  # direct tuples and tuple-to-userset end a computed chain

    # OpenFGA validates types and relations in sorted order and reports the first fault.
    for type_name in sorted(relations):
        for name in sorted(relations[type_name]):
            rel = relations[type_name][name]
            if not has_entrypoints(type_name, name, rel.rewrite, {}):
                raise ModelError(
                    f"line {rel.line}: {type_name}#{name} has no entrypoint: no user could "
                    "ever hold it, whatever the tuples (it only refers to itself, or to "
                    "relations like that, or excludes or intersects with one)"
                )
            if computed_cycle(type_name, rel.rewrite, (name,)):
                raise ModelError(
                    f"line {rel.line}: {type_name}#{name} is defined in a cycle of relations "
                    "that refer to each other by name"
                )


def _validate_rewrite(
    model: AuthorizationModel, type_def: TypeDef, rel: RelationDef, rw: Rewrite, where: str
) -> None:
    if isinstance(rw, ComputedUserset):
        if rw.relation not in type_def.relations:
            raise ModelError(f"{where}: type {type_def.name!r} has no relation {rw.relation!r}")
        if rw.relation == rel.name:
            raise ModelError(f"{where}: a relation cannot be defined as itself")
    elif isinstance(rw, TupleToUserset):
        tupleset = type_def.relations.get(rw.tupleset)
        if tupleset is None:
            raise ModelError(f"{where}: type {type_def.name!r} has no relation {rw.tupleset!r}")
        if not isinstance(tupleset.rewrite, This) or any(
            r.relation is not None or r.wildcard for r in tupleset.directly_related
        ):
            raise ModelError(
                f"{where}: {rw.tupleset!r} is used after 'from', so it must be a plain direct "
                "relation such as [folder] (no rewrite, userset or wildcard)"
            )
        if not any(
            model.relation(r.type, rw.computed) is not None for r in tupleset.directly_related
        ):
            names = ", ".join(str(r) for r in tupleset.directly_related)
            raise ModelError(
                f"{where}: {rw.computed!r} is not a relation of any type in {rw.tupleset!r} "
                f"([{names}])"
            )
    elif isinstance(rw, Union | Intersection):
        for child in rw.children:
            _validate_rewrite(model, type_def, rel, child, where)
    elif isinstance(rw, Exclusion):
        _validate_rewrite(model, type_def, rel, rw.base, where)
        _validate_rewrite(model, type_def, rel, rw.subtract, where)


def load_clinic_model() -> AuthorizationModel:
    """The clinic's authorization model, parsed from the packaged ``core/authz/clinic.fga``."""
    text = resources.files(__package__).joinpath("clinic.fga").read_text(encoding="utf-8")
    return parse_model(text)
