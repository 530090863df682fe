"""What silent enrollment takes from the settings, and how it pins the server's CA from a
file (the fingerprint path needs a server: tests/integration/test_silent_enrollment.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.crypto import certs
from core.sync.ca_pin import pem_fingerprint
from core.sync.enroll import EnrollmentError
from core.sync.join import JoinRequest
from core.sync.silent_join import MachineEnrollment


def enrollment(ca_file: Path | None, fingerprint: str | None) -> MachineEnrollment:
    return MachineEnrollment(
        "https://careline.clinic.lan", "CODE", ca_file, fingerprint, None, "machine.toml"
    )


def test_settings_without_a_server_and_code_mean_the_wizard() -> None:
    assert MachineEnrollment.from_settings({"server_url": None, "enroll_code": None}) is None
    assert MachineEnrollment.from_settings({"server_url": "https://a", "enroll_code": None}) is None
    found = MachineEnrollment.from_settings(
        {"server_url": "https://a", "enroll_code": "C", "server_ca_fingerprint": "ab" * 32}
    )
    assert found is not None and found.ca_fingerprint == "ab" * 32 and found.ca_file is None


def test_a_ca_file_is_pinned_and_checked_against_the_fingerprint(tmp_path: Path) -> None:
    _, pem = certs.self_signed_server(["careline.clinic.lan"])
    ca = tmp_path / "ca.pem"
    ca.write_text(pem)
    assert enrollment(ca, None).ca_pem() == pem
    assert enrollment(ca, pem_fingerprint(pem)).ca_pem() == pem
    with pytest.raises(EnrollmentError, match="does not have the SHA-256 fingerprint"):
        enrollment(ca, "0" * 64).ca_pem()
    with pytest.raises(EnrollmentError, match=r"server_ca_file: cannot read .*missing\.pem"):
        enrollment(tmp_path / "missing.pem", None).ca_pem()


def test_the_code_and_passwords_never_show_in_a_printed_request() -> None:
    # A log line or error report that prints the enrollment (or the join request built
    # from it) must not hand out the code, nor a password or pairing code.
    found = MachineEnrollment.from_settings(
        {
            "server_url": "https://a",
            "enroll_code": "WQ3K-SECRET",
            "server_ca_fingerprint": "ab" * 32,
        }
    )
    assert found is not None and "WQ3K-SECRET" not in repr(found)
    request = JoinRequest("nurse", "hunter2-password", "https://a", "WQ3K-SECRET",
                          pair_code="PAIR-SECRET")  # fmt: skip
    shown = repr(request)
    assert "WQ3K-SECRET" not in shown and "hunter2" not in shown and "PAIR-SECRET" not in shown
    assert "https://a" in shown
