"""Errors from unlocking and managing keys."""


class KeyError_(Exception):
    """Base class (named to avoid shadowing the builtin KeyError)."""


class WrongSecretError(KeyError_):
    """The password, recovery key or keyring secret does not open any slot."""


class NoSlotError(KeyError_):
    """There is no slot of the kind or for the user asked for."""


class KeyringUnavailableError(KeyError_):
    """No usable OS keyring (headless Linux, locked or missing secret service)."""


class SlotFileError(KeyError_):
    """The key-slot file is missing, unreadable or malformed."""
