"""How one pending file reads in the submit panel's list, at any width the panel has.

Each row is the thumbnail (or a warning sign), then the file name, on two lines when it needs
them and elided in the middle beyond that, so that the customer prefix at its start and the
view name at its end both stay; below it what the file is ("1600 × 1200 · 8.49 KB · customer
PL_DXB") or, in red, why it will be skipped, wrapped over as many lines as it needs (up to
MAX_REASON_LINES), so everything is read without scrolling sideways. The full path and the
whole reason are in the row's tooltip.
"""

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QPainter,
    QPalette,
    QPixmap,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from batchdesk.domain.units import format_size

from batchdesk.gui.pending_files_model import PENDING_FILE_ROLE, PendingFile

Index = QModelIndex | QPersistentModelIndex

# Error red that keeps its contrast on a light window and on a dark one.
ERROR_ON_LIGHT, ERROR_ON_DARK = "#b3261e", "#ff8a80"
MAX_NAME_LINES = 2
MAX_DETAIL_LINES = 2
MAX_REASON_LINES = 4
_PADDING = 6
_GAP = 8
_WARNING_SIDE = 24
# A file name breaks after these where it has to break: "PL_DXB191_" / "front.png".
_NAME_BREAKS = "_-."
_BREAK = "\u200b"  # zero-width space: a place to break that draws nothing


def error_colour(palette: QPalette) -> QColor:
    """Return the red for problems that reads on this palette's window colour."""
    dark = palette.color(QPalette.ColorRole.Window).lightnessF() < 0.5
    return QColor(ERROR_ON_DARK if dark else ERROR_ON_LIGHT)


def details_text(pending: PendingFile) -> str:
    """Return the line under the name: what the file is, or why it will be skipped."""
    if not pending.accepted:
        return f"Skipped: {pending.problem}"
    parts = []
    if pending.width and pending.height:
        parts.append(f"{pending.width} × {pending.height}")
    if pending.size is not None:
        parts.append(format_size(pending.size))
    if pending.prefix:
        parts.append(f"customer {pending.prefix}")
    return " · ".join(parts)


def wrap_lines(
    text: str,
    font: QFont,
    width: int,
    max_lines: int,
    elide: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
) -> list[str]:
    """Return `text` broken into lines of at most `width` pixels; the last one elided if cut.

    Lines break between words where they can and inside a word where they must (a long file
    name), so no line is ever wider than the room.
    """
    if not text:
        return []
    width = max(width, 1)
    layout = QTextLayout(text, font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(option)
    starts: list[int] = []
    layout.beginLayout()
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        starts.append(line.textStart())
    layout.endLayout()
    ends = [*starts[1:], len(text)]
    lines = [text[start:end].rstrip() for start, end in zip(starts, ends, strict=True)]
    if len(lines) > max_lines:
        rest = text[starts[max_lines - 1] :]
        elided = QFontMetrics(font).elidedText(rest, elide, width)
        lines = [*lines[: max_lines - 1], elided]
    return lines


class PendingFileDelegate(QStyledItemDelegate):
    """Paints a pending file as a thumbnail, its name and a wrapped second line."""

    def __init__(self, thumbnail_side: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._side = thumbnail_side
        self._warning: QIcon | None = None

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        pending = index.data(PENDING_FILE_ROLE)
        if not isinstance(pending, PendingFile):
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        # The item's panel (selection, hover, focus) without its text or picture.
        panel = QStyleOptionViewItem(opt)
        panel.text = ""
        panel.icon = QIcon()
        panel.features &= ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, panel, painter, widget)

        area: QRect = opt.rect.adjusted(_PADDING, _PADDING, -_PADDING, -_PADDING)
        box = QRect(area.left(), area.top(), self._side, self._side)
        painter.save()
        thumbnail = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(thumbnail, QPixmap) and not thumbnail.isNull():
            size = thumbnail.deviceIndependentSize().toSize()
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            painter.drawPixmap(target, thumbnail)
        elif not pending.accepted:
            sign = QRect(0, 0, _WARNING_SIDE, _WARNING_SIDE)
            sign.moveCenter(box.center())
            self._warning_icon().paint(painter, sign)

        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        palette = opt.palette
        ink = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        left = box.right() + 1 + _GAP
        width = self.text_width(opt.rect.width())
        name_lines, detail_lines = self.text_lines(pending, opt.font, width)
        metrics = opt.fontMetrics
        line_height = metrics.height()
        painter.setFont(opt.font)
        painter.setPen(ink)
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        top = area.top()
        for line in name_lines:
            painter.drawText(QRect(left, top, width, line_height), flags, line)
            top += line_height

        if selected:
            painter.setPen(ink)
        elif pending.accepted:
            secondary = QColor(ink)
            secondary.setAlphaF(0.7)
            painter.setPen(secondary)
        else:
            painter.setPen(error_colour(palette))
        for line in detail_lines:
            painter.drawText(QRect(left, top, width, line_height), flags, line)
            top += line_height
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:  # noqa: N802 - Qt override
        pending = index.data(PENDING_FILE_ROLE)
        if not isinstance(pending, PendingFile):
            return super().sizeHint(option, index)
        room = self._row_width(option)
        name_lines, detail_lines = self.text_lines(pending, option.font, self.text_width(room))
        lines = len(name_lines) + len(detail_lines)
        height = max(self._side, lines * option.fontMetrics.height()) + 2 * _PADDING
        return QSize(room, height)

    def text_width(self, row_width: int) -> int:
        """The room for text in a row this wide: what the thumbnail and margins leave."""
        return max(row_width - 2 * _PADDING - self._side - _GAP, 1)

    def text_lines(
        self, pending: PendingFile, font: QFont, width: int
    ) -> tuple[list[str], list[str]]:
        """Return the lines of the name and of the details, as drawn in `width` pixels."""
        middle = Qt.TextElideMode.ElideMiddle
        breakable = "".join(c + _BREAK if c in _NAME_BREAKS else c for c in pending.file_name)
        lines = wrap_lines(breakable, font, width, MAX_NAME_LINES, middle)
        name = [line.replace(_BREAK, "") for line in lines]
        most = MAX_DETAIL_LINES if pending.accepted else MAX_REASON_LINES
        return name, wrap_lines(details_text(pending), font, width, most)

    def _row_width(self, option: QStyleOptionViewItem) -> int:
        # The list's width, not the text's: rows fill it and wrap inside it.
        view = option.widget
        if isinstance(view, QAbstractItemView):
            return max(view.viewport().width(), 1)
        return max(option.rect.width(), 1)

    def _warning_icon(self) -> QIcon:
        if self._warning is None:
            style = QApplication.style()
            self._warning = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        return self._warning
