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

from core.sync.reach import is_certificate_problem, unreachable

URL = "https://clinic.example:8443"


def raised_from(outer: Exception, inner: BaseException) -> Exception:
    """``outer`` as httpx raises it: from the socket's own error."""
    outer.__cause__ = inner
    return outer


def test_refused_names_the_address_and_what_to_check(caplog: pytest.LogCaptureFixture) -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    exc = raised_from(httpx.ConnectError("[Errno 111] Connection refused"), refused)
    with caplog.at_level(logging.WARNING, logger="core.sync.reach"):
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
