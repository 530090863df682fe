"""Which field a failed enrollment is about (``EnrollmentError.field``), for the join page
and the Connect dialog to say it under: the address, the code or the CA field, or none
when no one field would mend it."""

from __future__ import annotations

import errno
import ssl

import httpx

from core.sync.enroll import ServerUnreachableError, _not_reached, _refused
from tests.unit.sync.test_reach import URL


def _connect_error(inner: OSError) -> httpx.ConnectError:
    """As httpx raises it: from the socket's own error."""
    outer = httpx.ConnectError(str(inner))
    outer.__cause__ = inner
    return outer


def _verify_failed(reason: str) -> httpx.ConnectError:
    return _connect_error(
        ssl.SSLCertVerificationError(
            1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {reason}"
        )
    )


def test_a_certificate_not_trusted_is_about_the_ca_field() -> None:
    assert _not_reached(URL, _verify_failed("self-signed certificate")).field == "ca_path"


def test_a_certificate_refused_for_its_dates_is_about_no_field() -> None:
    # This computer's clock may be what is wrong: the CA field would send the person the
    # wrong way.
    refused = _not_reached(URL, _verify_failed("certificate has expired"))
    assert refused.field is None and "this computer's clock says" in str(refused)


def test_an_address_nothing_answered_at_is_about_the_address() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    failed = _not_reached(URL, _connect_error(refused))
    assert isinstance(failed, ServerUnreachableError) and failed.field == "server_url"


def test_the_servers_refusals_of_the_code_are_about_the_code() -> None:
    about_the_code = (
        "the enrollment code is not valid",
        "the enrollment code has already been used; ask IT for a new one",
        "too many account checks with this enrollment code; ask IT for a new code",
    )
    for detail in about_the_code:
        assert _refused(detail, 400).field == "enroll_code"
    assert _refused("device_name must be 1-64 printable characters", 400).field is None
    assert _refused(None, 503).field is None
