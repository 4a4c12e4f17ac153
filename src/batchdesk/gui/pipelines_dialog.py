"""Tools → Pipelines: the studio's pipelines with their versions, an editor, and a live preview.

Choosing a pipeline loads its newest version into the editor; every edit is checked as the
command line checks it and, once the pipeline is valid and a sample PNG is chosen, previewed on
that sample off the GUI thread (`PipelinePreview`). Save as New Version stores the edited
pipeline as the next version of its name (or version 1 of a new name); Retire and Restore act on
the pipeline chosen in the list. Database work runs on the window's background tasks; a role
that may only read is refused with the database's sentence.
"""

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from batchdesk.errors import KnownError
from batchdesk.jobs.pipeline_document import check_row
from batchdesk.storage import pipeline_store
from batchdesk.storage.database import Database
from batchdesk.storage.pipeline_store import PipelineRow, StoredPipeline
from batchdesk.storage.submission import current_user

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.pipeline_editor import PipelineEditor
from batchdesk.gui.pipeline_preview import PipelinePreview, PreviewResult
from batchdesk.gui.pipeline_preview_pane import PreviewPane

_ROW_ROLE = Qt.ItemDataRole.UserRole


def _list_text(row: PipelineRow) -> str:
    notes = []
    if row.retired:
        notes.append("retired")
    try:
        check_row(row)
    except KnownError:
        notes.append("INVALID")
    extra = f" ({', '.join(notes)})" if notes else ""
    return f"{row.name}  v{row.version}{extra}"


class PipelinesDialog(QDialog):
    """List, edit, preview, save as a new version, retire and restore the studio's pipelines."""

    pipelines_changed = Signal()

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        preview_delay_ms: int = 250,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pipelines")
        self.setObjectName("pipelines-dialog")
        self._database = database
        self._tasks = tasks
        self._rows: dict[str, PipelineRow] = {}
        self._select_after_load: str | None = None

        self.pipelines = QListWidget()
        self.pipelines.setObjectName("pipelines-list")
        self.pipelines.currentItemChanged.connect(self._on_pipelines_current_item_changed)
        self.new_button = QPushButton("&New")
        self.new_button.clicked.connect(self.new_pipeline)
        self.editor = PipelineEditor()
        self.editor.changed.connect(self._on_editor_changed)
        self.preview_pane = PreviewPane()
        self.preview_pane.sample_chosen.connect(lambda _path: self._on_editor_changed())
        self.preview = PipelinePreview(preview_delay_ms, self)
        self.preview.started.connect(lambda: self.preview_pane.show_waiting("Previewing..."))
        self.preview.finished.connect(self._on_preview_finished)
        self.preview.bug_raised.connect(tasks.bug_raised)
        self.status = QLabel()
        self.status.setObjectName("pipelines-status")
        self.status.setWordWrap(True)
        self.save_button = QPushButton("&Save as New Version")
        self.save_button.clicked.connect(self.save)
        self.retire_button = QPushButton("&Retire")
        self.retire_button.clicked.connect(self.toggle_retired)
        close = QPushButton("Close")
        close.clicked.connect(self.close)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("Pipelines:"))
        left_layout.addWidget(self.pipelines, 1)
        left_layout.addWidget(self.new_button)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.editor)
        splitter.addWidget(self.preview_pane)
        splitter.setStretchFactor(1, 2)
        splitter.setStretchFactor(2, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.retire_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        self.resize(1200, 700)
        self._update_buttons()

    # -- the list ------------------------------------------------------------------------------

    def reload(self, select: str | None = None) -> None:
        """Read the pipelines again; then select `select` (or keep the current one)."""
        current = self.pipelines.currentItem()
        self._select_after_load = select or (current.data(_ROW_ROLE) if current else None)
        database = self._database

        def work(_context: TaskContext) -> list[PipelineRow]:
            with database.connect() as connection:
                return pipeline_store.list_pipelines(connection)

        self._tasks.run("list pipelines", work, on_result=self._on_list, on_error=self._on_error)

    def _on_list(self, rows: list[PipelineRow]) -> None:
        self._rows = {row.name: row for row in rows}
        self.pipelines.blockSignals(True)
        self.pipelines.clear()
        chosen = None
        for row in rows:
            item = QListWidgetItem(_list_text(row))
            item.setData(_ROW_ROLE, row.name)
            item.setToolTip(row.description)
            self.pipelines.addItem(item)
            if row.name == self._select_after_load:
                chosen = item
        self.pipelines.blockSignals(False)
        if chosen is not None:
            self.pipelines.setCurrentItem(chosen)
        elif self.pipelines.count() and not self.editor.name.text():
            self.pipelines.setCurrentRow(0)
        self._update_buttons()

    def _on_pipelines_current_item_changed(self, item: QListWidgetItem | None, *_: Any) -> None:
        row = self._rows.get(item.data(_ROW_ROLE)) if item is not None else None
        if row is not None:
            self.editor.load(row.name, row.description, row.steps)
        self._update_buttons()

    def selected(self) -> PipelineRow | None:
        item = self.pipelines.currentItem()
        return self._rows.get(item.data(_ROW_ROLE)) if item is not None else None

    def new_pipeline(self) -> None:
        """Start a new pipeline: one PNG output, ready for steps before it."""
        self.pipelines.setCurrentRow(-1)
        self.editor.load("", "", [{"op": "output", "format": "png"}])
        self.editor.name.setFocus()

    # -- saving, retiring ----------------------------------------------------------------------

    def save(self) -> None:
        """Store the edited pipeline as the next version of its name (version 1 if new)."""
        document = self.editor.document
        if document is None:
            self.status.setText(self.editor.problem_sentence or "")
            return
        database = self._database
        who = current_user()

        def work(_context: TaskContext) -> StoredPipeline:
            database.require_write("saving pipelines")
            with database.begin() as connection:
                return pipeline_store.store_pipeline(
                    connection,
                    document.name,
                    document.description,
                    document.steps,
                    replace=True,
                    created_by=who,
                )

        self.save_button.setEnabled(False)
        self._tasks.run(
            "save pipeline",
            work,
            on_result=self._on_saved,
            on_error=self._on_error,
            on_finished=self._update_buttons,
        )

    def _on_saved(self, stored: StoredPipeline) -> None:
        if stored.changed:
            self.status.setText(f"Saved {stored.name} as version {stored.version}.")
        else:
            self.status.setText(f"{stored.name} is unchanged (version {stored.version}).")
        self.reload(stored.name)
        self.pipelines_changed.emit()

    def toggle_retired(self) -> None:
        """Retire the chosen pipeline, or restore it when it is retired."""
        row = self.selected()
        if row is None:
            return
        database = self._database
        retire = not row.retired

        def work(_context: TaskContext) -> bool:
            database.require_write("retiring pipelines" if retire else "restoring pipelines")
            with database.begin() as connection:
                return pipeline_store.set_retired(connection, row.name, retired=retire)

        def done(_changed: bool) -> None:
            self.status.setText(
                f"Retired {row.name}: new batches cannot use it; submitted ones still run it."
                if retire
                else f"Restored {row.name}: it is offered for new batches again."
            )
            self.reload(row.name)
            self.pipelines_changed.emit()

        self._tasks.run("retire pipeline", work, on_result=done, on_error=self._on_error)

    def _on_error(self, error: KnownError) -> None:
        self.status.setText(str(error))

    def _update_buttons(self) -> None:
        row = self.selected()
        self.retire_button.setEnabled(row is not None)
        self.retire_button.setText("&Restore" if row is not None and row.retired else "&Retire")
        self.save_button.setEnabled(self.editor.document is not None)

    # -- the preview ---------------------------------------------------------------------------

    def set_sample(self, path: Path) -> None:
        self.preview_pane.set_sample(path)

    def _on_editor_changed(self) -> None:
        self._update_buttons()
        document = self.editor.document
        sample = self.preview_pane.sample
        if document is None:
            self.preview.cancel()
            self.preview_pane.show_waiting("Not previewed: the pipeline has a problem (below).")
            return
        if sample is not None:
            self.preview.request(document.spec, sample)

    def _on_preview_finished(self, result: PreviewResult) -> None:
        self.preview_pane.show_result(result)

    # -- closing -------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.reload()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt override
        self.preview.cancel()  # closed: a running preview stops at its next step
        super().hideEvent(event)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop previews and wait for their threads (the window closing, or a test ending)."""
        self.preview.cancel()
        return self.preview.wait(timeout_ms)
