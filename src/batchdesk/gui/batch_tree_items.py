"""What the batch tree holds and shows: its columns, each cell, and the loaded rows.

Every column means one thing for a batch and for its jobs, and where the two differ the header
names both ("Progress / tries"):

    Name                 the batch's name             the job's file name
    Status               the batch's status           the job's status
    Priority             0-100: workers take higher   (its batch's: left blank)
    Progress / tries     finished of all jobs (bar)   tries made of those allowed
    Description / error  the batch's description      the job's error, if it failed
    Pipeline             the batch's pipeline         the job's pipeline
    Size                 all its files                its input file
    Time                 when it was created          how long it ran (and when: tooltip)
    Who / where          who submitted it             the computer that ran it

A cell shows the first line; its tooltip holds all of it, and the times and names in full.

`BatchNodes` keeps the loaded batch rows in view order with their loaded jobs, found by
position, by batch id, or by the integer key that a job row's index carries.
"""

import itertools
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from PySide6.QtCore import Qt

from batchdesk.domain.units import format_size
from batchdesk.storage.batch_queries import BatchRow, JobRow

COLUMNS = (
    "Name",
    "Status",
    "Priority",
    "Progress / tries",
    "Description / error",
    "Pipeline",
    "Size",
    "Time",
    "Who / where",
)
(
    NAME_COLUMN,
    STATUS_COLUMN,
    PRIORITY_COLUMN,
    PROGRESS_COLUMN,
    DETAILS_COLUMN,
    PIPELINE_COLUMN,
    SIZE_COLUMN,
    TIME_COLUMN,
    WHO_COLUMN,
) = range(len(COLUMNS))

# Columns to BatchQuery sort names (domain.batch_query.SORT_COLUMNS); every column sorts.
SORT_BY_COLUMN = {
    NAME_COLUMN: "base_directory_name",
    STATUS_COLUMN: "status",
    PRIORITY_COLUMN: "priority",
    PROGRESS_COLUMN: "progress",
    DETAILS_COLUMN: "render_description",
    PIPELINE_COLUMN: "pipeline",
    SIZE_COLUMN: "total_size",
    TIME_COLUMN: "created_at",
    WHO_COLUMN: "created_by",
}
COLUMN_OF_SORT = {name: column for column, name in SORT_BY_COLUMN.items()}

_USER = int(Qt.ItemDataRole.UserRole.value)
STATUS_ROLE = _USER + 1  # str: the row's status, for the badge delegate
PROGRESS_ROLE = _USER + 2  # Progress on batch rows, None on job rows
BATCH_ID_ROLE = _USER + 3  # UUID: the batch (a job row gives its batch's)
JOB_ID_ROLE = _USER + 4  # int on job rows, None on batch rows
MATCH_ROLE = _USER + 5  # True on a job row whose file name the search matched

_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole.value)
_INITIAL_SORT_ORDER = int(Qt.ItemDataRole.InitialSortOrderRole.value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)

HEADER_TIPS = (
    "A batch's name; a job's file name",
    "Status of the batch or the job",
    "A batch's priority, 0-100: workers take the jobs of higher ones first",
    "A batch: its jobs finished of all. A job: the tries made of those allowed",
    "A batch's description; a job's error, if it failed",
    "The pipeline of the batch or the job",
    "A batch: the size of all its files. A job: the size of its file",
    "A batch: when it was created. A job: how long it ran",
    "A batch: who submitted it. A job: the computer that ran it",
)
# Clicking a new header sorts numbers and dates biggest and newest first.
_DESCENDING_FIRST = {PRIORITY_COLUMN, PROGRESS_COLUMN, SIZE_COLUMN, TIME_COLUMN}
_RIGHT_ALIGNED = {PRIORITY_COLUMN, SIZE_COLUMN}


class Progress(NamedTuple):
    """What a batch's progress bar shows: finished (completed + failed + cancelled) of total."""

    completed: int
    failed: int
    cancelled: int
    total: int

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled


def header_cell(section: int, role: int) -> Any:
    """Return the header's `role` data for column `section`."""
    if role == _DISPLAY:
        return COLUMNS[section]
    if role == _TOOLTIP:
        return HEADER_TIPS[section]
    if role == _INITIAL_SORT_ORDER:
        order = (
            Qt.SortOrder.DescendingOrder
            if section in _DESCENDING_FIRST
            else (Qt.SortOrder.AscendingOrder)
        )
        return int(order.value)
    return None


def batch_cell(row: BatchRow, column: int, role: int) -> Any:
    """Return a batch row's `role` data for `column`."""
    if role == _DISPLAY:
        return _BATCH_TEXT[column](row)
    if role == _TOOLTIP:
        return _batch_tip(row, column)
    if role == _ALIGNMENT:
        return _RIGHT if column in _RIGHT_ALIGNED else None
    if role == STATUS_ROLE:
        return row.status
    if role == PROGRESS_ROLE:
        return Progress(row.completed_count, row.failed_count, row.cancelled_count, row.total_files)
    if role == BATCH_ID_ROLE:
        return row.id
    return None


def job_cell(job: JobRow, column: int, role: int, *, matched: bool = False) -> Any:
    """Return a job row's `role` data for `column`; `matched`: the search found its name."""
    if role == _DISPLAY:
        return _JOB_TEXT[column](job)
    if role == _TOOLTIP:
        return _job_tip(job, column)
    if role == _ALIGNMENT:
        return _RIGHT if column == SIZE_COLUMN else None
    if role == STATUS_ROLE:
        return job.status
    if role == BATCH_ID_ROLE:
        return job.batch_id
    if role == JOB_ID_ROLE:
        return job.id
    if role == MATCH_ROLE:
        return matched
    return None


# One function per column: a paint asks for ~1,000 cells, each for one column's text only.
_BATCH_TEXT: tuple[Callable[[BatchRow], str], ...] = (
    lambda row: row.base_directory_name,
    lambda row: row.status,
    lambda row: str(row.priority),
    lambda row: f"{row.finished_count}/{row.total_files}",
    lambda row: _first_line(row.render_description),
    lambda row: row.pipeline,
    lambda row: format_size(row.total_size),
    lambda row: short_time(row.created_at),
    lambda row: row.created_by,
)


def _batch_tip(row: BatchRow, column: int) -> str | None:
    if column == NAME_COLUMN:
        return row.base_directory_name
    if column in (STATUS_COLUMN, PROGRESS_COLUMN):
        counts = [
            (row.queued_count, "queued"),
            (row.processing_count, "processing"),
            (row.completed_count, "completed"),
            (row.failed_count, "failed"),
            (row.cancelled_count, "cancelled"),
        ]
        listed = ", ".join(f"{count} {name}" for count, name in counts if count)
        listed = f"{row.total_files} jobs: {listed}" if listed else ""
        if row.paused_at is not None:
            since = f"Paused since {_local(row.paused_at)}: no new job of it starts"
            listed = f"{since}\n{listed}" if listed else since
        return listed or None
    if column == PRIORITY_COLUMN:
        return f"Priority {row.priority} of 100: workers take the jobs of higher ones first"
    if column == DETAILS_COLUMN:
        return row.render_description or None
    if column == PIPELINE_COLUMN:
        return f"Pipeline {row.pipeline}"
    if column == SIZE_COLUMN:
        return f"{row.total_files} files, {row.total_size:,} bytes"
    if column == TIME_COLUMN:
        tip = f"Created {_local(row.created_at, seconds=True)}"
        if row.finished_at is not None:
            took = format_duration((row.finished_at - row.created_at).total_seconds())
            tip += f"\nFinished {_local(row.finished_at, seconds=True)}, {took} after"
        return tip
    if column == WHO_COLUMN:
        return f"Submitted by {row.created_by}" if row.created_by else None
    return None


_JOB_TEXT: tuple[Callable[[JobRow], str], ...] = (
    lambda job: job.file_name,
    lambda job: job.status,
    lambda job: "",
    lambda job: f"{job.attempts} of {job.max_attempts} tries" if job.attempts else "",
    lambda job: _first_line(job.last_error or ""),
    lambda job: job.pipeline,
    lambda job: format_size(job.input_size),
    lambda job: _job_duration(job),
    lambda job: worker_host(job.worker),
)


def _job_tip(job: JobRow, column: int) -> str | None:
    if column == NAME_COLUMN:
        return job.source_path or job.file_name
    if column == STATUS_COLUMN:
        return job.last_error or None
    if column == PROGRESS_COLUMN:
        return f"Tried {job.attempts} of at most {job.max_attempts} times"
    if column == DETAILS_COLUMN:
        return job.last_error or None
    if column == PIPELINE_COLUMN:
        return f"Pipeline {job.pipeline}"
    if column == SIZE_COLUMN:
        return f"{job.input_size:,} bytes"
    if column == TIME_COLUMN and job.started_at is not None:
        tip = f"Started {_local(job.started_at, seconds=True)}"
        if job.finished_at is not None:
            tip += f"\nFinished {_local(job.finished_at, seconds=True)}"
        return tip
    if column == WHO_COLUMN and job.worker:
        return f"Ran on worker {job.worker}"
    return None


def worker_host(worker: str | None) -> str:
    """The computer part of a worker id (`host:pid:random`)."""
    return (worker or "").split(":", 1)[0]


def _job_duration(job: JobRow) -> str:
    if job.started_at is None:
        return ""
    if job.finished_at is None:
        return "running" if job.status == "processing" else ""
    return "ran " + format_duration((job.finished_at - job.started_at).total_seconds())


def format_duration(seconds: float) -> str:
    """Return a duration as people read it: < 0.1 s, 0.4 s, 12 s, 3 min 05 s, 2 h 10 min."""
    if seconds < 0.05:
        return "< 0.1 s"
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f} s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def short_time(moment: datetime, now: datetime | None = None) -> str:
    """A moment as a list shows it: "today 14:02", "28 Nov 14:02", or "28 Nov 2025"."""
    local = moment.astimezone()
    today = (now or datetime.now(local.tzinfo)).astimezone(local.tzinfo).date()
    if local.date() == today:
        return f"today {local:%H:%M}"
    if local.year == today.year:
        return f"{local.day} {local:%b %H:%M}"
    return f"{local.day} {local:%b %Y}"


def _local(moment: datetime, *, seconds: bool = False) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@dataclass(eq=False)
class BatchNode:
    """A loaded batch row and its loaded jobs; `key` names it in its job rows' indexes."""

    key: int
    row: BatchRow
    jobs: list[JobRow] = field(default_factory=list)
    jobs_loading: bool = False
    jobs_failed: bool = False  # a page of jobs failed: no more until a refresh

    def job_at(self, position: int) -> JobRow | None:
        return self.jobs[position] if 0 <= position < len(self.jobs) else None


class BatchNodes:
    """The loaded batch rows in view order, found by position, batch id or node key."""

    def __init__(self) -> None:
        self._keys = itertools.count(1)  # never reused, so a stale key finds nothing
        self.clear()

    def clear(self) -> None:
        self._nodes: list[BatchNode] = []
        self._by_id: dict[UUID, BatchNode] = {}
        self._by_key: dict[int, BatchNode] = {}
        self._rows: dict[int, int] | None = None  # key -> position, rebuilt after changes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[BatchNode]:
        return iter(self._nodes)

    def at(self, position: int) -> BatchNode | None:
        return self._nodes[position] if 0 <= position < len(self._nodes) else None

    def by_id(self, batch_id: UUID) -> BatchNode | None:
        return self._by_id.get(batch_id)

    def by_key(self, key: int) -> BatchNode | None:
        return self._by_key.get(key)

    def ids(self) -> Collection[UUID]:
        return self._by_id.keys()

    def rows(self) -> list[BatchRow]:
        return [node.row for node in self._nodes]

    def jobs_loaded(self) -> dict[UUID, int]:
        return {node.row.id: len(node.jobs) for node in self._nodes if node.jobs}

    def position_of(self, node: BatchNode) -> int:
        if self._rows is None:
            self._rows = {n.key: i for i, n in enumerate(self._nodes)}
        return self._rows[node.key]

    def insert(self, position: int, row: BatchRow) -> None:
        node = BatchNode(next(self._keys), row)
        self._nodes.insert(position, node)
        self._by_id[row.id] = node
        self._by_key[node.key] = node
        self._rows = None

    def remove(self, first: int, last: int) -> None:
        for node in self._nodes[first : last + 1]:
            del self._by_id[node.row.id], self._by_key[node.key]
        del self._nodes[first : last + 1]
        self._rows = None

    def move(self, source: int, destination: int) -> None:
        self._nodes.insert(destination, self._nodes.pop(source))
        self._rows = None
