"""The README's permission matrix is the one in core/records/permissions.py, and the roles
it says hold each permission are the ones the clinic schema gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.authz.engine import Engine
from core.authz.tuples import MemoryTuples, RelationTuple
from core.records import permissions
from core.records.authorize import clinic_model

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_shows_the_matrix_as_core_enforces_it() -> None:
    assert permissions.markdown_table() in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("permission", sorted(permissions.HOLDERS))
def test_the_readme_holders_are_the_schemas(permission: str) -> None:
    on = (
        "clinic:clinic"
        if permission in ("member", "manage_staff", "review_audit", "register_patient", "schedule")
        else "patient:p1"
    )
    for role in permissions.ROLES:
        tuples = MemoryTuples([
            RelationTuple("clinic:clinic", role, "user:u"),
            RelationTuple("patient:p1", "clinic", "clinic:clinic"),
        ])  # fmt: skip
        held = Engine(clinic_model(), tuples).check(on, permission, "user:u")
        assert held == (role in permissions.HOLDERS[permission]), (permission, role)
