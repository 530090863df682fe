"""Errors from clinical operations."""


class RecordError(Exception):
    """Base class."""


class ValidationError(RecordError):
    """A field value is not acceptable; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFoundError(RecordError):
    """No record with that id."""


class AuthenticationError(RecordError):
    """Wrong user name or password, or the account is disabled."""
