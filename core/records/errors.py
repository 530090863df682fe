"""Errors from clinical operations."""

from core.errors import CarelineError


class RecordError(CarelineError):
    """Base class."""


class ValidationError(RecordError):
    """A field value is not acceptable; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFoundError(RecordError):
    """No record with that id."""


class NotAllowedError(RecordError):
    """The signed-in person may not do this; the message names who may ("Only a clinician
    can sign a note"). Raised by core/records/authorize.py, audited as ``action.refused``."""


class AuthenticationError(RecordError):
    """Wrong user name or password, or the account is disabled."""


class StaleSlotError(AuthenticationError):
    """The password did not open this workstation's slot for the user, and nothing else
    could open the database to check it: either the password is wrong, or it was changed
    on another workstation and this one still holds the previous one (which, given once
    with the new one, brings it up to date)."""
