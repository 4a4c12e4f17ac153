"""A job's attempts in the preview pane: who ran each, when, how it ended, and what it said.

The attempts are read in the background (one query for the job shown, `job_attempts.
job_history`), first to last, as `batchdesk show --json` gives them in `history`. Choosing an
attempt shows its whole error and its log (the end of what an external tool wrote on stderr,
and Pillow's warnings) below the list; the last attempt is chosen when a job is shown. The
list folds into one line that sums it up ("Attempts (2): the last failed on render-07 after
3.1 s"), so the images keep their room; it stays open or folded from one job to the next.
"""

from collections.abc import Sequence
from datetime import datetime

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QPlainTextEdit,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from batchdesk.errors import KnownError
from batchdesk.storage import job_attempts
from batchdesk.storage.database import Database
from batchdesk.storage.job_attempts import AttemptRow

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.batch_tree_items import format_duration, worker_host

HEADERS = ("#", "Outcome", "Worker", "Started", "Finished", "Took", "Error")
NO_ATTEMPTS = "Not tried yet."
# How an attempt's outcome reads in the list.
OUTCOME_TEXT = {
    "running": "running",
    "completed": "completed",
    "failed": "failed",
    "lost": "lost (its worker stopped answering)",
    "released": "given back (its worker stopped)",
    "cancelled": "cancelled",
}


def _time(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def describe_attempt(attempt: AttemptRow) -> str:
    """The whole story of one attempt, for the text below the list."""
    lines = [f"Attempt {attempt.number}: {OUTCOME_TEXT.get(attempt.outcome, attempt.outcome)}"]
    lines.append(f"Worker: {attempt.worker or 'unknown'}")
    lines.append(f"Started: {_time(attempt.started_at)}")
    if attempt.finished_at is not None:
        lines.append(f"Finished: {_time(attempt.finished_at)} ({format_duration(attempt.seconds)})")
    if attempt.ended_by:
        lines.append(f"Ended by: {attempt.ended_by}")
    if attempt.error:
        lines.append(f"Error: {attempt.error}")
    lines.append("")
    lines.append(f"Log:\n{attempt.log}" if attempt.log else "No log: the tools said nothing.")
    return "\n".join(lines)


def summary(attempts: Sequence[AttemptRow]) -> str:
    """One line for the folded list: how many, and how the last one went."""
    if not attempts:
        return f"Attempts: none. {NO_ATTEMPTS}"
    last = attempts[-1]
    where = f" on {worker_host(last.worker)}" if last.worker else ""
    if last.outcome == "running":
        return f"Attempts ({len(attempts)}): the last is running{where}"
    took = format_duration(last.seconds)
    return f"Attempts ({len(attempts)}): the last {last.outcome}{where} after {took}"


class AttemptHistory(QWidget):
    """The attempts of the job shown, with the chosen attempt's error and log below."""

    load_failed = Signal(object)  # KnownError

    def __init__(
        self, database: Database, tasks: BackgroundTasks, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self._request = 0
        self._job_id: int | None = None
        self._attempts: list[AttemptRow] = []
        self.setAccessibleName("Attempts")

        self.title = QToolButton()
        self.title.setText("Attempts")
        self.title.setAccessibleName("Show the attempts")
        self.title.setToolTip("Show or hide every attempt of the job, with its error and log")
        self.title.setCheckable(True)
        self.title.setAutoRaise(True)
        self.title.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.title.setArrowType(Qt.ArrowType.RightArrow)
        self.title.toggled.connect(self._on_title_toggled)
        self.list = QTreeWidget()
        self.list.setAccessibleName("Attempts of the job")
        self.list.setHeaderLabels(list(HEADERS))
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setMaximumHeight(130)
        self.list.currentItemChanged.connect(self._on_list_current_changed)
        self.details = QPlainTextEdit()
        self.details.setAccessibleName("The attempt's error and log")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.details.setMaximumHeight(140)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.list)
        layout.addWidget(self.details)
        self._on_title_toggled(False)

    @property
    def attempts(self) -> list[AttemptRow]:
        """The attempts shown, first to last."""
        return list(self._attempts)

    @property
    def is_open(self) -> bool:
        return self.title.isChecked()

    def set_open(self, shown: bool) -> None:
        """Show the list and the chosen attempt's log, or fold them into the summary line."""
        self.title.setChecked(shown)

    def _on_title_toggled(self, shown: bool) -> None:
        self.title.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.list.setVisible(shown)
        self.details.setVisible(shown)

    def clear(self) -> None:
        self._request += 1
        self._job_id = None
        self._attempts = []
        self.title.setText("Attempts")
        self.list.clear()
        self.details.clear()

    def show_job(self, job_id: int) -> None:
        """Read the job's attempts in the background; the chosen attempt stays chosen when
        the same job is shown again (its row changed)."""
        keep = self._chosen_number() if job_id == self._job_id else None
        self._request += 1
        request, database = self._request, self._database
        self._job_id = job_id

        def work(_context: TaskContext) -> list[AttemptRow]:
            with database.connect() as connection:
                return job_attempts.job_history(connection, job_id)

        self._tasks.run(
            "read a job's attempts",
            work,
            on_result=lambda attempts: self._on_read(request, attempts, keep),
            on_error=lambda error: self._on_failed(request, error),
        )

    def choose(self, number: int) -> None:
        """Show attempt `number`'s error and log."""
        for row in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(row)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == number:
                self.list.setCurrentItem(item)

    def _chosen_number(self) -> int | None:
        item = self.list.currentItem()
        value = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return value if isinstance(value, int) else None

    def _on_read(self, request: int, attempts: Sequence[AttemptRow], keep: int | None) -> None:
        if request != self._request or not shiboken6.isValid(self):
            return
        self._attempts = list(attempts)
        self.list.clear()
        self.title.setText(summary(attempts))
        for attempt in attempts:
            took = format_duration(attempt.seconds)
            item = QTreeWidgetItem(
                [
                    str(attempt.number),
                    attempt.outcome,
                    worker_host(attempt.worker),
                    _time(attempt.started_at),
                    _time(attempt.finished_at),
                    took if attempt.finished_at is not None else f"{took} so far",
                    (attempt.error or "").strip().split("\n", 1)[0],
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, attempt.number)
            item.setToolTip(2, attempt.worker)
            item.setToolTip(6, attempt.error or "")
            self.list.addTopLevelItem(item)
        for column in range(len(HEADERS) - 1):
            self.list.resizeColumnToContents(column)
        if not attempts:
            self.details.setPlainText(NO_ATTEMPTS)
            return
        numbers = [a.number for a in attempts]
        self.choose(keep if keep in numbers else numbers[-1])

    def _on_failed(self, request: int, error: KnownError) -> None:
        if request != self._request or not shiboken6.isValid(self):
            return
        self.details.setPlainText(f"Could not read the attempts: {error}")
        self.load_failed.emit(error)

    def _on_list_current_changed(self, item: QTreeWidgetItem | None, *_args: object) -> None:
        number = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        attempt = next((a for a in self._attempts if a.number == number), None)
        self.details.setPlainText(describe_attempt(attempt) if attempt else "")
