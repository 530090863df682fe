"""The one retry rule the app's sync controller and ``careline sync`` share."""

from __future__ import annotations

import random

from core.sync.backoff import backoff


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    for n in range(1, 9):
        full = min(10_000, 1_000 * 2 ** (n - 1))
        delays = [backoff(n, 1_000, 10_000, rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), n
        # Jitter: a clinic's workstations do not retry in lockstep.
        assert len({round(d) for d in delays}) > 100


def test_backoff_after_days_offline_stays_at_the_cap() -> None:
    # Thousands of failures must not overflow: the delay simply stays capped.
    rng = random.Random(2)
    assert 150 <= backoff(5_000, 30, 300, rng) <= 300


def test_backoff_before_any_failure_is_the_base() -> None:
    assert 15 <= backoff(0, 30, 600, random.Random(3)) <= 30
