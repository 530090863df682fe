"""Errors from unlocking and managing keys."""

from core.errors import CarelineError


class KeyError_(CarelineError):
    """Base class (named to avoid shadowing the builtin KeyError)."""

    plain_template = "the clinic database could not be unlocked: {detail}"


class WrongSecretError(KeyError_):
    """The password, recovery key or keyring secret does not open any slot."""


class NoSlotError(KeyError_):
    """There is no slot of the kind or for the user asked for."""


class KeyringUnavailableError(KeyError_):
    """No usable OS keyring (headless Linux, locked or missing secret service)."""

    plain_template = "the OS keyring cannot be used: {detail}"


class SlotFileError(KeyError_):
    """The key-slot file is missing, unreadable or malformed."""

    plain_template = "this workstation's key file cannot be read: {detail}"
