"""The submit panel: drop PNG files and folders, see exactly what will be created, submit it.

Everything slow happens on the pool: reading dropped folders and PNG headers (the model),
thumbnails, the pipeline list and the batch-name preview (the form), and the upload itself. The
preview can be overtaken by another workstation taking the same number; the window calls
`refresh_preview` on live updates, and the message after submitting names what `submit` really
created. `submit` is all or nothing, so cancelling an upload leaves no batch and uses no number.
"""

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.file_selection import SelectedFile
from batchdesk.domain.units import format_size, plural
from batchdesk.errors import Cancelled, KnownError
from batchdesk.jobs.pipeline_document import check_row
from batchdesk.settings import Settings
from batchdesk.storage.database import Database
from batchdesk.storage.submission import SubmissionRequest, SubmissionResult, submit

from batchdesk.gui.background import BackgroundTasks, TaskContext, TaskHandle
from batchdesk.gui.pending_file_delegate import PendingFileDelegate, error_colour
from batchdesk.gui.pending_files_model import (
    PENDING_FILE_ROLE,
    FileKey,
    PendingFilesModel,
    paths_from_mime,
)
from batchdesk.gui.submit_form import SubmitForm

__all__ = ["SubmitPanel", "paths_from_mime", "progress_text"]

EMPTY_TEXT = "Drop PNG files here to start a batch"
_PROGRESS_STEPS = 1000


def progress_text(phase: str, done: int, total: int) -> str:
    """Return what the progress bar says: "Storing 45% (120 MB of 266 MB)"."""
    if total <= 0:
        return f"{phase}..."
    if done >= total:
        return f"Creating the batch ({format_size(total)} stored)..."
    return f"{phase} {done * 100 // total}% ({format_size(done)} of {format_size(total)})"


class SubmitPanel(QWidget):
    """Pending files, the batch names they will get, description, pipeline and Submit."""

    batches_submitted = Signal(object)  # SubmissionResult
    busy_changed = Signal(bool)  # an upload started (True) or ended (False)

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        settings: Settings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self.model = PendingFilesModel(tasks, settings.prefix_rule, settings.max_megapixels, self)
        self.model.changed.connect(self._update)
        self.form = SubmitForm(database, tasks, settings)
        self._upload: TaskHandle[SubmissionResult] | None = None
        self.setAcceptDrops(True)
        self._build()
        self._update()

    def _build(self) -> None:
        self.drop_area = _label(EMPTY_TEXT, "drop-area")
        self.drop_area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        font = QFont(self.drop_area.font())
        if font.pointSizeF() > 0:
            font.setPointSizeF(font.pointSizeF() * 1.6)
        self.drop_area.setFont(font)
        # One column, two lines a file: the name, then what it is or why it is skipped, wrapped
        # to the panel's width, so nothing needs a scroll sideways (pending_file_delegate.py).
        self.list = QListView()
        self.list.setAccessibleName("Files to submit")
        self.list.setModel(self.model)
        self.list.setItemDelegate(PendingFileDelegate(self.model.thumbnail_loader.size, self.list))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)  # rows wrap again when it resizes
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        remove = QShortcut(QKeySequence.StandardKey.Delete, self.list)
        remove.setContext(Qt.ShortcutContext.WidgetShortcut)
        remove.activated.connect(self._remove_selected)
        self._pages = QStackedWidget()
        self._pages.addWidget(self.drop_area)
        self._pages.addWidget(self.list)

        self.add_files_button = _button("Add &files...", self.choose_files)
        self.add_folder_button = _button("Add f&older...", self.choose_folder)
        self.clear_button = _button("C&lear", self.clear)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_files_button)
        buttons.addWidget(self.add_folder_button)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        self.summary = _label(name="pending-summary")

        self.progress = QProgressBar()
        self.progress.setRange(0, _PROGRESS_STEPS)
        self.progress.setTextVisible(False)
        self.progress_label = _label(name="submit-progress")
        self.cancel_button = _button("Cancel", self.cancel_upload)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self._message = _label(name="submit-message")
        self.submit_button = _button("&Submit", self.submit)
        self.submit_button.setToolTip("Submit the files (Ctrl+Return)")
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            # The whole window: after a drop the focus is usually somewhere else.
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(self.submit)

        layout = QVBoxLayout(self)
        layout.addWidget(self._pages, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        layout.addWidget(self.form)
        layout.addLayout(progress_row)
        for widget in (self.progress_label, self._message, self.submit_button):
            layout.addWidget(widget)
        self._show_progress(False)
        QWidget.setTabOrder(self.list, self.form.description)
        QWidget.setTabOrder(self.form.description, self.form.pipeline)
        QWidget.setTabOrder(self.form.pipeline, self.submit_button)

    # -- the pending files ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether an upload is running."""
        return self._upload is not None

    @property
    def message(self) -> str:
        """The sentence under the form: what was created, or what went wrong."""
        return self._message.text()

    @property
    def batch_names(self) -> list[str]:
        """The names the pending files' batches will get, as last previewed."""
        return self.form.batch_names

    def add_paths(self, paths: list[Path]) -> None:
        """Add files and folders to the pending list; they are read in the background."""
        self.model.add_paths(paths)

    def clear(self) -> None:
        """Empty the pending list (an upload already running goes on)."""
        self.model.clear()
        self._show_message("")

    def refresh_preview(self) -> None:
        """Read the day counters again, e.g. after another workstation created a batch."""
        self.form.refresh()

    def _remove_selected(self) -> None:
        rows = self.list.selectionModel().selectedIndexes()
        self.model.remove_files({index.data(PENDING_FILE_ROLE).key for index in rows})

    def choose_files(self) -> None:
        names, _filter = QFileDialog.getOpenFileNames(
            self, "Add PNG files", "", "PNG images (*.png *.PNG);;All files (*)"
        )
        self.add_paths([Path(name) for name in names])

    def choose_folder(self) -> None:
        if folder := QFileDialog.getExistingDirectory(self, "Add a folder of PNG files"):
            self.add_paths([Path(folder)])

    def _update(self) -> None:
        rows, files = self.model.rowCount(), self.model.accepted_files()
        self._pages.setCurrentWidget(self.list if rows else self.drop_area)
        self.summary.setText(_summary_text(rows, files, self.model.scanning))
        self.form.set_files(files)
        idle = not self.busy
        self.form.set_idle(idle)
        self.submit_button.setEnabled(bool(files) and idle and not self.model.scanning)
        self.clear_button.setEnabled(bool(rows) and idle)

    # -- drops (the window forwards its own drops to add_paths) --------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        self.dragMoveEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt override
        can_copy = bool(event.possibleActions() & Qt.DropAction.CopyAction)
        if can_copy and paths_from_mime(event.mimeData()):
            event.setDropAction(Qt.DropAction.CopyAction)  # external drops are copies, never moves
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = paths_from_mime(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.add_paths(paths)

    # -- submitting ----------------------------------------------------------------------------

    def submit(self) -> None:
        """Submit the pending files (Submit, Ctrl+Return); nothing happens when it cannot."""
        if not self.submit_button.isEnabled():
            return
        taken: set[FileKey] = {pending.key for pending in self.model.files()}
        request = self.form.request(self.model.source_paths)
        database = self._database

        def work(context: TaskContext) -> SubmissionResult:
            def progress(phase: str, done: int, total: int) -> None:
                context.progress((phase, done, total))

            return submit(database, request, progress, context.cancelled, check_pipeline=check_row)

        self._show_message("")
        self.progress.setValue(0)
        self.progress_label.setText("Reading the files...")
        self._show_progress(True)
        self._upload = self._tasks.run(
            "submit files",
            work,
            on_result=lambda result: self._on_submit_result(result, taken, request),
            on_error=self._on_submit_error,
            on_progress=self._on_submit_progress,
            on_finished=self._on_submit_finished,
        )
        self.busy_changed.emit(True)
        self._update()

    def cancel_upload(self) -> None:
        """Stop the running upload: submit() then creates no batch and uses no number."""
        if self._upload is not None:
            self._upload.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Cancelling...")

    def _on_submit_progress(self, value: tuple[str, int, int]) -> None:
        if self._upload is None or self._upload.context.cancelled():
            return
        phase, done, total = value
        self.progress.setValue(done * _PROGRESS_STEPS // total if total else 0)
        self.progress_label.setText(progress_text(phase, done, total))

    def _on_submit_finished(self) -> None:
        self._upload = None
        self._show_progress(False)
        self.busy_changed.emit(False)
        self._update()

    def _on_submit_result(
        self, result: SubmissionResult, taken: set[FileKey], request: SubmissionRequest
    ) -> None:
        # Only what was submitted goes: files dropped during the upload stay for the next batch.
        self.model.remove_files(taken)
        self.model.forget_sources(request.source_paths)
        # The description tells what these renders are; kept, it would label the next drop.
        self.form.description.clear()
        created = " and ".join(
            f"{b.base_directory_name} ({plural(b.total_files, 'file')}, "
            f"{format_size(b.total_size)})"
            for b in result.batches
        )
        self._show_message(f"Created {created}.")
        self.form.refresh()  # files dropped meanwhile now get the numbers after these
        self.batches_submitted.emit(result)

    def _on_submit_error(self, error: KnownError) -> None:
        self._show_message(str(error), error=not isinstance(error, Cancelled))

    def _show_message(self, text: str, *, error: bool = False) -> None:
        self._message.setText(text)
        red = error_colour(self.palette()).name()
        self._message.setStyleSheet(f"color: {red};" if error else "")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._message.styleSheet():
            self._show_message(self._message.text(), error=True)  # the red for the new theme

    def _show_progress(self, visible: bool) -> None:
        self.cancel_button.setEnabled(visible)
        for widget in (self.progress, self.cancel_button, self.progress_label):
            widget.setVisible(visible)


def _summary_text(rows: int, files: tuple[SelectedFile, ...], scanning: bool) -> str:
    if not rows:
        return "Reading the files..." if scanning else ""
    text = f"{plural(len(files), 'file')} to submit, {format_size(sum(f.size for f in files))}"
    if skipped := rows - len(files):
        text += f"; {skipped:,} will be skipped (the list says why)"
    return text + ("; reading more..." if scanning else "")


def _label(text: str = "", name: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _button(text: str, slot: Callable[[], None]) -> QPushButton:
    button = QPushButton(text)
    button.clicked.connect(slot)
    return button
