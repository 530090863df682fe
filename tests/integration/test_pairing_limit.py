"""The pairing listener's per-address limit, over real TLS sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import PairingError, join
from core.sync.lan.server import PAIRING_ATTEMPTS, PAIRING_WINDOW, AttemptLimiter, PeerServer


class Clock:
    """A monotonic clock the test moves by hand (the listener's threads read it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def listener(workstation: Workstation, clock: Clock) -> Iterator[tuple[Workstation, int]]:
    """A serving workstation whose pairing listener allows 3 attempts a minute per address."""
    identity = lan_id.ensure_identity(workstation.database, "admin")
    limit = AttemptLimiter(attempts=3, window=60.0, clock=clock)
    with PeerServer(workstation.database, identity, pairing_limit=limit) as server:
        assert server.pairing_port is not None
        yield workstation, server.pairing_port


def test_too_many_attempts_from_one_address_are_refused_then_allowed_again(
    listener: tuple[Workstation, int], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ws, port = listener
    code = lan_id.new_pair_code(ws.database, "admin")
    caplog.set_level(logging.WARNING, logger="core.sync.lan.server")
    for _ in range(3):
        with pytest.raises(PairingError, match="wrong, expired or already used"):
            join("127.0.0.1", port, "AAAAA-BBBBB")
    clock.now += 20
    # Even the right code is refused now, with a message saying when to try again...
    with pytest.raises(PairingError) as refused:
        join("127.0.0.1", port, code)
    assert str(refused.value) == (
        "the peer refused pairing: too many pairing attempts from this address; "
        "try again in 40 seconds"
    )
    deadline = time.monotonic() + 3  # the listener logs from its own thread
    while "more than 3 attempts" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "refused pairing from 127.0.0.1:" in caplog.text
    assert "more than 3 attempts in 60 s from this address" in caplog.text
    # ...and the refusal neither counted as a guess nor used the code: a minute after the
    # first attempts, the same code pairs.
    clock.now += 41
    identity = join("127.0.0.1", port, code)
    assert identity.device_id


def test_the_limit_is_per_address_and_slides() -> None:
    clock = Clock()
    limit = AttemptLimiter(clock=clock)
    assert (limit.attempts, limit.window) == (PAIRING_ATTEMPTS, PAIRING_WINDOW) == (5, 60.0)
    for second in range(5):
        clock.now = 1000.0 + second
        assert limit.admit("192.0.2.7") is None
    assert limit.admit("192.0.2.7") == pytest.approx(56.0)
    assert limit.admit("192.0.2.8") is None  # another workstation is not affected
    clock.now = 1060.0  # the first attempt has left the window, the others have not
    assert limit.admit("192.0.2.7") is None
    assert limit.admit("192.0.2.7") == pytest.approx(1.0)


def test_tracked_addresses_are_bounded() -> None:
    clock = Clock()
    limit = AttemptLimiter(attempts=1, clock=clock)
    for i in range(5000):
        limit.admit(f"10.0.{i // 256}.{i % 256}")
    assert len(limit) <= 4096
