"""The window's export actions: a batch as a zip, several batches as zips, one job's outputs.

Each action asks where with a file dialog that opens in the folder used last (kept in the
window's state file, so it outlives a restart), else the user's Pictures folder, else home:
never the folder batchdesk happened to be started from. It then runs the Qt-free exporter in
the background behind a window-modal progress dialog (the GUI thread keeps running); Cancel
stops the export at its next chunk, and a cancelled or failed zip leaves nothing under the
chosen name. What happened is reported like this:

- `message(str)`: one line for the status bar: where the export went, or that it was cancelled;
- `export_finished(object)`: the `ExportSummary` of every zip or folder written;
- an `ExportNotice` once something was written: a non-modal message saying what went where,
  with Open Folder, and the warnings that must not pass unnoticed (a batch still running or
  with failed jobs exports as it stands, so its zip lacks outputs). It never blocks;
- `failed(str)`: the one sentence of an export that could not be done, saying what to do. The
  window shows it in a warning box, as it does for every action's failure.

Whether zips carry the submitted PNGs is a checkable action (`include_originals_action`, kept
in QSettings) that the window puts beside "Export zip...": one dialog per export, and the
choice stays as it was left, instead of an options dialog before every save dialog.

The exporters are imported by the actions that use them, so they load at the first export
rather than before the window's first page.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QSettings, QStandardPaths, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from batchdesk.domain.units import format_size, plural
from batchdesk.errors import Cancelled, KnownError, NotFound
from batchdesk.export.atomic_file import TargetExists
from batchdesk.export.summary import ExportSummary
from batchdesk.export.transfer import ExportProgress
from batchdesk.storage.batch_queries import BatchRow, JobRow
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.export_notice import ExportNotice

T = TypeVar("T")

ZIP_FILTER = "Zip archives (*.zip)"
LAST_FOLDER_KEY = "export/last_folder"
INCLUDE_ORIGINALS_KEY = "export/include_originals"
PROGRESS_STEPS = 1000
# A progress dialog for an export that takes less than this never appears.
PROGRESS_DELAY_MS = 400


@dataclass
class BulkExport:
    """What an export of several batches did; crosses back from the background as one value."""

    folder: Path
    summaries: list[ExportSummary] = field(default_factory=list)
    existing: list[BatchRow] = field(default_factory=list)  # zips there already, not replaced
    problems: list[str] = field(default_factory=list)  # batches gone meanwhile
    cancelled: bool = False
    stopped_by: str = ""  # a problem every later batch would meet too (disk full, ...)


def _progress_text(progress: ExportProgress) -> str:
    return (
        f"{format_size(progress.done_bytes)} of {format_size(progress.total_bytes)} "
        f"({progress.done_files} of {plural(progress.total_files, 'file')})"
    )


def _describe(progress: ExportProgress) -> tuple[str, float, ExportProgress]:
    return _progress_text(progress), progress.fraction, progress


def _indexed(context: TaskContext, index: int) -> Callable[[ExportProgress], None]:
    """Progress of the `index`-th zip of several, as (index, progress)."""
    return lambda progress: context.progress((index, progress))


def _written(summary: ExportSummary) -> str:
    return f"{plural(summary.files, 'file')}, {format_size(summary.bytes)}"


class ExportActions(QObject):
    """Exports started from the window's menus, each in the background with progress."""

    export_finished = Signal(object)  # ExportSummary
    progressed = Signal(object)  # ExportProgress of the batch or job being written
    message = Signal(str)  # for the status bar
    failed = Signal(str)  # a KnownError's sentence

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent_widget: QWidget | None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(parent_widget)
        self._database = database
        self._tasks = tasks
        self._parent = parent_widget
        self._settings = settings if settings is not None else QSettings()
        self.progress_dialog: QProgressDialog | None = None  # the one showing, for tests
        self.notice: ExportNotice | None = None  # the last export's message, while shown
        self.include_originals_action = QAction("Include original PNGs in zips", self)
        self.include_originals_action.setCheckable(True)
        self.include_originals_action.setChecked(
            bool(self._settings.value(INCLUDE_ORIGINALS_KEY, False, type=bool))
        )
        self.include_originals_action.toggled.connect(self._on_include_originals_toggled)

    @property
    def include_inputs(self) -> bool:
        return self.include_originals_action.isChecked()

    def set_include_inputs(self, include: bool) -> None:
        self.include_originals_action.setChecked(include)

    def _on_include_originals_toggled(self, checked: bool) -> None:
        self._settings.setValue(INCLUDE_ORIGINALS_KEY, checked)

    # -- one batch --------------------------------------------------------------------------

    def export_zip(self, batch: BatchRow) -> None:
        """Ask where to save BASE_NAME.zip, then write it in the background."""
        from batchdesk.export import zip_export

        name = batch.base_directory_name
        suggested = self.last_folder() / zip_export.default_zip_name(name)
        chosen, _filter = QFileDialog.getSaveFileName(
            self._parent, f"Export {name}", str(suggested), ZIP_FILTER
        )
        if not chosen:
            return
        target = Path(chosen)
        confirmed = True  # the dialog asked before choosing an existing file
        if target.suffix.lower() != ".zip":
            target = target.with_name(f"{target.name}.zip")
            confirmed = False  # it asked about another name than the one written
        self._remember_folder(target.parent)
        self._start_zip(batch, target, overwrite=confirmed)

    def _start_zip(self, batch: BatchRow, target: Path, *, overwrite: bool) -> None:
        from batchdesk.export import zip_export

        name = batch.base_directory_name
        database, include = self._database, self.include_inputs

        def work(context: TaskContext) -> ExportSummary:
            return zip_export.export_zip(
                database,
                batch.id,
                target,
                include_inputs=include,
                overwrite=overwrite,
                progress=context.progress,
                cancelled=context.cancelled,
            )

        def replied_exists(error: TargetExists) -> None:
            if self._ask_replace(f"{target.name} already exists in {target.parent}."):
                self._start_zip(batch, target, overwrite=True)

        self._run(f"Exporting {name}...", work, self._on_zip_written, replied_exists, _describe)

    def _on_zip_written(self, summary: ExportSummary) -> None:
        self.export_finished.emit(summary)
        text = f"Exported {summary.batch} to {summary.path} ({_written(summary)})"
        self._report(text, summary.path.parent, summary.warnings)

    # -- several batches --------------------------------------------------------------------

    def export_zips(self, batches: list[BatchRow]) -> None:
        """Ask for a folder once and write each batch there as BASE_NAME.zip, one after another.

        A single batch gets the save dialog of `export_zip` instead, where it can be renamed.
        """
        if len(batches) == 1:
            self.export_zip(batches[0])
            return
        if not batches:
            return
        chosen = QFileDialog.getExistingDirectory(
            self._parent, f"Export {len(batches)} batches as zips into", str(self.last_folder())
        )
        if not chosen:
            return
        folder = Path(chosen)
        self._remember_folder(folder)
        self._start_zips(list(batches), folder, replace=False)

    def _start_zips(self, batches: list[BatchRow], folder: Path, *, replace: bool) -> None:
        from batchdesk.export import zip_export

        database, include, count = self._database, self.include_inputs, len(batches)

        def work(context: TaskContext) -> BulkExport:
            outcome = BulkExport(folder)
            for index, batch in enumerate(batches):
                name = batch.base_directory_name
                try:
                    summary = zip_export.export_zip(
                        database,
                        batch.id,
                        folder / zip_export.default_zip_name(name),
                        include_inputs=include,
                        overwrite=replace,
                        progress=_indexed(context, index),
                        cancelled=context.cancelled,
                    )
                except TargetExists:
                    outcome.existing.append(batch)
                except NotFound as exc:  # deleted meanwhile: the others can still go
                    outcome.problems.append(str(exc))
                except Cancelled:
                    outcome.cancelled = True
                    break
                except KnownError as exc:
                    outcome.stopped_by = str(exc)
                    break
                else:
                    outcome.summaries.append(summary)
            return outcome

        def describe(value: tuple[int, ExportProgress]) -> tuple[str, float, ExportProgress]:
            index, progress = value
            text = f"Batch {index + 1} of {count}: {_progress_text(progress)}"
            return text, (index + progress.fraction) / count, progress

        title = f"Exporting {plural(count, 'batch', 'batches')}..."
        self._run(title, work, self._on_zips_written, None, describe)

    def _on_zips_written(self, outcome: BulkExport) -> None:
        from batchdesk.export import zip_export

        for summary in outcome.summaries:
            self.export_finished.emit(summary)
        done = len(outcome.summaries)
        files = sum(s.files for s in outcome.summaries)
        size = sum(s.bytes for s in outcome.summaries)
        what = (
            f"{plural(done, 'batch', 'batches')} to {outcome.folder} "
            f"({plural(files, 'file')}, {format_size(size)})"
        )
        text = f"Exported {what}"
        if outcome.cancelled:
            text = f"Export cancelled after {what}; the zip being written was removed"
        warnings = [w for s in outcome.summaries for w in s.warnings] + outcome.problems
        if done:
            self._report(text, outcome.folder, tuple(warnings))
        elif outcome.problems and not outcome.stopped_by:  # every batch was gone meanwhile
            self.failed.emit(" ".join(outcome.problems))
        elif outcome.cancelled:
            self.message.emit(f"{text}.")
        if outcome.stopped_by:
            self.failed.emit(f"{outcome.stopped_by} (Exported {what} before that.)")
        elif outcome.existing and not outcome.cancelled:
            names = ", ".join(
                zip_export.default_zip_name(b.base_directory_name) for b in outcome.existing
            )
            if self._ask_replace(f"{names} already exist in {outcome.folder}."):
                self._start_zips(outcome.existing, outcome.folder, replace=True)

    # -- one job ----------------------------------------------------------------------------

    def save_job_outputs(self, batch: BatchRow, job: JobRow) -> None:
        """Ask for a folder and write the job's outputs into it."""
        chosen = QFileDialog.getExistingDirectory(
            self._parent, f"Save the outputs of {job.file_name} into", str(self.last_folder())
        )
        if not chosen:
            return
        folder = Path(chosen)
        self._remember_folder(folder)
        self._start_job_outputs(batch, job, folder, overwrite=False)

    def _start_job_outputs(
        self, batch: BatchRow, job: JobRow, folder: Path, *, overwrite: bool
    ) -> None:
        from batchdesk.export import folder_export

        database = self._database

        def work(context: TaskContext) -> ExportSummary:
            return folder_export.export_job(
                database,
                batch.id,
                str(job.id),
                folder,
                overwrite=overwrite,
                progress=context.progress,
                cancelled=context.cancelled,
            )

        def replied_exists(error: TargetExists) -> None:
            names = ", ".join(path.name for path in error.paths)
            if self._ask_replace(
                f"{names} already {'exists' if len(error.paths) == 1 else 'exist'} in {folder}."
            ):
                self._start_job_outputs(batch, job, folder, overwrite=True)

        def written(summary: ExportSummary) -> None:
            self.export_finished.emit(summary)
            outputs = plural(summary.files, "output")
            self._report(
                f"Saved {outputs} of {job.file_name} to {folder} ({format_size(summary.bytes)})",
                folder,
                (),
            )

        self._run(
            f"Saving the outputs of {job.file_name}...", work, written, replied_exists, _describe
        )

    # -- shared -----------------------------------------------------------------------------

    def last_folder(self) -> Path:
        """The folder of the last export, else the user's Pictures folder, else home.

        Only a folder that exists: a file dialog given a missing one opens in the process's
        working folder, which means nothing to the user.
        """
        remembered = self._settings.value(LAST_FOLDER_KEY, "", type=str)
        if isinstance(remembered, str) and remembered and Path(remembered).is_dir():
            return Path(remembered)
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        if pictures and Path(pictures).is_dir():
            return Path(pictures)
        return Path.home()

    def _remember_folder(self, folder: Path) -> None:
        self._settings.setValue(LAST_FOLDER_KEY, str(folder))

    def _run(
        self,
        title: str,
        work: Callable[[TaskContext], T],
        on_result: Callable[[T], None],
        on_exists: Callable[[TargetExists], None] | None,
        describe: Callable[[Any], tuple[str, float, ExportProgress]],
    ) -> None:
        """Run `work` behind a progress dialog whose Cancel stops it at its next chunk."""
        dialog = QProgressDialog(title, "Cancel", 0, PROGRESS_STEPS, self._parent)
        dialog.setWindowTitle("Export")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(PROGRESS_DELAY_MS)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setValue(0)
        self.progress_dialog = dialog

        def progressed(value: object) -> None:
            text, fraction, progress = describe(value)
            if not dialog.wasCanceled():
                dialog.setLabelText(f"{title}\n{text}")
                dialog.setValue(round(fraction * PROGRESS_STEPS))
            self.progressed.emit(progress)

        def failed(error: KnownError) -> None:
            if isinstance(error, Cancelled):
                self.message.emit(str(error))
            elif isinstance(error, TargetExists) and on_exists is not None:
                on_exists(error)
            else:
                self.failed.emit(str(error))

        def finished() -> None:
            dialog.canceled.disconnect()  # hiding it must not count as a cancel
            dialog.hide()
            dialog.deleteLater()
            if self.progress_dialog is dialog:
                self.progress_dialog = None

        handle = self._tasks.run(
            title,
            work,
            on_result=on_result,
            on_error=failed,
            on_progress=progressed,
            on_finished=finished,
        )
        dialog.canceled.connect(handle.cancel)

    def _report(self, text: str, folder: Path, warnings: tuple[str, ...]) -> None:
        """Say what was written: in the status bar, and in a message with Open Folder."""
        if warnings:
            self.message.emit(f"{text}, with {plural(len(warnings), 'warning')}.")
        else:
            self.message.emit(f"{text}.")
        if self.notice is not None:  # the last export's message gives way to this one's
            self.notice.close()
        notice = ExportNotice(f"{text}.", folder, warnings, self._parent)
        notice.folder_not_opened.connect(self.message)
        notice.destroyed.connect(lambda: self._forget_notice(notice))
        self.notice = notice
        notice.show()

    def _forget_notice(self, notice: ExportNotice) -> None:
        if self.notice is notice:
            self.notice = None

    def _ask_replace(self, what: str) -> bool:
        answer = QMessageBox.question(
            self._parent,
            "Replace files?",
            f"{what} Replace?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes
