"""The Workers panel: every live worker of the studio, what it runs, and pause/resume for them.

The same facts as `batchdesk workers` (`storage.workers.list_workers`, one read for the whole
list, in the background): id, host, window or headless, threads, state, seconds since its last
heartbeat, the jobs it runs now, jobs done today and this week. The list is read again when the
database announces a worker change (`LiveUpdates.workers_changed`) or a batch change (a job
started or finished), at most once a second, and every few seconds while the panel is shown,
since heartbeats are not announced; between reads the "heard" column counts on by itself. Reads
stop while the panel is hidden.

Pause Worker and Resume Worker write the selected workers' desired state (as `batchdesk
workers pause ID`): each worker obeys when it hears of it, at once where the announcement
arrives, else at its next heartbeat; until then its state reads "running, paused asked".
"""

import time
from collections.abc import Sequence

import shiboken6
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QLabel,
    QStyle,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.units import plural
from batchdesk.errors import KnownError
from batchdesk.storage import workers
from batchdesk.storage.database import Database
from batchdesk.storage.workers import SteeredWorker, WorkerRow

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.batch_tree_items import format_duration

HEADERS = ("Worker", "Host", "Kind", "Threads", "State", "Heard", "Running now", "Today", "Week")
(
    ID_COLUMN,
    HOST_COLUMN,
    KIND_COLUMN,
    THREADS_COLUMN,
    STATE_COLUMN,
    HEARD_COLUMN,
    RUNNING_COLUMN,
    TODAY_COLUMN,
    WEEK_COLUMN,
) = range(len(HEADERS))
READ_EVERY_MS = 5_000  # a worker's heartbeat: what a read can learn that nobody announced
TICK_MS = 1_000  # the "heard" column counts on between reads
SOON_MS = 1_000  # announcements are read at most this often


def state_text(worker: WorkerRow) -> str:
    """'running', 'paused', 'stopping', or 'running, paused asked' until the worker hears."""
    if worker.state == "stopping" or worker.state == worker.desired_state:
        return worker.state
    return f"{worker.state}, {worker.desired_state} asked"


def heard_text(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def running_text(worker: WorkerRow) -> str:
    if not worker.running:
        return ""
    first = worker.running[0]
    more = f" +{len(worker.running) - 1}" if len(worker.running) > 1 else ""
    return f"{first.batch} / {first.file_name}{more}"


class WorkersPanel(QDockWidget):
    """A dock with the studio's live workers; hidden until chosen in the View menu."""

    message = Signal(str)  # one sentence for the status bar
    failed = Signal(str)  # one sentence that needs attention
    refreshed = Signal()  # the list was read again

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        read_every_ms: int = READ_EVERY_MS,
    ) -> None:
        super().__init__("Workers", parent)
        self.setObjectName("workers-panel")  # its place and visibility are saved by name
        self._database = database
        self._tasks = tasks
        self._rows: list[WorkerRow] = []
        self._read_at = time.monotonic()
        self._reading = False
        self._read_again = False

        self.list = QTreeWidget()
        self.list.setAccessibleName("Workers of the studio")
        self.list.setHeaderLabels(list(HEADERS))
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.itemSelectionChanged.connect(self._update_actions)
        self.empty = QLabel(
            "No worker is running: open batchdesk with jobs on, or start `batchdesk worker`."
        )
        self.empty.setWordWrap(True)
        style = self.style()
        sp = QStyle.StandardPixmap
        self.pause_action = QAction(style.standardIcon(sp.SP_MediaPause), "Pause Worker", self)
        self.pause_action.setToolTip(
            "The selected workers finish their running jobs and start no new ones"
        )
        self.pause_action.triggered.connect(self.pause_selected)
        self.resume_action = QAction(style.standardIcon(sp.SP_MediaPlay), "Resume Worker", self)
        self.resume_action.setToolTip("The selected paused workers take jobs again")
        self.resume_action.triggered.connect(self.resume_selected)
        toolbar = QToolBar("Workers")
        toolbar.setObjectName("workers-toolbar")
        toolbar.setIconSize(QSize(16, 16))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addActions([self.pause_action, self.resume_action])
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(4, 0, 4, 4)
        column.addWidget(toolbar)
        column.addWidget(self.empty)
        column.addWidget(self.list, 1)
        self.setWidget(body)
        self.list.hide()

        self.read_timer = QTimer(self, interval=read_every_ms)
        self.read_timer.timeout.connect(self.refresh)
        self._tick = QTimer(self, interval=TICK_MS)
        self._tick.timeout.connect(self._show_heard)
        self._soon = QTimer(self, singleShot=True, interval=SOON_MS)
        self._soon.timeout.connect(self.refresh)
        self._update_actions()

    # -- what the window asks -----------------------------------------------------------------

    @property
    def rows(self) -> list[WorkerRow]:
        """The workers shown, as last read."""
        return list(self._rows)

    def refresh_soon(self, *_args: object) -> None:
        """Something changed (a worker, a job): read again within a second, if shown."""
        if self.isVisible() and not self._soon.isActive():
            self._soon.start()

    def refresh(self) -> None:
        """Read the list again in the background (once at a time)."""
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        database = self._database

        def work(_context: TaskContext) -> list[WorkerRow]:
            with database.connect() as connection:
                return workers.list_workers(connection)

        self._tasks.run(
            "read the workers", work, on_result=self._on_read, on_error=self._on_read_failed
        )

    def selected_ids(self) -> list[str]:
        return [
            str(item.data(ID_COLUMN, Qt.ItemDataRole.UserRole))
            for item in self.list.selectedItems()
        ]

    def pause_selected(self) -> None:
        self._steer(self.selected_ids(), "paused")

    def resume_selected(self) -> None:
        self._steer(self.selected_ids(), "running")

    def stop(self) -> None:
        for timer in (self.read_timer, self._tick, self._soon):
            timer.stop()

    # -- reading ------------------------------------------------------------------------------

    def _on_read(self, rows: list[WorkerRow]) -> None:
        if not shiboken6.isValid(self):
            return
        self._finish_read()
        self._rows = rows
        self._read_at = time.monotonic()
        chosen = set(self.selected_ids())
        self.list.clear()
        for row in rows:
            item = QTreeWidgetItem(
                [
                    row.id,
                    row.host,
                    row.kind,
                    str(row.threads),
                    state_text(row),
                    heard_text(row.seconds_since_heartbeat),
                    running_text(row),
                    str(row.done_today),
                    str(row.done_this_week),
                ]
            )
            item.setData(ID_COLUMN, Qt.ItemDataRole.UserRole, row.id)
            running = "\n".join(
                f"{job.batch} / {job.file_name}, for {format_duration(job.seconds)}"
                for job in row.running
            )
            item.setToolTip(RUNNING_COLUMN, running)
            item.setToolTip(STATE_COLUMN, _state_tip(row))
            for column in (THREADS_COLUMN, TODAY_COLUMN, WEEK_COLUMN):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight)
            self.list.addTopLevelItem(item)
            item.setSelected(row.id in chosen)
        for column in range(len(HEADERS) - 1):
            self.list.resizeColumnToContents(column)
        self.list.setVisible(bool(rows))
        self.empty.setVisible(not rows)
        self._update_actions()
        self.refreshed.emit()

    def _on_read_failed(self, error: KnownError) -> None:
        if not shiboken6.isValid(self):
            return
        self._finish_read()
        self.message.emit(f"Could not read the workers: {error}")

    def _finish_read(self) -> None:
        self._reading = False
        if self._read_again:
            self._read_again = False
            QTimer.singleShot(0, self, self.refresh)

    def _show_heard(self) -> None:
        """Count the seconds since each heartbeat on from the last read, without a query."""
        since = time.monotonic() - self._read_at
        for position, row in enumerate(self._rows):
            item = self.list.topLevelItem(position)
            if item is not None:
                item.setText(HEARD_COLUMN, heard_text(row.seconds_since_heartbeat + since))

    # -- steering -----------------------------------------------------------------------------

    def _update_actions(self) -> None:
        chosen = set(self.selected_ids())
        rows = [row for row in self._rows if row.id in chosen]
        self.pause_action.setEnabled(any(row.desired_state != "paused" for row in rows))
        self.resume_action.setEnabled(any(row.desired_state == "paused" for row in rows))

    def _steer(self, ids: Sequence[str], desired: str) -> None:
        if not ids:
            return
        database = self._database
        verb = "pausing workers" if desired == "paused" else "resuming workers"

        def work(_context: TaskContext) -> list[SteeredWorker]:
            database.require_write(verb)
            steered: list[SteeredWorker] = []
            for worker_id in ids:
                steered += workers.set_desired_state(database, worker_id, desired)
            return steered

        def done(steered: list[SteeredWorker]) -> None:
            what = steered[0].id if len(steered) == 1 else plural(len(steered), "worker")
            if desired == "paused":
                self.message.emit(
                    f"Asked {what} to pause: running jobs finish, and no new one starts."
                )
            else:
                self.message.emit(f"Asked {what} to take jobs again.")
            self.refresh()

        self._tasks.run(
            verb, work, on_result=done, on_error=lambda error: self.failed.emit(str(error))
        )

    # -- shown or not -------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.refresh()
        self.read_timer.start()
        self._tick.start()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt override
        super().hideEvent(event)
        self.stop()


def _state_tip(row: WorkerRow) -> str:
    tip = f"Started {row.started_at.astimezone():%Y-%m-%d %H:%M}; process {row.pid} on {row.host}"
    if row.state != row.desired_state and row.state != "stopping":
        tip += f"\nAsked to be {row.desired_state}; it obeys at its next heartbeat at the latest"
    return tip
