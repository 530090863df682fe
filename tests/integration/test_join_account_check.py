"""A person joining a clinic server with a mistyped user name or password: their account is
checked before the code is spent (``POST /v1/enroll/account``), so the typo costs nothing:
the same code then works, no device is left enrolled, nothing is downloaded. The password is
checked on the workstation against the account's verifier; it is never sent. Real TLS
server (on the embedded store and on PostgreSQL), real SQLCipher, real Argon2id."""

from __future__ import annotations

import http.server
import logging
import ssl
import threading
from pathlib import Path

import httpx
import pytest

from core.cli.server import ensure_tls
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.server.api import ENROLL_FAILURES
from core.server.registry import ACCOUNT_CHECKS_PER_CODE, account_checks_allowed
from core.sync.enroll import (
    EnrollmentError,
    ServerUnreachableError,
    account_before_enrollment,
    tls_trust,
)
from core.sync.join import (
    AccountCheckedBeforeCodeError,
    AccountDeactivatedBeforeCodeError,
    JoinRequest,
    NoAccountError,
    first_sync_pending,
    join_clinic,
)
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live, add_clinic, live_server
from tests.services import create_postgres_database, drop_postgres_database


def _request(
    live: Live, code: str, username: str = "admin", password: str = PASSWORD
) -> JoinRequest:
    return JoinRequest(
        username, password, server_url=live.url, enroll_code=code, ca_pem=live.ca_pem,
        device_name="Front desk",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("username", "password"),
    [("admin", PASSWORD + "x"), ("admn", PASSWORD), ("  ADMIN ", "Harbour-lights-at-dusk-9")],
    ids=["wrong password", "mistyped name", "both"],
)
def test_a_typo_at_join_spends_no_code_and_enrolls_nothing(
    live: Live, tmp_path: Path, username: str, password: str
) -> None:
    clinic = add_clinic(live.server, "Hillside Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)  # one use
    folder = tmp_path / "desk"
    desk = Workstation(folder, kdf_params=FAST_PARAMS)
    with pytest.raises(AccountCheckedBeforeCodeError) as refused:
        join_clinic(desk, _request(live, code, username, password))
    words = refused.value.plain_words()
    assert words.startswith(f"the clinic has no account {username.strip().lower()} ")
    assert "the enrollment code was not used" in words
    assert live.server.registry.devices(clinic) == []  # nothing for IT to revoke
    assert not folder.exists() and not first_sync_pending(desk)

    # The same one-use code, typed right this time.
    result = join_clinic(desk, _request(live, code))
    assert result.records > 0
    assert [d.name for d in live.server.registry.devices(clinic)] == ["Front desk"]
    desk.sign_in("admin", PASSWORD)
    desk.lock()


def test_a_deactivated_account_is_told_before_the_code_is_spent(live: Live, tmp_path: Path) -> None:
    clinic = add_clinic(live.server, "Hillside Clinic")
    live.server.add_user(clinic, "rita", "Rita Reception", "front_desk", PASSWORD)
    live.server.staff(clinic, lambda staff: staff.deactivate("rita"))
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    desk = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS)
    with pytest.raises(AccountDeactivatedBeforeCodeError) as refused:
        join_clinic(desk, _request(live, code, "rita"))
    assert refused.value.plain_words() == (
        "the account rita has been deactivated by the clinic's administrator; ask them to "
        "reactivate it (the enrollment code was not used)"
    )
    assert live.server.registry.devices(clinic) == []
    # A wrong password for the deactivated account says only that it is wrong.
    with pytest.raises(AccountCheckedBeforeCodeError):
        join_clinic(desk, _request(live, code, "rita", "Harbour-lights-at-dusk-9"))


def test_a_used_code_is_refused_with_the_servers_reason(live: Live, tmp_path: Path) -> None:
    clinic = add_clinic(live.server, "Hillside Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    join_clinic(Workstation(tmp_path / "first", kdf_params=FAST_PARAMS), _request(live, code))
    second = Workstation(tmp_path / "second", kdf_params=FAST_PARAMS)
    with pytest.raises(EnrollmentError) as refused:
        join_clinic(second, _request(live, code, password="Harbour-lights-at-dusk-9"))
    assert str(refused.value) == (
        "the server refused enrollment: the enrollment code has already been used; ask IT for a "
        "new one"
    )
    assert not (tmp_path / "second").exists()


def test_a_code_answers_a_few_account_checks_then_waits(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """A code's holder may retry their own name a few times, not walk the staff list."""
    clinic = add_clinic(live.server, "Hillside Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    caplog.set_level(logging.INFO, logger="careline.security")
    # The same code spelt as the server accepts it (any case, with or without dashes)
    # counts as that code.
    spellings = [code, code.lower(), code.replace("-", ""), f" {code.lower()} "]
    # Made-up codes in between count towards nothing of the real code's.
    for made_up in ("AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH"):
        with pytest.raises(EnrollmentError, match="the enrollment code is not valid"):
            account_before_enrollment(live.url, made_up, live.ca_pem, "admin")
    for i in range(ACCOUNT_CHECKS_PER_CODE):
        spelt = spellings[i % len(spellings)]
        account = account_before_enrollment(live.url, spelt, live.ca_pem, "nobody")
        assert account is not None and account.verifier is None
    with pytest.raises(EnrollmentError, match="too many account checks with this enrollment code"):
        account_before_enrollment(live.url, code.lower().replace("-", " "), live.ca_pem, "admin")
    found = account_before_enrollment(
        live.url, live.server.registry.issue_enroll_code(clinic, 10)[0], live.ca_pem, "Admin"
    )
    assert found is not None and found.active and found.verifier is not None
    assert found.verifier.startswith("$argon2id$")
    # What was typed reaches the log only when it is an account's name (people type their
    # password into the name box).
    checked = [
        getattr(r, "security_fields", {}).get("username")
        for r in caplog.records
        if getattr(r, "security_event", "") == "enroll.account_checked"
    ]
    assert checked == [None] * ACCOUNT_CHECKS_PER_CODE + ["admin"]


def _spend_checks(live: Live, code: str, count: int) -> None:
    for _ in range(count):
        account = account_before_enrollment(live.url, code, live.ca_pem, "nobody")
        assert account is not None and account.verifier is None


def test_a_code_for_several_workstations_answers_checks_for_each(live: Live) -> None:
    """A code issued for three workstations answers a few more retries than a code for
    one: 429 once they are spent, which is not a failed enrollment of the address."""
    clinic = add_clinic(live.server, "Hillside Clinic")
    code, _ = live.server.registry.issue_enroll_code(clinic, 10, uses=3)
    _spend_checks(live, code, account_checks_allowed(3))
    assert account_checks_allowed(3) > ACCOUNT_CHECKS_PER_CODE
    with httpx.Client(verify=tls_trust(live.ca_pem)) as client:
        for _ in range(ENROLL_FAILURES + 1):
            refused = client.post(
                live.url + "/v1/enroll/account", json={"code": code, "username": "admin"}
            )
            assert refused.status_code == 429
            assert refused.json()["detail"] == (
                "too many account checks with this enrollment code; ask IT for a new code"
            )
        # Not counted against the address: a made-up code is still only "not valid".
        made_up = client.post(
            live.url + "/v1/enroll/account",
            json={"code": "AAAA-BBBB-CCCC-DDDD", "username": "admin"},
        )
        assert (made_up.status_code, made_up.json()["detail"]) == (
            400, "the enrollment code is not valid"
        )  # fmt: skip


@pytest.mark.parametrize("store", ["embedded", "postgres"])
def test_the_count_outlives_a_restart_and_is_shared_by_server_processes(
    store: str, tmp_path: Path, no_keyring: None
) -> None:
    """The registry keeps the count: restarting the server, or asking a second server
    process on the same PostgreSQL database, gives no fresh checks."""
    url = create_postgres_database() if store == "postgres" else None
    env = {} if url is None else {"DATABASE_URL": url}
    try:
        with live_server(tmp_path / "server", env) as first:
            clinic = add_clinic(first.server, "Hillside Clinic")
            code, _ = first.server.registry.issue_enroll_code(clinic, 10)
            _spend_checks(first, code, account_checks_allowed(1) - 2)
            if url is not None:  # a second process beside the first, as behind a balancer
                (tmp_path / "second").mkdir(mode=0o700)
                keys = "master-keys.json"  # the same key, as the processes of one server
                (tmp_path / "second" / keys).write_bytes((tmp_path / "server" / keys).read_bytes())
                (tmp_path / "second" / keys).chmod(0o600)
                with live_server(tmp_path / "second", env) as second:
                    _spend_checks(second, code, 1)
            else:
                _spend_checks(first, code, 1)
        with live_server(tmp_path / "server", env) as restarted:
            _spend_checks(restarted, code, 1)
            with pytest.raises(EnrollmentError, match="too many account checks"):
                account_before_enrollment(restarted.url, code, restarted.ca_pem, "admin")
            # Refused checks spent nothing of the code: it still enrolls.
            assert restarted.server.registry.code_clinic(code) == clinic
    finally:
        if url is not None:
            drop_postgres_database(url)


def test_an_older_server_still_joins_and_checks_the_account_after(tmp_path: Path) -> None:
    """A server without the account check (an older release): the workstation enrolls and
    checks the account once the records arrived, as before; a typo then spends the code
    and leaves the device enrolled, and the message says so."""
    folder = tmp_path / "desk"
    desk = Workstation(folder, kdf_params=FAST_PARAMS)
    with live_server(tmp_path / "server", without_routes=("/v1/enroll/account",)) as live:
        clinic = add_clinic(live.server, "Hillside Clinic")
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        assert account_before_enrollment(live.url, code, live.ca_pem, "admin") is None
        with pytest.raises(NoAccountError) as refused:
            join_clinic(desk, _request(live, code, password="Harbour-lights-at-dusk-9"))
        assert not isinstance(refused.value, AccountCheckedBeforeCodeError)
        assert "the enrollment or pairing code was used" in refused.value.plain_words()
        assert len(live.server.registry.devices(clinic)) == 1
        other, _ = live.server.registry.issue_enroll_code(clinic, 10)
        assert join_clinic(desk, _request(live, other)).records > 0


def test_a_proxy_with_no_server_behind_it_is_named_unreachable(tmp_path: Path) -> None:
    """A balancer answering 502 (no clinic server behind it) is a server that did not
    answer, to try again later, not a refusal: the code was not used."""

    class NoBackend(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    cert, key = ensure_tls(tmp_path, "127.0.0.1")
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoBackend)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    proxy.socket = tls.wrap_socket(proxy.socket, server_side=True)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{proxy.server_address[1]}"
        with pytest.raises(ServerUnreachableError, match=r"did not answer \(HTTP 502\)"):
            account_before_enrollment(url, "AAAA-BBBB-CCCC-DDDD", cert.read_text(), "admin")
    finally:
        proxy.shutdown()
        proxy.server_close()
