"""The batch tree: batches at the top, their jobs inside, read in pages in the background.

Batch rows arrive a page at a time through canFetchMore/fetchMore; a batch's jobs the same way
once it is expanded. Filtering and sorting are SQL (a BatchQuery). Live changes re-read only
the named batches and change rows in place (dataChanged, row moves, inserts, removes), which
keeps the view's selection and expansion. Batch-level reads run one at a time, each from the
rows the last one left; a generation counter drops what was read for an older query. Indexes
carry integers: 0 on a batch row, the key of its batch's node on a job row.

The loaded rows are the first rows of the list, or, after `show_end()`, its last rows: the
model then reads the list in the opposite order (its exact reverse, ties included), so every
read works as it does from the top, and shows what it read bottom up; `fetch_earlier()` reads
the page above the first row shown. Ctrl+End reaches the oldest batch without reading the
pages between.
"""

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from uuid import UUID

import shiboken6
from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from batchdesk.domain.batch_query import (
    BatchQuery,
    JobFilter,
    SortOrder,
    parse_sort_column,
    text_matches,
)
from batchdesk.storage.batch_queries import BatchRow, JobRow
from batchdesk.storage.database import Database

from batchdesk.gui import batch_tree_items as items
from batchdesk.gui import batch_tree_loading as loading
from batchdesk.gui.background import BackgroundTasks

# Part of this module's API, for the delegates and the window.
STATUS_ROLE = items.STATUS_ROLE
PROGRESS_ROLE = items.PROGRESS_ROLE
BATCH_ID_ROLE = items.BATCH_ID_ROLE
JOB_ID_ROLE = items.JOB_ID_ROLE
MATCH_ROLE = items.MATCH_ROLE
Progress = items.Progress

PAGE_SIZE = 200
JOB_PAGE_SIZE = 200

_FONT = int(Qt.ItemDataRole.FontRole.value)
_MATCH_ROLES = {MATCH_ROLE, _FONT, int(Qt.ItemDataRole.BackgroundRole.value)}
_BATCH = 0  # internal id of a batch row's index
_ROOT = QModelIndex()

Index = QModelIndex | QPersistentModelIndex


class BatchTreeModel(QAbstractItemModel):
    """Batches matching a query, in SQL order, with their jobs as children, read page by page.

    The model owns the sort: `sort()` (header clicks) and `set_sort()` change it, and
    `set_query()` takes only the query's filters, so a filter change keeps the order chosen.
    Nothing is read until the view (or anyone) calls fetchMore, or set_query()/refresh().
    """

    loading_changed = Signal(bool)  # True while any read of this model runs
    batch_count_changed = Signal(int)  # how many batches match the filters in all
    load_failed = Signal(str)  # a sentence: the database could not be read
    job_filter_changed = Signal(object)  # JobFilter

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent: QObject | None = None,
        *,
        page_size: int = PAGE_SIZE,
        job_page_size: int = JOB_PAGE_SIZE,
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._page_size = page_size
        self._job_page_size = job_page_size
        self._query = BatchQuery(limit=page_size)
        self._at_end = False  # the loaded rows are the list's last ones, read in reverse
        self._job_filter = JobFilter.ALL
        self._match_brush = QBrush(QColor(48, 140, 198, 64))  # the view sets its palette's
        self._match_font = QFont()
        self._match_font.setBold(True)
        self._job_generation = 0  # a new job filter drops the pages of jobs still being read
        self._nodes = items.BatchNodes()
        self._total: int | None = None  # unknown until the first read
        self._failed = False  # a page failed: no more fetching until refresh() or a new query
        self._reading = False  # a batch-level read (a page, or changes) runs
        self._page_coming = False  # a page was asked for and has not arrived yet
        self._want_page = False
        self._pending = loading.NO_CHANGES
        self._loading = False
        # Asked before a page of batches (parent: the root) or of a batch's jobs is read (the
        # view sets it): does anyone need it now? QTreeView asks for the next page whenever it
        # has not laid out the last row yet, so without this it reads every page of a long
        # list, or of a large expanded batch, one after another.
        self.page_wanted: Callable[[Index], bool] | None = None
        self._reads = loading.ModelReads(
            tasks,
            alive=lambda: shiboken6.isValid(self),
            busy_changed=lambda _busy: self._update_loading(),
            failed=self.load_failed.emit,
        )

    # --- the window's API --------------------------------------------------------------------

    @property
    def query(self) -> BatchQuery:
        return self._query

    @property
    def total_count(self) -> int | None:
        return self._total

    @property
    def is_loading(self) -> bool:
        return self._loading

    @property
    def at_end(self) -> bool:
        """True when the loaded rows are the last ones of the list (after show_end())."""
        return self._at_end

    @property
    def all_loaded(self) -> bool:
        """True when every batch that matches is loaded."""
        return self._total is not None and len(self._nodes) >= self._total

    @property
    def job_filter(self) -> JobFilter:
        return self._job_filter

    def set_query(self, query: BatchQuery) -> None:
        """Show the batches matching `query`'s filters, in this model's sort order; reload."""
        self._restart(self._query.with_filters_of(query))

    def show_end(self) -> bool:
        """Show the last rows of the list; True if they are being read (the rows are reset)."""
        if self._at_end or self.all_loaded:
            return False
        self._restart(self._query, at_end=True)
        return True

    def show_start(self) -> bool:
        """Show the first rows of the list again; True if they are being read."""
        if not self._at_end or self.all_loaded:
            return False
        self._restart(self._query)
        return True

    def can_fetch_earlier(self) -> bool:
        """True when rows above the first one shown are still to be read (after show_end())."""
        return self._at_end and self._more_to_read()

    def fetch_earlier(self) -> None:
        """Read the page of batches above the first row shown (after show_end())."""
        if self.can_fetch_earlier():
            self._ask_for_page()

    def set_job_filter(self, job_filter: JobFilter) -> None:
        """Show only the jobs in these statuses inside every batch; expanded ones read again."""
        if job_filter == self._job_filter:
            return
        self._job_filter = job_filter
        self._job_generation += 1
        for node in self._nodes:
            node.jobs_loading = node.jobs_failed = False
            if node.jobs:
                self.beginRemoveRows(self._batch_index(node), 0, len(node.jobs) - 1)
                node.jobs.clear()
                self.endRemoveRows()
        self.job_filter_changed.emit(job_filter)

    def set_match_colour(self, colour: QColor) -> None:
        """The background of a job row whose file name the search matched."""
        self._match_brush = QBrush(colour)

    def job_count(self, batch: BatchRow) -> int:
        """How many of a batch's jobs the job filter shows (from the batch's own counts)."""
        if self._job_filter is JobFilter.ALL:
            return batch.total_files
        counts = {
            "queued": batch.queued_count,
            "processing": batch.processing_count,
            "completed": batch.completed_count,
            "failed": batch.failed_count,
            "cancelled": batch.cancelled_count,
        }
        return sum(counts[status.value] for status in self._job_filter.statuses)

    def set_sort(self, sort_by: str, order: SortOrder) -> None:
        """Sort by a column of domain.batch_query.SORT_COLUMNS; reload if that is a change."""
        parse_sort_column(sort_by)
        if (sort_by, order) != (self._query.sort_by, self._query.order):
            self._restart(replace(self._query, sort_by=sort_by, order=order))

    def refresh(self) -> None:
        """Re-read every loaded batch and its loaded jobs; rows change in place."""
        self._failed = False
        for node in self._nodes:
            node.jobs_failed = False
        self._queue(loading.Changes(ids=None, force_jobs=True))

    def apply_batch_changes(self, ids: set[UUID] | frozenset[UUID] | None) -> None:
        """Re-read these batches (None: every loaded one) in the background; show the changes."""
        self._queue(loading.Changes(ids=None if ids is None else frozenset(ids)))

    def batch_at(self, index: Index) -> BatchRow | None:
        """Return the batch of a batch row; None for a job row or an invalid index."""
        node = self._node(index)
        return None if node is None else node.row

    def job_at(self, index: Index) -> JobRow | None:
        """Return the job of a job row; None otherwise."""
        if not index.isValid() or index.internalId() == _BATCH:
            return None
        node = self._nodes.by_key(index.internalId())
        return None if node is None else node.job_at(index.row())

    def index_of_batch(self, batch_id: UUID, column: int = 0) -> QModelIndex:
        """Return the index of a loaded batch's row; invalid if it is not loaded."""
        node = self._nodes.by_id(batch_id)
        return QModelIndex() if node is None else self._batch_index(node, column)

    # --- QAbstractItemModel ------------------------------------------------------------------

    def index(self, row: int, column: int, parent: Index = _ROOT) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, _BATCH)
        node = self._node(parent)
        return QModelIndex() if node is None else self.createIndex(row, column, node.key)

    def parent(self, child: Any = None) -> Any:
        if child is None:  # QObject.parent(), not an item's parent
            return super().parent()
        if not child.isValid() or child.internalId() == _BATCH:
            return QModelIndex()
        node = self._nodes.by_key(child.internalId())
        return QModelIndex() if node is None else self._batch_index(node)

    def rowCount(self, parent: Index = _ROOT) -> int:  # noqa: N802 - Qt override
        if not parent.isValid():
            return len(self._nodes)
        node = self._node(parent)
        return len(node.jobs) if node is not None and parent.column() == 0 else 0

    def columnCount(self, parent: Index = _ROOT) -> int:  # noqa: N802 - Qt override
        return len(items.COLUMNS)

    def hasChildren(self, parent: Index = _ROOT) -> bool:  # noqa: N802 - Qt override
        if not parent.isValid():
            return bool(self._nodes)
        node = self._node(parent)
        return node is not None and parent.column() == 0 and self.job_count(node.row) > 0

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.internalId() != _BATCH:
            flags |= Qt.ItemFlag.ItemNeverHasChildren
        return flags

    def data(self, index: Index, role: int = 0) -> Any:
        node = self._node(index)
        if node is not None:
            return items.batch_cell(node.row, index.column(), role)
        job = self.job_at(index)
        if job is None:
            return None
        if role in _MATCH_ROLES:
            # Bold on a tint: what the delegate draws from these roles, no Python painting.
            matched = text_matches(self._query.text, job.file_name)
            if role == MATCH_ROLE:
                return matched
            if not matched:
                return None
            return self._match_font if role == _FONT else self._match_brush
        return items.job_cell(job, index.column(), role)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:  # noqa: N802 - Qt override
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(items.COLUMNS):
            return None
        return items.header_cell(section, role)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        sort_by = items.SORT_BY_COLUMN.get(column)
        if sort_by is not None:  # any other column keeps the current order
            ascending = order == Qt.SortOrder.AscendingOrder
            self.set_sort(sort_by, SortOrder.ASC if ascending else SortOrder.DESC)

    def canFetchMore(self, parent: Index) -> bool:  # noqa: N802 - Qt override
        if not parent.isValid():
            # At the end of the list the rows still to read are above: fetch_earlier().
            return not self._at_end and self._more_to_read()
        node = self._node(parent)
        if node is None or parent.column() != 0 or node.jobs_loading or node.jobs_failed:
            return False
        return len(node.jobs) < self.job_count(node.row)

    def fetchMore(self, parent: Index) -> None:  # noqa: N802 - Qt override
        if self.page_wanted is not None and not self.page_wanted(parent):
            return  # the view does not show the end of the list: no page is needed yet
        if not parent.isValid():
            if not self._at_end or not self._nodes:  # at the end, only its first page
                self._ask_for_page()
            return
        node = self._node(parent)
        if node is not None and self.canFetchMore(parent):
            self._read_jobs(node)

    # --- reading -----------------------------------------------------------------------------

    def _more_to_read(self) -> bool:
        return not self._failed and (self._total is None or len(self._nodes) < self._total)

    def _ask_for_page(self) -> None:
        # A page on its way makes the view ask again when it arrives; otherwise remember.
        if not self._page_coming:
            self._want_page = True
            self._next_batch_read()

    def _read_query(self) -> BatchQuery:
        """The query reads use: the list's own order, or its reverse at the end of the list."""
        return self._query.reversed() if self._at_end else self._query

    def _read_order(self, rows: list[BatchRow]) -> list[BatchRow]:
        """Rows shown top to bottom, in the order reads list them (and back again)."""
        return rows[::-1] if self._at_end else rows

    def _restart(self, query: BatchQuery, *, at_end: bool = False) -> None:
        self.beginResetModel()
        self._reads.restart()  # whatever is still being read for the old query is dropped
        self._query = query
        self._at_end = at_end
        self._nodes.clear()
        self._total, self._failed, self._want_page = None, False, False
        self._reading, self._page_coming, self._pending = False, False, loading.NO_CHANGES
        self.endResetModel()
        self.fetchMore(_ROOT)
        self._update_loading()

    def _queue(self, changes: loading.Changes) -> None:
        self._pending = self._pending.merged(changes)
        self._next_batch_read()

    def _next_batch_read(self) -> None:
        if self._reading:
            return  # runs again when that read ends
        if not self._pending.empty:
            changes, self._pending = self._pending, loading.NO_CHANGES
            request = loading.change_request(
                self._read_query(),
                self._nodes,
                self._total,
                changes,
                self._page_size,
                self._job_statuses(),
            )
            self._read_batches(loading.read_changes, request, self._on_changes_read)
        elif self._want_page:
            self._want_page = False
            if self._more_to_read():
                rows = self._read_order(self._nodes.rows())
                page = loading.page_request(self._read_query(), rows, self._page_size)
                self._page_coming = True
                self._read_batches(loading.read_page, page, self._on_page_read)

    def _read_batches(
        self,
        read: Callable[[Database, Any], Any],
        request: Any,
        on_read: Callable[[Any, Any], None],
    ) -> None:
        self._reading = True
        self._update_loading()
        database, generation = self._database, self._reads.generation

        def finished() -> None:
            self._page_coming = False
            # Queued, so the next read starts from the rows on_read leaves.
            QTimer.singleShot(0, self, lambda: self._on_batch_read_ended(generation))

        def failed() -> None:
            if isinstance(request, loading.PageRequest):
                self._failed = True  # canFetchMore is false until refresh() or a new query

        self._reads.run(
            "read batches",
            lambda _context: read(database, request),
            lambda result: on_read(request, result),
            on_failure=failed,
            on_finished=finished,
        )

    def _on_batch_read_ended(self, generation: int) -> None:
        if generation == self._reads.generation:
            self._reading = False
            self._next_batch_read()
            self._update_loading()

    def _on_page_read(self, request: loading.PageRequest, page: loading.Page) -> None:
        rows, shifted = loading.new_rows_of_page(request, page, self._nodes.ids())
        if rows and self._at_end:  # read upwards: the page goes above the rows shown
            self.beginInsertRows(_ROOT, 0, len(rows) - 1)
            for position, row in enumerate(reversed(rows)):
                self._nodes.insert(position, row)
            self.endInsertRows()
        elif rows:
            first = len(self._nodes)
            self.beginInsertRows(_ROOT, first, first + len(rows) - 1)
            for row in rows:
                self._nodes.insert(len(self._nodes), row)
            self.endInsertRows()
        self._set_total(page.total)
        if shifted or (not rows and self._more_to_read()):
            # Rows came or went above the page while it was read: line the window up again.
            self._queue(loading.Changes(ids=None))

    def _on_changes_read(
        self, request: loading.ChangeRequest, result: loading.ChangeResult
    ) -> None:
        target = loading.target_rows(self._read_order(self._nodes.rows()), result)
        self._reconcile(self._read_order(target))
        self._set_total(result.total)
        if request.job_statuses != self._job_statuses():
            return  # read for another job filter: the expanded batches read theirs anew
        for batch_id, jobs in result.jobs.items():
            node = self._nodes.by_id(batch_id)
            if node is not None:
                self._replace_jobs(node, jobs)

    def _replace_jobs(self, node: items.BatchNode, jobs: list[JobRow]) -> None:
        """Show the jobs read again: in place when the same ones, else all anew."""
        if [job.id for job in jobs] == [job.id for job in node.jobs]:
            self._emit_changed(loading.update_in_place(node.jobs, jobs), node.key)
            return
        # Under a job filter, jobs come and go as their statuses change (a failed one retried).
        parent = self._batch_index(node)
        if node.jobs:
            self.beginRemoveRows(parent, 0, len(node.jobs) - 1)
            node.jobs.clear()
            self.endRemoveRows()
        if jobs:
            self.beginInsertRows(parent, 0, len(jobs) - 1)
            node.jobs.extend(jobs)
            self.endInsertRows()

    def _job_statuses(self) -> frozenset[str] | None:
        if self._job_filter is JobFilter.ALL:
            return None
        return frozenset(status.value for status in self._job_filter.statuses)

    def _read_jobs(self, node: items.BatchNode) -> None:
        node.jobs_loading = True
        key, offset, database = node.key, len(node.jobs), self._database
        statuses, generation = self._job_statuses(), self._job_generation
        request = (node.row.id, offset, self._job_page_size, statuses)

        def read(jobs: list[JobRow] | None) -> None:
            target = self._nodes.by_key(key)
            if target is None or generation != self._job_generation:
                return  # the batch left the model meanwhile, or the job filter changed
            target.jobs_loading = False
            if jobs is None:
                target.jobs_failed = True  # no retry loop; refresh() clears it
            elif jobs and offset == len(target.jobs):
                self.beginInsertRows(self._batch_index(target), offset, offset + len(jobs) - 1)
                target.jobs.extend(jobs)
                self.endInsertRows()

        self._reads.run(
            "read a page of jobs",
            lambda _context: loading.read_jobs(database, *request),
            read,
            on_failure=lambda: read(None),
        )

    # --- applying what was read ----------------------------------------------------------------

    def _reconcile(self, target: list[BatchRow]) -> None:
        """Turn the loaded rows into `target` with removes, moves, inserts and dataChanged."""
        nodes, wanted = self._nodes, {row.id for row in target}
        gone = [i for i, row in enumerate(nodes.rows()) if row.id not in wanted]
        for first, last in reversed(loading.ranges(gone)):
            self.beginRemoveRows(_ROOT, first, last)
            nodes.remove(first, last)
            self.endRemoveRows()
        kept = [row.id for row in target if nodes.by_id(row.id) is not None]
        for source, before in loading.plan_moves([row.id for row in nodes.rows()], kept):
            # A move, not a remove and insert, keeps the row's selection and expansion.
            self.beginMoveRows(_ROOT, source, source, _ROOT, before)
            nodes.move(source, before if before < source else before - 1)
            self.endMoveRows()
        changed: list[int] = []
        for i, row in enumerate(target):
            node = nodes.by_id(row.id)
            if node is None:  # new: inserted in runs, after the rows before it are in place
                end = next((j for j in range(i, len(target)) if nodes.by_id(target[j].id)), None)
                end = len(target) if end is None else end
                self.beginInsertRows(_ROOT, i, end - 1)
                for position in range(i, end):
                    nodes.insert(position, target[position])
                self.endInsertRows()
            elif node.row != row:
                node.row = row
                changed.append(i)
        self._emit_changed(changed, _BATCH)

    def _emit_changed(self, rows: list[int], key: int) -> None:
        # One dataChanged per run of rows; `key` is the internal id the rows' indexes carry.
        last_column = len(items.COLUMNS) - 1
        for first, last in loading.ranges(rows):
            self.dataChanged.emit(
                self.createIndex(first, 0, key), self.createIndex(last, last_column, key)
            )

    def _update_loading(self) -> None:
        # A batch-level read counts until the next one has started, so no flicker between.
        loading_now = self._reads.running > 0 or self._reading
        if loading_now != self._loading:
            self._loading = loading_now
            self.loading_changed.emit(loading_now)

    def _set_total(self, total: int) -> None:
        if total != self._total:
            self._total = total
            self.batch_count_changed.emit(total)

    def _batch_index(self, node: items.BatchNode, column: int = 0) -> QModelIndex:
        return self.createIndex(self._nodes.position_of(node), column, _BATCH)

    def _node(self, index: Index) -> items.BatchNode | None:
        if not index.isValid() or index.internalId() != _BATCH:
            return None
        return self._nodes.at(index.row())
