"""Processes started by the tests derive keys with Argon2id at ``FAST_PARAMS``.

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; the one in
tests/cheap_kdf_site makes ``core.crypto.kdf.DEFAULT_PARAMS`` equal ``FAST_PARAMS`` in that
process (this code's, or a previous release's). tests/conftest.py puts the folder on the
suite's ``PYTHONPATH``, so every ``careline``, ``careline-server`` and desktop-app process a
test starts inherits it. Why: every ``careline`` command signs in, two Argon2id derivations
at the parameters stored with the key slot and the password verifier, 64 MiB and 3 passes
each at production cost; hundreds of commands made minutes of the suite. In-process tests
already use ``FAST_PARAMS`` (the ``workstation`` fixture). A test whose processes must pay
production cost (a race that needs the derivation's time as its window) asks for the
``production_kdf`` fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

CHEAP_KDF_SITE = str(Path(__file__).resolve().parent / "cheap_kdf_site")


def _others(pythonpath: str | None) -> list[str]:
    return [p for p in (pythonpath or "").split(os.pathsep) if p and p != CHEAP_KDF_SITE]


def with_cheap_kdf(pythonpath: str | None) -> str:
    """``pythonpath`` with tests/cheap_kdf_site first."""
    return os.pathsep.join([CHEAP_KDF_SITE, *_others(pythonpath)])


def without_cheap_kdf(pythonpath: str | None) -> str | None:
    """``pythonpath`` without tests/cheap_kdf_site (None when nothing else is left)."""
    return os.pathsep.join(_others(pythonpath)) or None


def is_cheap(pythonpath: str | None) -> bool:
    """Whether processes started with ``pythonpath`` derive keys at ``FAST_PARAMS``."""
    return CHEAP_KDF_SITE in (pythonpath or "").split(os.pathsep)
