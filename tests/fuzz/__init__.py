"""Coverage-guided fuzzing (atheris) of every parser that takes bytes from outside.

``python -m tests.fuzz TARGET [libFuzzer flags]`` runs one target under atheris; ``make
fuzz`` runs each for ``FUZZ_SECONDS``; tests/fuzz/test_fuzz_targets.py replays the corpus
and runs each target briefly as part of ``make test``. Targets live in
:mod:`tests.fuzz.targets`, their corpora in ``tests/fuzz/corpus/<target>/`` (seeded by
:mod:`tests.fuzz.make_corpus`).
"""
