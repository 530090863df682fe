"""TOTP (RFC 6238) second factor for admin accounts, with pyotp.

The secret is 160 random bits (base32), kept in the user's record, which syncs inside
the clinic's encrypted database (SQLCipher on workstations, sealed columns on the server):
so every workstation can check a code offline. README "Two-factor sign-in" says what that
protects and what it does not.
"""

from __future__ import annotations

import time

import pyotp

ISSUER = "Careline"
# One 30-second step either side: a phone clock a little off still works.
VALID_WINDOW = 1


def new_secret() -> str:
    """A fresh random base32 secret (not stored until a code from it is confirmed)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, clinic: str) -> str:
    """The ``otpauth://`` URI an authenticator app imports (typed in or pasted: no QR)."""
    return pyotp.TOTP(secret).provisioning_uri(
        name=f"{username}@{clinic}" if clinic else username, issuer_name=ISSUER
    )


def verify(secret: str, code: str, at: float | None = None) -> bool:
    """Whether ``code`` (spaces allowed) is the secret's code now, or one step either side.

    pyotp compares in constant time. Replay of a code within its window is possible: the
    workstation keeps no record of used codes (the password is still needed too)."""
    cleaned = "".join(code.split())
    if not cleaned.isdigit() or len(cleaned) != 6:
        return False
    moment = time.time() if at is None else at
    return bool(pyotp.TOTP(secret).verify(cleaned, for_time=int(moment), valid_window=VALID_WINDOW))


def current_code(secret: str, at: float | None = None) -> str:
    """The code for ``at`` (now): what an authenticator app shows (tests, the enrol dialog's
    own check is the person's code)."""
    return pyotp.TOTP(secret).at(int(time.time() if at is None else at))
