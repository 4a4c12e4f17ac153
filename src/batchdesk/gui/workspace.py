"""The working part of the window, built once the database answers: its widgets and their wiring.

Submit panel on the left, filters + figures + batch tree in the middle, preview on the right,
and the parts without a face: live updates, the batch watcher and this computer's runner. The
window (`main_window.py`) owns the session, the menus and the dialogs; it tells the workspace
when the connection comes back, and asks it to start, refresh, save its layout and shut down.
"""

from pathlib import Path
from uuid import UUID

from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from batchdesk.app import AppContext
from batchdesk.settings import Settings

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_actions import BatchActions
from batchdesk.gui.batch_tree_model import BatchTreeModel
from batchdesk.gui.batch_tree_view import BatchTreeView
from batchdesk.gui.batch_watcher import BatchWatcher
from batchdesk.gui.collapsing_pane import CollapsingPane
from batchdesk.gui.export_actions import ExportActions
from batchdesk.gui.farm_actions import FarmActions
from batchdesk.gui.filter_bar import FilterBar
from batchdesk.gui.job_pool import RunnerHost
from batchdesk.gui.live_updates import LiveUpdates
from batchdesk.gui.preview_pane import PreviewPane
from batchdesk.gui.saved_views import SavedViews
from batchdesk.gui.stats_strip import StatsStrip
from batchdesk.gui.submit_panel import SubmitPanel
from batchdesk.gui.viewer_link import ViewerLink

# Keys in the window's QSettings file.
SPLITTER_KEY = "window/splitter"
HEADER_KEY = "window/tree-header"
# The tree's columns as HEADER_KEY's state knows them: a state saved for other columns is
# not restored (Qt would give the old widths and sort to the new columns, which mean other
# things). 1 (no key): Name, Description, Status, Progress, Files, Size, Created, By. 2: Name,
# Status, Progress / tries, Description / error, Pipeline, Size, Time, Who / where. 3: Priority
# after Status.
HEADER_VERSION_KEY = "window/tree-header-version"
HEADER_VERSION = 3
COLUMNS_FITTED_KEY = "window/tree-columns-fitted"
EXPANDED_KEY = "window/expanded-batches"
PREVIEW_WIDTH_KEY = "window/preview-width"
# First-start widths: file names readable in the submit panel, before/after one above the
# other in the preview (which opens only when something is selected), the rest for the tree.
SUBMIT_WIDTH, PREVIEW_WIDTH = 320, 300


class Workspace(QObject):
    """The widgets that need a connected database, built and wired together.

    `message(str)` is a sentence for the status bar; `problem(str)` one worth a dialog.
    """

    message = Signal(str)
    problem = Signal(str)

    def __init__(
        self,
        context: AppContext,
        tasks: BackgroundTasks,
        settings: Settings,
        window: QWidget,
        window_state: QSettings | None = None,
    ) -> None:
        super().__init__(window)
        database = context.database
        self.context = context
        self.submit = SubmitPanel(database, tasks, settings)
        self.filters = FilterBar(database, tasks)
        self.stats = StatsStrip(database, tasks)
        self.model = BatchTreeModel(database, tasks, window)
        self.tree = BatchTreeView()
        self.tree.setModel(self.model)
        self.preview = PreviewPane(database, tasks)
        self.exports = ExportActions(database, tasks, window, window_state)
        self.actions = BatchActions(database, tasks, window)
        self.farm = FarmActions(database, tasks, window)
        self.views = SavedViews(
            self.filters.apply_view,
            self.filters.view_of,
            lambda: (self.model.query.sort_by, self.model.query.order),
            window_state,
            window,
        )
        self.filters.add_to_first_row(self.views.button)
        self.live = LiveUpdates(database.conninfo, window)
        self.watcher = BatchWatcher(database, tasks, window)
        delivery = Path(settings.delivery_folder).expanduser() if settings.delivery_folder else None
        self.runner = RunnerHost(
            database, settings.worker_threads, delivery_folder=delivery, parent=window
        )
        self.splitter = self._lay_out()
        self.preview_room = CollapsingPane(self.splitter, 2, PREVIEW_WIDTH, self)
        self.viewer = ViewerLink(self.tree, self.model, database, tasks, window)
        self._wire()

    def _lay_out(self) -> QSplitter:
        middle = QWidget()
        column = QVBoxLayout(middle)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.filters)
        column.addWidget(self.stats)
        column.addWidget(self.tree, stretch=1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("workspace-splitter")
        splitter.addWidget(self.submit)
        splitter.addWidget(middle)
        splitter.addWidget(self.preview)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(1, False)
        splitter.setSizes([SUBMIT_WIDTH, 1200, 0])
        return splitter

    def _wire(self) -> None:
        self.filters.query_changed.connect(self.model.set_query)
        self.filters.job_filter_changed.connect(self.model.set_job_filter)
        self.views.sort_requested.connect(self.model.set_sort)
        self.views.message.connect(self.message)
        self.model.batch_count_changed.connect(self._update_shown_count)
        self.model.modelReset.connect(self._update_shown_count)
        self.submit.batches_submitted.connect(self._on_submit_batches_submitted)
        self.preview.has_content_changed.connect(self.preview_room.set_open)
        self.preview.viewer_requested.connect(self.viewer.open_job)
        self.live.batches_changed.connect(self.apply_batch_changes)
        self.live.listening_changed.connect(self._on_live_listening_changed)
        for source in (self.actions, self.exports, self.farm):
            source.message.connect(self.message)
            source.failed.connect(self.problem)
        self.actions.batches_deleted.connect(self._on_actions_batches_deleted)
        self.model.load_failed.connect(self.message)
        self.model.loading_changed.connect(self._update_empty_text)
        self.model.rowsInserted.connect(self._update_empty_text)
        self.model.rowsRemoved.connect(self._update_empty_text)
        self.runner.failed.connect(self.message)

    # -- life ------------------------------------------------------------------------------

    def start(self, *, run_jobs: bool) -> None:
        """Begin: first figures, live updates, and this computer's workers if wanted.

        The workers start once the first page of batches has been read: starting them loads
        the image pipelines and claims jobs, which the first page should not wait for.
        """
        self.stats.refresh()
        self.live.start()
        access = self.context.database.access
        if access is not None and not access.may_write:  # a viewer's role: nothing to run
            run_jobs = False
            self.message.emit(
                f"The database role {access.role} may only read: this computer runs no jobs, "
                "and submitting or changing batches is refused."
            )
        if run_jobs:  # the view asks for the first page when it lays out, just after this
            self.model.loading_changed.connect(self._start_runner_after_first_page)

    def _start_runner_after_first_page(self, loading: bool) -> None:
        if not loading:
            self.model.loading_changed.disconnect(self._start_runner_after_first_page)
            self.runner.start()

    def connection_restored(self, *, run_jobs: bool) -> None:
        self.apply_batch_changes(None)
        access = self.context.database.access
        if run_jobs and not self.runner.enabled and (access is None or access.may_write):
            self.runner.start()

    def refresh(self) -> None:
        """F5: re-read everything shown from the database."""
        self.model.refresh()
        self.stats.refresh()
        self.filters.reload_choices()
        self.submit.refresh_preview()

    def shut_down(self) -> bool:
        """Stop the live feed and this computer's workers; False if jobs were still stopping."""
        self.live.stop()
        self.watcher.stop()
        self.runner.stop()
        # Unfinished jobs go back to the queue before the database (maybe embedded) closes.
        return self.runner.wait_stopped(60)

    # -- changes ---------------------------------------------------------------------------

    def apply_batch_changes(self, ids: set[UUID] | None) -> None:
        """These batches (None: any) changed here or on another workstation."""
        self.model.apply_batch_changes(ids)
        self.stats.refresh()
        self.submit.refresh_preview()
        self.watcher.check(ids)

    def _on_submit_batches_submitted(self, _result: object) -> None:
        self.model.apply_batch_changes(None)
        self.stats.refresh()
        self.filters.reload_choices()

    def _on_actions_batches_deleted(self, ids: list[UUID]) -> None:
        self.model.apply_batch_changes(set(ids))
        self.stats.refresh()

    def _on_live_listening_changed(self, listening: bool) -> None:
        if not listening:
            self.message.emit("Live updates paused; refreshing every few seconds instead.")

    def _update_shown_count(self, *_args: object) -> None:
        filtered = self.model.query.filtered
        self.stats.set_shown(self.model.total_count if filtered else None)

    def _update_empty_text(self, *_args: object) -> None:
        query = self.model.query
        if self.model.rowCount() > 0 or self.model.is_loading:
            self.tree.set_empty_text("")
        elif query.filtered:
            self.tree.set_empty_text("No batches match these filters.")
        else:
            self.tree.set_empty_text(
                "No batches yet.\nDrop PNG files on the window, or use Add files..., to start one."
            )

    # -- layout state ----------------------------------------------------------------------

    def restore_state(self, state: QSettings) -> None:
        splitter = state.value(SPLITTER_KEY)
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)
        self.preview_room.restore(state, PREVIEW_WIDTH_KEY)
        header = state.value(HEADER_KEY)
        version = state.value(HEADER_VERSION_KEY)
        if isinstance(header, QByteArray) and str(version) == str(HEADER_VERSION):
            fitted = str(state.value(COLUMNS_FITTED_KEY, "true")).lower() == "true"
            if self.tree.header().restoreState(header):
                self.tree.set_columns_fitted(fitted)
        expanded = state.value(EXPANDED_KEY)
        if isinstance(expanded, str) and expanded:
            self.tree.expand_batches_when_shown(_uuids(expanded.split(",")))

    def save_state(self, state: QSettings) -> None:
        state.setValue(SPLITTER_KEY, self.splitter.saveState())
        self.preview_room.save(state, PREVIEW_WIDTH_KEY)
        state.setValue(HEADER_KEY, self.tree.header().saveState())
        state.setValue(HEADER_VERSION_KEY, HEADER_VERSION)
        state.setValue(COLUMNS_FITTED_KEY, self.tree.columns_fitted)
        state.setValue(EXPANDED_KEY, ",".join(str(i) for i in self.tree.expanded_batches()))


def _uuids(texts: list[str]) -> set[UUID]:
    found = set()
    for text in texts:
        try:
            found.add(UUID(text))
        except ValueError:
            continue  # a hand-edited state file: skip what is not an id
    return found
