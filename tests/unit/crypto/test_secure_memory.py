from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from core.crypto.secure_memory import SecureMemory
from core.records.workstation import Workstation
from tests.conftest import PASSWORD
from tests.memlock import no_memlock_prefix

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _vmlck_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return -1


def _vmflags(addr: int) -> str:
    """The kernel's flags for the mapping that starts at ``addr`` (from /proc/self/smaps)."""
    with open("/proc/self/smaps") as fh:
        smaps = fh.read()
    section = smaps[smaps.index(f"\n{addr:x}-") :]
    return next(line for line in section.splitlines() if line.startswith("VmFlags"))


@linux_only
def test_buffer_is_locked_and_excluded_from_dumps() -> None:
    before = _vmlck_kb()
    mem = SecureMemory.from_bytes(b"k" * 32)
    assert mem.locked
    assert _vmlck_kb() >= before + 4
    vmflags = _vmflags(mem._pages)
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


@linux_only
def test_close_itself_zeroes_the_buffer() -> None:
    """Observed from outside: close() unmaps the buffer, so this process cannot read it
    afterwards. The mapping is shared anonymous memory, so a forked child maps the very same
    pages; the child calls close() and this process reads the pages at the same address."""
    mem = SecureMemory.from_bytes(bytearray(b"\xaa" * 32))
    view = (ctypes.c_char * 32).from_address(mem._addr)
    assert view.raw == b"\xaa" * 32
    assert " sh" in _vmflags(mem._pages), "the observation below needs a shared mapping"
    pid = os.fork()
    if pid == 0:  # child: close and leave at once, running no pytest machinery
        code = 1
        try:
            mem.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert view.raw == b"\x00" * 32
    mem.close()


@linux_only
def test_atexit_hook_zeroes_live_buffers() -> None:
    """A buffer nobody closed is zeroed when the interpreter exits. The child process exits
    normally; its last atexit hook (registered before secure_memory's, so run after it)
    leaves at once with os._exit, so no garbage collection or __del__ can do the work. The
    parent reads the shared pages. A child that skips atexit (os._exit) is the control."""
    script = textwrap.dedent(
        """
        import atexit, ctypes, os, sys
        atexit.register(os._exit, 0)  # runs last: nothing after secure_memory's hook
        from core.crypto.secure_memory import SecureMemory

        mem = SecureMemory.from_bytes(bytearray(b"\\xaa" * 32))
        view = (ctypes.c_char * 32).from_address(mem._addr)
        seen = {}
        for exit_how in ("os._exit", "sys.exit"):
            with mem._writable():
                ctypes.memset(mem._addr, 0xAA, 32)
            pid = os.fork()
            if pid == 0:
                if exit_how == "os._exit":
                    os._exit(0)
                sys.exit(0)
            os.waitpid(pid, 0)
            seen[exit_how] = view.raw.hex()
        print(seen["os._exit"], seen["sys.exit"])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    skipped_hooks, normal_exit = out.stdout.split()
    assert skipped_hooks == "aa" * 32
    assert normal_exit == "00" * 32


def test_bytearray_source_is_cleared() -> None:
    source = bytearray(b"secret-key-bytes")
    mem = SecureMemory.from_bytes(source)
    assert source == bytearray(len(source))
    assert mem.read() == b"secret-key-bytes"
    source.extend(b"more")  # the source is released: the caller may resize it again
    mem.close()


def test_from_bytes_makes_no_python_copy() -> None:
    """The bytes go from the bytearray straight into the locked mapping: no ``bytes`` object
    the size of the secret is ever allocated (it would linger, unwipeable, in the heap)."""
    size = 1 << 20  # large, so any copy stands out from the few small objects made
    source = bytearray(size)
    with open("/dev/urandom", "rb", buffering=0) as fh:
        assert fh.readinto(source) == size  # filled in place, no bytes object either
    first, last = source[0], source[-1]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        mem = SecureMemory.from_bytes(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size // 16
    assert source == bytearray(size)
    view = (ctypes.c_char * size).from_address(mem._addr)
    assert (view[0], view[size - 1]) == (bytes([first]), bytes([last]))
    mem.close()


def test_lock_limit_gives_a_warning_not_a_crash() -> None:
    script = textwrap.dedent(
        """
        import warnings
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
    out = subprocess.run(
        [*no_memlock_prefix(), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "could not lock key memory" in out.stdout


def test_required_locking_fails_naming_the_limit_and_off_skips_it() -> None:
    script = textwrap.dedent(
        """
        import warnings
        from core.crypto import secure_memory as sm
        sm.set_memory_locking("require")
        try:
            sm.SecureMemory(32)
        except sm.MemoryLockError as exc:
            print(exc)
        else:
            raise SystemExit("locking did not fail")
        sm.set_memory_locking("off")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning per buffer: the server warns once
            mem = sm.SecureMemory.from_bytes(b"y" * 32)
        assert not mem.locked and mem.read() == b"y" * 32
        """
    )
    out = subprocess.run(
        [*no_memlock_prefix(), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "could not lock key memory" in out.stdout
    assert "RLIMIT_MEMLOCK is 0 bytes" in out.stdout
    assert "ulimit -l" in out.stdout and "LimitMEMLOCK=" in out.stdout


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


@pytest.fixture
def locked_clinic(workstation: Workstation) -> Path:
    """An initialised data folder, locked, as the ``careline`` command finds it."""
    workstation.lock()
    return workstation.data_dir


def _careline_command() -> list[str]:
    script = Path(sys.executable).parent / "careline"  # the installed console script
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.entry"]


def _core_limit(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as fh:
        line = next(line for line in fh if line.startswith("Max core file size"))
    return " ".join(line.split()[4:6])


@linux_only
def test_careline_runs_with_core_dumps_off(locked_clinic: Path) -> None:
    """The CLI turns core dumps off before it reads a password or unlocks a key: checked
    while it waits for the password on stdin, having started with core dumps allowed."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard == 0:
        pytest.skip("core dumps are already forbidden (hard limit 0): nothing to observe")

    def allow_core_dumps() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))

    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    cmd = [*_careline_command(), "--data-dir", str(locked_clinic), "--password-stdin"]
    proc = subprocess.Popen(
        [*cmd, "patient", "search", "nobody"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Runs between fork and exec: the child starts with core dumps allowed.
        preexec_fn=allow_core_dumps,
    )
    try:
        deadline = time.monotonic() + 60
        limit = _core_limit(proc.pid)
        while limit != "0 0" and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            limit = _core_limit(proc.pid)
        assert proc.poll() is None, "careline should still be waiting for the password"
        assert limit == "0 0"
        _, err = proc.communicate(PASSWORD + "\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err


@linux_only
def test_careline_main_makes_the_process_undumpable(tmp_path: Path) -> None:
    """PR_SET_DUMPABLE=0 (no core file, no same-user ptrace) is set by the entry point, even
    for a command that then fails."""
    script = textwrap.dedent(
        """
        import ctypes, ctypes.util, sys
        from app.entry import main
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        code = main(["--data-dir", sys.argv[1], "patient", "search", "x"])
        print(before, libc.prctl(3, 0, 0, 0, 0), code)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "empty")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["1", "0", "2"]  # dumpable before, not after; "no clinic" exit
