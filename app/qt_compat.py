"""Workarounds for defects of the installed Qt binding, applied once and only when present.

PySide6 6.12.0: every ``SignalInstance.emit()`` called from Python returns ``True``
without taking a reference to it, so each emission lowers ``True``'s reference count by
one. On Python 3.11 (where ``True`` is not yet immortal) the count reaches zero after a
few thousand emissions and the interpreter aborts with "bool_dealloc: deallocating True
or False". The fix gives ``True`` the effectively infinite reference count that CPython
3.12 gives it anyway (PEP 683). It is applied only if a probe shows the leak, and never
on other interpreters or on 3.12+, where decrementing an immortal object is harmless.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

_PROBE_EMITS = 64
_IMMORTAL_EXTRA = 1 << 40
_applied = False


class _Probe(QObject):
    ping = Signal()


def emit_leaks_true() -> bool:
    """True if emitting a signal from Python loses a reference to ``True``."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(_PROBE_EMITS):
        probe.ping.emit()
    return before - sys.getrefcount(True) >= _PROBE_EMITS // 2


def fix_emit_refcount() -> bool:
    """Apply the workaround if this binding needs it; returns whether it was applied."""
    global _applied
    if _applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not emit_leaks_true():
        return False
    # ob_refcnt is the first field of every CPython object (Py_ssize_t).
    ctypes.c_ssize_t.from_address(id(True)).value += _IMMORTAL_EXTRA
    _applied = True
    log.info("PySide6 signal emit leaks references to True; made True immortal")
    return True


fix_emit_refcount()
