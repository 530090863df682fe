"""The fuzz targets, as part of ``make test``: the inputs that once crashed a parser
(``crash-*`` in the corpus) are now handled as the contract says, and a short
coverage-guided run of each target (which first replays its whole corpus) finds nothing
new. ``make fuzz`` runs each target for longer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.fuzz import targets
from tests.fuzz.campaign import CORPUS, run_target

# Seconds of fuzzing per target in the short run (start-up comes on top).
SHORT_RUN_SECONDS = int(os.environ.get("CARELINE_FUZZ_TEST_SECONDS", "2"))


CRASHES = sorted(CORPUS.glob("*/crash-*"))


@pytest.mark.parametrize("path", CRASHES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_an_input_that_once_crashed_a_parser_is_handled(path: Path) -> None:
    target = targets.load(path.parent.name)
    try:
        target(path.read_bytes())  # raises on a broken contract, naming it
    finally:
        # load() silences logging for the fuzzer's millions of refusals: give it back to
        # the rest of the suite, whose tests read log output.
        logging.disable(logging.NOTSET)
        close = getattr(target, "close", None)
        if close is not None:
            close()


@pytest.mark.slow
@pytest.mark.parametrize("name", targets.NAMES)
def test_a_short_fuzzing_run_finds_no_crash(name: str, tmp_path: Path) -> None:
    assert any((CORPUS / name).iterdir()), "no corpus: run python -m tests.fuzz.make_corpus"
    outcome = run_target(name, SHORT_RUN_SECONDS, tmp_path)
    crashes = sorted(p.name for p in (tmp_path / name).glob("crash-*"))
    assert not outcome.crashed, f"{name} crashed ({crashes}):\n{outcome.tail}"
