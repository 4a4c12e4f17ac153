"""How the batch tree's cells are drawn: row height, middle-cut names, status badges, progress bars.

Colours are chosen to read on light and dark palettes alike (the theme test checks them).
"""

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from batchdesk.gui.batch_tree_items import PROGRESS_ROLE, STATUS_ROLE, Progress

Index = QModelIndex | QPersistentModelIndex

# Badge fills chosen to read on light and dark bases alike; the text colour is whichever of
# white and near-black contrasts more with the fill.
BADGE_COLOURS = {
    "queued": QColor("#6b7480"),
    "processing": QColor("#2f6fd6"),
    "paused": QColor("#7b4fb0"),
    "completed": QColor("#23784a"),
    "failed": QColor("#c9372c"),
    "cancelled": QColor("#b7801a"),  # amber dark enough to stand out of a white base (3.4:1)
}
_UNKNOWN_BADGE = QColor("#808080")
COMPLETED_COLOUR = QColor("#2e9e5e")
FAILED_COLOUR = QColor("#d64236")
CANCELLED_COLOUR = QColor(128, 128, 128)


def _luminance(colour: QColor) -> float:
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return (
        0.2126 * channel(colour.redF())
        + 0.7152 * channel(colour.greenF())
        + 0.0722 * channel(colour.blueF())
    )


def badge_colours(status: str) -> tuple[QColor, QColor]:
    """Return (fill, text) for a status badge; the text has the better WCAG contrast."""
    fill = BADGE_COLOURS.get(status, _UNKNOWN_BADGE)
    light, dark = QColor("#ffffff"), QColor("#1b1b1b")
    base = _luminance(fill)
    on_light = (1.05) / (base + 0.05)
    on_dark = (base + 0.05) / (_luminance(dark) + 0.05)
    return fill, light if on_light >= on_dark else dark


def _style(option: QStyleOptionViewItem) -> QStyle:
    return option.widget.style() if option.widget is not None else QApplication.style()


def _draw_background(
    delegate: QStyledItemDelegate, painter: QPainter, option: QStyleOptionViewItem, index: Index
) -> QStyleOptionViewItem:
    # The item's panel (selection, alternating rows, focus) without its text.
    opt = QStyleOptionViewItem(option)
    delegate.initStyleOption(opt, index)
    opt.text = ""
    _style(opt).drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
    return opt


class RowDelegate(QStyledItemDelegate):
    """Every cell of the tree: a little taller than the style's default, so rows breathe."""

    ROW_PADDING = 6

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint(option, index)
        hint.setHeight(max(hint.height(), option.fontMetrics.height()) + self.ROW_PADDING)
        return hint


class NameDelegate(RowDelegate):
    """The name column: names are cut in the middle, where their ends tell files apart."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: Index) -> None:  # noqa: N802 - Qt override
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


class StatusBadgeDelegate(RowDelegate):
    """Draws the status as a coloured rounded badge."""

    PADDING = 8
    MARGIN = 4

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        status = index.data(STATUS_ROLE)
        if not isinstance(status, str) or not status:
            super().paint(painter, option, index)
            return
        opt = _draw_background(self, painter, option, index)
        metrics = opt.fontMetrics
        rect: QRect = opt.rect
        height = min(rect.height() - 2, metrics.height() + 4)
        width = min(
            rect.width() - 2 * self.MARGIN, metrics.horizontalAdvance(status) + 2 * self.PADDING
        )
        badge = QRect(rect.left() + self.MARGIN, rect.center().y() - height // 2 + 1, width, height)
        fill, ink = badge_colours(status)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(badge), height / 2, height / 2)
        painter.setPen(ink)
        painter.setFont(opt.font)
        text = metrics.elidedText(status, Qt.TextElideMode.ElideRight, max(width - 4, 0))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint(option, index)
        status = index.data(STATUS_ROLE)
        if isinstance(status, str):
            metrics = option.fontMetrics
            width = metrics.horizontalAdvance(status) + 2 * (self.PADDING + self.MARGIN)
            hint.setWidth(max(hint.width(), width))
        return hint


class ProgressDelegate(RowDelegate):
    """Draws a batch's progress as a slim bar with "7/10" beside it, failures in red.

    The count sits beside the bar, not on it, so it reads in any palette and on selected rows.
    """

    BAR_HEIGHT = 6
    GAP = 6

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        progress = index.data(PROGRESS_ROLE)
        if not isinstance(progress, Progress):
            super().paint(painter, option, index)  # job rows: their attempts, as text
            return
        opt = _draw_background(self, painter, option, index)
        rect: QRect = opt.rect.adjusted(4, 0, -4, 0)
        metrics = opt.fontMetrics
        total = max(progress.total, 1)
        label = f"{progress.finished}/{progress.total}"
        label_width = metrics.horizontalAdvance(f"{progress.total}/{progress.total}")
        bar_width = rect.width() - label_width - self.GAP
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        ink = opt.palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        painter.save()
        if bar_width >= 16:
            bar = QRectF(
                rect.left(), rect.center().y() - self.BAR_HEIGHT / 2 + 1, bar_width, self.BAR_HEIGHT
            )
            self._draw_bar(painter, bar, progress, total, opt)
            text_rect = QRect(rect.right() - label_width, rect.top(), label_width, rect.height())
        else:
            text_rect = rect  # too narrow for a bar: the count alone
        painter.setPen(ink)
        painter.setFont(opt.font)
        painter.drawText(
            text_rect, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), label
        )
        painter.restore()

    @staticmethod
    def _draw_bar(
        painter: QPainter,
        bar: QRectF,
        progress: Progress,
        total: int,
        opt: QStyleOptionViewItem,
    ) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        groove = QColor(opt.palette.color(QPalette.ColorRole.Text))
        groove.setAlphaF(0.15)
        painter.setBrush(groove)
        radius = bar.height() / 2
        painter.drawRoundedRect(bar, radius, radius)
        # Completed, then failed in red, then cancelled in grey, left to right (or mirrored).
        clip = QPainterPath()
        clip.addRoundedRect(bar, radius, radius)
        painter.setClipPath(clip)
        start = 0.0
        for count, colour in (
            (progress.completed, COMPLETED_COLOUR),
            (progress.failed, FAILED_COLOUR),
            (progress.cancelled, CANCELLED_COLOUR),
        ):
            width = bar.width() * min(count, total) / total
            if width > 0:
                left = bar.left() + start
                if opt.direction == Qt.LayoutDirection.RightToLeft:
                    left = bar.right() - start - width
                painter.fillRect(QRectF(left, bar.top(), width, bar.height()), colour)
            start += width
        painter.setClipping(False)
