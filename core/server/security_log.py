"""The server's security event log (SECURITY_AUDIT_LOG): one JSON object a line.

Events: failed device sign-ins (bad or revoked tokens), enrollments and failed enrollment
attempts, refused sync requests, every ``careline-server admin`` action (clinics,
staff accounts, enrollment codes, device revocations, key rotations, re-encryptions and
retirements), and break-glass work on the clinic's workstations as their audit entries
arrive at sync (``break_glass.open``, ``break_glass.access``: see
``core.server.service.break_glass_event``), each with ids, never clinical values or secrets.

Events go to the ``careline.security`` logger, so they also reach the ordinary log; with
SECURITY_AUDIT_LOG set, :func:`install` adds a handler appending them to that file. The file
is created with mode 0600 (a wider mode found on an existing file is narrowed). Several
server processes may append to it at once: each line is written by one ``write`` on an
``O_APPEND`` descriptor under an exclusive lock (``flock``; on Windows ``msvcrt.locking``,
see :mod:`core.platform.file_lock`), and lines are kept under
:data:`MAX_LINE_BYTES` by shortening long field values, so lines never interleave.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from core.platform.file_lock import lock_fd, unlock_fd

LOGGER = "careline.security"
MAX_LINE_BYTES = 4096
_MAX_FIELD = 256

log = logging.getLogger(LOGGER)


def event(name: str, /, *, failed: bool = False, **fields: Any) -> None:
    """Record one security event ``name`` (e.g. ``device.revoked``) with id-like ``fields``.

    ``failed`` events (refusals, failed attempts) are logged at WARNING, others at INFO.
    """
    log.log(
        logging.WARNING if failed else logging.INFO,
        name,
        extra={"security_event": name, "security_fields": fields},
    )


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_FIELD:
        return value[:_MAX_FIELD] + "..."
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return value if isinstance(value, str) else _short(str(value))


def line_for(record: logging.LogRecord) -> bytes:
    """The record as one JSON line of at most MAX_LINE_BYTES bytes."""
    fields = getattr(record, "security_fields", {})
    doc: dict[str, Any] = {
        "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
            timespec="milliseconds"
        ),
        "event": getattr(record, "security_event", record.getMessage()),
        "outcome": "failure" if record.levelno >= logging.WARNING else "success",
        "host": socket.gethostname(),
        "pid": record.process,
    }
    doc.update({k: _short(v) for k, v in fields.items() if k not in doc})
    line = json.dumps(doc, ensure_ascii=False).encode() + b"\n"
    if len(line) > MAX_LINE_BYTES:  # many long fields: keep the event, drop the details
        doc = {k: doc[k] for k in ("time", "event", "outcome", "host", "pid")}
        doc["truncated"] = True
        line = json.dumps(doc).encode() + b"\n"
    return line


class SecurityLogHandler(logging.Handler):
    """Appends each security event to ``path`` as one line, safely across processes."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)  # Windows: no "\r\n"
        self._fd = os.open(path, flags, 0o600)
        try:
            # Windows has no owner/group/other bits to narrow (its ACLs decide).
            if os.name == "posix" and os.fstat(self._fd).st_mode & 0o077:
                os.fchmod(self._fd, 0o600)  # security events are nobody else's business
            lock_fd(self._fd)  # fail now, not at the first event, where locks are unavailable
            unlock_fd(self._fd)
        except OSError:
            os.close(self._fd)
            raise

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record's line in one ``write`` under an exclusive lock."""
        try:
            line = line_for(record)
            lock_fd(self._fd)
            try:
                os.write(self._fd, line)
            finally:
                unlock_fd(self._fd)
        except Exception:  # a logging failure must not take a request down
            self.handleError(record)

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


def install(path: Path | None) -> SecurityLogHandler | None:
    """Append security events to ``path`` from now on (nothing when ``path`` is None)."""
    if path is None:
        return None
    handler = SecurityLogHandler(path)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
