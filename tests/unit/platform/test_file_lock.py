"""File locks where the platform has none (neither ``fcntl`` nor ``msvcrt``; simulated on
Linux by hiding ``fcntl``): the modules that lock still import, and asking for a lock fails
naming the problem instead of running unlocked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


def test_without_a_lock_call_locking_fails_naming_the_problem(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        sys.modules["fcntl"] = None  # import fcntl now fails
        import core.keys.providers.local
        from core.keys.files import exclusive_lock
        from core.server import security_log

        folder = Path(sys.argv[1])
        seen = {}
        try:
            with exclusive_lock(folder / "keyslots.json.lock"):
                seen["locked"] = True
        except OSError as exc:
            seen["lock"] = [type(exc).__name__, exc.strerror]
        try:
            security_log.install(folder / "security.jsonl")
        except OSError as exc:
            seen["log"] = exc.strerror
        print(json.dumps(seen))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    problem = "file locking is not available on this platform (no fcntl or msvcrt)"
    assert seen == {"lock": ["FileLockUnavailable", problem], "log": problem}
