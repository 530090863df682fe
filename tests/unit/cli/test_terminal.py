"""The CLI's text output shows control characters from records as escapes, never raw."""

from __future__ import annotations

import pytest

from core.cli.terminal import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("dr\x1b[2J\x1b[31m evil\x07", "dr\\x1b[2J\\x1b[31m evil\\x07"),
        ("csi\u009b31m del\x7f", "csi\\x9b31m del\\x7f"),  # C1's one-character CSI, DEL
        ("over\rwrite\x00", "over\\x0dwrite\\x00"),
        ("lines\n\tand tabs stay; Zoé, 東京 ß", "lines\n\tand tabs stay; Zoé, 東京 ß"),
    ],
)
def test_control_characters_are_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown
