"""The batch tree's view: sortable headers, status badges, progress bars, kept state.

Sorting is the model's (SQL): a header click calls `BatchTreeModel.sort`, which reloads. Row
changes from live updates arrive as dataChanged and row moves, which keep selection and
expansion by themselves; a reset (new filter or sort) would lose them, so the view notes the
expanded and selected batches before it and restores them as their rows come back.

Columns fit the view's width (no horizontal scroll bar) until the user resizes one. Home and
End (with or without Ctrl) go to the real first and last batch: when those are not loaded,
the model reads that end of the list, and after End the rows above load as they come into
view, the view keeping its place.
"""

from typing import NamedTuple
from uuid import UUID

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QStyle,
    QTreeView,
    QWidget,
)

from batchdesk.domain.batch_query import SortOrder

from batchdesk.gui.batch_tree_columns import column_widths
from batchdesk.gui.batch_tree_delegates import (
    NameDelegate,
    ProgressDelegate,
    RowDelegate,
    StatusBadgeDelegate,
)
from batchdesk.gui.batch_tree_items import (
    COLUMN_OF_SORT,
    COLUMNS,
    NAME_COLUMN,
    PROGRESS_COLUMN,
    STATUS_COLUMN,
)
from batchdesk.gui.batch_tree_model import BatchTreeModel

Index = QModelIndex | QPersistentModelIndex


class TreeSelection(NamedTuple):
    """What is selected: batch rows by id, job rows by id (a job's batch is not implied)."""

    batch_ids: tuple[UUID, ...]
    job_ids: tuple[int, ...]


class BatchTreeView(QTreeView):
    """The tree of batches and jobs over a BatchTreeModel.

    `selection_changed_to` carries a TreeSelection whenever the selected rows change.
    """

    selection_changed_to = Signal(object)  # TreeSelection
    columns_fitted_changed = Signal(bool)  # False once the user resizes a column

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAllColumnsShowFocus(True)
        self.setAccessibleName("Batches")
        self._rows = RowDelegate(self)
        self.setItemDelegate(self._rows)
        self._names = NameDelegate(self)
        self.setItemDelegateForColumn(NAME_COLUMN, self._names)
        self._badges = StatusBadgeDelegate(self)
        self._progress = ProgressDelegate(self)
        self.setItemDelegateForColumn(STATUS_COLUMN, self._badges)
        self.setItemDelegateForColumn(PROGRESS_COLUMN, self._progress)
        self.header().setSortIndicatorShown(True)
        self.header().setSectionsClickable(True)
        self.header().setStretchLastSection(False)  # fit_columns shares the width out itself
        self.header().sectionResized.connect(self._on_header_section_resized)
        self._columns_fitted = True
        self._fitting = False
        self._jump: str | None = None  # "start" or "end": where to go once the rows arrive
        self._anchor: QPersistentModelIndex | None = None  # the top row while rows go above
        self._last_selection = TreeSelection((), ())
        self._expanded_before: set[UUID] = set()  # to restore as rows come back after a reset
        self._selected_before: set[UUID] = set()
        self._current_before: UUID | None = None
        self._empty_text = ""
        self._fetch_timer = QTimer(self, singleShot=True, interval=0)
        self._fetch_timer.timeout.connect(self._fetch_visible_jobs)
        self._selection_timer = QTimer(self, singleShot=True, interval=0)
        self._selection_timer.timeout.connect(self._emit_selection)
        self._restore_timer = QTimer(self, singleShot=True, interval=0)
        self._restore_timer.timeout.connect(self._restore_rows)
        self.verticalScrollBar().valueChanged.connect(self._fetch_timer.start)
        self.expanded.connect(self._on_self_expanded)
        self.collapsed.connect(self._on_self_collapsed)

    def setModel(self, model: QAbstractItemModel | None) -> None:  # noqa: N802 - Qt override
        if model is not None and not isinstance(model, BatchTreeModel):
            raise TypeError("BatchTreeView shows a BatchTreeModel")
        self.setSortingEnabled(False)
        super().setModel(model)
        if model is None:
            return
        self.fit_columns()
        model.set_match_colour(_match_tint(self.palette()))
        self._show_sort_of(model)
        # Sorting on: header clicks call model.sort, which is SQL; the current one is a no-op.
        self.setSortingEnabled(True)
        model.page_wanted = self._page_wanted
        model.modelAboutToBeReset.connect(self._on_model_about_to_be_reset)
        model.modelReset.connect(self._on_model_reset)
        model.rowsAboutToBeInserted.connect(self._on_model_rows_about_to_be_inserted)
        model.rowsInserted.connect(self._on_model_rows_inserted)
        model.rowsRemoved.connect(self._selection_timer.start)
        self.selectionModel().selectionChanged.connect(self._selection_timer.start)

    def batch_model(self) -> BatchTreeModel | None:
        model = self.model()
        return model if isinstance(model, BatchTreeModel) else None

    def selection(self) -> TreeSelection:
        """Return the selected batch and job rows, in view order."""
        model = self.batch_model()
        if model is None or self.selectionModel() is None:
            return TreeSelection((), ())
        rows = sorted(self.selectionModel().selectedRows(), key=self._visual_order)
        batches = tuple(b.id for b in map(model.batch_at, rows) if b is not None)
        jobs = tuple(j.id for j in map(model.job_at, rows) if j is not None)
        return TreeSelection(batches, jobs)

    def expanded_batches(self) -> list[UUID]:
        """The batches expanded now, in view order (kept in the window's state)."""
        model = self.batch_model()
        if model is None:
            return []
        rows = (model.index(row, 0) for row in range(model.rowCount()))
        return [
            batch.id
            for index in rows
            if self.isExpanded(index) and (batch := model.batch_at(index)) is not None
        ]

    def expand_batches_when_shown(self, ids: set[UUID]) -> None:
        """Expand these batches as their rows arrive (restoring the last session's view)."""
        self._expanded_before |= ids
        self._restore_timer.start()

    def set_empty_text(self, text: str) -> None:
        """What the empty tree says in its middle: no batches yet, or none match the filters."""
        if text != self._empty_text:
            self._empty_text = text
            self.viewport().update()

    @property
    def empty_text(self) -> str:
        return self._empty_text

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        super().paintEvent(event)
        model = self.batch_model()
        if self._empty_text and (model is None or model.rowCount() == 0):
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            area = self.viewport().rect().adjusted(24, 24, -24, -24)
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            painter.drawText(area, int(flags), self._empty_text)
            painter.end()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        model = self.batch_model()
        if event.type() == QEvent.Type.PaletteChange and model is not None:
            model.set_match_colour(_match_tint(self.palette()))  # light to dark, or back

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._columns_fitted:
            self.fit_columns()
        self._fetch_timer.start()

    # --- columns -------------------------------------------------------------------------------

    @property
    def columns_fitted(self) -> bool:
        """True while the columns follow the view's width (until the user resizes one)."""
        return self._columns_fitted

    def set_columns_fitted(self, fitted: bool) -> None:
        """Let the columns follow the view's width again (True), or keep the widths they have."""
        if fitted != self._columns_fitted:
            self._columns_fitted = fitted
            self.columns_fitted_changed.emit(fitted)
        if fitted:
            self.fit_columns()

    def fit_columns(self) -> None:
        """Share the view's width out among the columns, so that all of them show."""
        header = self.header()
        if header.count() != len(COLUMNS):
            return
        scroll_bar = self.verticalScrollBar()
        room = self.viewport().width()
        if not scroll_bar.isVisible():  # keep room for it: the widths stay when it appears
            room -= self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)
        widths = column_widths(self, room)
        self._fitting = True
        try:
            for column, width in widths.items():
                if not header.isSectionHidden(column) and header.sectionSize(column) != width:
                    header.resizeSection(column, width)
        finally:
            self._fitting = False

    def _on_header_section_resized(self, _column: int, _old: int, _new: int) -> None:
        if not self._fitting and self._columns_fitted:
            self._columns_fitted = False  # the user set a width: from now on widths are theirs
            self.columns_fitted_changed.emit(False)

    # --- the ends of the list -------------------------------------------------------------------

    def moveCursor(  # noqa: N802 - Qt override
        self,
        cursorAction: QAbstractItemView.CursorAction,  # noqa: N803 - Qt's name
        modifiers: Qt.KeyboardModifier,
    ) -> QModelIndex:
        model = self.batch_model()
        ends = {
            QAbstractItemView.CursorAction.MoveHome: "start",
            QAbstractItemView.CursorAction.MoveEnd: "end",
        }
        end = ends.get(cursorAction)
        if model is not None and end is not None:
            reading = model.show_end() if end == "end" else model.show_start()
            if reading:
                # The rows come later: go there then, not back to what was selected before.
                self._jump = end
                self._selected_before.clear()
                self._current_before = None
                return QModelIndex()
            if not self.currentIndex().isValid() and model.rowCount() > 0:
                # From no row at all QTreeView goes to the first, whatever the key.
                self.selectionModel().setCurrentIndex(
                    model.index(0, 0), QItemSelectionModel.SelectionFlag.NoUpdate
                )
        return super().moveCursor(cursorAction, modifiers)

    def _finish_jump(self) -> None:
        model = self.batch_model()
        if model is None or self._jump is None or model.rowCount() == 0:
            return
        at_end = self._jump == "end"
        self._jump = None
        index = model.index(model.rowCount() - 1 if at_end else 0, 0)
        self.setCurrentIndex(index)
        if at_end:
            self.scrollToBottom()
        else:
            self.scrollToTop()

    def _on_model_rows_about_to_be_inserted(
        self, parent: QModelIndex, first: int, _last: int
    ) -> None:
        model = self.batch_model()
        if model is None or parent.isValid() or first != 0 or not model.at_end:
            return
        if model.rowCount() > 0 and self._jump is None:
            # Rows go above the ones in view: keep the top one where it is.
            self._anchor = QPersistentModelIndex(self.indexAt(QPoint(1, 1)))

    def _visual_order(self, index: QModelIndex) -> tuple[int, int]:
        parent = index.parent()
        return (parent.row(), index.row()) if parent.isValid() else (index.row(), -1)

    def _show_sort_of(self, model: BatchTreeModel) -> None:
        column = COLUMN_OF_SORT.get(model.query.sort_by, -1)
        ascending = model.query.order is SortOrder.ASC
        order = Qt.SortOrder.AscendingOrder if ascending else Qt.SortOrder.DescendingOrder
        header = self.header()
        if (header.sortIndicatorSection(), header.sortIndicatorOrder()) != (column, order):
            header.setSortIndicator(column, order)  # sorting the model again is a no-op

    def _emit_selection(self) -> None:
        selection = self.selection()
        if selection != self._last_selection:
            self._last_selection = selection
            self.selection_changed_to.emit(selection)

    def _on_self_expanded(self, index: QModelIndex) -> None:
        # Qt fetches on expand only once laid out; a batch expanded before that still loads.
        model = self.batch_model()
        if model is not None and model.canFetchMore(index):
            model.fetchMore(index)

    def _on_self_collapsed(self, index: QModelIndex) -> None:
        model = self.batch_model()
        batch = model.batch_at(index) if model is not None else None
        if batch is not None:
            self._expanded_before.discard(batch.id)

    def _on_model_about_to_be_reset(self) -> None:
        model = self.batch_model()
        if model is None or model.rowCount() == 0:
            return  # no rows yet since the last reset: what it noted still stands
        rows = [model.index(row, 0) for row in range(model.rowCount())]
        shown = {batch.id for batch in map(model.batch_at, rows) if batch is not None}
        # Batches shown now are as they are; one expanded earlier and hidden by a filter stays
        # remembered, to open again when a filter brings it back.
        self._expanded_before = (self._expanded_before - shown) | {
            batch.id
            for index in rows
            if self.isExpanded(index) and (batch := model.batch_at(index)) is not None
        }
        selected = map(model.batch_at, self.selectionModel().selectedRows())
        self._selected_before = {batch.id for batch in selected if batch is not None}
        current = model.batch_at(self.currentIndex())
        self._current_before = None if current is None else current.id

    def _on_model_reset(self) -> None:
        model = self.batch_model()
        if model is not None:
            self._show_sort_of(model)
        self._selection_timer.start()

    def _on_model_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        if not parent.isValid() and (
            self._expanded_before or self._selected_before or self._current_before
        ):
            self._restore_timer.start()
        anchor, self._anchor = self._anchor, None
        if anchor is not None and anchor.isValid():
            self.executeDelayedItemsLayout()
            top = self.model().index(anchor.row(), 0, anchor.parent())
            self.scrollTo(top, QAbstractItemView.ScrollHint.PositionAtTop)
        if not parent.isValid() and self._jump is not None:
            self._finish_jump()
        self._fetch_timer.start()

    def _restore_rows(self) -> None:
        model = self.batch_model()
        if model is None:
            return
        for batch_id in list(self._expanded_before):
            index = model.index_of_batch(batch_id)
            if index.isValid():
                self._expanded_before.discard(batch_id)
                self.expand(index)
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for batch_id in list(self._selected_before):
            index = model.index_of_batch(batch_id)
            if index.isValid():
                self._selected_before.discard(batch_id)
                self.selectionModel().select(index, flags)
        if self._current_before is not None:
            index = model.index_of_batch(self._current_before)
            if index.isValid():
                self._current_before = None
                self.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.NoUpdate
                )

    def _page_wanted(self, parent: Index) -> bool:
        """True when the last loaded row under `parent` is within a screen of the visible rows.

        Qt asks for the next page when the scroll bar reaches its end and after each layout;
        before its first layout of new rows it asks regardless, which this answers no to.
        """
        model = self.batch_model()
        if model is None or model.rowCount(parent) == 0:
            return True  # the first page: the list opens, or a batch was expanded
        self.executeDelayedItemsLayout()  # where the rows are now, not before the last page
        last = self.visualRect(model.index(model.rowCount(parent) - 1, 0, parent))
        return last.isValid() and last.top() <= 2 * self.viewport().height()

    def _fetch_visible_jobs(self) -> None:
        # Qt fetches more of an expanded batch's jobs only at the very bottom of the scroll
        # range; a batch in the middle fetches when its last loaded job comes into view.
        model = self.batch_model()
        if model is None:
            return
        bottom = self.viewport().height()
        if model.can_fetch_earlier() and model.rowCount() > 0:
            # After End: the page above comes when the first row is within a screen of view.
            first = self.visualRect(model.index(0, 0))
            if first.isValid() and first.top() >= -bottom:
                model.fetch_earlier()
        index = self.indexAt(QPoint(1, 1))
        while index.isValid() and self.visualRect(index).top() <= bottom:
            parent = index.parent()
            last_loaded = index.row() == model.rowCount(parent) - 1
            if parent.isValid() and last_loaded and model.canFetchMore(parent):
                model.fetchMore(parent)
            index = self.indexBelow(index)


def _match_tint(palette: QPalette) -> QColor:
    """The background of a job whose file name the search matched: the highlight, faint."""
    tint = QColor(palette.color(QPalette.ColorRole.Highlight))
    tint.setAlphaF(0.25)
    return tint
