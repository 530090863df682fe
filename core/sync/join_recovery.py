"""Whether joining a clinic gives the new replica a recovery key, and shows it.

The recovery key opens this computer's records and sets any account's password, an
administrator's included (``careline keys recover``, the sign-in screen's "Forgot
password"), and that reset syncs clinic-wide. So it is an administrator's secret, as is
making a new one (the permission matrix: ``keys.recovery_replace``). A join makes the
replica behind the joining person's password alone (``Workstation.prepare_join``); once
their account has arrived and they have signed in with it, a recovery key is made and shown
only if they may issue one. Anyone else gets none, and is told that an administrator makes
it after signing in on this computer (Settings -> New recovery key..., or ``careline --user
NAME keys recovery``).

Scripts read why there is none from :class:`RecoveryAtJoin.reason` (``careline enroll
--json`` and ``careline pair join --json``: ``recovery_key_reason``); its values are the
constants below and do not change meaning between releases.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.records.permissions import rule_for
from core.records.workstation import Workstation

# Why a join showed no recovery key (stable words for scripts).
NOT_AN_ADMINISTRATOR = "not_an_administrator"
# The person's password was right but their two-factor code is asked for at sign-in: the
# join has not proved the second factor, so it does not hand over a key that resets others'
# passwords.
SECOND_FACTOR_PENDING = "second_factor_pending"
# The person must first replace a password an administrator set for them.
CHANGE_PENDING = "password_change_pending"
# A computer that already held the clinic keeps its own recovery key (or lack of one).
EXISTING_REPLICA = "existing_replica"
# Silent enrollment: nobody was at the keyboard to be shown one.
SILENT_JOIN = "silent_join"

REASONS = (
    NOT_AN_ADMINISTRATOR,
    SECOND_FACTOR_PENDING,
    CHANGE_PENDING,
    EXISTING_REPLICA,
    SILENT_JOIN,
)

_ACTION = "keys.recovery_replace"
_MAKE_ONE = (
    "An administrator makes this computer's recovery key after signing in here "
    "(Settings → New recovery key…, or 'careline --user NAME keys recovery')."
)
_WORDS = {
    NOT_AN_ADMINISTRATOR: "Only administrators hold a computer's recovery key, so none was "
    "made. " + _MAKE_ONE,
    SECOND_FACTOR_PENDING: "No recovery key was made yet: your two-factor code has not been "
    "given on this computer. Sign in with it, then make the recovery key (Settings → New "
    "recovery key…, or 'careline --user NAME keys recovery').",
    CHANGE_PENDING: "No recovery key was made yet: first choose your own password at "
    "sign-in (an administrator set the current one). " + _MAKE_ONE,
    EXISTING_REPLICA: "This computer keeps the recovery key it had.",
    SILENT_JOIN: "Nobody was at the keyboard, so no recovery key was made. " + _MAKE_ONE,
}


@dataclass(frozen=True)
class RecoveryAtJoin:
    """The new replica's recovery key, to be shown once, or why there is none."""

    key: str | None
    reason: str | None  # one of REASONS when ``key`` is None

    @property
    def words(self) -> str:
        """Why there is no recovery key and what to do, for the person (empty with a key)."""
        return "" if self.reason is None else _WORDS[self.reason]


def for_signed_in(ws: Workstation) -> RecoveryAtJoin:
    """With the joining person signed in on the new replica ``ws``: a recovery key made for
    them (audited ``keys.recovery_replace`` as them) if the permission matrix lets them
    issue one, else none and why."""
    if ws.password_change_required:
        return RecoveryAtJoin(None, CHANGE_PENDING)
    rule = rule_for(_ACTION)
    assert rule is not None  # the matrix names every action
    if not ws.records.may(rule.permission):
        return RecoveryAtJoin(None, NOT_AN_ADMINISTRATOR)
    return RecoveryAtJoin(ws.new_recovery_key(), None)


def words_for(reason: str | None) -> str:
    """The person's words for ``reason`` (see :class:`RecoveryAtJoin`)."""
    return RecoveryAtJoin(None, reason).words
