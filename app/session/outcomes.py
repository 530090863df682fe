"""What became of work a person started, told to that person when its dialog has closed.

A backup, a re-encryption, a restore, a new recovery key or a connection to the clinic
server runs on after its dialog closes: the person closed it (a backup or a connection
may be left to finish), or a sign-out or the auto-logoff closed it. Its outcome is then
said here: at once in the window if the same person is still signed in, otherwise at
their next sign-in on this computer, and to nobody else. Kept in memory only, until said
or the app quits. What is kept is a sentence for the person, never a key, a password or a
patient's details (a dialog that closed on a recovery key withdraws that key instead of
keeping it: app/session/key_dialogs.py, app/admin/backup.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """One sentence for a person; ``problem``: the work failed or was not done;
    ``passing``: news that only passes in the status bar, at a later sign-in too (a
    connection made, a scheduled backup), where the rest waits above the pages."""

    text: str
    problem: bool = False
    passing: bool = False


# Says one outcome to the person a dialog was opened for: (text, problem).
Tell = Callable[[str, bool], None]


def tell_nobody(_text: str, _problem: bool) -> None:
    """For a dialog opened outside the window (tests of it alone): nobody to tell."""


class Outcomes:
    """Outcomes waiting for the person they are about (see the module docstring).

    ``now(username)`` says whether ``username`` is signed in at this moment and the window
    can show it; ``show(outcome)`` shows one in the window."""

    def __init__(self, now: Callable[[str], bool], show: Callable[[Outcome], None]) -> None:
        self._now = now
        self._show = show
        self._kept: dict[str, list[Outcome]] = {}

    def teller(self, username: str) -> Tell:
        """What a dialog opened for ``username`` calls to say an outcome once it closed."""

        def tell(text: str, problem: bool) -> None:
            self.tell(username, text, problem)

        return tell

    def tell(self, username: str, text: str, problem: bool = False, passing: bool = False) -> None:
        """Say ``text`` to ``username``: now, or at their next sign-in here."""
        outcome = Outcome(text, problem, passing)
        if self._now(username):
            self._show(outcome)
        else:
            self._kept.setdefault(username, []).append(outcome)

    def waiting(self, username: str) -> list[Outcome]:
        """What waits for ``username`` (still kept)."""
        return list(self._kept.get(username, []))

    def take(self, username: str) -> list[Outcome]:
        """What waited for ``username``, forgotten here (they have just signed in)."""
        return self._kept.pop(username, [])
