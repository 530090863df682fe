"""Log output of the long-running commands (``careline-server run``, ``careline serve``).

One JSON object a line on stderr by default (``time``, ``level``, ``logger``, ``message``
and the record's structured extras), or plain text. Every logger (``careline.*``, ``core.*``,
uvicorn's) reaches the one handler on the root logger. Messages carry ids and reasons,
never clinical values: that is up to each call site (``core.errors.for_log``), except in
tracebacks, where this module withholds every exception's message
(:func:`withhold_exception_messages`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import traceback
from types import TracebackType
from typing import Any, TextIO

from core.config.settings import Setting

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")

# The attributes every LogRecord has; anything else was passed as ``extra=``.
_STANDARD = frozenset(
    set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)))
    | {"message", "asctime", "color_message"}  # uvicorn adds a copy with terminal colours
)


def log_settings(prefix: str) -> tuple[Setting, Setting]:
    """The two log settings, named ``{prefix}LOG_FORMAT`` / ``{prefix}LOG_LEVEL`` in the
    environment (the server's names have no prefix, the desktop's start ``CARELINE_``)."""
    return (
        Setting(
            "LOG_FORMAT", str, "json",
            "Log lines on stderr: json (one object a line) or text.", f"{prefix}LOG_FORMAT",
            choices=LOG_FORMATS,
        ),
        Setting(
            "LOG_LEVEL", str, "info", "Least severe log level written.", f"{prefix}LOG_LEVEL",
            choices=LOG_LEVELS, aliases={"warn": "warning"},
        ),
    )  # fmt: skip


# What a logged traceback says in place of each exception's message.
WITHHELD = "(message not logged: it may quote patient data)"

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def redacted_traceback(exc_info: ExcInfo) -> str:
    """A traceback as Python prints it (the chain of causes, each frame's file, line and
    code) with every exception's message replaced by :data:`WITHHELD`.

    An unexpected exception's message is whatever the code that raised it chose, often the
    value that failed (``int()``'s "invalid literal for int() with base 10: 'Jane'", a
    KeyError naming a dictionary key): frames and exception types say where and what went
    wrong, which is what whoever reads the log needs to report a bug."""
    value = exc_info[1]
    if value is None:
        return "NoneType: None"
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = value
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        cause = current.__cause__
        current = (
            cause if cause is not None or current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for index, exc in enumerate(reversed(chain)):
        if index:
            parts.append("\nThe above exception preceded the following one:\n\n")
        if exc.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(exc.__traceback__))
        parts.append(f"{type_name(type(exc))}: {WITHHELD}\n")
    return "".join(parts).rstrip("\n")


_withholding = False


def withhold_exception_messages() -> None:
    """From now on, every log record of this process carrying an exception gets the
    traceback :func:`redacted_traceback` makes, whichever handler formats it (ours, the
    ``logging`` module's last-resort one on stderr the desktop app and CLI use, uvicorn's).
    Called by every entry point; calling it again does nothing."""
    global _withholding
    if _withholding:
        return
    _withholding = True
    make = logging.getLogRecordFactory()

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = make(*args, **kwargs)
        if made.exc_info:
            # Formatters use ``exc_text`` when it is set, instead of formatting exc_info.
            made.exc_text = redacted_traceback(made.exc_info)
        return made

    logging.setLogRecordFactory(record)
    # Imported here: the hooks module logs through this one.
    from core.config.thread_errors import install_hooks

    install_hooks()


def messages_withheld() -> bool:
    """Whether this process withholds exception messages from its logs (every entry point
    does: :func:`withhold_exception_messages`)."""
    return _withholding


def exception_detail(exc: BaseException) -> str:
    """An exception for a debug log line whose reader needs more than the words Careline
    shows (a library's own text: pycrdt's, a Rust panic's): its type, and its message only
    where this process keeps messages (no entry point ran: tests, a developer's script,
    the fuzzing campaign). Where messages are withheld the log may be read by anyone who
    runs the machine, and the message may quote patient data, so it says :data:`WITHHELD`."""
    return f"{type_name(type(exc))}: {WITHHELD if _withholding else exc}"


def type_name(kind: type[BaseException]) -> str:
    """An exception type as a traceback names it (``ValueError``,
    ``pyo3_runtime.PanicException``)."""
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, extras.

    A message that is itself a JSON object (the server API logs its events that way) is
    merged in rather than quoted, so each line stays one flat object.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        message = record.getMessage()
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if message.startswith("{"):
            try:
                parsed = json.loads(message)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                doc["message"] = str(parsed.pop("event", ""))
                doc.update({k: v for k, v in parsed.items() if k not in doc})
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(fmt: str, level: str, stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records at ``level`` or above to ``stream`` (default stderr) in
    ``fmt`` (json or text), replacing any handler set up before; returns the handler."""
    withhold_exception_messages()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings.warn (e.g. memory locking) reach the log too
    return handler
