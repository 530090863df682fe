"""Turning what a person types into a safe FTS5 query."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_prefix_query(text: str) -> str | None:
    """Every word becomes a quoted prefix term, ANDed: ``smi jo`` -> ``"smi"* "jo"*``.

    Quoting makes FTS5 operators in the input (``OR``, ``NEAR``, ``:``, ``*``) plain text,
    so user input can never change the query's structure. None when nothing searchable.
    """
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    return " ".join(f'"{token}"*' for token in tokens[:8])
