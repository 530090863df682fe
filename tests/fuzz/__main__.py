"""``python -m tests.fuzz TARGET [CORPUS_DIR ...] [-libFuzzer_flag=value ...]``.

Runs one target under atheris, coverage-guided: the ``core`` package is instrumented as
the target imports it (the target's own set-up code in tests/ is not). Without atheris
installed this says so and exits 2.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Fuzz the target named by the first argument; libFuzzer reads the rest."""
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit("usage: python -m tests.fuzz TARGET [CORPUS_DIR ...] [-flag=value ...]")
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris)", file=sys.stderr)
        raise SystemExit(2) from None
    name = sys.argv[1]
    # Everything under core/ that the target imports is instrumented for coverage; it must
    # be the first import of core in this process, or those modules stay uninstrumented.
    with atheris.instrument_imports(include=["core"]):
        from tests.fuzz import targets

        target = targets.load(name)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
