"""Notice batches finishing, from any workstation, for desktop notifications.

Live updates say which batches changed; the watcher re-reads those in the background and
reports each one whose status moved from unfinished to completed or failed while the window
was watching. A batch first seen finished is news only if it finished moments ago (a small
batch can be created and finished between two coalesced updates).
"""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from PySide6.QtCore import QObject, Signal

from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage import batch_queries
from batchdesk.storage.batch_queries import BatchRow
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskContext

UNFINISHED = frozenset({BatchStatus.QUEUED, BatchStatus.PROCESSING})
FINISHED = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED})  # a cancel is not news
JUST_FINISHED = timedelta(seconds=60)


class BatchWatcher(QObject):
    batch_finished = Signal(object)  # the BatchRow as it finished

    def __init__(
        self, database: Database, tasks: BackgroundTasks, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self._last_status: dict[UUID, str] = {}
        self._stopped = False

    def check(self, ids: set[UUID] | None) -> None:
        """Re-read the batches that changed (None: nothing specific, so nothing to do)."""
        if not ids or self._stopped:
            return
        wanted = sorted(ids)

        def work(_context: TaskContext) -> list[BatchRow]:
            with self._database.connect() as connection:
                return batch_queries.batches_by_ids(connection, wanted)

        self._tasks.run("watch batches", work, on_result=self._on_read, on_error=lambda _e: None)

    def _on_read(self, batches: list[BatchRow]) -> None:
        if self._stopped:
            return
        for batch in batches:
            before = self._last_status.get(batch.id)
            self._last_status[batch.id] = batch.status
            if batch.status not in FINISHED or before in FINISHED:
                continue
            if before in UNFINISHED or (before is None and self._just_finished(batch)):
                self.batch_finished.emit(batch)

    @staticmethod
    def _just_finished(batch: BatchRow) -> bool:
        finished = batch.finished_at  # completed_at is for completed batches only
        return finished is not None and datetime.now(UTC) - finished < JUST_FINISHED

    def stop(self) -> None:
        self._stopped = True
