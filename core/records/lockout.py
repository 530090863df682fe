"""Sign-in delays after repeated failures, per account and per workstation.

Policy: the first ``FREE_FAILURES`` failed sign-ins of an account on a workstation cost
nothing (typos happen); each one after that makes the next try wait, doubling from
``FIRST_DELAY`` up to ``MAX_DELAY``: 5 s, 10 s, 20 s, ... 5 min. A successful sign-in ends
it. The delay is kept per ACCOUNT: on a shared front-desk computer one person's typos (or
someone guessing at one account) never delay anybody else's sign-in.

The counts live in a small file next to the key file (``sign-in-delays.json``, mode 0600,
written under the key file's lock), not in the encrypted database, because most failed
sign-ins happen while the clinic is closed and no key can open the database. So they
survive a restart of the app or a fresh ``careline`` process. What this does NOT protect:
someone who can write to the data folder can delete the file (and can copy the key file
to guess offline anyway, where only the password's strength and Argon2id's cost stand in
the way); each workstation keeps its own counts (an attacker can try on each computer);
and there is no server here to rate-limit anything while offline.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.keys.files import exclusive_lock
from core.records.errors import SignInDelayedError

log = logging.getLogger(__name__)

DELAYS_FILE = "sign-in-delays.json"
FREE_FAILURES = 3
FIRST_DELAY = 5.0
MAX_DELAY = 300.0
MAX_ACCOUNTS = 500  # user names kept in the file at most

Clock = Callable[[], float]


def delay_after(failures: int) -> float:
    """Seconds the next sign-in must wait after ``failures`` failures in a row."""
    if failures <= FREE_FAILURES:
        return 0.0
    return float(min(FIRST_DELAY * 2.0 ** (failures - FREE_FAILURES - 1), MAX_DELAY))


@dataclass(frozen=True)
class Lockout:
    """One account's failures on this workstation."""

    user: str
    failures: int
    last_failure: float  # seconds since the epoch
    until: float  # the next sign-in may start then (== last_failure when no delay)

    def seconds_left(self, now: float) -> float:
        """How long the next try still has to wait (0: it may go ahead)."""
        return max(0.0, self.until - now)

    def to_dict(self, now: float) -> dict[str, Any]:
        """For ``--json`` and the staff screen."""
        return {
            "user": self.user,
            "failures": self.failures,
            "last_failure": _iso(self.last_failure),
            "wait_seconds": round(self.seconds_left(now)),
        }


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def describe_wait(seconds: float) -> str:
    """``12 seconds`` / ``4 minutes``."""
    whole = max(1, round(seconds))
    if whole < 120:
        return f"{whole} second{'s' if whole != 1 else ''}"
    return f"{round(whole / 60)} minutes"


def delayed_text(user: str, failures: int, seconds_left: float) -> str:
    """Why ``user`` must wait, and for how long (the sign-in screen says it again each
    second as the wait shortens)."""
    return (
        f"too many failed sign-ins for {user!r} on this computer "
        f"({failures} in a row): try again in {describe_wait(seconds_left)}. "
        "Other staff can sign in meanwhile; an administrator sees this under "
        "Settings > Staff or 'careline user list'"
    )


class SignInDelays:
    """The delays file of one workstation. ``clock`` is injectable for tests."""

    def __init__(self, path: Path, lock_path: Path, clock: Clock = time.time) -> None:
        self.path = path
        self.lock_path = lock_path
        self.clock = clock

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A damaged file must not stop anyone signing in, nor hide the problem.
            log.warning("sign-in delays file %s unreadable, starting afresh: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(k): {"failures": float(v.get("failures", 0)), "last": float(v.get("last", 0))}
            for k, v in data.items()
            if isinstance(v, dict)
        }

    def _write(self, data: dict[str, dict[str, float]]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(data, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def lockout(self, user: str) -> Lockout | None:
        """The account's failures here, if any."""
        entry = self._read().get(user)
        if not entry or entry["failures"] <= 0:
            return None
        failures = int(entry["failures"])
        return Lockout(user, failures, entry["last"], entry["last"] + delay_after(failures))

    def check(self, user: str) -> None:
        """Refuse (SignInDelayedError) while the account must still wait here."""
        found = self.lockout(user)
        if found is None:
            return
        left = found.seconds_left(self.clock())
        if left > 0:
            raise SignInDelayedError(
                delayed_text(user, found.failures, left), left, user, found.failures
            )

    def failed(self, user: str) -> Lockout:
        """Count a failure; returns the new state (its delay applies to the next try)."""
        now = self.clock()
        try:
            with exclusive_lock(self.lock_path):
                data = self._read()
                failures = int(data.get(user, {}).get("failures", 0)) + 1
                data[user] = {"failures": failures, "last": now}
                if len(data) > MAX_ACCOUNTS:
                    # Names typed at random must not grow the file without bound: the
                    # accounts that failed longest ago are forgotten first.
                    keep = sorted(data, key=lambda name: data[name]["last"])[-MAX_ACCOUNTS:]
                    data = {name: data[name] for name in keep}
                self._write(data)
        except OSError as exc:  # a read-only folder: the refusal itself still stands
            log.warning("could not count a failed sign-in: %s", exc)
            failures = 1
        return Lockout(user, failures, now, now + delay_after(failures))

    def succeeded(self, user: str) -> None:
        """A successful sign-in ends the account's delay."""
        if not self.path.exists():
            return
        try:
            with exclusive_lock(self.lock_path):
                data = self._read()
                if data.pop(user, None) is not None:
                    self._write(data)
        except OSError as exc:
            log.warning("could not clear the sign-in delay of %r: %s", user, exc)

    def keep_only(self, accounts: set[str]) -> None:
        """Forget counts kept for names that are not ``accounts`` (a file written by an
        earlier release counted any name typed, a mistyped password included)."""
        if not self.path.exists():
            return
        try:
            with exclusive_lock(self.lock_path):
                data = self._read()
                kept = {name: entry for name, entry in data.items() if name in accounts}
                if kept != data:
                    self._write(kept)
        except OSError as exc:
            log.warning("could not tidy the sign-in delays file: %s", exc)

    def clear(self, user: str) -> None:
        """An administrator lifts an account's delay here (e.g. after a password reset)."""
        self.succeeded(user)

    def all(self) -> list[Lockout]:
        """Every account with failures counted here, by user name."""
        found = (self.lockout(user) for user in sorted(self._read()))
        return [lock for lock in found if lock is not None]
