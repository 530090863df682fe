"""What an op's signature covers and how the per-origin chain links ops
(core.crypto.op_signature): raw ECDSA P-256 over real keys, no replica involved."""

from __future__ import annotations

import pytest

from core.crypto import certs, op_signature

CLINIC = op_signature.clinic_tag("-----BEGIN CERTIFICATE-----\nclinic\n-----END CERTIFICATE-----")
FIELDS = {
    "clinic": CLINIC,
    "origin": "a1b2",
    "seq": 7,
    "hlc": "1796421966332.000000.a1b2",
    "author": "drlee",
    "record_id": "p-1",
    "record_type": "patient",
    "deps": b"\x00",
    "update": b"\x01\x02",
}


def _digest(**changed: object) -> bytes:
    return op_signature.digest(**{**FIELDS, **changed})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("clinic", bytes(32)), ("origin", "a1b3"), ("seq", 8), ("hlc", "1796421966333.000000.a1b2"),
     ("author", "mallory"), ("record_id", "p-2"), ("record_type", "note"), ("deps", b"\x01"),
     ("update", b"\x01\x03")],
)  # fmt: skip
def test_every_field_that_gives_an_op_its_meaning_is_signed(field: str, value: object) -> None:
    assert _digest(**{field: value}) != _digest()


def test_fields_are_length_prefixed_so_moving_bytes_between_them_changes_the_digest() -> None:
    assert _digest(author="ab", record_id="c") != _digest(author="a", record_id="bc")
    assert _digest(deps=b"", update=b"\x00\x01\x02") != _digest(deps=b"\x00", update=b"\x01\x02")


def test_the_clinic_tag_is_the_ca_certificate_whatever_its_surrounding_whitespace() -> None:
    _, ca = certs.create_ca("clinic")
    _, other = certs.create_ca("clinic")  # same name, another key: another clinic
    assert op_signature.clinic_tag(ca) == op_signature.clinic_tag(f"\n{ca}\n")
    assert op_signature.clinic_tag(ca) != op_signature.clinic_tag(other)


def test_the_chain_value_commits_to_the_op_before() -> None:
    first = op_signature.chain(op_signature.GENESIS, _digest(seq=1))
    second = op_signature.chain(first, _digest(seq=2))
    forked = op_signature.chain(
        op_signature.chain(op_signature.GENESIS, _digest(seq=9)), _digest(seq=2)
    )
    assert second != forked != first


def test_a_signature_verifies_only_over_its_own_chain_value_and_key() -> None:
    key = certs.new_private_key()
    value = op_signature.chain(op_signature.GENESIS, _digest())
    sig = op_signature.sign(key, value)
    assert len(sig) == op_signature.SIG_BYTES
    assert op_signature.verify(key.public_key(), value, sig)
    other_value = op_signature.chain(op_signature.GENESIS, _digest(author="mallory"))
    assert not op_signature.verify(key.public_key(), other_value, sig)
    assert not op_signature.verify(certs.new_private_key().public_key(), value, sig)


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x01" * 63, b"\x01" * 65, bytes(64), bytes(32) + b"\x01" * 32, b"\xff" * 64],
    ids=["empty", "short", "long", "zeros", "r is zero", "out of range"],
)
def test_a_malformed_signature_is_false_not_an_exception(bad: bytes) -> None:
    key = certs.new_private_key()
    value = op_signature.chain(op_signature.GENESIS, _digest())
    assert op_signature.verify(key.public_key(), value, bad) is False
