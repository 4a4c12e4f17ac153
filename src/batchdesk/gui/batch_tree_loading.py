"""What the batch tree reads, and how its loaded rows line up with what was read.

The reads run on pool threads (`ModelReads` runs them and drops stale answers); the rest are
pure functions over rows, so the model only has to turn their answers into row signals.

The model shows a prefix of the query's list (the first n rows in SQL order). A page continues
it from the last loaded row, which the page must start with again (the anchor): if it does not,
rows came or went above it meanwhile and the model re-reads its whole window. A change re-reads
the named batches, and the positions of all loaded ones, and orders them by position
(`target_rows`). Each read sees one snapshot of the database, so its parts agree.
"""

import bisect
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from batchdesk.domain.batch_query import MAX_PAGE_SIZE, BatchQuery
from batchdesk.storage.batch_positions import PlacedBatch, batch_positions, place_batches
from batchdesk.storage.batch_queries import (
    BatchRow,
    JobRow,
    batch_page,
    count_batches,
    list_batches,
    list_jobs,
)
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.batch_tree_items import BatchNodes


@dataclass(frozen=True)
class Changes:
    """Batches to re-read: these ids, or None for every loaded one."""

    ids: frozenset[UUID] | None
    force_jobs: bool = False  # re-read loaded jobs even of batches that did not change

    @property
    def empty(self) -> bool:
        return self.ids is not None and not self.ids and not self.force_jobs

    def merged(self, other: "Changes") -> "Changes":
        ids = None if self.ids is None or other.ids is None else self.ids | other.ids
        return Changes(ids, self.force_jobs or other.force_jobs)


NO_CHANGES = Changes(frozenset())


@dataclass(frozen=True)
class PageRequest:
    query: BatchQuery  # offset and limit set
    anchor: UUID | None  # the last loaded row, which the page must start with


@dataclass(frozen=True)
class Page:
    rows: tuple[BatchRow, ...]
    total: int


@dataclass(frozen=True)
class ShownJobs:
    """A batch whose jobs are loaded: how many, and the batch's updated_at when they were."""

    count: int
    updated_at: datetime


@dataclass(frozen=True)
class ChangeRequest:
    query: BatchQuery
    changes: Changes
    window: int  # rows to re-read when changes.ids is None
    known_total: int | None
    loaded: tuple[UUID, ...] = ()  # the batches shown, in order
    shown_jobs: Mapping[UUID, ShownJobs] = field(default_factory=dict)
    job_statuses: frozenset[str] | None = None  # the jobs shown: these statuses (None: all)


@dataclass(frozen=True)
class ChangeResult:
    total: int
    window: tuple[BatchRow, ...] | None  # the re-read window, when changes.ids was None
    placed: tuple[PlacedBatch, ...]  # the named batches that still match, by position
    positions: Mapping[UUID, int]  # positions of the other loaded batches that still match
    jobs: Mapping[UUID, list[JobRow]]  # re-read jobs of batches that changed


def page_request(query: BatchQuery, loaded: Sequence[BatchRow], page_size: int) -> PageRequest:
    """Ask for the page after `loaded`, starting one row early to check the anchor."""
    if not loaded:
        return PageRequest(replace(query, offset=0, limit=page_size), None)
    return PageRequest(replace(query, offset=len(loaded) - 1, limit=page_size + 1), loaded[-1].id)


def read_page(database: Database, request: PageRequest) -> Page:
    """Read a page and the total; runs on a pool thread."""
    with _snapshot(database) as connection:
        rows, total = batch_page(connection, request.query)
    return Page(tuple(rows), total)


def new_rows_of_page(
    request: PageRequest, page: Page, loaded: Collection[UUID]
) -> tuple[list[BatchRow], bool]:
    """Return the page's rows to append, and whether the list shifted under the page."""
    rows = list(page.rows)
    shifted = False
    if request.anchor is not None:
        if rows and rows[0].id == request.anchor:
            rows = rows[1:]
        else:
            shifted = True
    # After a shift the page may repeat loaded rows; each batch is shown once.
    return [row for row in rows if row.id not in loaded], shifted


def change_request(
    query: BatchQuery,
    nodes: BatchNodes,
    known_total: int | None,
    changes: Changes,
    page_size: int,
    job_statuses: frozenset[str] | None = None,
) -> ChangeRequest:
    """Describe a re-read of `changes` for a model showing `nodes`."""
    loaded, jobs_loaded = nodes.rows(), nodes.jobs_loaded()
    by_id = {row.id: row for row in loaded}
    shown = {
        batch_id: ShownJobs(count, by_id[batch_id].updated_at)
        for batch_id, count in jobs_loaded.items()
        if count and (changes.ids is None or batch_id in changes.ids)
    }
    ids = tuple(row.id for row in loaded)
    window = len(loaded) or page_size
    return ChangeRequest(query, changes, window, known_total, ids, shown, job_statuses)


def read_changes(database: Database, request: ChangeRequest) -> ChangeResult:
    """Re-read changed batches and, where they changed, their loaded jobs; on a pool thread."""
    with _snapshot(database) as connection:
        total = count_batches(connection, request.query)
        window: tuple[BatchRow, ...] | None = None
        placed: tuple[PlacedBatch, ...] = ()
        positions: dict[UUID, int] = {}
        if request.changes.ids is None:
            # Batches added above the window would push loaded ones out: read that many more.
            grown = max(0, total - request.known_total) if request.known_total is not None else 0
            window = tuple(_read_window(connection, request.query, request.window + grown))
            rows: Iterable[BatchRow] = window
        else:
            ids = request.changes.ids
            placed = tuple(place_batches(connection, request.query, ids))
            others = [batch_id for batch_id in request.loaded if batch_id not in ids]
            positions = batch_positions(connection, request.query, others)
            rows = (p.batch for p in placed)
        jobs: dict[UUID, list[JobRow]] = {}
        for row in rows:
            shown = request.shown_jobs.get(row.id)
            if shown is not None and (
                request.changes.force_jobs or row.updated_at != shown.updated_at
            ):
                jobs[row.id] = list_jobs(
                    connection,
                    row.id,
                    offset=0,
                    limit=shown.count,
                    statuses=request.job_statuses,
                )
    return ChangeResult(total, window, placed, positions, jobs)


def read_jobs(
    database: Database,
    batch_id: UUID,
    offset: int,
    limit: int,
    statuses: frozenset[str] | None = None,
) -> list[JobRow]:
    """Read a page of a batch's jobs (only those in `statuses`, if given); on a pool thread."""
    with database.connect() as connection:
        return list_jobs(connection, batch_id, offset=offset, limit=limit, statuses=statuses)


@contextmanager
def _snapshot(database: Database) -> Iterator[Connection]:
    # One snapshot for every statement of a read: positions, rows and totals agree. The first
    # statement opens the transaction; returning the connection to the pool ends it.
    with database.connect() as connection:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield connection


def _read_window(connection: Connection, query: BatchQuery, size: int) -> list[BatchRow]:
    rows: list[BatchRow] = []
    while len(rows) < size:
        limit = min(MAX_PAGE_SIZE, size - len(rows))
        page = list_batches(connection, replace(query, offset=len(rows), limit=limit))
        rows.extend(page)
        if len(page) < limit:
            break
    return rows


def target_rows(current: Sequence[BatchRow], result: ChangeResult) -> list[BatchRow]:
    """Return the rows the model should show after `result`, in order.

    Every loaded batch that still matches, and every re-read one, comes with its position in
    the full list, so the rows are put in that order, whatever else changed meanwhile. The
    window ends after the last loaded batch that was not re-read (or where it ended): a
    re-read batch beyond that waits for its page, since rows not loaded come first.
    """
    if result.window is not None:
        return list(result.window)
    # A loaded batch without a position is gone or filtered out, its news still on the way.
    rows = [(result.positions[r.id], r) for r in current if r.id in result.positions]
    end = max((position for position, _row in rows), default=len(current) - 1) + 1
    for placed in result.placed:  # by position: each one taken extends the window
        if placed.position <= end:
            rows.append((placed.position, placed.batch))
            end = max(end, placed.position + 1)
    return [row for _position, row in sorted(rows, key=lambda pair: pair[0])]


def plan_moves(current: Sequence[UUID], target: Sequence[UUID]) -> list[tuple[int, int]]:
    """Return the fewest row moves that turn `current` into `target` (the same ids).

    Each move is (source row, row to put it before), both counted before that move, as
    beginMoveRows takes them. The rows of a longest run already in target order stay put;
    each other row moves once, to just after the row that precedes it in `target`.
    """
    rank = {batch_id: i for i, batch_id in enumerate(target)}
    staying = _longest_increasing([rank[batch_id] for batch_id in current])
    order = list(current)
    moves: list[tuple[int, int]] = []
    for i, batch_id in enumerate(target):
        if i in staying:
            continue
        source = order.index(batch_id)
        before = order.index(target[i - 1]) + 1 if i > 0 else 0
        if before in (source, source + 1):
            continue
        moves.append((source, before))
        order.insert(before if before < source else before - 1, order.pop(source))
    return moves


def _longest_increasing(values: Sequence[int]) -> set[int]:
    # Patience sorting, O(n log n): the values of one longest strictly increasing subsequence.
    tails: list[int] = []  # tails[k]: index in values ending the best run of length k + 1
    tail_values: list[int] = []
    previous: list[int | None] = [None] * len(values)
    for i, value in enumerate(values):
        k = bisect.bisect_left(tail_values, value)
        previous[i] = tails[k - 1] if k else None
        if k == len(tails):
            tails.append(i)
            tail_values.append(value)
        else:
            tails[k], tail_values[k] = i, value
    run: set[int] = set()
    at = tails[-1] if tails else None
    while at is not None:
        run.add(values[at])
        at = previous[at]
    return run


def update_in_place(shown: list[JobRow], read: Sequence[JobRow]) -> list[int]:
    """Replace the shown jobs that differ from the ones read again; return their positions."""
    changed = [i for i, job in enumerate(read[: len(shown)]) if shown[i] != job]
    for i in changed:
        shown[i] = read[i]
    return changed


def ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Return sorted numbers as runs of (first, last), inclusive: [1, 2, 3, 7] -> (1, 3), (7, 7)."""
    runs: list[tuple[int, int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


class ModelReads:
    """Runs a model's reads in the background: counts them, and drops answers gone stale.

    `restart()` starts a new generation (a new query): answers to reads started before it
    never reach their callbacks, nor do any once `alive()` says the model is gone.
    """

    def __init__(
        self,
        tasks: BackgroundTasks,
        *,
        alive: Callable[[], bool],
        busy_changed: Callable[[bool], None],
        failed: Callable[[str], None],
    ) -> None:
        self._tasks = tasks
        self._alive = alive
        self._busy_changed = busy_changed
        self._failed = failed
        self.generation = 0
        self.running = 0

    def restart(self) -> None:
        self.generation += 1

    def run(
        self,
        name: str,
        work: Callable[[TaskContext], Any],
        on_result: Callable[[Any], None],
        *,
        on_failure: Callable[[], None],
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        """Run `work`; call back on the GUI thread unless stale. on_finished runs first, always."""
        generation = self.generation

        def current() -> bool:
            return self._alive() and generation == self.generation

        def result(value: Any) -> None:
            if current():
                on_result(value)

        def error(exc: Exception) -> None:
            if current():
                on_failure()
                self._failed(str(exc))

        def finished() -> None:
            if not self._alive():
                return
            self.running -= 1
            if self.running == 0:
                self._busy_changed(False)
            if on_finished is not None and generation == self.generation:
                on_finished()

        self.running += 1
        if self.running == 1:
            self._busy_changed(True)
        self._tasks.run(name, work, on_result=result, on_error=error, on_finished=finished)
