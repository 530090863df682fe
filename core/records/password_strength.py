"""How hard a password is to guess, explained (zxcvbn) rather than composition rules.

zxcvbn estimates how many guesses an attacker needs, knowing common passwords, words,
names, keyboard patterns, dates and repeats, and says why a password is weak ("This is a
top-100 common password") and what helps ("Add another word or two"). Composition rules
("one digit, one symbol") push people to ``Password1!``, which zxcvbn rightly rates weak,
while four ordinary words pass.

The estimate that matters here is zxcvbn's offline slow-hash one (10^4 guesses a second):
a stolen key file or copy of the clinic database lets an attacker guess a staff password
offline against its Argon2id slot or verifier, with no sign-in delay to slow them down.
A password is accepted at zxcvbn's score 3 ("safely unguessable: moderate protection from
an offline slow-hash scenario", at least 10^8 guesses: hours at that rate) or better. The
rate is zxcvbn's assumption, not a measurement: Careline's Argon2id settings cost an
ordinary computer far more than 1/10^4 s per guess, while an attacker with many GPUs
guesses faster. The estimate is shown as it is; it is not a guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zxcvbn import zxcvbn

# zxcvbn's scores 0-4; 3 is "safely unguessable: moderate protection from an offline
# slow-hash scenario" in its own words.
MIN_SCORE = 3
# zxcvbn's run time grows with length; it looks at the first 72 characters (longer ones are
# rated on those, which only understates them).
_MAX_RATED = 72
SCORE_WORDS = ("very weak", "weak", "fair", "strong", "very strong")


@dataclass(frozen=True)
class Strength:
    """zxcvbn's verdict on one password."""

    score: int  # 0 (very weak) to 4 (very strong)
    warning: str  # why it is weak, or "" (zxcvbn gives none for a strong one)
    suggestions: tuple[str, ...]
    crack_time: str  # "3 hours", "centuries": offline guessing against a slow hash

    @property
    def acceptable(self) -> bool:
        """Strong enough to be set as a staff password."""
        return self.score >= MIN_SCORE

    @property
    def label(self) -> str:
        """``very weak`` ... ``very strong``."""
        return SCORE_WORDS[self.score]

    @property
    def _about(self) -> str:
        return self.crack_time if self.crack_time.startswith("less") else f"about {self.crack_time}"

    def explanation(self) -> str:
        """One sentence or three: the verdict, the time to guess it offline, and zxcvbn's
        warning and first suggestion (the refusal's message, and the app's live hint).

        Only the first suggestion, zxcvbn's main one ("Add another word or two…"): its
        others ("Capitalization doesn't help very much", three more) took the hint to
        eight lines, and the hint keeps room for its longest text from the start so the
        field under it never moves (``LONGEST_EXPLANATION``)."""
        if self.acceptable:
            head = f"{self.label}: guessing it offline would take {self._about}"
        else:
            head = (
                f"too easy to guess ({self.label}): a stolen copy of the key file could be "
                f"guessed in {self._about}"
            )
        parts = [head, self.warning, *self.suggestions[:1]]
        return ". ".join(p.rstrip(".") for p in parts if p) + "."


# The longest explanation there is: the weakest verdict's words, zxcvbn's longest warning
# (a repeat's) and its first suggestion whenever it warns (the only one shown). A new
# password's hint keeps this room from the start (app/session/strength_hint.py); a test
# holds zxcvbn's feedback to it (tests/unit/records/test_password_strength.py).
LONGEST_EXPLANATION = Strength(
    score=0,
    warning='Repeats like "abcabcabc" are only slightly harder to guess than "abc".',
    suggestions=("Add another word or two. Uncommon words are better.",),
    crack_time="less than a second",
).explanation()


def assess(password: str, user_inputs: Sequence[str] = ()) -> Strength:
    """zxcvbn's verdict; ``user_inputs`` (user name, full name, clinic) count as guessable
    words, so ``riverside-clinic-2024`` is weak for Riverside Clinic."""
    # Each word, and the words run together ("wesweak" for "Wes Weak").
    inputs = [word for value in user_inputs for word in value.lower().split() if word]
    inputs += ["".join(value.lower().split()) for value in user_inputs if value.strip()]
    result = zxcvbn(password[:_MAX_RATED], user_inputs=inputs)
    feedback = result.get("feedback") or {}
    crack = result["crack_times_display"]["offline_slow_hashing_1e4_per_second"]
    return Strength(
        score=int(result["score"]),
        warning=str(feedback.get("warning") or ""),
        suggestions=tuple(str(s) for s in feedback.get("suggestions") or ()),
        crack_time=str(crack),
    )
