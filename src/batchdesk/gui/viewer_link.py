"""Between the batch tree and the image viewer: open it on a job, step through jobs in tree order.

A double-click on a job row, the View Job action (Space in the tree) or the preview's View Larger
button opens the viewer on that job. The viewer's Previous and Next (its arrow keys) move the
tree's selection to the job above or below, as the tree shows them: down through a batch's
jobs, on into the next expanded batch, skipping batch rows; when the loaded jobs of a batch run
out the next page is read first. The viewer follows the tree's selection whichever way it moves,
and shows a job again when its status changes (a job that was running has finished).
"""

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QObject, QRect
from PySide6.QtWidgets import QWidget

from batchdesk.storage.batch_queries import JobRow
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_model import BatchTreeModel
from batchdesk.gui.batch_tree_view import BatchTreeView
from batchdesk.gui.image_viewer import ImageViewer

# The viewer opens over this share of the window.
_SHARE_OF_WINDOW = 0.9


class ViewerLink(QObject):
    """Opens the image viewer from the tree and keeps the two in step."""

    def __init__(
        self,
        tree: BatchTreeView,
        model: BatchTreeModel,
        database: Database,
        tasks: BackgroundTasks,
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self._tree = tree
        self._model = model
        self._database = database
        self._tasks = tasks
        self._window = window
        self._viewer: ImageViewer | None = None
        self._pending_step = 0  # a step waiting for the next page of a batch's jobs
        tree.doubleClicked.connect(self._on_tree_double_clicked)
        tree.selectionModel().selectionChanged.connect(self._on_selection_changed)
        model.rowsInserted.connect(self._on_model_rows_inserted)
        model.dataChanged.connect(self._on_model_data_changed)
        window.installEventFilter(self)  # the viewer closes with the window

    @property
    def viewer(self) -> ImageViewer | None:
        """The viewer, once it has been opened."""
        return self._viewer

    @property
    def is_open(self) -> bool:
        return self._viewer is not None and self._viewer.isVisible()

    def selected_job(self) -> JobRow | None:
        """The job the tree's selection stands for: its current row, while that is selected."""
        index = self._selected_current()
        return self._model.job_at(index)

    def open_selected(self) -> None:
        """Open the viewer on the selected job (View Job, Space); nothing without one."""
        job = self.selected_job()
        if job is not None:
            self.open_job(job)

    def open_job(self, job: JobRow) -> None:
        """Open the viewer (or bring it forward) showing this job."""
        viewer = self._viewer
        if viewer is None:
            viewer = self._viewer = ImageViewer(self._database, self._tasks, self._window)
            viewer.step_requested.connect(self.step)
            frame: QRect = self._window.geometry()
            viewer.resize(frame.size() * _SHARE_OF_WINDOW)
            viewer.move(frame.center() - viewer.rect().center())
        already_open = viewer.isVisible()
        if viewer.job is None or viewer.job.id != job.id or not already_open:
            viewer.show_job(job)
        self._update_neighbours()
        viewer.show()
        if already_open:
            viewer.raise_()  # it may be behind the main window
        viewer.activateWindow()

    def step(self, delta: int) -> None:
        """Select the job before (-1) or after (+1) the one on show, as the tree orders them."""
        viewer = self._viewer
        if viewer is None or viewer.job is None:
            return
        index = self._index_of_job(viewer.job)
        if not index.isValid():
            viewer.note("This job is no longer in the list.")
            return
        parent = index.parent()
        if not self._tree.isExpanded(parent):
            self._tree.expand(parent)
        last_loaded = index.row() == self._model.rowCount(parent) - 1
        if delta > 0 and last_loaded and self._more_jobs(parent):
            self._pending_step = delta  # taken up when the rows arrive
            viewer.note("Reading more jobs…")
            self._tree.scrollTo(index)  # the view reads a batch's next page when its end shows
            if self._model.canFetchMore(parent):  # else a page is on its way already
                self._model.fetchMore(parent)
            return
        target = self._neighbour(index, delta)
        if not target.isValid():
            end = "first" if delta < 0 else "last"
            viewer.note(f"This is the {end} job in the list.")
            return
        self._pending_step = 0
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
        )
        self._tree.selectionModel().setCurrentIndex(target, flags)
        self._tree.scrollTo(target)

    # -- the tree ---------------------------------------------------------------------------

    def _selected_current(self) -> QModelIndex:
        index = self._tree.currentIndex()
        selection = self._tree.selectionModel()
        if index.isValid() and selection.isSelected(index.siblingAtColumn(0)):
            return index.siblingAtColumn(0)
        return QModelIndex()

    def _more_jobs(self, parent: QModelIndex) -> bool:
        """Whether the batch has jobs the tree will show that are not read yet."""
        batch = self._model.batch_at(parent)
        return batch is not None and self._model.rowCount(parent) < self._model.job_count(batch)

    def _neighbour(self, index: QModelIndex, delta: int) -> QModelIndex:
        """The nearest job row above or below `index` among the rows the tree shows."""
        move = self._tree.indexBelow if delta > 0 else self._tree.indexAbove
        candidate = move(index)
        while candidate.isValid() and self._model.job_at(candidate) is None:
            candidate = move(candidate)
        return candidate

    def _index_of_job(self, job: JobRow) -> QModelIndex:
        current = self._tree.currentIndex().siblingAtColumn(0)
        shown = self._model.job_at(current)
        if shown is not None and shown.id == job.id:
            return current
        parent = self._model.index_of_batch(job.batch_id)
        for row in range(self._model.rowCount(parent)):
            index = self._model.index(row, 0, parent)
            found = self._model.job_at(index)
            if found is not None and found.id == job.id:
                return index
        return QModelIndex()

    def _update_neighbours(self) -> None:
        viewer = self._viewer
        if viewer is None or viewer.job is None:
            return
        index = self._index_of_job(viewer.job)
        if not index.isValid():
            viewer.set_neighbours(previous=False, following=False)
            return
        more = self._more_jobs(index.parent())
        viewer.set_neighbours(
            previous=self._neighbour(index, -1).isValid(),
            following=more or self._neighbour(index, 1).isValid(),
        )

    def _on_tree_double_clicked(self, index: QModelIndex) -> None:
        job = self._model.job_at(index)
        if job is not None:
            self.open_job(job)

    def _on_selection_changed(self, *_args: object) -> None:
        viewer = self._viewer
        if viewer is None or not viewer.isVisible():
            return
        job = self.selected_job()
        if job is not None and (viewer.job is None or viewer.job.id != job.id):
            viewer.show_job(job)
        self._update_neighbours()

    def _on_model_rows_inserted(self, parent: QModelIndex, _first: int, _last: int) -> None:
        if self._pending_step and parent.isValid():
            delta, self._pending_step = self._pending_step, 0
            self.step(delta)
        elif self.is_open:
            self._update_neighbours()

    def _on_model_data_changed(
        self, first: QModelIndex, _last: QModelIndex, *_roles: object
    ) -> None:
        viewer = self._viewer
        if viewer is None or not viewer.isVisible() or viewer.job is None:
            return
        if first.parent().isValid():  # a job row changed, maybe the one on show
            job = self._model.job_at(self._index_of_job(viewer.job))
            if job is not None and job.status != viewer.job.status:
                viewer.show_job(job)  # finished (or failed, or retried) while on show

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self._window and event.type() == QEvent.Type.Close and self._viewer:
            self._viewer.close()
        return super().eventFilter(watched, event)
