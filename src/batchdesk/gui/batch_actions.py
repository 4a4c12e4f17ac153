"""What the window does to selected batches: retry failed jobs, cancel, delete, copy names.

Each action runs in the background and reports one sentence through `message`; deleting asks
first and names what will go. The tree updates itself from the database's notifications.
"""

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from batchdesk.domain.units import plural
from batchdesk.storage import batch_queries, job_queue
from batchdesk.storage.batch_queries import BatchRow
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskContext

# Names listed in a confirmation before "and N more".
MAX_NAMED = 5


def describe_batches(batches: Sequence[BatchRow]) -> str:
    """'PL_DXB_2026-11-28_batch-3 (12 files)', or a list with 'and N more'."""
    named = [f"{b.base_directory_name} ({plural(b.total_files, 'file')})" for b in batches]
    if len(named) > MAX_NAMED:
        return ", ".join(named[:MAX_NAMED]) + f" and {len(named) - MAX_NAMED} more"
    return ", ".join(named)


class BatchActions(QObject):
    """Runs batch actions for the window and says what happened."""

    message = Signal(str)  # one sentence for the status bar
    failed = Signal(str)  # one sentence that needs attention
    batches_deleted = Signal(object)  # list of UUIDs

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent_widget: QWidget,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> None:
        super().__init__(parent_widget)
        self._database = database
        self._tasks = tasks
        self._parent = parent_widget
        self._confirm = confirm or self._ask

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.warning(
            self._parent,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def copy_names(self, batches: Sequence[BatchRow]) -> None:
        QApplication.clipboard().setText("\n".join(b.base_directory_name for b in batches))
        self.message.emit(f"Copied {plural(len(batches), 'batch name')}.")

    def retry_failed(self, batches: Sequence[BatchRow]) -> None:
        ids = [b.id for b in batches]

        def work(_context: TaskContext) -> int:
            return sum(job_queue.retry_batch(self._database, batch_id) for batch_id in ids)

        def done(count: int) -> None:
            if count:
                self.message.emit(f"Queued {plural(count, 'failed job')} again.")
            else:
                self.message.emit("No failed jobs to retry in the selection.")

        self._tasks.run("retry failed jobs", work, on_result=done, on_error=self._on_error)

    def cancel(self, batches: Sequence[BatchRow]) -> None:
        ids = [b.id for b in batches]

        def work(_context: TaskContext) -> tuple[int, int]:
            results = [job_queue.cancel_batch(self._database, batch_id) for batch_id in ids]
            return sum(r.queued for r in results), sum(r.running for r in results)

        def done(counts: tuple[int, int]) -> None:
            queued, running = counts
            if not queued and not running:
                self.message.emit("Nothing left to cancel in the selection.")
                return
            note = f"; {running} running will stop at their next step" if running else ""
            self.message.emit(f"Cancelled {plural(queued + running, 'job')}{note}.")

        self._tasks.run("cancel batches", work, on_result=done, on_error=self._on_error)

    def delete(self, batches: Sequence[BatchRow]) -> None:
        """Ask, naming the batches, then delete them with their jobs and stored files."""
        if not batches:
            return
        files = sum(b.total_files for b in batches)
        question = (
            f"Delete {describe_batches(batches)}?\n\n"
            f"{plural(files, 'job')} and their stored files go with "
            f"{'it' if len(batches) == 1 else 'them'}, on every workstation. "
            "This cannot be undone; export first if you need the outputs."
        )
        if not self._confirm(f"Delete {plural(len(batches), 'batch', 'batches')}?", question):
            self.message.emit("Nothing deleted.")
            return
        ids = [b.id for b in batches]

        def work(_context: TaskContext) -> list[batch_queries.DeletedBatch]:
            deleted = []
            for batch_id in ids:
                with self._database.begin() as connection:
                    deleted.append(batch_queries.delete_batch(connection, batch_id))
            return deleted

        def done(deleted: list[batch_queries.DeletedBatch]) -> None:
            names = ", ".join(d.base_directory_name for d in deleted)
            space = batch_queries.store_space_note(deleted)
            self.message.emit(f"Deleted {names}. {space}".rstrip())
            self.batches_deleted.emit([d.id for d in deleted])

        self._tasks.run("delete batches", work, on_result=done, on_error=self._on_error)

    def _on_error(self, error: Exception) -> None:
        self.failed.emit(str(error))
