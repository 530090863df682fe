from __future__ import annotations

import pytest

from core.crypto.kdf import FAST_PARAMS, Argon2Params, derive_key, hash_password, verify_password


def test_derive_is_deterministic_and_salted() -> None:
    a = derive_key(b"pw", b"0" * 16, FAST_PARAMS)
    assert a == derive_key(b"pw", b"0" * 16, FAST_PARAMS)
    assert a != derive_key(b"pw", b"1" * 16, FAST_PARAMS)
    assert len(a) == 32


def test_password_verifier() -> None:
    verifier = hash_password("correct horse battery", FAST_PARAMS)
    assert verifier.startswith("$argon2id$")
    assert verify_password("correct horse battery", verifier)
    assert not verify_password("Correct horse battery", verifier)


def test_malformed_verifier_is_named() -> None:
    with pytest.raises(ValueError, match="verifier is malformed"):
        verify_password("x", "$argon2id$garbage")


def test_hostile_verifier_cost_is_refused() -> None:
    hostile = "$argon2id$v=19$m=99999999,t=1,p=1$" + "A" * 22 + "$" + "B" * 43
    with pytest.raises(ValueError, match="memory"):
        verify_password("x", hostile)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"iterations": 0, "lanes": 1, "memory_kib": 1024}, "iterations"),
        ({"iterations": 1, "lanes": 1, "memory_kib": 10**9}, "memory"),
        ({"iterations": 1, "lanes": 99, "memory_kib": 1024}, "lanes"),
        ({"iterations": "x", "lanes": 1, "memory_kib": 1024}, "malformed"),
        ("not a dict", "object"),
    ],
)
def test_stored_parameters_are_bounded(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Argon2Params.from_dict(data)
