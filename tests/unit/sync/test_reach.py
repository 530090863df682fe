"""Why the clinic server could not be reached, in plain words: each kind of failure a
connection meets, as httpx and the socket raise it, is named without its raw text, which
goes to the log."""

from __future__ import annotations

import errno
import logging
import socket
import ssl

import httpx
import pytest

from core.sync.reach import is_certificate_problem, peer_unreachable, unreachable

URL = "https://clinic.example:8443"


def raised_from(outer: Exception, inner: BaseException) -> Exception:
    """``outer`` as httpx raises it: from the socket's own error."""
    outer.__cause__ = inner
    return outer


def test_refused_names_the_address_and_what_to_check(caplog: pytest.LogCaptureFixture) -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    exc = raised_from(httpx.ConnectError("[Errno 111] Connection refused"), refused)
    with caplog.at_level(logging.INFO, logger="core.sync.reach"):
        words = unreachable(URL, exc)
    assert words == (
        f"cannot reach the server at {URL}: nothing there accepted the connection (check the "
        "server address and port, and that the server is running)"
    )
    assert "Errno" not in words
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in caplog.text


def test_a_timeout_says_it_timed_out() -> None:
    words = unreachable(URL, httpx.ConnectTimeout("timed out"))
    assert words.startswith(f"cannot reach the server at {URL}: it did not answer in time")
    assert "timed out" in words
    assert "timed out" in unreachable(URL, TimeoutError("_ssl.c:990: The handshake timed out"))


def test_an_unknown_name_is_named() -> None:
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    words = unreachable(URL, raised_from(httpx.ConnectError(str(lookup)), lookup))
    assert words == (
        f"cannot reach the server at {URL}: no computer named 'clinic.example' was found "
        "(check the server address, and this computer's network connection)"
    )


def test_a_certificate_not_trusted_is_a_certificate_problem() -> None:
    refusal = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
    )
    exc = raised_from(httpx.ConnectError(str(refusal)), refusal)
    assert is_certificate_problem(exc)
    words = unreachable(URL, exc)
    assert words.startswith(f"cannot reach the server at {URL}: a certificate problem")
    assert "SSL" not in words and "verify failed" not in words


def test_a_certificate_refused_for_its_dates_says_what_the_clock_says() -> None:
    refusal = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired"
    )
    words = unreachable(URL, raised_from(httpx.ConnectError(str(refusal)), refusal))
    assert "a certificate problem, its certificate is not valid at this computer's date" in words
    assert "this computer's clock says" in words


def test_no_route_and_anything_else_still_name_the_address() -> None:
    no_route = OSError(errno.ENETUNREACH, "Network is unreachable")
    words = unreachable(URL, raised_from(httpx.ConnectError(str(no_route)), no_route))
    assert words.endswith("no network route to it (check this computer's network connection)")
    other = unreachable(URL, httpx.RemoteProtocolError("Server disconnected without response"))
    assert other == (
        f"cannot reach the server at {URL} (check the server address and this computer's "
        "network connection, then try again)"
    )
    assert not is_certificate_problem(httpx.ConnectError("[Errno 111] Connection refused"))


def test_a_certificate_for_other_names_says_so_and_may_be_retried() -> None:
    """The pinned certificate is trusted but does not name the address typed: the person
    is told that, and TLS_NAMES, not to check the CA or fingerprint; not a trust failure
    (IT can add the name, and joining tries again by itself)."""
    refusal = ssl.SSLCertVerificationError(
        1,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, "
        "certificate is not valid for '127.0.0.1'. (_ssl.c:1006)",
    )
    refusal.verify_code = 64
    url = "https://127.0.0.1:1"  # nothing listens: the names cannot be read, and are not made up
    exc = raised_from(httpx.ConnectError(str(refusal)), refusal)
    assert not is_certificate_problem(exc)
    assert unreachable(url, exc) == (
        f"cannot reach the server at {url}: the server's certificate does not name 127.0.0.1; "
        "use one of the names it has in the server address, or ask your IT contact to add "
        "127.0.0.1 to the server's TLS_NAMES"
    )


def test_a_handshake_broken_off_is_not_called_a_certificate_problem() -> None:
    """A server (or balancer) that breaks the TLS handshake off, as one not expecting a
    PROXY header does: not the CA or fingerprint, and worth trying again."""
    eof = ssl.SSLEOFError(8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation")
    exc = raised_from(httpx.ConnectError(str(eof)), eof)
    assert not is_certificate_problem(exc)
    words = unreachable(URL, exc)
    assert "broken off before it was set up" in words
    assert "fingerprint" not in words and "CA" not in words


def test_a_peer_is_named_in_the_same_plain_words(caplog: pytest.LogCaptureFixture) -> None:
    """``careline sync --peer``: the LAN peer's failures are worded as the server's, naming
    its address and what to check; the socket's text goes to the log only."""
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    with caplog.at_level(logging.INFO, logger="core.sync.reach"):
        words = peer_unreachable("192.168.1.20:7445", refused)
    assert words == (
        "cannot reach the peer 192.168.1.20:7445: nothing there accepted the connection "
        "(check the address and port, and that Careline runs there: the app, or "
        "'careline serve')"
    )
    assert "[Errno 111] Connection refused" in caplog.text
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert peer_unreachable("desk-3:7445", lookup) == (
        "cannot reach the peer desk-3:7445: no computer named 'desk-3' was found (check the "
        "address)"
    )
    foreign = ssl.SSLCertVerificationError(
        1,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
        "issuer certificate (_ssl.c:1006)",
    )
    assert "it did not present a certificate of this clinic" in peer_unreachable("h:1", foreign)
    expired = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired"
    )
    dated = peer_unreachable("h:1", expired)
    assert "its certificate is not valid at this computer's date" in dated
    assert "this computer's clock says" in dated
    assert "timed out" in peer_unreachable("h:1", TimeoutError("timed out"))
