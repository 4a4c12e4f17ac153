"""The window's actions, menus and toolbar: one QAction per command, enabled by the selection.

Menus, the toolbar, the tree's context menu and keyboard shortcuts all trigger the same
actions, so each command has one place that decides whether it can run.
"""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QApplication, QMenu, QStyle, QToolBar

from batchdesk.storage.batch_queries import BatchRow, JobRow

from batchdesk.gui.farm_actions import pausable, resumable, runnable_again

if TYPE_CHECKING:
    from batchdesk.gui.main_window import MainWindow


def _icon(theme: str, fallback: QStyle.StandardPixmap) -> QIcon:
    """The desktop theme's icon where there is one (Linux), else Qt's own."""
    style = QApplication.style()
    return QIcon.fromTheme(theme, style.standardIcon(fallback))


class WindowActions:
    """Builds the actions on `window` and keeps their enabled state true to the selection."""

    def __init__(self, window: "MainWindow") -> None:
        self.window = window
        sp = QStyle.StandardPixmap

        def action(
            text: str,
            slot: Callable[[], object],
            shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
            icon: QIcon | None = None,
            tip: str = "",
        ) -> QAction:
            made = QAction(text, window)
            if shortcut is not None:
                made.setShortcut(QKeySequence(shortcut))
            if icon is not None:
                made.setIcon(icon)
            made.setStatusTip(tip)
            made.setToolTip(tip or text.replace("&", "").rstrip("."))
            made.triggered.connect(slot)
            window.addAction(made)  # shortcuts work even with the menu bar hidden
            return made

        key = QKeySequence.StandardKey
        self.add_files = action(
            "&Add Files...", self._add_files, key.Open,
            _icon("document-open", sp.SP_FileIcon), "Choose PNG files for a new batch",
        )  # fmt: skip
        self.add_folder = action(
            "Add &Folder...", self._add_folder, "Ctrl+Shift+O",
            _icon("folder-open", sp.SP_DirOpenIcon), "Choose a folder of PNG files",
        )  # fmt: skip
        self.paste = action("&Paste File Paths", window.paste_paths, key.Paste)
        self.paste.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.export_zip = action(
            "&Export Zip...", self._export_zip, "Ctrl+E",
            _icon("document-save", sp.SP_DialogSaveButton), "Save the selected batches as zips",
        )  # fmt: skip
        self.save_job = action(
            "Save &Job Outputs...", self._save_job, "Ctrl+Shift+E",
            tip="Save the selected job's files into a folder",
        )  # fmt: skip
        self.quit = action("&Quit", window.close, key.Quit)
        self.copy_names = action(
            "&Copy Batch Name", self._copy_names, key.Copy, tip="Copy the selected batch names"
        )
        self.preferences = action(
            "&Preferences...", window.show_preferences, key.Preferences,
            _icon("preferences-system", sp.SP_FileDialogDetailedView),
        )  # fmt: skip
        if self.preferences.shortcut().isEmpty():  # no platform standard on Linux
            self.preferences.setShortcut(QKeySequence("Ctrl+,"))
        self.refresh = action(
            "&Refresh", window.refresh, key.Refresh,
            _icon("view-refresh", sp.SP_BrowserReload), "Read everything again (F5)",
        )  # fmt: skip
        self.retry = action(
            "&Retry Failed Jobs", self._retry, "Ctrl+R",
            _icon("view-refresh", sp.SP_BrowserReload), "Queue the failed jobs again",
        )  # fmt: skip
        self.cancel = action(
            "&Cancel Batch", self._cancel, "Ctrl+.",
            _icon("process-stop", sp.SP_BrowserStop), "Cancel the unfinished jobs",
        )  # fmt: skip
        self.delete = action(
            "&Delete Batch...", self._delete, key.Delete,
            _icon("edit-delete", sp.SP_TrashIcon), "Delete the selected batches (asks first)",
        )  # fmt: skip
        self.set_priority = action(
            "Set &Priority...", self._set_priority,
            tip="Give the selected batches a priority, 0-100: higher ones run first",
        )  # fmt: skip
        self.raise_priority = action(
            "Raise Priorit&y", self._raise_priority, "Ctrl+Up",
            tip="Raise the selected batches' priority by 10",
        )  # fmt: skip
        self.lower_priority = action(
            "Lo&wer Priority", self._lower_priority, "Ctrl+Down",
            tip="Lower the selected batches' priority by 10",
        )  # fmt: skip
        self.pause = action(
            "P&ause Batch", self._pause,
            icon=_icon("media-playback-pause", sp.SP_MediaPause),
            tip="Start no new job of the selected batches; running ones finish",
        )  # fmt: skip
        self.resume = action(
            "Res&ume Batch", self._resume,
            icon=_icon("media-playback-start", sp.SP_MediaPlay),
            tip="Let the selected paused batches run again",
        )  # fmt: skip
        self.run_again = action(
            "Run Job A&gain", self._run_again, "Ctrl+Shift+R",
            tip="Queue the selected finished jobs again, with fresh attempts",
        )  # fmt: skip
        self.view_job = action(
            "&View Job", self._view_job, "Space",
            tip="Look at the selected job's input and outputs, large (Space or double-click)",
        )  # fmt: skip
        # Space only in the batch tree (main_window adds it there): elsewhere it presses buttons.
        self.view_job.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.find = action("&Find", self._focus_filter, key.Find, tip="Filter batches by text")
        self.pipelines = action(
            "P&ipelines...", window.show_pipelines,
            tip="The studio's pipelines: versions, steps, a live preview on a sample PNG",
        )  # fmt: skip
        self.about = action("&About batchdesk", window.show_about)
        self.about_qt = action("About &Qt", QApplication.aboutQt)
        self._build_menus()
        self._build_toolbar()

    def _build_menus(self) -> None:
        bar = self.window.menuBar()
        file_menu = self._file_menu = bar.addMenu("&File")
        for item in (self.add_files, self.add_folder, self.paste, None, self.export_zip,
                     self.save_job, None, self.quit):  # fmt: skip
            file_menu.addSeparator() if item is None else file_menu.addAction(item)
        edit = bar.addMenu("&Edit")
        edit.addActions([self.copy_names, self.find])
        edit.addSeparator()
        edit.addAction(self.preferences)
        view = self._view_menu = bar.addMenu("&View")
        view.addActions([self.view_job, self.refresh])
        batch = self._batch_menu = bar.addMenu("&Batch")
        batch.addActions([self.export_zip, self.save_job, self.retry, self.cancel, self.delete])
        batch.addSeparator()
        batch.addActions(self._farm_actions())
        batch.addSeparator()
        batch.addAction(self.copy_names)
        tools = bar.addMenu("&Tools")
        tools.addAction(self.pipelines)
        tools.addAction(self.preferences)
        help_menu = bar.addMenu("&Help")
        help_menu.addActions([self.about, self.about_qt])

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Main", self.window)
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        toolbar.addActions([self.add_files, self.add_folder])
        toolbar.addSeparator()
        toolbar.addActions([self.export_zip, self.retry, self.cancel, self.delete])
        toolbar.addSeparator()
        toolbar.addAction(self.refresh)
        self.window.addToolBar(toolbar)

    def add_export_options(self, include_originals: QAction) -> None:
        """Put the export's 'include original PNGs' switch beside Export Zip in the menus."""
        self.include_originals = include_originals
        for menu in (self._file_menu, self._batch_menu):
            menu.insertAction(self.save_job, include_originals)

    def add_panel_toggle(self, toggle: QAction) -> None:
        """Put a panel's show/hide switch (a dock's toggleViewAction) in the View menu."""
        self._view_menu.addSeparator()
        self._view_menu.addAction(toggle)

    def fill_context_menu(self, menu: QMenu) -> None:
        menu.addAction(self.view_job)
        menu.addSeparator()
        menu.addActions([self.export_zip, self.save_job])
        menu.addSeparator()
        menu.addActions([self.retry, self.cancel, self.delete])
        menu.addSeparator()
        menu.addActions(self._farm_actions())
        menu.addSeparator()
        menu.addAction(self.copy_names)

    def _farm_actions(self) -> list[QAction]:
        return [
            self.set_priority,
            self.raise_priority,
            self.lower_priority,
            self.pause,
            self.resume,
            self.run_again,
        ]

    # -- state -------------------------------------------------------------------------------

    def set_connected(self, connected: bool) -> None:
        for item in (self.add_files, self.add_folder, self.paste, self.find):
            item.setEnabled(connected)
        if not connected:
            self.update_for_selection([], None)

    def update_for_selection(
        self,
        batches: list[BatchRow],
        job: tuple[BatchRow, JobRow] | None,
        jobs: Sequence[JobRow] = (),
    ) -> None:
        """Enable what the selection allows: `batches` (with those of selected jobs), the
        current `job` and every selected job (`jobs`)."""
        has = bool(batches)
        for item in (self.set_priority, self.raise_priority, self.lower_priority):
            item.setEnabled(has)
        self.pause.setEnabled(bool(pausable(batches)))
        self.resume.setEnabled(bool(resumable(batches)))
        self.run_again.setEnabled(bool(runnable_again(jobs)))
        self.export_zip.setEnabled(has)
        self.copy_names.setEnabled(has)
        self.delete.setEnabled(has)
        self.retry.setEnabled(any(b.failed_count for b in batches))
        self.cancel.setEnabled(any(b.queued_count or b.processing_count for b in batches))
        self.save_job.setEnabled(job is not None and job[1].status == "completed")
        self.view_job.setEnabled(job is not None)

    # -- slots -------------------------------------------------------------------------------

    def _add_files(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.submit.choose_files()

    def _add_folder(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.submit.choose_folder()

    def _export_zip(self) -> None:
        workspace, batches = self.window.workspace, self.window.selected_batches()
        if workspace is None or not batches:
            return
        if len(batches) == 1:
            workspace.exports.export_zip(batches[0])
        else:
            workspace.exports.export_zips(batches)

    def _save_job(self) -> None:
        workspace, selected = self.window.workspace, self.window.selected_job()
        if workspace is not None and selected is not None:
            workspace.exports.save_job_outputs(*selected)

    def _copy_names(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.actions.copy_names(self.window.selected_batches())

    def _retry(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.actions.retry_failed(self.window.selected_batches())

    def _cancel(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.actions.cancel(self.window.selected_batches())

    def _delete(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.actions.delete(self.window.selected_batches())

    def _set_priority(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.farm.ask_and_set_priority(self.window.selected_batches())

    def _raise_priority(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.farm.raise_priority(self.window.selected_batches())

    def _lower_priority(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.farm.lower_priority(self.window.selected_batches())

    def _pause(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.farm.pause(self.window.selected_batches())

    def _resume(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.farm.resume(self.window.selected_batches())

    def _run_again(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.farm.run_again(self.window.selected_jobs())

    def _view_job(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.viewer.open_selected()

    def _focus_filter(self) -> None:
        if self.window.workspace is not None:
            self.window.workspace.filters.focus_text()
