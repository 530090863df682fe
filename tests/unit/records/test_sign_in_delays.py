"""Sign-in delays after repeated failures (per account, per workstation), and two-factor
sign-in for admins, with the workstation's clock moved by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import two_factor
from core.records.errors import (
    AuthenticationError,
    SecondFactorRequiredError,
    SignInDelayedError,
    ValidationError,
)
from core.records.lockout import MAX_ACCOUNTS, MAX_DELAY, SignInDelays, delay_after
from core.records.workstation import NOT_AN_ACCOUNT, Workstation
from tests.conftest import PASSWORD

NURSE_PW = "quiet river lantern"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shared(tmp_path: Path, no_keyring: None, clock: Clock) -> Workstation:
    """A clinic closed on a shared computer where the admin and a nurse have signed in."""
    ws = Workstation(tmp_path / "desk", kdf_params=FAST_PARAMS, clock=clock)
    ws.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    ws.sign_in("admin", PASSWORD)
    ws.records.add_user("nina", "Nina Nurse", "nurse", NURSE_PW)
    ws.sign_out()
    ws.sign_in("nina", NURSE_PW)
    ws.lock()
    return ws


def fail(ws: Workstation, user: str, times: int) -> None:
    """``times`` wrong passwords, each after waiting out the delay the one before set."""
    clock = ws.clock
    assert isinstance(clock, Clock)
    for _ in range(times):
        found = ws.sign_in_delays.lockout(user)
        if found is not None:
            clock.now += found.seconds_left(clock())
        with pytest.raises(AuthenticationError) as caught:
            ws.sign_in(user, "not the password")
        assert not isinstance(caught.value, SignInDelayedError)


def test_the_delay_grows_and_is_capped() -> None:
    assert [delay_after(n) for n in range(1, 8)] == [0, 0, 0, 5, 10, 20, 40]
    assert delay_after(30) == MAX_DELAY == 300


def test_three_typos_cost_nothing_then_each_failure_makes_the_next_try_wait(
    shared: Workstation, clock: Clock
) -> None:
    fail(shared, "nina", 3)
    fail(shared, "nina", 1)  # the 4th failure is counted; the next try must wait 5 s
    with pytest.raises(SignInDelayedError, match="try again in 5 seconds") as caught:
        shared.sign_in("nina", NURSE_PW)  # even the right password is not tried yet
    assert caught.value.seconds_left == 5
    clock.now += 5
    fail(shared, "nina", 1)  # 5th failure: 10 s
    clock.now += 9
    with pytest.raises(SignInDelayedError, match="1 second"):
        shared.sign_in("nina", NURSE_PW)
    clock.now += 1
    shared.sign_in("nina", NURSE_PW)  # success ends it
    assert shared.lockouts() == []
    shared.lock()
    fail(shared, "nina", 3)
    shared.sign_in("nina", NURSE_PW)


def test_one_person_s_typos_never_delay_another_on_the_same_computer(
    shared: Workstation, clock: Clock
) -> None:
    fail(shared, "nina", 6)
    with pytest.raises(SignInDelayedError):
        shared.sign_in("nina", NURSE_PW)
    assert shared.sign_in("admin", PASSWORD).username == "admin"
    [locked] = shared.lockouts()
    assert (locked.user, locked.failures) == ("nina", 6)
    assert locked.seconds_left(clock()) == 20  # 6th failure: 20 s from it
    assert locked.to_dict(clock())["wait_seconds"] == 20


def test_the_delay_survives_a_restart_and_failures_are_audited(
    shared: Workstation, clock: Clock
) -> None:
    fail(shared, "nina", 4)
    # A new process: a new Workstation on the same folder.
    again = Workstation(shared.data_dir, kdf_params=FAST_PARAMS, clock=clock)
    with pytest.raises(SignInDelayedError):
        again.sign_in("nina", NURSE_PW)
    again.sign_in("admin", PASSWORD)
    failed = again.database.query(
        "SELECT entity_id FROM audit_log WHERE action = 'user.sign_in_failed'"
    )
    assert [str(r[0]) for r in failed] == ["nina"] * 4
    # An admin's reset lifts the delay on this computer.
    again.reset_staff_password("nina", "new start meadow lamp")
    assert again.lockouts() == []


def test_an_admin_with_two_factor_needs_the_code_and_a_wrong_one_counts(
    shared: Workstation, clock: Clock
) -> None:
    shared.sign_in("admin", PASSWORD)
    secret = two_factor.new_secret()
    with pytest.raises(ValidationError, match="does not match"):
        shared.staff().enrol_totp(
            secret, "000000" if two_factor.current_code(secret) != "000000" else "111111"
        )
    assert shared.staff().enrol_totp(secret, two_factor.current_code(secret)).two_factor
    uri = two_factor.provisioning_uri(secret, "admin", "Riverside Clinic")
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    shared.lock()

    with pytest.raises(SecondFactorRequiredError, match="6-digit code"):
        shared.sign_in("admin", PASSWORD)
    assert not shared.is_unlocked  # nothing stays open without the code
    code_now = two_factor.current_code(secret, clock())
    wrong = "000000" if code_now != "000000" else "111111"
    with pytest.raises(AuthenticationError, match="wrong two-factor code"):
        shared.sign_in("admin", PASSWORD, totp_code=wrong)
    [counted] = shared.lockouts()
    assert counted.failures == 1
    # A code from 5 minutes ago no longer works; the current one does.
    stale = two_factor.current_code(secret, clock() - 300)
    if stale != code_now:
        with pytest.raises(AuthenticationError, match="wrong two-factor code"):
            shared.sign_in("admin", PASSWORD, totp_code=stale)
    user = shared.sign_in("admin", PASSWORD, totp_code=code_now)
    assert user.two_factor
    # Other staff are not asked for a code.
    shared.sign_out()
    shared.sign_in("nina", NURSE_PW)
    shared.sign_out()
    shared.sign_in("admin", PASSWORD, totp_code=two_factor.current_code(secret, clock()))
    assert not shared.staff().disable_totp().two_factor
    shared.lock()
    shared.sign_in("admin", PASSWORD)


def test_names_typed_at_random_do_not_grow_the_file_without_bound(
    tmp_path: Path, clock: Clock
) -> None:
    delays = SignInDelays(tmp_path / "delays.json", tmp_path / "delays.lock", clock)
    for i in range(MAX_ACCOUNTS + 20):
        clock.now += 1
        delays.failed(f"guess{i}")
    kept = delays.all()
    assert len(kept) == MAX_ACCOUNTS
    assert "guess0" not in {lock.user for lock in kept}  # the oldest went first
    assert delays.lockout(f"guess{MAX_ACCOUNTS + 19}") is not None


def test_a_password_typed_into_the_user_name_box_is_kept_nowhere(
    shared: Workstation, clock: Clock
) -> None:
    shared.sign_in("admin", PASSWORD)
    shared.sign_out()  # open, nobody signed in: the front desk's usual state
    typed = "quiet river lantern nina"  # the nurse's password, then her name
    for _ in range(6):
        with pytest.raises(AuthenticationError, match="wrong user name or password"):
            shared.sign_in(typed, "nina")
    # Not counted (no account can be guessed at through it), so not in the plaintext file,
    # and the audit log (which syncs to the server) records the failures without the text.
    assert shared.lockouts() == []
    assert not shared.sign_in_delays.path.exists() or typed not in (
        shared.sign_in_delays.path.read_text(encoding="utf-8")
    )
    failed = shared.database.query(
        "SELECT entity_id, details FROM audit_log WHERE action = 'user.sign_in_failed'"
    )
    assert [str(r[0]) for r in failed] == [NOT_AN_ACCOUNT] * 6
    assert not any("quiet river" in str(r) for r in failed)
    # A real account's wrong password still counts, under its name.
    with pytest.raises(AuthenticationError):
        shared.sign_in("nina", "not her password")
    assert [(lock.user, lock.failures) for lock in shared.lockouts()] == [("nina", 1)]


def test_a_delays_file_from_before_forgets_names_no_account_has(
    shared: Workstation, clock: Clock
) -> None:
    # An earlier release counted whatever was typed; the next sign-in tidies the file.
    delays = shared.sign_in_delays
    delays.failed("111 111 111frida")
    delays.failed("nina")
    shared.sign_in("admin", PASSWORD)
    text = delays.path.read_text(encoding="utf-8")
    assert "111 111 111frida" not in text
    assert [lock.user for lock in shared.lockouts()] == ["nina"]
