"""Turning what a person types into a safe FTS5 query, and names into comparable forms."""

from __future__ import annotations

import re
import unicodedata

# Letters and digits: what the index's tokenizer (unicode61) keeps as word characters. Not
# the underscore (\w has it, unicode61 splits on it): a quoted term the tokenizer splits in
# two is a phrase, which the index (detail=column since migration V14) cannot answer.
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
MAX_TERMS = 8

# Marks a name may be written with or without (O'Brien, OBrien, O Brien; Jean-Luc, Jeanluc):
# the index's ``names`` column holds each name without them (migration V2 drops exactly
# these; a test checks the two agree).
NAME_JOINERS = "'\u2019\u2018\u02bc`\u00b4-\u2010\u2011\u2013\u2014. "
_JOINERS = str.maketrans("", "", NAME_JOINERS)


def fold_name(name: str) -> str:
    """A name reduced to what identifies it when spoken: no accents, no apostrophes,
    hyphens, dots or spaces, case-folded. ``"O'Brien"``, ``"o brien"`` and ``"OBRIEN"`` all
    give ``"obrien"``; ``"José"`` gives ``"jose"``."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.translate(_JOINERS).casefold()


def fts_prefix_query(text: str) -> str | None:
    """Every word becomes a quoted prefix term, ANDed: ``smi jo`` -> ``"smi"* "jo"*``.

    Words typed with a joining mark or a space between them (``o'brien``, ``o brien``)
    also match the name written as one word: ``(... AND ...) OR names:"obrien"*``.
    Quoting makes FTS5 operators in the input (``OR``, ``NEAR``, ``:``, ``*``) plain text,
    so user input can never change the query's structure. None when nothing searchable.
    """
    tokens = _TOKEN.findall(unicodedata.normalize("NFKC", text))[:MAX_TERMS]
    if not tokens:
        return None
    words = " ".join(f'"{token}"*' for token in tokens)
    if len(tokens) == 1:
        return words
    return f'({words}) OR names : "{"".join(tokens)}"*'
