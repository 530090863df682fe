"""The app icon and desktop integration files agree with each other and with the code."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from PySide6.QtGui import QImage, QImageReader
from PySide6.QtWidgets import QApplication

from app.main import DESKTOP_APP_ID

REPO = Path(__file__).resolve().parents[2]
LINUX = REPO / "resources" / "linux"


def _render_icons() -> ModuleType:
    path = REPO / "installers" / "linux" / "render_icons.py"
    spec = importlib.util.spec_from_file_location("render_icons", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_icons", module)
    spec.loader.exec_module(module)
    return module


def _channel_gap(a: int, b: int) -> int:
    """The largest difference of one channel (A, R, G, B) between two ARGB pixels."""
    return max(abs(((a >> shift) & 0xFF) - ((b >> shift) & 0xFF)) for shift in (0, 8, 16, 24))


def test_committed_pngs_are_the_svg_rendered(qapp: QApplication) -> None:
    # Compared by pixels, with a little slack for another Qt version's anti-aliasing:
    # an edited SVG without re-rendered PNGs fails here (installers/linux/render_icons.py).
    icons = _render_icons()
    for size in icons.SIZES:
        committed = QImage(str(icons.png_path(size)))
        assert (committed.width(), committed.height()) == (size, size)
        fresh = QImage.fromData(icons.render(size))
        differing = sum(
            1
            for y in range(size)
            for x in range(size)
            if _channel_gap(committed.pixel(x, y), fresh.pixel(x, y)) > 10
        )
        assert differing <= size * size // 50, f"careline-{size}.png is stale"


def test_windows_and_macos_icons_hold_the_committed_pngs(qapp: QApplication) -> None:
    # careline.ico (the Windows .exe and Start-menu icon) and careline.icns (the macOS
    # .app's) are packed from the PNGs checked above: stale ones fail here.
    icons = _render_icons()
    for path, packed in icons.containers().items():
        assert path.read_bytes() == packed, f"{path.name} is stale; run render_icons.py"
    for path, sizes in ((icons.ICO, icons.ICO_SIZES),
                        (icons.ICNS, [size for _kind, size in icons.ICNS_TYPES])):  # fmt: skip
        reader = QImageReader(str(path))
        read = []
        for index in range(reader.imageCount()):
            reader.jumpToImage(index)
            image = reader.read()
            assert not image.isNull(), f"{path.name} #{index}: {reader.errorString()}"
            read.append(image.width())
        assert read == list(sizes), path.name


def test_desktop_entry_and_metainfo_name_the_app_id() -> None:
    entry = (LINUX / f"{DESKTOP_APP_ID}.desktop").read_text(encoding="utf-8")
    assert re.search(rf"^Icon={re.escape(DESKTOP_APP_ID)}$", entry, re.M)
    assert re.search(r"^Exec=careline$", entry, re.M)
    metainfo = (LINUX / f"{DESKTOP_APP_ID}.metainfo.xml").read_text(encoding="utf-8")
    assert f"<id>{DESKTOP_APP_ID}</id>" in metainfo
    assert f'<launchable type="desktop-id">{DESKTOP_APP_ID}.desktop</launchable>' in metainfo
