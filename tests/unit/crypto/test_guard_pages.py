"""Key buffers sit between inaccessible guard pages and are read-only except while they are
written: a stray write, or a read or write one byte past a key, kills the process instead of
corrupting or leaking the key. Faults are observed in child processes."""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from core.crypto.secure_memory import SecureMemory

_PAGE = mmap.PAGESIZE
# macOS reports some protection faults as SIGBUS.
_FAULTS = {-signal.SIGSEGV, -signal.SIGBUS} if sys.platform == "darwin" else {-signal.SIGSEGV}


def _permissions(start: int, end: int) -> list[tuple[int, int, str]]:
    """The kernel's (start, end, permissions) of the mappings between ``start`` and ``end``."""
    found = []
    with open("/proc/self/maps") as fh:
        for line in fh:
            span, perms = line.split()[:2]
            lo, hi = (int(part, 16) for part in span.split("-"))
            if lo < end and hi > start:
                found.append((lo, hi, perms))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("size", [32, 33, _PAGE, _PAGE + 1])
def test_key_is_read_only_between_guard_pages_and_ends_at_the_trailing_one(size: int) -> None:
    mem = SecureMemory.from_bytes(bytearray(b"k" * size))
    assert mem.guarded
    data_pages = -(-size // _PAGE) * _PAGE
    first, data_end = mem._pages, mem._pages + data_pages
    assert mem._addr + size == data_end  # the key's last byte is the last before the guard
    guards_and_data = [
        (first - _PAGE, first, "---s"),
        (first, data_end, "r--s"),
        (data_end, data_end + _PAGE, "---s"),
    ]
    assert _permissions(first - _PAGE, data_end + _PAGE) == guards_and_data
    with mem._writable():
        writable = _permissions(first - _PAGE, data_end + _PAGE)
    assert [perms for *_, perms in writable] == ["---s", "rw-s", "---s"]
    assert _permissions(first - _PAGE, data_end + _PAGE) == guards_and_data
    assert mem.read() == b"k" * size and mem.hex() == "6b" * size
    mem.wipe()
    assert mem.read() == bytes(size)
    assert _permissions(first - _PAGE, data_end + _PAGE) == guards_and_data
    mem.close()
    assert _permissions(first - _PAGE, data_end + _PAGE) == []


_CHILD = """
import ctypes
from core.crypto.secure_memory import SecureMemory, disable_core_dumps

disable_core_dumps()  # the fault below must leave no core file behind
mem = SecureMemory.from_bytes(bytearray(b"k" * 33))  # not a page multiple: the key ends flush
assert mem.guarded and mem.read() == b"k" * 33
print("ready", flush=True)
{action}
print("survived", mem.read().hex(), flush=True)
"""


@pytest.mark.skipif(os.name != "posix", reason="faults are signals on POSIX")
@pytest.mark.parametrize(
    ("action", "faults"),
    [
        ("with mem._writable():\n    ctypes.memset(mem._addr, 0x41, mem.size + 1)", True),
        ("ctypes.string_at(mem._addr, mem.size + 1)", True),
        ("ctypes.memset(mem._addr, 0x41, 1)", True),
        ("ctypes.memset(mem._addr + mem.size - 1, 0x41, 1)", True),
        # Controls: the same calls staying inside the key, or writing in the write window.
        ("with mem._writable():\n    ctypes.memset(mem._addr, 0x41, mem.size)", False),
        ("assert ctypes.string_at(mem._addr, mem.size) == b'k' * 33", False),
    ],
    ids=[
        "write one byte past the key",
        "read one byte past the key",
        "write into the read-only key",
        "write the key's last byte, read-only",
        "control: fill exactly the key while writable",
        "control: read exactly the key",
    ],
)
def test_out_of_bounds_or_read_only_access_kills_the_process(action: str, faults: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD).format(action=action)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.stdout.startswith("ready\n"), out.stderr
    if faults:
        assert out.returncode in _FAULTS, (out.returncode, out.stderr)
        assert "survived" not in out.stdout
    else:
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[1:] in (["survived", "41" * 33], ["survived", "6b" * 33])
