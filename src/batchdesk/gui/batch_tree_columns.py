"""How wide each of the batch tree's columns is when the columns follow the view's width."""

from PySide6.QtWidgets import QTreeView, QWidget

from batchdesk.gui.batch_tree_delegates import StatusBadgeDelegate
from batchdesk.gui.batch_tree_items import (
    COLUMNS,
    DETAILS_COLUMN,
    NAME_COLUMN,
    PIPELINE_COLUMN,
    PRIORITY_COLUMN,
    PROGRESS_COLUMN,
    SIZE_COLUMN,
    STATUS_COLUMN,
    TIME_COLUMN,
    WHO_COLUMN,
)

# What each column should fit without cutting (the text, plus room for padding); the
# description takes what is left, and when the view is narrow the others give up to half.
_FITS = {
    NAME_COLUMN: "PL_DXB_2026-11-28_batch-12",
    STATUS_COLUMN: "processing",
    PRIORITY_COLUMN: "100",
    PROGRESS_COLUMN: "Progress / tries",
    PIPELINE_COLUMN: "web-delivery",
    SIZE_COLUMN: "999.9 MB",
    TIME_COLUMN: "28 Nov 14:02",
    WHO_COLUMN: "anna@studio-ws",
}
# Cut only after the others: the name; and never the status, priority or size (a badge, a
# three-digit number under "Priority" and a size cut short say nothing).
_KEEP_WHOLE = {NAME_COLUMN, STATUS_COLUMN, PRIORITY_COLUMN, SIZE_COLUMN}
_NAME_SHRINKS_TO = 0.6  # then the name gives up to 40 %
_DETAILS_MINIMUM = 110
_SHRINK_TO = 0.5
_HEADER_ROOM = 24  # a header's margins and its sort arrow


def column_widths(view: QWidget, room: int) -> dict[int, int]:
    """Return widths for every column that add up to `room`, each fitting its text if it can.

    Each column but the description gets what fits its longest usual text (`_FITS`, or its
    header); the description gets the rest. When that leaves it less than a useful minimum,
    the others give up to half their width, in proportion; then the name up to 40 %; status,
    priority and size never (a badge, a priority and a size cut short say nothing).
    """
    metrics = view.fontMetrics()
    pad = 12  # the cell's margins
    wanted: dict[int, int] = {}
    for column, text in _FITS.items():
        wanted[column] = max(
            metrics.horizontalAdvance(text) + pad,
            metrics.horizontalAdvance(COLUMNS[column]) + _HEADER_ROOM,
        )
    badge = 2 * (StatusBadgeDelegate.PADDING + StatusBadgeDelegate.MARGIN)
    wanted[STATUS_COLUMN] = metrics.horizontalAdvance(_FITS[STATUS_COLUMN]) + badge + 4
    if isinstance(view, QTreeView):
        wanted[NAME_COLUMN] += view.indentation()  # the expand arrow
    details_header = metrics.horizontalAdvance(COLUMNS[DETAILS_COLUMN]) + pad
    details_minimum = max(_DETAILS_MINIMUM, details_header)
    short = float(details_minimum - (room - sum(wanted.values())))
    others = [c for c in wanted if c not in _KEEP_WHOLE]
    for group, floor in ((others, _SHRINK_TO), ([NAME_COLUMN], _NAME_SHRINKS_TO)):
        if short <= 0:
            break
        can_give = sum(wanted[c] * (1 - floor) for c in group)
        given = min(short, can_give)
        for column in group:
            wanted[column] = round(wanted[column] * (1 - (1 - floor) * given / can_give))
        short -= given
    wanted[DETAILS_COLUMN] = max(room - sum(wanted.values()), details_minimum)
    return wanted
