"""Log lines of the long-running commands: one JSON object a line, or text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.config.logs import configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_json_lines_carry_time_level_logger_message_and_extras(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    logging.getLogger("core.sync.responder").info(
        "refused sync request: %s", "bad vv", extra={"device": "d1"}
    )
    logging.getLogger("careline.server").info(json.dumps({"event": "http", "status": 200}))
    logging.getLogger("core.anything").debug("below the level")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "info" and first["logger"] == "core.sync.responder"
    assert first["message"] == "refused sync request: bad vv" and first["device"] == "d1"
    assert first["time"].endswith("+00:00")
    # A message that is a JSON object is merged, not quoted.
    assert second["message"] == "http" and second["status"] == 200


def test_text_format_and_level(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("text", "warning", stream)
    logging.getLogger("careline.server").info("quiet")
    logging.getLogger("careline.server").warning("loud %d", 1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING careline.server: loud 1")
