"""One module per parser; each exposes ``Target``: a callable taking one input's bytes.

A target returns normally when the input was handled as its contract says (accepted, or
refused with one of the parser's own error types, with nothing half-applied) and raises
anything else, which the fuzzer reports as a crash.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Protocol

NAMES = (
    "sync_responder",
    "sync_client",
    "crdt_update",
    "keyslot_file",
    "enroll_request",
    "pairing_request",
    "attachment_chunks",
)


class Target(Protocol):
    """A fuzz target: set up once, then called once per input."""

    def __call__(self, data: bytes) -> None: ...


def load(name: str) -> Callable[[bytes], None]:
    """A ready target by name (its module's ``Target()``)."""
    if name not in NAMES:
        raise SystemExit(f"unknown fuzz target {name!r}; targets: {', '.join(NAMES)}")
    # Refusals are logged; millions of them would only slow the fuzzer down.
    logging.disable(logging.CRITICAL)
    module = importlib.import_module(f"tests.fuzz.targets.{name}")
    target: Callable[[bytes], None] = module.Target()
    return target
