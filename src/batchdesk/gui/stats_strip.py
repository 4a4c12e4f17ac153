"""The stats strip: the dashboard figures of the original system in one compact row.

`refresh()` may be called as often as anything changes (every NOTIFY, every submission): at
most one query is in flight and at most one more is pending, however many calls arrive.

At its right end, while filters narrow the tree, it says how many batches the tree shows of
all there are ("Showing 12 of 10,000 batches"), from `set_shown()` and its own total.
"""

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from batchdesk.errors import KnownError
from batchdesk.storage import batch_queries
from batchdesk.storage.batch_queries import BatchStats
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskContext

# (field of BatchStats, caption, what a screen reader says)
FIGURES = (
    ("total_batches", "Batches", "Total batches"),
    ("queued", "Queued", "Queued batches"),
    ("processing", "Processing", "Processing batches"),
    ("paused", "Paused", "Paused batches"),
    ("completed", "Completed", "Completed batches"),
    ("failed", "Failed", "Failed batches"),
    ("cancelled", "Cancelled", "Cancelled batches"),
    ("total_files_all_time", "Files", "Total files, all time"),
    ("avg_files_per_batch", "Avg / batch", "Average files per batch"),
    ("max_files_in_batch", "Largest", "Files in the largest batch"),
)
UNKNOWN = "—"


def _figure_text(value: int | float) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


class StatsStrip(QFrame):
    """A row of figures about every batch in the database."""

    refreshed = Signal(object)  # BatchStats, after each query
    refresh_failed = Signal(object)  # KnownError; the last figures stay

    def __init__(
        self, database: Database, tasks: BackgroundTasks, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self._in_flight = False
        self._pending = False
        self.stats: BatchStats | None = None
        self.setAccessibleName("Batch statistics")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(16)
        self._values: dict[str, QLabel] = {}
        self._spoken = {key: spoken for key, _caption, spoken in FIGURES}
        for key, caption, spoken in FIGURES:
            layout.addLayout(self._figure(key, caption, spoken))
        layout.addStretch(1)
        self._shown: int | None = None  # batches the filters let through, when filtered
        self.shown_label = QLabel()
        self.shown_label.setObjectName("shown-count")
        self.shown_label.hide()
        layout.addWidget(self.shown_label)

    def _figure(self, key: str, caption: str, spoken: str) -> QVBoxLayout:
        value = QLabel(UNKNOWN, alignment=Qt.AlignmentFlag.AlignCenter)
        value.setObjectName(f"stat-{key}")
        font = value.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        value.setFont(font)
        value.setAccessibleName(f"{spoken}: not known yet")
        value.setToolTip(spoken)
        label = QLabel(caption, alignment=Qt.AlignmentFlag.AlignCenter)
        label.setBuddy(value)
        self._values[key] = value
        column = QVBoxLayout()
        column.setSpacing(0)
        column.addWidget(value)
        column.addWidget(label)
        return column

    def figure_text(self, key: str) -> str:
        """The text shown for one figure, by its BatchStats field name."""
        return self._values[key].text()

    def set_shown(self, count: int | None) -> None:
        """How many batches the filters let through (None: no filter, or not known yet)."""
        self._shown = count
        self._update_shown()

    def _update_shown(self) -> None:
        total = None if self.stats is None else self.stats.total_batches
        if self._shown is None:
            self.shown_label.hide()
            return
        of_all = f" of {total:,}" if total is not None else ""
        noun = "batch" if (total if total is not None else self._shown) == 1 else "batches"
        self.shown_label.setText(f"Showing {self._shown:,}{of_all} {noun}")
        self.shown_label.setAccessibleName(self.shown_label.text())
        self.shown_label.show()

    def refresh(self) -> None:
        """Query the figures again in the background; calls while one runs become one more."""
        if self._in_flight:
            self._pending = True
            return
        self._in_flight = True
        database = self._database

        def work(_context: TaskContext) -> BatchStats:
            with database.connect() as connection:
                return batch_queries.batch_stats(connection)

        self._tasks.run(
            "refresh the statistics",
            work,
            on_result=self._on_stats_loaded,
            on_error=self._on_stats_failed,
            on_finished=self._on_query_finished,
        )

    def _on_query_finished(self) -> None:
        # Runs before the result is shown; a refresh asked for meanwhile starts now.
        self._in_flight = False
        if self._pending:
            self._pending = False
            self.refresh()

    def _on_stats_loaded(self, stats: BatchStats) -> None:
        self.stats = stats
        for key, value in self._values.items():
            text = _figure_text(getattr(stats, key))
            value.setText(text)
            # A screen reader reads the name: it carries the figure, not just what it is.
            value.setAccessibleName(f"{self._spoken[key]}: {text}")
            value.setToolTip(f"{self._spoken[key]}: {text}")
        self.setToolTip("")
        self._update_shown()
        self.refreshed.emit(stats)

    def _on_stats_failed(self, error: KnownError) -> None:
        self.setToolTip(f"Could not refresh these figures: {error}")
        self.refresh_failed.emit(error)
