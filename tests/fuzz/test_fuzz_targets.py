"""The fuzz targets, as part of ``make test``: every corpus input (seeds, and the inputs
that once crashed a parser) replays cleanly, and a short coverage-guided run of each
target finds nothing new. ``make fuzz`` runs each target for longer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz import targets
from tests.fuzz.campaign import CORPUS, run_target

# Seconds of fuzzing per target in the short run (start-up comes on top).
SHORT_RUN_SECONDS = int(os.environ.get("CARELINE_FUZZ_TEST_SECONDS", "2"))


@pytest.mark.parametrize("name", targets.NAMES)
def test_every_corpus_input_is_handled_as_the_contract_says(name: str) -> None:
    inputs = sorted((CORPUS / name).iterdir())
    assert inputs, f"tests/fuzz/corpus/{name} is empty: run python -m tests.fuzz.make_corpus"
    target = targets.load(name)
    for path in inputs:
        target(path.read_bytes())  # raises on a broken contract, naming it


@pytest.mark.slow
@pytest.mark.parametrize("name", targets.NAMES)
def test_a_short_fuzzing_run_finds_no_crash(name: str, tmp_path: Path) -> None:
    outcome = run_target(name, SHORT_RUN_SECONDS, tmp_path)
    crashes = sorted(p.name for p in (tmp_path / name).glob("crash-*"))
    assert not outcome.crashed, f"{name} crashed ({crashes}):\n{outcome.tail}"
