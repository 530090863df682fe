"""How long to wait before retrying a failed sync: one rule for the app and the CLI."""

from __future__ import annotations

import random


def backoff(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number ``failures`` (1, 2, ...), in the unit of ``base`` and ``cap``.

    Doubles from ``base`` up to ``cap``, with "equal jitter" (between half and all of it) so
    that a clinic's workstations do not all come back at once after an outage.
    """
    # The exponent is bounded: a workstation offline for days counts thousands of failures,
    # and 2 ** 1100 does not fit a float.
    delay = min(cap, base * 2.0 ** min(max(failures - 1, 0), 64))
    return delay / 2 + rng.uniform(0, delay / 2)
