"""Log output of the long-running commands (``careline-server run``, ``careline serve``).

One JSON object a line on stderr by default (``time``, ``level``, ``logger``, ``message``
and the record's structured extras), or plain text. Every logger (``careline.*``, ``core.*``,
uvicorn's) reaches the one handler on the root logger. Messages carry ids and reasons,
never clinical values: that is up to each call site, not this module.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
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
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(fmt: str, level: str, stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records at ``level`` or above to ``stream`` (default stderr) in
    ``fmt`` (json or text), replacing any handler set up before; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings.warn (e.g. memory locking) reach the log too
    return handler
