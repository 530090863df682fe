"""Run fuzz targets for a bounded time each, as ``make fuzz`` and the short test run do.

``python -m tests.fuzz.campaign [--seconds N] [TARGET ...]``: each target runs in its own
process under atheris, starting from its corpus in the repository. New interesting inputs
go to ``WORK/<target>/new`` (never into the repository's corpus: minimise and copy the
ones worth keeping), crashes to ``WORK/<target>/crash-*``. Exits non-zero if any target
crashed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.targets import NAMES

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
ROOT = HERE.parent.parent
DEFAULT_WORK = ROOT / ".fuzz"


@dataclass(frozen=True)
class Outcome:
    """One target's run: its exit code, how long it took, and its output's last lines."""

    target: str
    returncode: int
    seconds: float
    tail: str

    @property
    def crashed(self) -> bool:
        """libFuzzer exits non-zero when the target raised (or timed out, or ran out of
        memory); it writes the input to ``crash-*`` beside the work folder."""
        return self.returncode != 0


def run_target(
    name: str, seconds: int, work: Path, runs: int | None = None, timeout_per_input: int = 20
) -> Outcome:
    """Fuzz ``name`` for ``seconds`` (and at most ``runs`` inputs, if given)."""
    out = work / name
    new = out / "new"
    new.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "tests.fuzz", name, str(new), str(CORPUS / name),
        f"-max_total_time={seconds}", f"-timeout={timeout_per_input}", "-rss_limit_mb=4096",
        f"-artifact_prefix={out}/", "-print_final_stats=1",
    ]  # fmt: skip
    if runs is not None:
        cmd.append(f"-runs={runs}")
    started = time.monotonic()
    # Start-up (imports, the target's replicas and keys) is not counted in max_total_time:
    # allow for it, and stop a run that hangs for good.
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return Outcome(name, proc.returncode, time.monotonic() - started, "\n".join(lines[-40:]))


def main(argv: list[str] | None = None) -> int:
    """Run the named targets (all by default); print each outcome; 1 if any crashed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(NAMES)}")
    parser.add_argument("--seconds", type=int, default=60, help="per target")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args(argv)
    unknown = set(args.targets) - set(NAMES)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; targets: {', '.join(NAMES)}")
    failed = []
    for name in args.targets or NAMES:
        outcome = run_target(name, args.seconds, args.work)
        status = "CRASHED" if outcome.crashed else "ok"
        print(f"{name}: {status} in {outcome.seconds:.0f} s", flush=True)
        if outcome.crashed:
            print(outcome.tail, flush=True)
            failed.append(name)
    if failed:
        print(f"crashes in {', '.join(failed)}; inputs under {args.work}/<target>/crash-*")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
