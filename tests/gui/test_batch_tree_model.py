"""The batch tree: pages read from SQL, jobs once expanded, stale reads dropped, rows lined up."""

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg
import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QColor

from batchdesk.domain.batch_query import BatchQuery, SortOrder
from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage.batch_positions import PlacedBatch
from batchdesk.storage.batch_queries import BatchRow
from batchdesk.storage.database import Database
from batchdesk.storage.submission import CreatedBatch
from tests.factories import make_batch

from batchdesk.gui import batch_tree_loading as loading
from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_delegates import badge_colours
from batchdesk.gui.batch_tree_items import PROGRESS_COLUMN, SIZE_COLUMN, STATUS_COLUMN
from batchdesk.gui.batch_tree_model import BatchTreeModel
from batchdesk.gui.batch_tree_view import BatchTreeView, TreeSelection

ROOT = QModelIndex()
_submissions = itertools.count(1)


def submit(
    database: Database, tmp_path: Path, files: int = 1, prefix: str = "PL_DXB"
) -> CreatedBatch:
    """Submit one batch of `files` new PNGs, from a folder and seed no other call uses."""
    n = next(_submissions)
    result = make_batch(
        database, tmp_path / f"submission{n}", count=files, prefix=prefix, seed=n * 1000
    )
    return result.batches[0]


def elsewhere(conninfo: str, sql: str, params: Sequence[object] = ()) -> None:
    """Change the database as another workstation would: its own connection, committed."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(sql, params)


def set_job_statuses(conninfo: str, batch_id: UUID, statuses: Sequence[str]) -> None:
    elsewhere(
        conninfo,
        "UPDATE jobs SET status = v.status FROM unnest(%s::text[]) WITH ORDINALITY AS v(status, n)"
        " WHERE jobs.batch_id = %s AND jobs.position = v.n - 1",
        (list(statuses), batch_id),
    )


def wait_idle(qtbot: QtBot, model: BatchTreeModel, tasks: BackgroundTasks) -> None:
    qtbot.waitUntil(lambda: not model.is_loading and tasks.active == 0, timeout=15_000)


def names(model: BatchTreeModel, attribute: str = "base_directory_name") -> list[Any]:
    """The batches shown, top to bottom, by name (or by another attribute)."""
    rows = (model.batch_at(model.index(row, 0)) for row in range(model.rowCount()))
    return [getattr(row, attribute) for row in rows if row is not None]


@pytest.fixture
def model(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> Iterator[BatchTreeModel]:
    tree = BatchTreeModel(database, tasks, page_size=2, job_page_size=2)
    yield tree
    wait_idle(qtbot, tree, tasks)


def shown_view(qtbot: QtBot, model: BatchTreeModel, height: int = 600) -> BatchTreeView:
    tree = BatchTreeView()
    qtbot.addWidget(tree)
    tree.setModel(model)
    tree.resize(900, height)
    tree.show()
    qtbot.waitExposed(tree)
    return tree


@pytest.fixture
def view(qtbot: QtBot, model: BatchTreeModel) -> BatchTreeView:
    return shown_view(qtbot, model)


def test_the_model_passes_the_model_tester_loaded_and_while_it_changes(
    qtbot: QtBot,
    qtmodeltester: object,
    model: BatchTreeModel,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    first, second, third = (submit(database, tmp_path, files) for files in (3, 1, 4))
    set_job_statuses(database_conninfo, first.id, ["completed", "failed", "processing"])
    model.set_query(BatchQuery())
    wait_idle(qtbot, model, tasks)

    qtmodeltester.check(model)  # type: ignore[attr-defined]
    qtmodeltester.check(model, force_py=True)  # type: ignore[attr-defined]
    # The testers fetch what can be fetched (pages, jobs) as they check; fetch the rest.
    wait_idle(qtbot, model, tasks)
    assert model.rowCount() == 3
    batch = model.index_of_batch(third.id)
    while model.canFetchMore(batch):
        model.fetchMore(batch)
        wait_idle(qtbot, model, tasks)
    assert model.rowCount(batch) == 4

    set_job_statuses(database_conninfo, third.id, ["completed", "completed"])
    elsewhere(database_conninfo, "DELETE FROM batches WHERE id = %s", (second.id,))
    fourth = submit(database, tmp_path, 2)
    model.apply_batch_changes({third.id, second.id, fourth.id})
    wait_idle(qtbot, model, tasks)
    assert set(names(model)) == {b.base_directory_name for b in (first, third, fourth)}
    model.sort(SIZE_COLUMN, Qt.SortOrder.AscendingOrder)
    wait_idle(qtbot, model, tasks)
    assert names(model, "total_files") == [2, 3, 4]

    model.set_sort("progress", SortOrder.DESC)  # where a change of status moves a row
    while model.canFetchMore(ROOT):
        model.fetchMore(ROOT)
        wait_idle(qtbot, model, tasks)
    set_job_statuses(database_conninfo, fourth.id, ["completed", "completed"])
    model.apply_batch_changes({fourth.id})
    wait_idle(qtbot, model, tasks)
    assert names(model)[0] == fourth.base_directory_name


def test_batches_arrive_a_page_at_a_time_and_jobs_only_when_asked(
    qtbot: QtBot,
    model: BatchTreeModel,
    database: Database,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    for files in (1, 1, 1, 1, 5):  # the five-file batch is the newest: the first row
        big = submit(database, tmp_path, files)
    totals: list[int] = []
    model.batch_count_changed.connect(totals.append)

    assert (model.rowCount(), model.canFetchMore(ROOT)) == (0, True)  # nothing read unasked
    assert not model.is_loading
    for expected in (2, 4, 5):
        model.fetchMore(ROOT)  # starts a read at once: idle again means it was answered
        wait_idle(qtbot, model, tasks)
        assert model.rowCount() == expected
    assert not model.canFetchMore(ROOT)
    assert totals == [5]

    batch = model.index_of_batch(big.id)
    assert batch.row() == 0
    assert (model.hasChildren(batch), model.canFetchMore(batch)) == (True, True)
    assert model.rowCount(batch) == 0  # no job read until asked
    for expected in (2, 4, 5):
        model.fetchMore(batch)
        wait_idle(qtbot, model, tasks)
        assert model.rowCount(batch) == expected
    assert not model.canFetchMore(batch)
    jobs = [model.job_at(model.index(row, 0, batch)) for row in range(5)]
    assert [job.position for job in jobs if job is not None] == [0, 1, 2, 3, 4]
    assert all(job is not None and job.batch_id == big.id for job in jobs)
    assert model.parent(model.index(3, 2, batch)) == batch
    assert model.batch_at(model.index(0, 0, batch)) is None


def test_expanding_a_batch_in_the_view_loads_its_jobs(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    database: Database,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    batch = submit(database, tmp_path, files=3)
    submit(database, tmp_path, files=2)
    qtbot.waitUntil(lambda: model.rowCount() == 2)  # the view asked for the first page
    index = model.index_of_batch(batch.id)
    wait_idle(qtbot, model, tasks)
    assert model.rowCount(index) == 0

    view.expand(index)
    # Two pages of two: the second because the last loaded job is in sight.
    qtbot.waitUntil(lambda: model.rowCount(index) == 3)
    wait_idle(qtbot, model, tasks)


def test_header_sorting_and_filters_are_sql_and_the_sort_survives_a_new_filter(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    database: Database,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    for prefix, files in (("AC_ME", 3), ("PL_DXB", 1), ("ZZ_TOP", 2), ("AC_ME", 5)):
        biggest = submit(database, tmp_path, files, prefix)
    model.set_query(BatchQuery())
    model.fetchMore(ROOT)
    qtbot.waitUntil(lambda: model.rowCount() == 4)
    view.expand(model.index_of_batch(biggest.id))
    view.setCurrentIndex(model.index_of_batch(biggest.id))

    view.sortByColumn(SIZE_COLUMN, Qt.SortOrder.AscendingOrder)  # as a header click does
    wait_idle(qtbot, model, tasks)
    model.fetchMore(ROOT)
    qtbot.waitUntil(lambda: model.rowCount() == 4)
    assert names(model, "total_files") == [1, 2, 3, 5]
    assert model.query.sort_by == "total_size"
    # A reset loses expansion and selection; the view puts them back as the row comes back.
    qtbot.waitUntil(lambda: view.isExpanded(model.index_of_batch(biggest.id)))
    assert view.selection() == TreeSelection((biggest.id,), ())

    model.set_query(BatchQuery(customer_prefix="AC_ME"))  # what the filter bar sends
    wait_idle(qtbot, model, tasks)
    assert names(model, "total_files") == [3, 5]
    assert model.total_count == 2
    assert view.header().sortIndicatorSection() == SIZE_COLUMN

    model.sort(SIZE_COLUMN, Qt.SortOrder.DescendingOrder)
    wait_idle(qtbot, model, tasks)
    assert names(model, "total_files") == [5, 3]
    assert view.header().sortIndicatorOrder() == Qt.SortOrder.DescendingOrder

    model.set_query(BatchQuery(statuses=frozenset({BatchStatus.FAILED})))
    wait_idle(qtbot, model, tasks)
    assert (model.rowCount(), model.total_count, model.canFetchMore(ROOT)) == (0, 0, False)


def test_a_page_read_for_an_older_query_is_dropped(
    qtbot: QtBot,
    model: BatchTreeModel,
    database: Database,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    acme = [submit(database, tmp_path, 3, "AC_ME") for _ in range(2)]
    dxb = submit(database, tmp_path, 1, "PL_DXB")
    model.set_query(BatchQuery())
    wait_idle(qtbot, model, tasks)
    totals: list[int] = []
    model.batch_count_changed.connect(totals.append)

    # No event is processed between these calls, so both reads are still to be answered.
    model.fetchMore(model.index_of_batch(acme[1].id))  # a page of jobs, under the old rows
    model.set_query(BatchQuery(customer_prefix="AC_ME"))
    model.set_query(BatchQuery(customer_prefix="PL_DXB"))
    wait_idle(qtbot, model, tasks)  # every answer has arrived, stale ones included

    assert names(model) == [dxb.base_directory_name]
    assert totals == [1]
    assert model.rowCount(model.index(0, 0)) == 0


def test_a_database_that_cannot_be_reached_is_reported_not_retried_in_a_loop(
    qtbot: QtBot, tasks: BackgroundTasks
) -> None:
    conninfo = "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2"
    nowhere = Database(conninfo, "the test server nowhere")
    model = BatchTreeModel(nowhere, tasks)
    try:
        with qtbot.waitSignal(model.load_failed, timeout=10_000) as failure:
            model.fetchMore(ROOT)
        assert "Cannot use the database the test server nowhere" in failure.args[0]
        wait_idle(qtbot, model, tasks)
        assert not model.canFetchMore(ROOT)
        with qtbot.waitSignal(model.load_failed, timeout=10_000):
            model.refresh()
        wait_idle(qtbot, model, tasks)
    finally:
        nowhere.close()


def test_the_view_draws_badges_and_a_progress_bar_with_its_failed_part_in_red(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    database: Database,
    database_conninfo: str,
    tmp_path: Path,
) -> None:
    batch = submit(database, tmp_path, files=2)
    set_job_statuses(database_conninfo, batch.id, ["failed", "failed"])
    qtbot.waitUntil(lambda: model.rowCount() == 1)
    progress = model.index_of_batch(batch.id, PROGRESS_COLUMN)
    status = progress.siblingAtColumn(STATUS_COLUMN)

    bar = view.viewport().grab(view.visualRect(progress)).toImage()
    badge = view.viewport().grab(view.visualRect(status)).toImage()

    bar_colours = [bar.pixelColor(x, bar.height() // 2) for x in range(bar.width())]
    assert any(c.red() > 150 and c.green() < 110 and c.blue() < 110 for c in bar_colours)
    badge_fill, _ink = badge_colours("failed")
    assert badge_fill in [badge.pixelColor(x, badge.height() // 2) for x in range(badge.width())]


def relative_luminance(colour: QColor) -> float:
    """WCAG 2 relative luminance, computed here independently of the view's own."""
    linear = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in colour.getRgbF()]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("status", [s.value for s in BatchStatus])
def test_badge_text_contrasts_with_its_colour_as_wcag_asks_of_small_text(status: str) -> None:
    fill, ink = badge_colours(status)

    light, dark = sorted((relative_luminance(fill), relative_luminance(ink)), reverse=True)

    assert (light + 0.05) / (dark + 0.05) >= 4.5


# --- lining loaded rows up with what was read (no database) ------------------------------


def row(name: str) -> BatchRow:
    """A batch row of which only the id and the name matter here."""
    values: dict[str, Any] = {field.name: None for field in fields(BatchRow)}
    values.update(id=uuid5(NAMESPACE_URL, name), base_directory_name=name)
    return BatchRow(**values)


def changes_read(placed: dict[str, int], positions: dict[str, int]) -> loading.ChangeResult:
    """What a re-read of the `placed` batches answers, `positions` being the other loaded ones."""
    in_order = sorted(placed.items(), key=lambda item: item[1])
    return loading.ChangeResult(
        total=100,
        window=None,
        placed=tuple(PlacedBatch(position, row(name)) for name, position in in_order),
        positions={row(name).id: position for name, position in positions.items()},
        jobs={},
    )


@pytest.mark.parametrize(
    ("current", "placed", "positions", "expected"),
    [
        # C moved to the top; its own news has not come, but its position came with A's.
        ("ABC", {"A": 1}, {"B": 2, "C": 0}, "CAB"),
        # B was deleted (no position); X belongs after A; Y lies far below the loaded rows.
        ("AB", {"X": 1, "Y": 7}, {"A": 0}, "AX"),
        # Changed batches at the end of the window stay in it.
        ("ABC", {"B": 1, "C": 2}, {"A": 0}, "ABC"),
    ],
)
def test_loaded_rows_are_lined_up_by_the_positions_read(
    current: str, placed: dict[str, int], positions: dict[str, int], expected: str
) -> None:
    rows = loading.target_rows([row(name) for name in current], changes_read(placed, positions))

    assert "".join(r.base_directory_name for r in rows) == expected


def test_a_page_must_start_with_the_last_loaded_row_or_the_window_is_read_again() -> None:
    loaded = [row("A"), row("B")]
    request = loading.page_request(BatchQuery(), loaded, page_size=2)
    assert (request.query.offset, request.query.limit, request.anchor) == (1, 3, row("B").id)

    rows, shifted = loading.new_rows_of_page(
        request, loading.Page((row("B"), row("C")), 3), {r.id for r in loaded}
    )
    assert ([r.base_directory_name for r in rows], shifted) == (["C"], False)

    # A was deleted meanwhile: the page starts one row late and repeats nothing it shows.
    rows, shifted = loading.new_rows_of_page(
        request, loading.Page((row("C"), row("D")), 3), {r.id for r in loaded}
    )
    assert ([r.base_directory_name for r in rows], shifted) == (["C", "D"], True)


def test_rows_reach_their_new_order_with_the_fewest_moves() -> None:
    ids = [uuid5(NAMESPACE_URL, str(i)) for i in range(40)]
    shuffled = random.Random(7)
    cases = [
        (ids, ids[1:] + ids[:1]),  # the first row sinks to the bottom: one move, not 39
        (ids, ids[-1:] + ids[:-1]),
        *((ids, shuffled.sample(ids, len(ids))) for _ in range(50)),
    ]
    for current, target in cases:
        order = list(current)
        moves = loading.plan_moves(current, target)
        for source, before in moves:
            order.insert(before if before < source else before - 1, order.pop(source))
        assert order == target
        kept = longest_run_in_order([target.index(i) for i in current])
        assert len(moves) == len(ids) - kept


def longest_run_in_order(ranks: list[int]) -> int:
    """Length of the longest increasing subsequence, the slow obvious way."""
    best = [1] * len(ranks)
    for i in range(len(ranks)):
        for j in range(i):
            if ranks[j] < ranks[i]:
                best[i] = max(best[i], best[j] + 1)
    return max(best, default=0)


def test_a_long_list_is_read_a_page_at_a_time_as_it_is_scrolled(
    qtbot: QtBot, database: Database, database_conninfo: str, tasks: BackgroundTasks
) -> None:
    elsewhere(
        database_conninfo,
        "INSERT INTO batches (customer_prefix, batch_date, batch_counter, base_directory_name,"
        " pipeline) SELECT 'PL_DXB', date '2026-11-28', g,"
        " 'PL_DXB_2026-11-28_batch-' || g, (SELECT min(name) FROM pipelines)"
        " FROM generate_series(1, 300) AS g",
    )
    model = BatchTreeModel(database, tasks, page_size=20)
    tree = shown_view(qtbot, model)
    qtbot.waitUntil(lambda: model.total_count == 300, timeout=15_000)
    wait_idle(qtbot, model, tasks)
    qtbot.wait(200)  # time for any further page the view would ask for
    wait_idle(qtbot, model, tasks)

    # Enough to fill the view and a screen more, not the whole list (QTreeView alone asks for
    # page after page before it has laid out the rows it has).
    opened_with = model.rowCount()
    assert 20 <= opened_with <= 60

    shown = opened_with
    for _ in range(3):
        tree.scrollToBottom()
        qtbot.waitUntil(lambda before=shown: model.rowCount() > before, timeout=15_000)
        wait_idle(qtbot, model, tasks)
        shown = model.rowCount()
    assert shown < 300


def test_an_expanded_large_batch_reads_its_jobs_a_page_at_a_time(
    qtbot: QtBot, database: Database, database_conninfo: str, tasks: BackgroundTasks, tmp_path: Path
) -> None:
    batch = submit(database, tmp_path, files=1)
    elsewhere(
        database_conninfo,
        "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline)"
        " SELECT j.batch_id, g, 'copy_' || g || '.png', j.input_sha256, j.input_size, j.pipeline"
        " FROM jobs j, generate_series(1, 199) AS g WHERE j.batch_id = %s",
        (batch.id,),
    )
    elsewhere(database_conninfo, "UPDATE batches SET total_files = 200 WHERE id = %s", (batch.id,))
    model = BatchTreeModel(database, tasks, job_page_size=10)
    tree = shown_view(qtbot, model, height=400)
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=15_000)
    index = model.index(0, 0)

    tree.expand(index)
    qtbot.waitUntil(lambda: model.rowCount(index) >= 10, timeout=15_000)
    qtbot.wait(300)  # time for any further page the view would ask for
    wait_idle(qtbot, model, tasks)

    # A screen or two of jobs, not all 200 (QTreeView alone asks until it has them all).
    assert 10 <= model.rowCount(index) <= 60
    tree.scrollToBottom()
    qtbot.waitUntil(lambda: model.rowCount(index) > 60 or not model.canFetchMore(index))
    wait_idle(qtbot, model, tasks)


def test_a_batch_hidden_by_a_filter_comes_back_expanded(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    database: Database,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    kept = submit(database, tmp_path, files=2, prefix="AC_ME")
    submit(database, tmp_path, files=1, prefix="PL_DXB")
    model.refresh()
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    wait_idle(qtbot, model, tasks)
    view.expand(model.index_of_batch(kept.id))
    qtbot.waitUntil(lambda: model.rowCount(model.index_of_batch(kept.id)) == 2)

    model.set_query(BatchQuery(customer_prefix="PL_DXB"))  # hides it
    qtbot.waitUntil(lambda: names(model, "customer_prefix") == ["PL_DXB"])
    wait_idle(qtbot, model, tasks)
    model.set_query(BatchQuery())  # brings it back
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    qtbot.waitUntil(lambda: view.isExpanded(model.index_of_batch(kept.id)))
    wait_idle(qtbot, model, tasks)
