"""The security event log file: JSON lines, mode 0600, whole lines from many processes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.server import security_log

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "logs" / "security.jsonl"
    handler = security_log.install(path)
    assert handler is not None
    yield path
    logging.getLogger(security_log.LOGGER).removeHandler(handler)
    handler.close()


def test_events_are_json_lines_in_a_private_file(installed: Path) -> None:
    security_log.event("device.revoked", id="dev-1", clinic="c-1")
    security_log.event("enroll.refused", failed=True, reason="x" * 10_000)
    assert installed.stat().st_mode & 0o777 == 0o600
    first, second = (json.loads(line) for line in installed.read_text().splitlines())
    assert first["event"] == "device.revoked" and first["outcome"] == "success"
    assert (first["id"], first["clinic"]) == ("dev-1", "c-1")
    assert second["outcome"] == "failure"
    assert len(second["reason"]) < 300  # long values are shortened, the line stays whole


def test_an_existing_file_open_to_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "security.jsonl"
    path.write_text("")
    path.chmod(0o644)
    handler = security_log.SecurityLogHandler(path)
    handler.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_concurrent_processes_append_only_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "security.jsonl"
    writer = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from core.server import security_log
        security_log.install(Path({str(path)!r}))
        for i in range(400):
            security_log.event("test.event", writer=sys.argv[1], i=i, pad="p" * 3000)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, name], cwd=REPO) for name in ("a", "b", "c")
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    seen = {(doc["writer"], doc["i"]) for doc in map(json.loads, lines[:-1])}
    assert seen == {(w, i) for w in "abc" for i in range(400)}
