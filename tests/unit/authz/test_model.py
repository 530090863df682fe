"""The OpenFGA DSL parser: what it reads, and errors that name the line and the fault."""

from __future__ import annotations

import pytest

from core.authz.errors import ModelError
from core.authz.model import (
    ComputedUserset,
    Exclusion,
    Intersection,
    This,
    TupleToUserset,
    TypeRestriction,
    Union,
    load_clinic_model,
    parse_model,
)
from core.errors import CarelineError

HEADER = "model\n  schema 1.1\n\ntype user\ntype group\n  relations\n    define member: [user]\n"


def doc(*defines: str) -> str:
    """A model with a ``doc`` type holding the given define lines."""
    body = "".join(f"    {d}\n" for d in defines)
    return f"{HEADER}type doc\n  relations\n    define parent: [group]\n{body}"


def test_reads_types_restrictions_and_every_rewrite() -> None:
    model = parse_model(
        doc(
            "define owner: [user, user:*, group#member] # trailing comment",
            "define editor: owner or member from parent",
            "define viewer: (editor and owner) or (owner but not editor)",
        )
        + "# a comment on its own line\n"
    )
    owner = model.relation("doc", "owner")
    assert owner is not None
    assert owner.rewrite == This()
    assert owner.directly_related == (
        TypeRestriction("user"),
        TypeRestriction("user", wildcard=True),
        TypeRestriction("group", relation="member"),
    )
    editor = model.relation("doc", "editor")
    assert editor is not None
    assert editor.rewrite == Union((ComputedUserset("owner"), TupleToUserset("parent", "member")))
    viewer = model.relation("doc", "viewer")
    assert viewer is not None
    assert viewer.rewrite == Union(
        (
            Intersection((ComputedUserset("editor"), ComputedUserset("owner"))),
            Exclusion(ComputedUserset("owner"), ComputedUserset("editor")),
        )
    )
    assert list(model.types) == ["user", "group", "doc"]


def test_direct_restriction_can_lead_a_rewrite() -> None:
    model = parse_model(
        doc(
            "define banned: [user]",
            "define viewer: [user] but not banned",
            "define both: ([user] or banned) and viewer",
        )
    )
    viewer = model.relation("doc", "viewer")
    assert viewer is not None
    assert viewer.rewrite == Exclusion(This(), ComputedUserset("banned"))
    both = model.relation("doc", "both")
    assert both is not None
    assert both.directly_related == (TypeRestriction("user"),)
    assert both.rewrite == Intersection(
        (Union((This(), ComputedUserset("banned"))), ComputedUserset("viewer"))
    )


ERRORS = [
    ("type user\n", 1, "starts with 'model'"),
    ("model\n  schema 1.0\ntype user\n", 2, "schema 1.0 is not supported"),
    ("model\n  schema 1.2\ntype user\n", 2, "schema 1.2 is not supported"),
    (doc("define a: [user] or member from parent and a"), 11, "cannot be mixed"),
    (doc("define a: [user] but not member from parent or a"), 11, "cannot be mixed"),
    (doc("define a: [user]", "define b: a but not a but not a"), 12, "cannot be mixed"),
    (doc("define a: (parent or a"), 11, "expected ')'"),
    (doc("define a: parent and ([user] or a)"), 11, "type restriction"),
    (doc("define a: parent or [user]"), 11, "type restriction"),
    (doc("define a: [user, nosuch]"), 11, "unknown type 'nosuch'"),
    (doc("define a: [user, group#nosuch]"), 11, "has no relation 'nosuch'"),
    (doc("define a: nosuch"), 11, "has no relation 'nosuch'"),
    (doc("define a: member from nosuch"), 11, "has no relation 'nosuch'"),
    (doc("define a: nosuch from parent"), 11, "'nosuch' is not a relation of any type"),
    (
        doc("define a: [group] or parent", "define b: member from a"),
        12,
        "plain direct relation",
    ),
    (doc("define a: [group, group:*]", "define b: member from a"), 12, "plain direct"),
    (doc("define a: a"), 11, "cannot be defined as itself"),
    (doc("define a: [user with in_hours]"), 11, "conditions"),
    (doc("define a: [user]") + "condition in_hours(x: int) {\n  x < 5\n}\n", 12, "conditions"),
    (doc("define a: [user]", "define a: [user]"), 12, "defined twice"),
    (doc("define a [user]"), 11, "no ':'"),
    (doc("define a:"), 11, "no definition"),
    (doc("define a: [user] $"), 11, "unexpected character '$'"),
    ("model\n  schema 1.1\ntype user\n  define a: [user]\n", 4, "outside a type's relations"),
    ("model\n  schema 1.1\ntype user\ntype user\n", 4, "defined twice"),
    ("model\n  schema 1.1\nmodule clinic\n", 3, "modules"),
]
# What Careline refuses only because it does not support it (OpenFGA accepts these).
UNSUPPORTED = ("schema 1.2", "conditions", "modules")


@pytest.mark.parametrize(("text", "line", "words"), ERRORS)
def test_errors_name_the_line_and_the_fault(text: str, line: int, words: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_model(text)
    message = str(caught.value)
    assert message.startswith(f"line {line}:"), message
    assert words in message
    assert isinstance(caught.value, CarelineError)
    assert caught.value.plain_words().startswith("authorization model: line")


def test_the_clinic_model_is_packaged_and_defines_the_contract_names() -> None:
    model = load_clinic_model()
    clinic = set(model.types["clinic"].relations)
    patient = set(model.types["patient"].relations)
    assert {"admin", "clinician", "nurse", "front_desk", "member", "manage_staff"} <= clinic
    assert {"review_audit", "register_patient", "schedule", "merge_patients"} <= clinic
    assert {
        "clinic", "care_team", "restricted", "break_glass", "view_demographics",
        "edit_demographics", "clinical_access", "view_clinical", "record_vitals",
        "record_allergy", "write_note", "manage_visit", "sign_note", "prescribe", "diagnose",
        "manage_access", "delete_patient", "merge_patients",
    } == patient  # fmt: skip
