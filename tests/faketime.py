"""Programs run with their clock shifted: libfaketime (Debian's ``faketime`` package),
preloaded into the program itself.

libfaketime answers the C library's clock calls (``clock_gettime``, ``time``,
``gettimeofday``) with the shifted time, so Python's ``time.time()`` and ``datetime.now()``
and OpenSSL's certificate date checks all see it; the monotonic clock is shifted by the same
constant, so timeouts and sleeps still work (``FAKETIME_DONT_FAKE_MONOTONIC=1`` would break
Python's ``time.sleep`` with EINVAL: it is not used). ``FAKETIME`` holds a relative offset
such as ``+2h`` or ``-2d``, from which the clock runs on normally; for a constant offset no
cache setting (``FAKETIME_NO_CACHE``) matters. The library is preloaded through the
environment rather than by the ``faketime`` command: that command runs the program as its
child and does not pass signals on, so stopping it would leave the program running. The
thread-safe build is used (servers run threads); child processes inherit it.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

DAY_S = 86_400


def _library() -> str | None:
    for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
        found = sorted(
            glob.glob(f"/usr/lib/*/faketime/{name}") + glob.glob(f"/usr/lib/faketime/{name}")
        )
        if found:
            return found[0]
    return None


def shifted(offset: str) -> dict[str, str]:
    """Environment variables that run a program with its clock ``offset`` (``+2h``, ``-2d``)
    off the real time."""
    library = _library()
    assert library is not None, "libfaketime is not installed"
    preload = " ".join(p for p in (library, os.environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload, "FAKETIME": offset}


def faketime_problem() -> str | None:
    """Why programs cannot be run with a shifted clock here, or None when they can: checks
    that a Python child with ``FAKETIME=+1d`` really reads a clock a day ahead."""
    if _library() is None:
        return "libfaketime is not installed (apt-get install faketime)"
    probe = [sys.executable, "-c", "import time; print(time.time())"]
    try:
        real = float(
            subprocess.run(probe, capture_output=True, text=True, check=True, timeout=30).stdout
        )
        moved = float(
            subprocess.run(
                probe,
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
                env={**os.environ, **shifted("+1d")},
            ).stdout
        )
    except (subprocess.SubprocessError, ValueError) as exc:
        return f"libfaketime does not run Python here: {exc}"  # fmt: skip
    if abs(moved - real - DAY_S) > 60:
        return f"FAKETIME=+1d did not shift Python's clock (it moved {moved - real:.0f} s)"
    return None
