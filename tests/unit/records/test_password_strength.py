"""How a password's strength is explained: never longer than the room a new password's
hint keeps for it (``LONGEST_EXPLANATION``), whatever zxcvbn's feedback says."""

from __future__ import annotations

from typing import Any, cast

import pytest
from zxcvbn.feedback import get_feedback

from core.records.password_strength import LONGEST_EXPLANATION, Strength, assess


def _match(pattern: str, **fields: Any) -> dict[str, Any]:
    """A zxcvbn match of ``pattern`` with every field its feedback reads."""
    match = {
        "pattern": pattern,
        "token": "Password",
        "turns": 2,
        "base_token": "abc",
        "regex_name": "recent_year",
        "dictionary_name": "passwords",
        "rank": 5,
        "l33t": True,
        "reversed": True,
        "guesses_log10": 3,
    }
    return {**match, **fields}


# One match per branch of zxcvbn's feedback (feedback.get_match_feedback), each warning
# it gives, with every suggestion a dictionary word can add.
BRANCHES = [
    _match("spatial", turns=1),
    _match("spatial"),
    _match("repeat", base_token="a"),
    _match("repeat"),
    _match("sequence"),
    _match("regex"),
    _match("date"),
    *(
        _match("dictionary", dictionary_name=name, token=token, rank=rank, l33t=l33t)
        for name in ("passwords", "english_wikipedia", "surnames", "male_names", "us_tv_and_film")
        for token in ("Password", "PASSWORD", "password")
        for rank in (5, 50, 5000)
        for l33t in (True, False)
    ),
]


@pytest.mark.parametrize("sole", [True, False])
@pytest.mark.parametrize("match", BRANCHES)
def test_no_explanation_is_longer_than_the_room_kept_for_it(
    match: dict[str, Any], sole: bool
) -> None:
    sequence = [match] if sole else [match, _match("bruteforce", token="x")]
    feedback = get_feedback(0, cast(Any, sequence))  # zxcvbn types its matches closely
    slowest = Strength(0, feedback["warning"], tuple(feedback["suggestions"]), "less than a second")
    assert len(slowest.explanation()) <= len(LONGEST_EXPLANATION), slowest.explanation()


def test_a_repeated_word_gets_the_longest_explanation() -> None:
    """The room is no bigger than a real password needs."""
    assert assess("PASSWORDPASSWORD").explanation() == LONGEST_EXPLANATION


def test_only_zxcvbns_first_suggestion_is_said() -> None:
    """ "P@ssw0rd12" draws three suggestions; the first, its main one, is said."""
    verdict = assess("P@ssw0rd12")
    assert len(verdict.suggestions) == 3
    explained = verdict.explanation()
    assert explained.endswith("Add another word or two. Uncommon words are better.")
    assert "Capitalization" not in explained and "Predictable" not in explained
