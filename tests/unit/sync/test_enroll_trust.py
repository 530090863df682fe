"""The pinned server trust a workstation connects with (core.sync.enroll.tls_trust)."""

from __future__ import annotations

import ssl

from core.crypto import certs
from core.sync.enroll import _NO_CHECK_TIME, tls_trust


def test_a_pinned_server_is_trusted_whatever_this_computers_clock_says() -> None:
    """Clearing OpenSSL's strict mode after setting the no-time-check flag dropped it (the
    enum keeps only the flags it names): a desk two days behind refused its own server
    (tests/integration/test_clocks.py shows it end to end, under libfaketime)."""
    _key, pem = certs.self_signed_server(["localhost", "127.0.0.1"])
    context = tls_trust(pem)
    assert isinstance(context, ssl.SSLContext)
    flags = int(context.verify_flags)
    assert flags & _NO_CHECK_TIME
    assert not flags & int(ssl.VERIFY_X509_STRICT)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_without_a_pin_the_systems_cas_are_used_as_usual() -> None:
    assert tls_trust(None) is True
