"""``careline vitals add --help`` shows an example of each vital typed with its unit."""

from __future__ import annotations

import pytest

from core.cli.vitals import EXAMPLES, OPTIONS
from core.cli.workstation import build_parser
from core.records import vitals as cat
from core.records.vitals import measure


def test_each_example_in_the_help_is_a_value_of_that_vital() -> None:
    """Temperature and height once both said "e.g. 70kg", which neither accepts."""
    for key, example in EXAMPLES.items():
        assert measure(cat.BY_KEY[key], example).vital.key == key, example


def test_the_help_gives_each_vital_with_units_its_own_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["vitals", "add", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for option, key in OPTIONS.items():
        vital = cat.BY_KEY[key]
        if len(vital.units) > 1:
            assert f"--{option} {option.upper()} {vital.label.lower()} (" in shown, option
            assert f"e.g. {EXAMPLES[key]})" in shown, option
    assert "e.g. 70kg" in shown and shown.count("70kg") == 1  # the weight's alone
