"""Running a child process whose key memory cannot be locked (RLIMIT_MEMLOCK = 0)."""

from __future__ import annotations

import os
import shutil

import pytest


def no_memlock_prefix() -> list[str]:
    """A command prefix that runs the rest with RLIMIT_MEMLOCK 0 and, as root, without
    CAP_IPC_LOCK (which lets root ignore the limit): ``setpriv`` drops the capability from
    the bounding and inheritable sets, so the exec'd program does not regain it; ``prlimit``
    sets the limit. Skips the test where either tool is missing."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("prlimit (util-linux) is not installed")
    prefix = [prlimit, "--memlock=0:0"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop CAP_IPC_LOCK")
        prefix = [setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", *prefix]
    return prefix
