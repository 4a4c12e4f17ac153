"""The status bar's "N done here today": jobs this computer completed today, from the database.

Read on the background pool, never on the GUI thread: a moment after the start (so the first
page of batches does not wait behind it), a moment after live changes (a burst of them costs
one query) and every minute, which also brings the count back to 0 after the studio's
midnight. Coming from the database, it counts every worker of this computer (windows and
headless) and is the same after the window is reopened.
"""

from PySide6.QtCore import QObject, QTimer, Signal

from batchdesk.storage import host_activity
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskContext

# After a change, the count is read this much later, once however many changes came meanwhile.
SETTLE_MS = 1_500
# And at least this often: a change may be missed while live updates are down, and days end.
REFRESH_MS = 60_000


class DoneTodayCounter(QObject):
    """Keeps `value` (None until first read) up to date; `changed(int)` when it moves."""

    changed = Signal(int)
    refresh_failed = Signal(object)  # KnownError; the last value stays

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        host: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self.host = host or host_activity.this_host()
        self.value: int | None = None
        self._in_flight = False
        self._pending = False
        self._settle = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle.timeout.connect(self.refresh)
        self._every = QTimer(self, interval=REFRESH_MS)
        self._every.timeout.connect(self.refresh)

    def start(self) -> None:
        self._every.start()
        self._settle.start()

    def stop(self) -> None:
        self._every.stop()
        self._settle.stop()

    def refresh_soon(self, *_changes: object) -> None:
        """Something changed: read the count once things have settled for a moment."""
        if self._every.isActive() and not self._settle.isActive():
            self._settle.start()

    def refresh(self) -> None:
        """Read the count in the background; calls while one runs become one more."""
        if self._in_flight:
            self._pending = True
            return
        self._in_flight = True
        database, host = self._database, self.host

        def work(_context: TaskContext) -> int:
            with database.connect() as connection:
                return host_activity.completed_today(connection, host)

        self._tasks.run(
            "count the jobs done here today",
            work,
            on_result=self._on_count_read,
            on_error=self.refresh_failed.emit,
            on_finished=self._on_read_finished,
        )

    def _on_read_finished(self) -> None:
        self._in_flight = False
        if self._pending:
            self._pending = False
            self.refresh()

    def _on_count_read(self, count: int) -> None:
        if count != self.value:
            self.value = count
            self.changed.emit(count)
