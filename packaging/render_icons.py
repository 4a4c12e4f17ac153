"""Render the app icon (src/batchdesk/gui/icons/batchdesk.svg, the one source) as PNGs.

    .venv/bin/python packaging/render_icons.py

The PNGs go to resources/icons/ and are committed (desktops, the .deb and the Windows and macOS
recipes use them); run this again only when the SVG changes. Windows (.ico) and macOS
(.icns) icons are made from the 256 px PNG by their build recipes.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "src" / "batchdesk" / "gui" / "icons" / "batchdesk.svg"
ICONS = ROOT / "resources" / "icons"


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"{SVG} is not a valid SVG", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(ICONS / f"batchdesk-{size}.png"))
    print(f"wrote {len(SIZES)} icons to {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
