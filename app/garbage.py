"""Python's cyclic garbage collector, run on the GUI thread only.

CPython runs a collection on whichever thread happens to allocate past the threshold. When
that is the database worker (a PDF being built, a sync page being applied) and the garbage
holds a Qt object (a closed dialog caught in a reference cycle), the object's C++ destructor
runs off the GUI thread, which Qt does not allow: the process dies with a segmentation fault
inside unrelated code (seen in CI, in fontTools while a visit note was saved as PDF). So
automatic collection is turned off and a timer on the GUI thread collects instead, on the
same thresholds Python would use. Reference counting, which frees most objects, is untouched.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

CHECK_INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Turns automatic collection off and collects from a GUI-thread timer; :meth:`stop`
    collects once more and turns automatic collection back on."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = CHECK_INTERVAL_MS):
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._timer.start(interval_ms)

    def check(self) -> int | None:
        """Collect the oldest generation whose threshold is passed, as Python itself would;
        returns that generation (None when nothing was due)."""
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        if counts[0] <= thresholds[0]:
            return None
        generation = 0
        if counts[1] > thresholds[1]:
            generation = 2 if counts[2] > thresholds[2] else 1
        gc.collect(generation)
        return generation

    def stop(self) -> None:
        """Collect everything now, on this (GUI) thread, and give collection back to Python."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
