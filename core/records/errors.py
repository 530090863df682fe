"""Errors from clinical operations."""

from core.errors import CarelineError


class RecordError(CarelineError):
    """Base class."""


class ValidationError(RecordError):
    """A field value is not acceptable; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message  # without the field's name, to say it in other words


class NotFoundError(RecordError):
    """No record with that id."""


class NotAllowedError(RecordError):
    """The signed-in person may not do this; the message names who may ("Only a clinician
    can sign a note"). Raised by core/records/authorize.py, audited as ``action.refused``."""


class AuthenticationError(RecordError):
    """Wrong user name or password, or the account is disabled."""


class UnknownAccountError(AuthenticationError):
    """No account has the user name typed. Same message as a wrong password; the type lets
    the workstation keep the typed text out of its files and audit log (people type their
    password into the user name box)."""


class AccountDeactivatedError(AuthenticationError):
    """The password is right but the clinic's administrator deactivated the account."""


class SignInDelayedError(AuthenticationError):
    """Too many failed sign-ins for this account on this workstation: the next try must wait
    (core/records/lockout.py)."""

    def __init__(
        self, message: str, seconds_left: float, user: str = "", failures: int = 0
    ) -> None:
        super().__init__(message)
        self.seconds_left = seconds_left
        # Who must wait and after how many failures: a screen says the wait again as it
        # shortens (core.records.lockout.delayed_text).
        self.user = user
        self.failures = failures


class SecondFactorRequiredError(AuthenticationError):
    """The password is right and the account has two-factor sign-in: a TOTP code is needed
    (asked for, then the sign-in is tried again with it)."""


class PasswordChangeRequiredError(AuthenticationError):
    """The signed-in person's password was set by someone else: they must choose their own
    before anything else."""


class StaleSlotError(AuthenticationError):
    """The password did not open this workstation's slot for the user, and nothing else
    could open the database to check it: either the password is wrong, or it was changed
    on another workstation and this one still holds the previous one (which, given once
    with the new one, brings it up to date)."""
