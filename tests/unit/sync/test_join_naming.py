"""What a person types to join a clinic server, checked before anything is sent: the
workstation's name (the server's own rule, shared) and the server's CA given by its SHA-256
fingerprint (core.sync.ca_pin.typed_fingerprint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.crypto import certs
from core.server.service import ServerError
from core.sync.ca_pin import colon_hex, typed_fingerprint
from core.sync.enroll import EnrollmentError, device_name_problem, enroll
from tests.integration.server_fixtures import add_clinic, make_server
from tests.services import free_port


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Front desk 2", None),
        ("  Front desk 2  ", None),  # the spaces around it are dropped, as the server does
        ("x" * 64, None),
        ("Bäckerei-Praxis · Empfang", None),
        ("", "enter a name for this workstation (1-64 characters)"),
        ("   ", "enter a name for this workstation (1-64 characters)"),
        ("x" * 65, "the workstation name is 65 characters long; use at most 64"),
        (
            "Front\tdesk",
            "the workstation name holds a tab (character 6), which cannot be shown; use "
            "letters, digits, spaces and punctuation only",
        ),
        (
            "Desk\x07",
            "the workstation name holds the control character U+0007 (character 5), which "
            "cannot be shown; use letters, digits, spaces and punctuation only",
        ),
    ],
)
def test_a_workstation_name_is_checked_as_the_server_checks_it(
    name: str, problem: str | None
) -> None:
    assert device_name_problem(name) == problem


def test_the_server_refuses_exactly_what_the_workstation_refuses(tmp_path: Path) -> None:
    server = make_server(tmp_path / "server")
    try:
        clinic = add_clinic(server, "Naming Clinic")
        for name in ("", "x" * 65, "Front\tdesk", "Desk\x07"):
            code, _ = server.registry.issue_enroll_code(clinic, 10)
            csr = certs.make_csr(certs.new_private_key(), "pending")
            with pytest.raises(ServerError, match="1-64 printable characters"):
                server.enroll(code, name, csr)
            assert server.registry.code_clinic(code) == clinic  # the code keeps its use
    finally:
        server.close()


def test_a_name_the_server_would_refuse_is_not_sent(tmp_path: Path) -> None:
    # Nothing listens there: a name that were sent would fail as "cannot reach".
    url = f"https://127.0.0.1:{free_port()}"
    with pytest.raises(EnrollmentError) as refused:
        enroll(url, "CODE", None, "x" * 70)
    assert str(refused.value) == "the workstation name is 70 characters long; use at most 64"


DIGITS = "3f2a9c0d11e4b7a85f6e0c9d2b1a4e7f8c3d5b6a7e9f0a1b2c3d4e5f6a7b8c9d"


@pytest.mark.parametrize(
    "typed",
    [
        DIGITS,
        DIGITS.upper(),
        colon_hex(DIGITS),
        colon_hex(DIGITS).lower(),
        f"  {DIGITS}  ",
        " ".join(DIGITS[i : i + 2] for i in range(0, 64, 2)),
        f"sha256 Fingerprint={colon_hex(DIGITS)}",  # as openssl x509 -fingerprint prints it
        f"SHA256 Fingerprint={colon_hex(DIGITS)}",
    ],
)
def test_a_whole_fingerprint_is_read_in_any_of_its_forms(typed: str) -> None:
    assert typed_fingerprint(typed) == DIGITS


@pytest.mark.parametrize("typed", ["/etc/careline/ca.pem", "ca.pem", "C:\\certs\\ca.crt", "cafe"])
def test_a_file_name_is_not_read_as_a_fingerprint(typed: str) -> None:
    assert typed_fingerprint(typed) is None


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        (DIGITS[:16] + "...", "it ends in “...”, so it was cut short (16 hex digits of 64)"),
        (
            colon_hex(DIGITS)[:23] + "…",
            "it ends in “...”, so it was cut short (16 hex digits of 64)",
        ),
        (DIGITS[:40], "it has 40 hex digits, a SHA-1 fingerprint; the SHA-256 one has 64"),
        (DIGITS + "ab", "it has 66 hex digits, and a SHA-256 fingerprint has 64"),
        (colon_hex(DIGITS[:20]), "it has 20 hex digits, and a SHA-256 fingerprint has 64"),
    ],
)
def test_a_fingerprint_that_is_not_whole_is_refused_in_words(typed: str, why: str) -> None:
    with pytest.raises(ValueError, match="not a whole SHA-256 fingerprint") as refused:
        typed_fingerprint(typed)
    assert str(refused.value) == f"that is not a whole SHA-256 fingerprint: {why}"
