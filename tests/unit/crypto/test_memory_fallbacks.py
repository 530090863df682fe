"""Key memory where the platform lacks a call: simulated on Linux in child processes, by
pretending to be an unknown platform (no page calls at all) or by hiding ``resource``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.memlock import no_memlock_prefix

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses prctl")


def _run(script: str, prefix: list[str] | None = None) -> dict[str, object]:
    out = subprocess.run(
        [*(prefix or []), sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_without_page_calls_keys_are_plain_buffers_and_each_policy_holds() -> None:
    """No lock, no guard pages: under ``warn`` a warning says so and the key still works,
    under ``require`` making a key fails naming the problem, under ``off`` nothing is said."""
    result = _run(
        """
        import ctypes, json, sys, warnings
        sys.platform = "plan9"  # a platform Careline has no page calls for
        from core.platform.memory import PAGE_CALLS
        from core.crypto import secure_memory as sm

        seen = {"calls": PAGE_CALLS is None}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mem = sm.SecureMemory.from_bytes(bytearray(b"k" * 32))
        seen["warned"] = [str(w.message) for w in caught if w.category is sm.MemoryLockWarning]
        seen["locked"], seen["guarded"] = mem.locked, mem.guarded
        ctypes.memset(mem._addr, 0x41, 1)  # nothing stops a stray write here
        seen["read"] = mem.read().decode()
        mem.wipe()
        seen["wiped"] = mem.read() == bytes(32)
        mem.close()
        sm.set_memory_locking("require")
        try:
            sm.SecureMemory(32)
        except sm.MemoryLockError as exc:
            seen["required"] = str(exc)
        sm.set_memory_locking("off")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sm.SecureMemory.from_bytes(b"y" * 32).close()
        print(json.dumps(seen))
        """
    )
    assert result["calls"] is True
    assert result["warned"] == [
        "memory locking is not available on this platform; keys may reach swap"
    ]
    assert (result["locked"], result["guarded"]) == (False, False)
    assert result["read"] == "A" + "k" * 31
    assert result["wiped"] is True
    assert "memory locking is not available on this platform" in str(result["required"])
    assert "ENABLE_MEMORY_LOCKING=false" in str(result["required"])


def test_without_resource_the_lock_error_still_names_the_fix() -> None:
    """``resource`` hidden (as on Windows): secure_memory imports, and a required lock that
    fails says the limit is unknown but still how to raise it."""
    result = _run(
        """
        import json, sys
        sys.modules["resource"] = None  # import resource now fails
        from core.crypto import secure_memory as sm
        sm.set_memory_locking("require")
        try:
            sm.SecureMemory(32)
        except sm.MemoryLockError as exc:
            print(json.dumps({"error": str(exc)}))
        """,
        prefix=no_memlock_prefix(),
    )
    assert "RLIMIT_MEMLOCK is unknown" in str(result["error"])
    assert "ulimit -l" in str(result["error"])


@linux_only
def test_without_resource_core_dumps_are_still_refused_through_prctl() -> None:
    result = _run(
        """
        import ctypes, ctypes.util, json, sys
        sys.modules["resource"] = None
        from core.crypto.secure_memory import disable_core_dumps
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        disable_core_dumps()
        print(json.dumps({"before": before, "after": libc.prctl(3, 0, 0, 0, 0)}))
        """
    )
    assert result == {"before": 1, "after": 0}
