"""Turning core exceptions into plain sentences a person at the front desk can act on."""

from __future__ import annotations

import logging

from core.keys.errors import KeyError_, KeyringUnavailableError, SlotFileError
from core.records import types
from core.records.errors import AuthenticationError, NotFoundError, ValidationError
from core.store.errors import StoreError

log = logging.getLogger(__name__)

# Core names fields as its API does; people see the labels the forms use.
FIELD_LABELS: dict[str, str] = dict(types.FIELD_LABELS)  # from the record-type specs


_PREDICATES = ("is ", "must ", "contains ", "are ", "has ")


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def validation_text(exc: ValidationError) -> str:
    """``birth_date: is in the future`` -> ``Date of birth is in the future.``"""
    raw = str(exc)
    prefix = f"{exc.field}: "
    detail = raw[len(prefix) :] if raw.startswith(prefix) else raw
    label = FIELD_LABELS.get(exc.field, exc.field.replace("_", " ").capitalize())
    # "is required" reads well glued to the label; "'x' is not a date" or "use 2-32
    # letters" read better after a colon.
    joiner = " " if detail.startswith(_PREDICATES) else ": "
    return sentence(f"{label}{joiner}{detail}")


def describe_error(exc: BaseException) -> str:
    """One or two plain sentences for any error raised by core (or by a bug)."""
    if isinstance(exc, ValidationError):
        return validation_text(exc)
    if isinstance(exc, AuthenticationError | NotFoundError):
        return sentence(str(exc))
    if isinstance(exc, KeyringUnavailableError):
        return sentence(f"The OS keyring cannot be used: {exc}")
    if isinstance(exc, SlotFileError):
        return sentence(f"This workstation's key file cannot be read: {exc}")
    if isinstance(exc, KeyError_):
        return sentence(f"The clinic database could not be unlocked: {exc}")
    if isinstance(exc, StoreError):
        return sentence(f"The clinic database reported a problem: {exc}")
    # Anything else is a bug: keep the details in the log, say it plainly on screen.
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return sentence(f"Something went wrong ({type(exc).__name__}: {exc})") + (
        " Your last change may not have been saved; please try again."
    )
