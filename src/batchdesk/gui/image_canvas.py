"""One drawing surface of the image viewer, and the zoom and position its surfaces share.

Images are placed in a *scene* the size of the job's input, so an output compares with its
input point for point: an output of another size is fitted into the input's frame (a 400 px
thumbnail covers the same area as its 1600 px input). `ViewState` holds the zoom (fit, or
screen pixels per scene pixel) and the scene point at the middle of the surface; the surfaces
of a side-by-side view share one, so they move together.

`ImageCanvas` draws one image, or two split by a line the user drags (a swipe compare: the
first image left of the line, the second right of it), over a checkerboard where the image is
transparent. It draws from the copy of the image nearest to the size on screen
(`ViewerImage.levels`, made off the GUI thread), so zooming out of a large render stays quick
and smooth; from 200 % up pixels are drawn as squares, to be seen.
"""

import math

from PySide6.QtCore import QObject, QPointF, QRectF, QSize, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFontMetrics,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from batchdesk.gui.job_images import ViewerImage

MIN_ZOOM = 1 / 64
MAX_ZOOM = 32.0
ZOOM_STEP = 1.25  # one key press or one wheel notch
BACKGROUND = QColor("#2b2b2b")  # neutral: judges colours the same in a light or dark theme
CHECKER_LIGHT, CHECKER_DARK = QColor("#ffffff"), QColor("#cccccc")
CHECKER_CELL = 8
_PIXELATED_FROM = 2.0
_SWIPE_GRAB = 8  # pixels either side of the line that grab it


class ViewState(QObject):
    """Zoom and position shared by the surfaces of one view; `changed` after each move."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.scene = QSizeF()
        self.fit = True
        self._zoom = 1.0
        self._center = QPointF()

    def set_scene(self, scene: QSizeF, *, keep_view: bool) -> None:
        """Place images of this size; back to fit unless `keep_view` and the size is the same."""
        same = scene == self.scene
        self.scene = QSizeF(scene)
        if not (keep_view and same):
            self.fit = True
            self._center = QPointF(scene.width() / 2, scene.height() / 2)
        self.changed.emit()

    def zoom(self, room: QSize) -> float:
        """Screen pixels per scene pixel on a surface of this size."""
        if not self.fit:
            return self._zoom
        return self.fit_zoom(room)

    def fit_zoom(self, room: QSize) -> float:
        """The zoom that shows the whole scene in `room`, never enlarging it past 100 %."""
        if self.scene.isEmpty() or room.isEmpty():
            return 1.0
        return min(1.0, room.width() / self.scene.width(), room.height() / self.scene.height())

    def center(self) -> QPointF:
        if self.fit:
            return QPointF(self.scene.width() / 2, self.scene.height() / 2)
        return QPointF(self._center)

    def set_fit(self) -> None:
        self.fit = True
        self.changed.emit()

    def set_zoom(self, zoom: float, room: QSize, anchor: QPointF | None = None) -> None:
        """Zoom to `zoom`, keeping the scene point under `anchor` (surface pixels) in place."""
        old = self.zoom(room)
        center = self.center()
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        if anchor is not None:
            middle = QPointF(room.width() / 2, room.height() / 2)
            under = center + (anchor - middle) / old
            center = under - (anchor - middle) / zoom
        self.fit = False
        self._zoom = zoom
        self._center = self._clamped(center)
        self.changed.emit()

    def step(self, steps: float, room: QSize, anchor: QPointF | None = None) -> None:
        """Zoom in (positive) or out (negative) by whole or partial ZOOM_STEPs."""
        self.set_zoom(self.zoom(room) * ZOOM_STEP**steps, room, anchor)

    def pan(self, delta: QPointF, room: QSize) -> None:
        """Move the picture by `delta` surface pixels (a drag)."""
        if self.fit:
            return  # the whole scene is in view: nothing to move to
        self._center = self._clamped(self._center - delta / self._zoom)
        self.changed.emit()

    def _clamped(self, center: QPointF) -> QPointF:
        # The middle of the surface stays over the scene: the picture is never dragged away.
        return QPointF(
            min(max(center.x(), 0.0), self.scene.width()),
            min(max(center.y(), 0.0), self.scene.height()),
        )


def _checker_brush() -> QBrush:
    tile = QPixmap(2 * CHECKER_CELL, 2 * CHECKER_CELL)
    tile.fill(CHECKER_LIGHT)
    painter = QPainter(tile)
    painter.fillRect(0, 0, CHECKER_CELL, CHECKER_CELL, CHECKER_DARK)
    painter.fillRect(CHECKER_CELL, CHECKER_CELL, CHECKER_CELL, CHECKER_CELL, CHECKER_DARK)
    painter.end()
    return QBrush(tile)


class ImageCanvas(QWidget):
    """Draws one image, or two with a swipe line between them, as the shared ViewState says."""

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._images: list[ViewerImage | None] = [None]
        self._captions: list[str] = [""]
        self._message = ""
        self._swipe = 0.5  # where the line is, as a fraction of the width
        self._dragging: str | None = None  # "pan" or "swipe"
        self._last = QPointF()
        self._checker: QBrush | None = None
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the viewer
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 120)
        self.setMouseTracking(True)
        state.changed.connect(self.update)

    # -- what to draw -----------------------------------------------------------------------

    def show_image(self, image: ViewerImage | None, caption: str, message: str = "") -> None:
        """Draw this image alone (or `message` where there is none)."""
        self._images, self._captions, self._message = [image], [caption], message
        self.update()

    def show_swipe(
        self, first: ViewerImage | None, second: ViewerImage | None, captions: tuple[str, str]
    ) -> None:
        """Draw `first` left of the swipe line and `second` right of it."""
        self._images, self._captions, self._message = [first, second], list(captions), ""
        self.update()

    @property
    def swiping(self) -> bool:
        return len(self._images) == 2

    @property
    def swipe_x(self) -> int:
        """Where the swipe line is, in surface pixels."""
        return round(self._swipe * self.width())

    def set_swipe(self, fraction: float) -> None:
        self._swipe = min(max(fraction, 0.0), 1.0)
        self.update()

    def zoom(self) -> float:
        return self._state.zoom(self.size())

    def scene_rect(self) -> QRectF:
        """Where the scene is drawn, in surface pixels."""
        zoom = self.zoom()
        center = self._state.center()
        scene = self._state.scene
        left = self.width() / 2 - center.x() * zoom
        top = self.height() / 2 - center.y() * zoom
        return QRectF(left, top, scene.width() * zoom, scene.height() * zoom)

    # -- painting ---------------------------------------------------------------------------

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if not any(image and image.levels for image in self._images) or self._state.scene.isEmpty():
            self._draw_message(painter, self._message)
            painter.end()
            return
        scene = self.scene_rect()
        if self.swiping:
            split = float(self.swipe_x)
            clips = [
                QRectF(0, 0, split, self.height()),
                QRectF(split, 0, self.width() - split, self.height()),
            ]
        else:
            clips = [QRectF(self.rect())]
        for image, clip in zip(self._images, clips, strict=True):
            if image is not None and image.levels:
                painter.save()
                painter.setClipRect(clip)
                self._draw_image(painter, image, scene)
                painter.restore()
        if self.swiping:
            self._draw_swipe_line(painter)
        self._draw_captions(painter)
        painter.end()

    def _draw_image(self, painter: QPainter, image: ViewerImage, scene: QRectF) -> None:
        full = image.levels[0]
        # An image of another size than the input is fitted into the input's frame.
        scale = min(scene.width() / full.width(), scene.height() / full.height())
        target = QRectF(0, 0, full.width() * scale, full.height() * scale)
        target.moveCenter(scene.center())
        if self._checker is None:
            self._checker = _checker_brush()
        painter.fillRect(target, self._checker)  # seen through wherever the image is clear
        on_screen = scale * self.devicePixelRatioF()  # device pixels per image pixel
        level = 0
        while on_screen <= 0.5 and level + 1 < len(image.levels):
            level += 1
            on_screen *= 2
        smooth = scale < _PIXELATED_FROM
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(target, image.levels[level])

    def _draw_swipe_line(self, painter: QPainter) -> None:
        x = self.swipe_x
        painter.setPen(QPen(QColor("#ffffff"), 2))
        painter.drawLine(x, 0, x, self.height())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(QColor("#ffffff"))
        painter.setPen(QPen(BACKGROUND, 1))
        painter.drawEllipse(QPointF(x, self.height() / 2), 7, 7)

    def _draw_captions(self, painter: QPainter) -> None:
        metrics = QFontMetrics(self.font())
        painter.setFont(self.font())
        for number, caption in enumerate(self._captions):
            if not caption:
                continue
            width = metrics.horizontalAdvance(caption) + 12
            box = QRectF(8, 8, width, metrics.height() + 6)
            if number == 1:
                box.moveRight(self.width() - 8)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 150))
            painter.drawRoundedRect(box, 4, 4)
            painter.setPen(QColor("#ffffff"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, caption)

    def _draw_message(self, painter: QPainter, message: str) -> None:
        if message:
            painter.setPen(QColor("#e0e0e0"))
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            painter.drawText(self.rect().adjusted(24, 24, -24, -24), int(flags), message)

    # -- the mouse --------------------------------------------------------------------------

    def _near_swipe_line(self, x: float) -> bool:
        return self.swiping and abs(x - self.swipe_x) <= _SWIPE_GRAB

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        position = event.position()
        self._dragging = "swipe" if self._near_swipe_line(position.x()) else "pan"
        self._last = position
        if self._dragging == "pan" and not self._state.fit:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        position = event.position()
        if self._dragging == "swipe":
            self.set_swipe(position.x() / max(self.width(), 1))
        elif self._dragging == "pan":
            self._state.pan(position - self._last, self.size())
        elif self._near_swipe_line(position.x()):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        else:
            self.unsetCursor()
        self._last = position

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._dragging = None
        self.unsetCursor()
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        """Fit, or 100 % around the point clicked."""
        if self._state.fit:
            self._state.set_zoom(1.0, self.size(), event.position())
        else:
            self._state.set_fit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120  # a notch is 120; touchpads send less, often
        if steps and math.isfinite(steps):
            self._state.step(steps, self.size(), event.position())
        event.accept()
