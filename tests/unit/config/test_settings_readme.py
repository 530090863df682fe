"""Every workstation setting the configuration knows has its row in the README's settings
table ("Where data lives"): a setting IT can write in careline.toml is documented."""

from __future__ import annotations

import re
from pathlib import Path

from core.config.settings import DESKTOP_SCHEMA

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_workstation_setting_has_a_row_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| setting | default | what |") :].split("\n\n", 1)[0]
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))
    assert {setting.name for setting in DESKTOP_SCHEMA} - rows == set()
