"""Render the app icon's PNG sizes from its SVG source (resources/icons/careline.svg),
and pack them into the Windows icon (careline.ico) and the macOS one (careline.icns).

    .venv/bin/python installers/linux/render_icons.py [--check]

Qt's own SVG renderer (PySide6's QtSvg, already a dependency of the app) draws each size,
so no other tool is needed. The .ico and .icns hold the committed PNGs as they are (both
formats take PNG entries), written here with the standard library: no Windows or Mac, no
iconutil. Everything is committed; ``--check`` exits 1 when a file no longer matches the
SVG (tests/ui/test_app_icon.py checks the same).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ICONS = ROOT / "resources" / "icons"
SOURCE = ICONS / "careline.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO = ICONS / "careline.ico"
ICNS = ICONS / "careline.icns"
# An .ico entry is at most 256 pixels wide (its width byte holds 0 for 256).
ICO_SIZES = tuple(size for size in SIZES if size <= 256)
# The .icns entry types holding PNG data, and their sizes in pixels (the @2x types are
# the Retina ones). ic10 (1024 pixels, 512@2x) is left out: there is no 1024 PNG.
ICNS_TYPES = (
    (b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256),
    (b"ic09", 512), (b"ic11", 32), (b"ic12", 64), (b"ic13", 256), (b"ic14", 512),
)  # fmt: skip


def png_path(size: int) -> Path:
    """Where the PNG of one size lives in the source tree."""
    return ICONS / f"careline-{size}.png"


def render(size: int) -> bytes:
    """The icon at ``size`` x ``size`` pixels, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {SOURCE} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def ico(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico holding the given PNGs (size -> PNG bytes); PNG entries are read by
    Windows Vista and later, and by PyInstaller's icon= for the .exe."""
    sizes = [size for size in ICO_SIZES if size in pngs]
    header = struct.pack("<HHH", 0, 1, len(sizes))  # reserved, type 1 (icon), count
    offset = len(header) + 16 * len(sizes)
    entries, images = b"", b""
    for size in sizes:
        data = pngs[size]
        side = size % 256  # 256 is written as 0
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        images += data
        offset += len(data)
    return header + entries + images


def icns(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns holding the given PNGs (size -> PNG bytes), for the .app's
    CFBundleIconFile."""
    body = b"".join(
        kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size]
        for kind, size in ICNS_TYPES
        if size in pngs
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def containers() -> dict[Path, bytes]:
    """The .ico and .icns as made from the committed PNGs."""
    pngs = {size: png_path(size).read_bytes() for size in SIZES if png_path(size).is_file()}
    return {ICO: ico(pngs), ICNS: icns(pngs)}


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) every size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 if stale")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    stale = []
    for size in SIZES:
        rendered = render(size)
        path = png_path(size)
        if args.check:
            if not path.is_file() or path.read_bytes() != rendered:
                stale.append(path.name)
        else:
            path.write_bytes(rendered)
    del app
    for path, packed in containers().items():
        if args.check:
            if not path.is_file() or path.read_bytes() != packed:
                stale.append(path.name)
        else:
            path.write_bytes(packed)
    if stale:
        print(f"render_icons: stale icons {', '.join(stale)}; run {Path(__file__).name}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
