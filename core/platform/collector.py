"""Python's cyclic garbage collector held off while a bulk store runs.

Storing a snapshot page makes thousands of short-lived container objects (a document per
record, its rows, the page's parsed JSON). Nearly all are freed by reference counting, but
CPython starts a collection every 700 net allocations, and each one walks the objects that
happen to be alive then (the whole page's), promoting them towards the oldest generation,
whose full collections walk the whole heap: measured, 5-11% of a first download's CPU time.
Holding collection off for the length of one page costs at most that page's cyclic garbage
in memory until it ends; collection then resumes on Python's usual thresholds.

The desktop app turns automatic collection off for good and collects on its GUI thread
(``app/garbage.py``): collection is then already off, and this leaves it so.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0  # threads inside ``paused``
_resume = False  # whether the first holder found collection on (and so turns it back on)


@contextmanager
def paused() -> Iterator[None]:
    """Hold automatic collection off while the block runs (nested and concurrent uses
    share one pause; the last to leave turns collection back on if it was on before)."""
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
