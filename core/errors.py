"""The root of Careline's expected errors, and the one translator from an exception to
plain words for staff.

Every failure Careline expects (bad input, a wrong password, a damaged file, an unreachable
server) derives from :class:`CarelineError`, and each family says in one template how staff
are told about it. This module is in the lowest layer so every layer can raise these; the
translator needs no knowledge of higher layers because each class carries its own wording.
Anything else that reaches a person is a bug: they get a generic message and the details go
to the log, never a raw exception text.

Two renderings of the same words: :func:`plain_words` is a phrase for the command line
(``careline: error: <phrase>``; field names stay as the options spell them), and
:func:`describe_error` is whole sentences for a screen (the app may add UI-only wording,
such as form labels for field names).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import ClassVar

log = logging.getLogger(__name__)

UNEXPECTED = "something went wrong that Careline did not expect (the details were logged)"
UNSAVED_HINT = "Your last change may not have been saved; please try again."


class CarelineError(Exception):
    """An expected failure; the message names the problem.

    Subclasses set :attr:`plain_template` to how staff are told, with ``{detail}`` standing
    for the exception's own message.
    """

    plain_template: ClassVar[str] = "{detail}"

    def __init__(self, *args: object, log_text: str | None = None) -> None:
        super().__init__(*args)
        # What a log may say instead of the message, when the message names something
        # only the person or the peer may read (an attachment's title, a peer's words).
        self.log_text = log_text

    def plain_words(self) -> str:
        """What went wrong, as a phrase staff can act on."""
        # The detail is substituted, never parsed, so braces in a message are harmless.
        return self.plain_template.format(detail=str(self))


# The disk refusing a write (full, over quota, read-only): not a bug, and what a person
# can act on, so named in the system's own words wherever it surfaces unwrapped. EIO is
# the disk itself failing, on a read as often as a write, so it is worded apart.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def plain_words(exc: BaseException) -> str:
    """A phrase naming the problem; an unexpected exception is logged and not shown."""
    if isinstance(exc, CarelineError):
        return exc.plain_words()
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return f"this computer's disk refused to write ({exc.strerror or os.strerror(exc.errno)})"
    if isinstance(exc, OSError) and exc.errno == errno.EIO:
        return (
            "this computer's disk could not be read or written "
            f"({exc.strerror or os.strerror(exc.errno)}): it may be failing"
        )
    return UNEXPECTED


def for_log(exc: BaseException) -> str:
    """What a log line says of ``exc``: a Careline error's ``log_text`` where its message
    may name patient data (see :class:`CarelineError`), else its message. Logs (stderr,
    journald, the server's log) are read by whoever runs the machine, not only by staff
    signed in to the clinic, so they carry ids, field names and kinds of problem only."""
    if isinstance(exc, CarelineError) and exc.log_text is not None:
        return exc.log_text
    return str(exc)


def describe_error(exc: BaseException) -> str:
    """One or two plain sentences for a screen; an unexpected exception is logged, and the
    person is told only that something unexpected happened."""
    text = sentence(plain_words(exc))
    return text if isinstance(exc, CarelineError) else f"{text} {UNSAVED_HINT}"


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
