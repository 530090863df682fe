from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from core.crypto.secure_memory import SecureMemory


def _vmlck_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return -1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_buffer_is_locked_and_excluded_from_dumps() -> None:
    before = _vmlck_kb()
    mem = SecureMemory.from_bytes(b"k" * 32)
    assert mem.locked
    assert _vmlck_kb() >= before + 4
    addr = mem._addr
    with open("/proc/self/smaps") as fh:
        smaps = fh.read()
    start = f"{addr:x}-"
    section = smaps[smaps.index(start) :].split("\n\n")[0]
    vmflags = next(line for line in section.splitlines() if line.startswith("VmFlags"))
    assert " dd" in vmflags  # MADV_DONTDUMP
    assert " lo" in vmflags  # mlock'd
    mem.close()
    assert _vmlck_kb() == before


def test_close_zeroes_the_memory() -> None:
    mem = SecureMemory.from_bytes(bytearray(b"\xaa" * 32))
    assert mem.read() == b"\xaa" * 32
    view = (ctypes.c_char * 32).from_address(mem._addr)
    mem.wipe()
    assert view.raw == b"\x00" * 32
    mem.close()
    assert mem.closed
    with pytest.raises(ValueError, match="closed"):
        mem.read()
    mem.close()  # idempotent


def test_bytearray_source_is_cleared() -> None:
    source = bytearray(b"secret-key-bytes")
    mem = SecureMemory.from_bytes(source)
    assert source == bytearray(len(source))
    assert mem.read() == b"secret-key-bytes"
    mem.close()


def test_lock_limit_gives_a_warning_not_a_crash() -> None:
    script = textwrap.dedent(
        """
        import resource, warnings
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
        from core.crypto.secure_memory import SecureMemory, MemoryLockWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mem = SecureMemory.from_bytes(b"x" * 32)
        assert not mem.locked
        assert mem.read() == b"x" * 32
        assert any(issubclass(w.category, MemoryLockWarning) for w in caught)
        print(caught[0].message)
        """
    )
    # root holds CAP_IPC_LOCK, which ignores RLIMIT_MEMLOCK: drop it for the child.
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop CAP_IPC_LOCK")
        prefix = [setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock"]
    out = subprocess.run(
        [*prefix, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "could not lock key memory" in out.stdout


def test_disable_core_dumps() -> None:
    script = textwrap.dedent(
        """
        import ctypes, ctypes.util, resource
        from core.crypto.secure_memory import disable_core_dumps
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        disable_core_dumps()
        print(resource.getrlimit(resource.RLIMIT_CORE), before, libc.prctl(3, 0, 0, 0, 0))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "(0, 0) 1 0"
