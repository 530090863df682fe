"""Text for a terminal: control characters that came from records (a synced note, an
imported bundle's text) shown as ``\\x1b`` rather than sent raw, where an escape sequence
would clear the screen, recolour it, rewrite the line above or set the window title."""

from __future__ import annotations

import re

# C0 controls but newline and tab, DEL, and the C1 controls (U+0080-U+009F: U+009B is a
# one-character CSI to many terminals).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab as its ``\\xNN`` escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
