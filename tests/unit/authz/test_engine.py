"""The engine's API: check semantics, the consistency token, expand, permitted, list_objects."""

from __future__ import annotations

import pytest

from core.authz.engine import Engine, UsersetTree
from core.authz.errors import StaleReplicaError, UnknownRelationError
from core.authz.model import parse_model
from core.authz.tuples import MemoryTuples, RelationTuple

MODEL = parse_model(
    """
model
  schema 1.1

type user
type group
  relations
    define member: [user, user:*, group#member]
type folder
  relations
    define viewer: [user, group#member]
type doc
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user, group#member]
    define viewer: [user, user:*, group#member] or owner or viewer from parent
    define editor: [user] and viewer
    define reader: viewer but not blocked
"""
)


def engine(*tuples: str, token: dict[str, int] | None = None) -> Engine:
    """An engine over the test model with the given ``object#relation@subject`` tuples."""
    return Engine(MODEL, MemoryTuples((RelationTuple.parse(t) for t in tuples), token=token))


def test_direct_computed_and_tuple_to_userset() -> None:
    e = engine("doc:1#owner@user:ann", "doc:1#parent@folder:f", "folder:f#viewer@user:bob")
    assert e.check("doc:1", "viewer", "user:ann")  # owner implies viewer
    assert e.check("doc:1", "viewer", "user:bob")  # through the parent folder
    assert not e.check("doc:1", "viewer", "user:cat")
    assert not e.check("doc:2", "viewer", "user:ann")


def test_usersets_are_resolved_recursively_and_cycles_end_as_not_allowed() -> None:
    e = engine(
        "doc:1#viewer@group:a#member",
        "group:a#member@group:b#member",
        "group:b#member@group:a#member",  # a cycle
        "group:b#member@user:ann",
    )
    assert e.check("doc:1", "viewer", "user:ann")
    assert not e.check("doc:1", "viewer", "user:bob")
    assert e.check("doc:1", "viewer", "group:a#member")  # a userset holds itself


def test_wildcards_grant_every_subject_of_their_type_only() -> None:
    e = engine("doc:1#viewer@user:*")
    assert e.check("doc:1", "viewer", "user:anyone")
    assert e.check("doc:1", "viewer", "user:*")
    assert not e.check("doc:1", "viewer", "group:g#member")


def test_intersection_and_exclusion() -> None:
    e = engine(
        "doc:1#editor@user:ann",  # an editor who is not a viewer is not an editor
        "doc:1#editor@user:bob",
        "doc:1#viewer@user:bob",
        "doc:1#viewer@group:g#member",
        "group:g#member@user:cat",
        "group:g#member@user:dan",
        "doc:1#blocked@user:dan",
    )
    assert not e.check("doc:1", "editor", "user:ann")
    assert e.check("doc:1", "editor", "user:bob")
    assert e.check("doc:1", "reader", "user:cat")
    assert not e.check("doc:1", "reader", "user:dan")


def test_tuples_that_do_not_fit_the_model_are_ignored() -> None:
    # owner allows only [user]: a userset or wildcard written there grants nothing, as in
    # OpenFGA; a parent that is a userset is not followed.
    e = engine(
        "doc:1#owner@user:*",
        "doc:1#owner@group:g#member",
        "group:g#member@user:ann",
        "doc:1#parent@folder:f#viewer",
        "folder:f#viewer@user:bob",
    )
    assert not e.check("doc:1", "owner", "user:ann")
    assert not e.check("doc:1", "owner", "user:zed")
    assert not e.check("doc:1", "viewer", "user:bob")


def test_consistency_token_requires_a_dominating_version_vector() -> None:
    e = engine("doc:1#owner@user:ann", token={"r1": 5, "r2": 3})
    assert e.check("doc:1", "owner", "user:ann", at_least={"r1": 5, "r2": 1})
    assert e.check("doc:1", "owner", "user:ann", at_least={})
    with pytest.raises(StaleReplicaError, match=r"r1 \(has 5, needs 6\)"):
        e.check("doc:1", "owner", "user:ann", at_least={"r1": 6})
    with pytest.raises(StaleReplicaError, match=r"r3 \(has 0, needs 1\)"):
        e.check("doc:1", "owner", "user:ann", at_least={"r3": 1})


def test_unknown_names_are_refused() -> None:
    e = engine()
    with pytest.raises(UnknownRelationError, match="no relation 'nosuch'"):
        e.check("doc:1", "nosuch", "user:ann")
    with pytest.raises(UnknownRelationError, match="no type 'memo'"):
        e.check("memo:1", "viewer", "user:ann")
    with pytest.raises(UnknownRelationError, match="not an object"):
        e.check("doc", "viewer", "user:ann")
    with pytest.raises(UnknownRelationError, match="not a subject"):
        e.check("doc:1", "viewer", "ann")
    with pytest.raises(UnknownRelationError, match="names no relation"):
        e.check("doc:1", "viewer", "group:g#owner")


def test_permitted_lists_every_relation_the_subject_has() -> None:
    e = engine("doc:1#owner@user:ann", "doc:1#editor@user:ann", "doc:1#blocked@user:bob")
    assert e.permitted("doc:1", "user:ann") == {"owner", "viewer", "editor", "reader"}
    assert e.permitted("doc:1", "user:bob") == {"blocked"}


def test_list_objects_from_the_reader_or_from_candidates() -> None:
    e = engine(
        "doc:1#viewer@user:ann",
        "doc:2#parent@folder:f",
        "folder:f#viewer@user:ann",
        "doc:3#owner@user:bob",
    )
    assert e.list_objects("doc", "viewer", "user:ann") == ["doc:1", "doc:2"]
    assert e.list_objects("doc", "viewer", "user:ann", candidates=["doc:2", "doc:3"]) == ["doc:2"]
    assert e.list_objects("folder", "viewer", "user:ann") == ["folder:f"]


def test_expand_gives_one_level_of_the_rewrite() -> None:
    e = engine(
        "doc:1#viewer@user:ann",
        "doc:1#viewer@group:g#member",
        "doc:1#parent@folder:f",
        "doc:1#viewer@folder:x#viewer",  # does not fit [user, user:*, group#member]: dropped
    )
    assert e.expand("doc:1", "viewer") == UsersetTree(
        "doc:1#viewer",
        "union",
        children=(
            UsersetTree("doc:1#viewer", "direct", users=("user:ann", "group:g#member")),
            UsersetTree("doc:1#viewer", "computed", users=("doc:1#owner",)),
            UsersetTree(
                "doc:1#viewer",
                "tuple_to_userset",
                users=("folder:f#viewer",),
                tupleset="doc:1#parent",
            ),
        ),
    )
    tree = e.expand("doc:1", "reader")
    assert tree.kind == "exclusion"
    assert [c.users for c in tree.children] == [("doc:1#viewer",), ("doc:1#blocked",)]


def test_relation_tuples_read_and_write_the_usual_notation() -> None:
    t = RelationTuple.parse("patient:p1#care_team@user:alice")
    assert t == RelationTuple("patient:p1", "care_team", "user:alice")
    assert str(RelationTuple("clinic:clinic", "clinician", "group:g#member")) == (
        "clinic:clinic#clinician@group:g#member"
    )
    with pytest.raises(ValueError, match="not a relation tuple"):
        RelationTuple.parse("patient:p1@user:alice")


def test_memory_tuples_ignore_duplicates_and_know_their_objects() -> None:
    tuples = MemoryTuples(
        [RelationTuple.parse("doc:1#viewer@user:ann")] * 2
        + [RelationTuple.parse("doc:2#viewer@group:g#member")]
    )
    assert list(tuples.read("doc:1", "viewer")) == ["user:ann"]
    assert list(tuples.objects("group")) == ["group:g"]
    assert list(tuples.objects("doc")) == ["doc:1", "doc:2"]
    assert tuples.token() == {}


def test_an_engine_over_other_tuples_answers_from_those_tuples_only() -> None:
    first = engine("doc:1#owner@user:ann", "group:g#member@group:h#member")
    first.check("doc:1", "viewer", "user:ann")  # fills the shared per-subject-type memo
    other = first.with_tuples(MemoryTuples([RelationTuple.parse("doc:1#owner@user:bob")]))
    assert other.check("doc:1", "viewer", "user:bob")
    assert not other.check("doc:1", "viewer", "user:ann")
    assert first.check("doc:1", "viewer", "user:ann") and not first.check(
        "doc:1", "viewer", "user:bob"
    )
