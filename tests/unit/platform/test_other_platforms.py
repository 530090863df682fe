"""Every ``core`` module imports on Windows and macOS, simulated on Linux in a child: core
is imported once for real (so third-party packages load as they would there), then again
with ``sys.platform`` changed, the POSIX-only modules that platform lacks made unimportable
*for core's own imports*, and the ``os``/``mmap``/``signal`` names it lacks removed.

A simulation, stated: it catches core importing or naming at import time what the other
platform does not have. It cannot run Windows's own calls (VirtualLock, msvcrt); those
paths are not exercised here."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

_SIMULATE = """
import builtins, importlib, json, mmap, os, pkgutil, signal, sys
import core

names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "core."))
for name in names:
    importlib.import_module(name)
real_import = builtins.__import__
report = {}
for target, plan in json.loads(sys.argv[1]).items():
    for name in [n for n in sys.modules if n == "core" or n.startswith("core.")]:
        del sys.modules[name]
    saved = {}
    for module, attrs in ((os, plan["os"]), (mmap, plan["mmap"]), (signal, plan["signal"])):
        for attr in attrs:
            if hasattr(module, attr):
                saved[(module, attr)] = getattr(module, attr)
                delattr(module, attr)
    real_platform, sys.platform = sys.platform, target
    blocked = set(plan["modules"])

    def simulated_import(name, globals=None, locals=None, fromlist=(), level=0):
        importer = (globals or {}).get("__name__") or ""
        if level == 0 and name.partition(".")[0] in blocked and importer.startswith("core"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = simulated_import
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = repr(exc)
    from core.platform.memory import PAGE_CALLS
    report[target] = {
        "count": len(names),
        "failed": failed,
        "page_calls": type(PAGE_CALLS).__name__,
    }
    builtins.__import__ = real_import
    sys.platform = real_platform
    for (module, attr), value in saved.items():
        setattr(module, attr, value)
print(json.dumps(report))
"""

# What each platform lacks that Linux has (the names core might plausibly touch).
_POSIX_ONLY_OS = [
    "memfd_create", "MFD_CLOEXEC", "mkfifo", "fchmod", "fchown", "chown", "lchown",
    "O_CLOEXEC", "O_NOFOLLOW", "O_DIRECTORY", "O_NONBLOCK", "statvfs", "ST_RDONLY",
    "getuid", "geteuid", "getgid", "getegid", "fork", "setsid", "killpg", "getpgid",
    "sync", "pipe2", "sched_getaffinity", "posix_fadvise", "lockf", "F_LOCK",
]  # fmt: skip
_PLANS = {
    "win32": {
        "modules": ["fcntl", "resource", "termios", "tty", "pty", "pwd", "grp", "syslog"],
        "os": _POSIX_ONLY_OS,
        "mmap": ["MADV_DONTDUMP", "MAP_SHARED", "MAP_PRIVATE", "PROT_READ", "PROT_WRITE"],
        "signal": ["SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGPIPE"],
    },
    "darwin": {
        "modules": [],
        "os": ["memfd_create", "MFD_CLOEXEC", "pipe2", "sched_getaffinity", "O_DIRECT"],
        "mmap": ["MADV_DONTDUMP"],
        "signal": [],
    },
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="simulates from Linux")
def test_every_core_module_imports_on_windows_and_macos() -> None:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SIMULATE), json.dumps(_PLANS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for target in _PLANS:
        assert report[target]["count"] > 100
        assert report[target]["failed"] == {}, target
    # On the simulated Windows there is no kernel32 to load: the stated fallback.
    assert report["win32"]["page_calls"] == "NoneType"
    assert report["darwin"]["page_calls"] == "_PosixCalls"
