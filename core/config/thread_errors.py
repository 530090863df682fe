"""Exceptions nothing caught in a background thread (the LAN peer server's connections, a
heartbeat, a key writer, the desktop app's sync and database threads) and exceptions
Python could not raise anywhere (``sys.unraisablehook``: a ``__del__``, a finaliser).

Python's default hooks print such an exception in full on stderr, its message included,
which may quote patient data (``int()``'s "invalid literal ... 'Jane Roe'"), and tell the
person at the screen nothing. :func:`install_hooks` (run by
``core.config.logs.withhold_exception_messages``, so by every entry point) replaces them:
one error log record naming the thread and the exception's type, with its traceback, which
the log's record factory then writes without any exception's message. Listeners
(:func:`add_listener`: the desktop app's status bar) hear that a background task failed,
by thread and exception type only.

A hook someone else installed before (a test runner, a debugger, an application embedding
core) still gets the exception after it is logged; only Python's own default printers are
replaced.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

log = logging.getLogger("careline.background")


@dataclass(frozen=True)
class BackgroundFailure:
    """What listeners hear of an exception no code caught: where and what kind, never its
    message."""

    where: str  # "thread careline-sync", "a finaliser (Connection)"
    kind: str  # the exception's type, as a traceback names it

    def sentence(self) -> str:
        """One line for a status bar or a terminal."""
        return f"a background task failed ({self.where}: {self.kind})"


Listener = Callable[[BackgroundFailure], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def add_listener(listener: Listener) -> Callable[[], None]:
    """Call ``listener`` (on the failing thread) for every failure reported from now on;
    returns the function that removes it again."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def report(
    where: str,
    exc_type: type[BaseException],
    exc: BaseException | None,
    trace: TracebackType | None,
) -> None:
    """Log an exception no code caught (``where`` it happened) and tell the listeners.

    The log record carries the exception, so its traceback is written as the process
    writes tracebacks (without messages once ``withhold_exception_messages`` ran)."""
    from core.config.logs import type_name

    failure = BackgroundFailure(where, type_name(exc_type))
    if exc is not None and exc.__traceback__ is None:
        exc = exc.with_traceback(trace)
    log.error("uncaught %s in %s", failure.kind, where, exc_info=exc)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(failure)
        except Exception:  # a listener's own bug must not hide the failure reported
            log.exception("a listener of background failures failed")


def _thread_hook(previous: Callable[[threading.ExceptHookArgs], Any]) -> Any:
    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:  # a thread ending itself: silent, as by default
            return
        name = args.thread.name if args.thread is not None else "unknown"
        report(f"thread {name}", args.exc_type, args.exc_value, args.exc_traceback)
        if previous is not threading.__excepthook__:
            previous(args)

    hook.careline = True  # type: ignore[attr-defined]
    return hook


def _unraisable_hook(previous: Callable[[Any], Any]) -> Any:
    def hook(unraisable: Any) -> None:
        # A function's name (a finaliser's: ``Holder.__del__``), else the object's type
        # only: its repr may hold anything (a record's values).
        subject = unraisable.object
        if subject is None:
            what = "Python"
        elif isinstance(subject, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
            what = subject.__qualname__
        else:
            what = type(subject).__qualname__
        report(
            f"an exception Python could not raise ({what})",
            unraisable.exc_type,
            unraisable.exc_value,
            unraisable.exc_traceback,
        )
        if previous is not sys.__unraisablehook__:
            previous(unraisable)

    hook.careline = True  # type: ignore[attr-defined]
    return hook


def install_hooks() -> None:
    """Route uncaught exceptions of background threads, and unraisable ones, through
    :func:`report`. Calling it again does nothing."""
    if not getattr(threading.excepthook, "careline", False):
        threading.excepthook = _thread_hook(threading.excepthook)
    if not getattr(sys.unraisablehook, "careline", False):
        sys.unraisablehook = _unraisable_hook(sys.unraisablehook)
