"""The main window: submit on the left, the live batch tree in the middle, a preview on the right.

The window opens before the database answers, showing what it is waiting for; the working
widgets are built once the session is connected, because each of them needs the database.
Menus and the toolbar share one set of actions (`window_actions.py`), enabled to match the
selection.
"""

from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from PySide6.QtCore import QByteArray, QModelIndex, QPoint, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
)

from batchdesk.app import AppContext
from batchdesk.settings import AppPaths, Settings
from batchdesk.storage.batch_queries import BatchRow, JobRow

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.done_today import DoneTodayCounter
from batchdesk.gui.session import DatabaseSession
from batchdesk.gui.status_bar import StatusBar
from batchdesk.gui.submit_panel import paths_from_mime
from batchdesk.gui.theme import AppTheme
from batchdesk.gui.tray import Notifier
from batchdesk.gui.window_actions import WindowActions
from batchdesk.gui.workers_panel import WorkersPanel
from batchdesk.gui.workspace import Workspace

if TYPE_CHECKING:
    from batchdesk.gui.pipelines_dialog import PipelinesDialog

STATUS_REFRESH_MS = 1_000


class MainWindow(QMainWindow):
    """The batchdesk window."""

    def __init__(
        self,
        session: DatabaseSession,
        tasks: BackgroundTasks,
        paths: AppPaths,
        settings: Settings,
        *,
        window_state: QSettings,
    ) -> None:
        super().__init__()
        self.session = session
        self.tasks = tasks
        self.paths = paths
        self.settings = settings
        self.window_state = window_state
        self.workspace: Workspace | None = None
        self.done_today: DoneTodayCounter | None = None
        self.workers_panel: WorkersPanel | None = None
        self.pipelines_dialog: PipelinesDialog | None = None  # made when first opened
        app = QApplication.instance()
        assert isinstance(app, QApplication), "the window needs a QApplication"
        self.theme = AppTheme.of(app)
        self.theme.apply(settings.theme)  # before the first paint: no flash of the other one
        self.setWindowTitle("batchdesk")
        self.setAcceptDrops(True)
        self.resize(1460, 900)

        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self.waiting = QLabel("Connecting to the database...")
        self.waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.waiting.setWordWrap(True)
        self.waiting.setObjectName("waiting-page")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.waiting)
        self.setCentralWidget(self.pages)

        self.notifier = Notifier(self)
        self.notifier.set_enabled(settings.notifications)
        self.window_actions = WindowActions(self)
        self.window_actions.set_connected(False)
        self._status_timer = QTimer(self, interval=STATUS_REFRESH_MS)
        self._status_timer.timeout.connect(self._update_worker_status)

        session.status_changed.connect(self._on_session_status_changed)
        session.unavailable.connect(self._on_session_unavailable)
        session.connected.connect(self._on_session_connected)
        session.connection_lost.connect(self._on_session_connection_lost)
        session.connection_restored.connect(self._on_session_connection_restored)
        tasks.known_error.connect(self._on_tasks_known_error)
        self._restore_geometry()

    # -- the session -----------------------------------------------------------------------

    def _on_session_status_changed(self, text: str) -> None:
        if self.workspace is None:
            self.waiting.setText(text)
        self.status.set_connection("connecting", text)

    def _on_session_unavailable(self, sentence: str) -> None:
        sentence += f" Trying again every {self.session.retry_seconds} s."
        self.waiting.setText(f"The database cannot be reached.\n\n{sentence}")
        self.status.set_connection("unreachable", sentence)

    def _on_session_connection_lost(self, sentence: str) -> None:
        self.status.set_connection("reconnecting", sentence)
        self.status.show_text(sentence)

    def _on_session_connection_restored(self) -> None:
        self.status.set_connection("connected")
        self.status.show_text("The database answers again.")
        if self.workspace is not None:
            self.workspace.connection_restored(run_jobs=self.settings.run_jobs)

    def _on_session_connected(self, context: AppContext) -> None:
        workspace = Workspace(context, self.tasks, self.settings, self, self.window_state)
        self.workspace = workspace
        self.pages.addWidget(workspace.splitter)
        self.pages.setCurrentWidget(workspace.splitter)
        self.status.set_database(context.database.description)
        self.status.set_connection("connected")

        workspace.message.connect(self.status.show_text)
        workspace.problem.connect(self._show_problem)
        workspace.watcher.batch_finished.connect(self._on_watcher_batch_finished)
        workspace.tree.selectionModel().selectionChanged.connect(self._on_tree_selection_changed)
        workspace.tree.customContextMenuRequested.connect(self._on_tree_context_menu)
        workspace.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        workspace.tree.addAction(self.window_actions.view_job)  # Space on a job row
        workspace.model.dataChanged.connect(self._on_model_data_changed)
        workspace.preview.load_failed.connect(self.session.report_failure)
        workspace.stats.refresh_failed.connect(self.session.report_failure)
        self.window_actions.add_export_options(workspace.exports.include_originals_action)
        done_today = DoneTodayCounter(context.database, self.tasks, parent=self)
        self.done_today = done_today
        done_today.changed.connect(self._update_worker_status)
        done_today.refresh_failed.connect(self.session.report_failure)
        workspace.live.batches_changed.connect(done_today.refresh_soon)
        workspace.runner.job_events.connect(done_today.refresh_soon)  # also when live is down

        self._add_workers_panel(context, workspace)

        workspace.restore_state(self.window_state)
        workspace.start(run_jobs=self.settings.run_jobs)
        done_today.start()
        self._status_timer.start()
        self._update_worker_status()
        self.window_actions.set_connected(True)
        self._on_tree_selection_changed()

    def _add_workers_panel(self, context: AppContext, workspace: Workspace) -> None:
        """The Workers dock, where it was last (hidden on a first start), live."""
        panel = WorkersPanel(context.database, self.tasks, self)
        self.workers_panel = panel
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, panel)
        if not self.restoreDockWidget(panel):  # made after the window's state was restored
            panel.hide()
        toggle = panel.toggleViewAction()
        toggle.setText("&Workers Panel")
        toggle.setToolTip("Show the studio's workers: who runs what, pause or resume them")
        self.window_actions.add_panel_toggle(toggle)
        panel.message.connect(self.status.show_text)
        panel.failed.connect(self._show_problem)
        workspace.live.workers_changed.connect(panel.refresh_soon)
        workspace.live.batches_changed.connect(panel.refresh_soon)  # jobs started or finished

    # -- live updates ----------------------------------------------------------------------

    def _on_watcher_batch_finished(self, batch: BatchRow) -> None:
        detail = f"{batch.completed_count} of {batch.total_files} completed"
        if batch.failed_count:
            detail += f", {batch.failed_count} failed"
        self.notifier.notify_batch_finished(batch.base_directory_name, batch.status, detail)

    def refresh(self) -> None:
        """F5: re-read everything shown from the database."""
        workspace = self.workspace
        if workspace is None:
            self.session.open()
            return
        workspace.refresh()
        self.status.show_text("Refreshed.")

    # -- selection ---------------------------------------------------------------------------

    def selected_batches(self) -> list[BatchRow]:
        """Batches selected, plus the batches of selected jobs, each once, in view order."""
        workspace = self.workspace
        if workspace is None:
            return []
        found: dict[UUID, BatchRow] = {}
        for index in workspace.tree.selectionModel().selectedRows():
            batch = workspace.model.batch_at(index) or workspace.model.batch_at(index.parent())
            if batch is not None:
                found.setdefault(batch.id, batch)
        return list(found.values())

    def selected_jobs(self) -> list[JobRow]:
        """Every selected job row (batch rows left out)."""
        workspace = self.workspace
        if workspace is None:
            return []
        rows = workspace.tree.selectionModel().selectedRows()
        found = (workspace.model.job_at(index) for index in rows)
        return [job for job in found if job is not None]

    def selected_job(self) -> tuple[BatchRow, JobRow] | None:
        workspace = self.workspace
        if workspace is None:
            return None
        index = self._selected_current()
        job = workspace.model.job_at(index)
        batch = workspace.model.batch_at(index.parent())
        return (batch, job) if job is not None and batch is not None else None

    def _selected_current(self) -> QModelIndex:
        """The row the preview and the job actions follow: the current row, while selected.

        Clicking empty space clears the selection but keeps the current row, which then
        stands for nothing.
        """
        workspace = self.workspace
        if workspace is None:
            return QModelIndex()
        index = workspace.tree.currentIndex()
        return index if workspace.tree.selectionModel().isSelected(index) else QModelIndex()

    def _on_tree_selection_changed(self, *_args: object) -> None:
        self.window_actions.update_for_selection(
            self.selected_batches(), self.selected_job(), self.selected_jobs()
        )
        workspace = self.workspace
        if workspace is None:
            return
        index = self._selected_current()
        job = workspace.model.job_at(index)
        batch = workspace.model.batch_at(index)
        if job is not None:
            workspace.preview.show_job(job)
        elif batch is not None:
            workspace.preview.show_batch(batch)
        else:
            workspace.preview.clear()

    def _on_model_data_changed(
        self, first: QModelIndex, last: QModelIndex, *_roles: object
    ) -> None:
        """The selected row changed (here or elsewhere): refresh the preview and the actions."""
        workspace = self.workspace
        if workspace is None:
            return
        current = workspace.tree.currentIndex()
        if current.parent() == first.parent() and first.row() <= current.row() <= last.row():
            self._on_tree_selection_changed()

    def _on_tree_context_menu(self, position: QPoint) -> None:
        workspace = self.workspace
        if workspace is None:
            return
        menu = QMenu(self)
        self.window_actions.fill_context_menu(menu)
        menu.exec(workspace.tree.viewport().mapToGlobal(position))
        menu.deleteLater()  # one menu per right-click, not one more child each time

    # -- submitting --------------------------------------------------------------------------

    def add_paths(self, paths: list[Path]) -> None:
        if self.workspace is None:
            self.status.show_text("Wait for the database before adding files.")
            return
        self.workspace.submit.add_paths(paths)

    def paste_paths(self) -> None:
        paths = paths_from_mime(QGuiApplication.clipboard().mimeData())
        if paths:
            self.add_paths(paths)
        else:
            self.status.show_text("The clipboard holds no file paths.")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() or event.mimeData().hasText():
            event.setDropAction(Qt.DropAction.CopyAction)  # external drops are copies, never moves
            event.accept()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = paths_from_mime(event.mimeData())
        if paths:
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self.add_paths(paths)

    # -- dialogs (their modules load when first opened, not before the first page) ------------

    def show_preferences(self) -> None:
        from batchdesk.gui.preferences_dialog import PreferencesDialog

        dialog = PreferencesDialog(self.settings, self.tasks, self.paths, self)
        if not dialog.exec():
            return
        old = self.settings
        self.settings = dialog.result_settings()
        self.notifier.set_enabled(self.settings.notifications)
        if old.theme != self.settings.theme:
            self.theme.apply(self.settings.theme)
        workspace = self.workspace
        if workspace is not None and old.run_jobs != self.settings.run_jobs:
            workspace.runner.set_enabled(self.settings.run_jobs)
        notes = []
        if old.database_url != self.settings.database_url:
            notes.append("the database takes effect when batchdesk starts again")
        if old.worker_threads != self.settings.worker_threads:
            notes.append("the thread count takes effect when batchdesk starts again")
        self.status.show_text("Preferences saved" + (f"; {'; '.join(notes)}." if notes else "."))

    def show_pipelines(self) -> None:
        """Tools → Pipelines: list, edit, preview, version and retire the studio's pipelines."""
        from batchdesk.gui.pipelines_dialog import PipelinesDialog

        workspace = self.workspace
        if workspace is None:
            self.status.show_text("Wait for the database before editing pipelines.")
            return
        dialog = self.pipelines_dialog
        if dialog is None:
            dialog = PipelinesDialog(workspace.context.database, self.tasks, self)
            dialog.pipelines_changed.connect(workspace.submit.form.reload_pipelines)
            self.pipelines_dialog = dialog
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    def show_about(self) -> None:
        from batchdesk.gui.about_dialog import AboutDialog

        context = self.workspace.context if self.workspace else None
        description = context.database.description if context else "not connected"
        AboutDialog(description, self.paths, parent=self).exec()

    def _show_problem(self, sentence: str) -> None:
        self.status.show_text(sentence)
        QMessageBox.warning(self, "batchdesk", sentence)

    def _on_tasks_known_error(self, sentence: str) -> None:
        self.status.show_text(sentence)

    def _update_worker_status(self, *_args: object) -> None:
        workspace = self.workspace
        if workspace is None:
            return
        runner = workspace.runner
        self.status.set_workers(
            enabled=runner.enabled,
            busy=runner.busy,
            threads=runner.threads,
            done_today=self.done_today.value if self.done_today is not None else None,
        )

    # -- state -------------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geometry = self.window_state.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:  # first start: the default size, but never larger than the screen (a laptop)
            screen = QGuiApplication.primaryScreen()
            if screen is not None:
                room = screen.availableGeometry().size() * 0.92
                self.resize(self.size().boundedTo(room))
        state = self.window_state.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def save_state(self) -> None:
        self.window_state.setValue("window/geometry", self.saveGeometry())
        self.window_state.setValue("window/state", self.saveState())
        if self.workspace is not None:
            self.workspace.save_state(self.window_state)
        self.window_state.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.save_state()
        self.shut_down()
        event.accept()

    def shut_down(self) -> None:
        """Stop the live feed and this computer's workers, giving back unfinished jobs."""
        self._status_timer.stop()
        if self.done_today is not None:
            self.done_today.stop()
        if self.workers_panel is not None:
            self.workers_panel.stop()
        if self.pipelines_dialog is not None:
            self.pipelines_dialog.shutdown()
        workspace = self.workspace
        if workspace is None:
            return
        if not workspace.shut_down():
            self.status.show_text("Jobs were still stopping; another worker will take them over.")
