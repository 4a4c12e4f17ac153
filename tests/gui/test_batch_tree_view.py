"""The batch tree as a person meets it: columns that fit and mean one thing, jobs that read as
jobs, a search that finds file names, a batch narrowed to its failed jobs, and Home/End that
reach the real ends of a long list."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QSettings, Qt
from PySide6.QtGui import QColor, QPalette, QStandardItemModel
from PySide6.QtWidgets import QHeaderView, QStyleOptionViewItem

from batchdesk.domain.batch_query import BatchQuery, JobFilter
from batchdesk.storage.database import Database
from tests.gui.test_batch_tree_model import (
    ROOT,
    elsewhere,
    names,
    set_job_statuses,
    shown_view,
    submit,
    wait_idle,
)
from tests.gui.windows import connected_workspace, open_window

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_items import (
    COLUMNS,
    DETAILS_COLUMN,
    HEADER_TIPS,
    NAME_COLUMN,
    PIPELINE_COLUMN,
    PRIORITY_COLUMN,
    PROGRESS_COLUMN,
    SIZE_COLUMN,
    STATUS_COLUMN,
    TIME_COLUMN,
    WHO_COLUMN,
    short_time,
)
from batchdesk.gui.batch_tree_model import MATCH_ROLE, BatchTreeModel
from batchdesk.gui.batch_tree_view import BatchTreeView
from batchdesk.gui.workspace import HEADER_KEY, HEADER_VERSION, HEADER_VERSION_KEY

TOOLTIP = Qt.ItemDataRole.ToolTipRole


@pytest.fixture
def model(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> Iterator[BatchTreeModel]:
    tree = BatchTreeModel(database, tasks, page_size=5, job_page_size=50)
    yield tree
    wait_idle(qtbot, tree, tasks)


def texts(model: BatchTreeModel, index: QModelIndex) -> list[str]:
    """The cells of the row of `index`, left to right."""
    return [model.data(index.siblingAtColumn(c)) for c in range(len(COLUMNS))]


def add_batches(conninfo: str, count: int) -> None:
    """Add `count` batches with no jobs, the first the oldest, as a script on a server would."""
    elsewhere(
        conninfo,
        "INSERT INTO batches (customer_prefix, batch_date, batch_counter, base_directory_name,"
        " pipeline, created_at) SELECT 'PL_DXB', date '2026-11-28', g,"
        " 'PL_DXB_2026-11-28_batch-' || g, (SELECT min(name) FROM pipelines),"
        " timestamptz '2026-11-28 09:00+00' + g * interval '1 minute'"
        " FROM generate_series(1, %s) AS g",
        (count,),
    )


# --- columns ------------------------------------------------------------------------------


def test_times_are_short_and_say_the_day_in_words_near_now() -> None:
    now = datetime(2026, 11, 28, 18, 0).astimezone()
    assert short_time(now.replace(hour=9, minute=5), now) == "today 09:05"
    assert short_time(now.replace(month=3, day=2), now) == "2 Mar 18:00"
    assert short_time(now.replace(year=2025), now) == "28 Nov 2025"


def test_a_jobs_cells_sit_under_headers_that_name_them(
    qtbot: QtBot,
    model: BatchTreeModel,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    batch = submit(database, tmp_path, files=2)
    error = "Step 2 (fit) failed.\nPillow said: image file is truncated (41 bytes not processed)"
    elsewhere(
        database_conninfo,
        "UPDATE jobs SET status = 'failed', attempts = 3, last_error = %s,"
        " worker = 'render-07:4242:a1b2c3',"
        " started_at = timestamptz '2026-11-28 10:00:00+00',"
        " finished_at = timestamptz '2026-11-28 10:00:02.5+00'"
        " WHERE batch_id = %s AND position = 1",
        (error, batch.id),
    )
    model.set_query(BatchQuery())
    wait_idle(qtbot, model, tasks)
    index = model.index_of_batch(batch.id)
    model.fetchMore(index)
    wait_idle(qtbot, model, tasks)
    job = model.index(1, 0, index)
    file_name = model.job_at(job).file_name  # type: ignore[union-attr]

    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(COLUMNS))]
    assert headers == [
        "Name",
        "Status",
        "Priority",
        "Progress / tries",
        "Description / error",
        "Pipeline",
        "Size",
        "Time",
        "Who / where",
    ]
    cells = texts(model, job)
    assert cells[NAME_COLUMN] == file_name
    assert cells[STATUS_COLUMN] == "failed"
    assert cells[PRIORITY_COLUMN] == ""  # the batch's, shown on the batch row
    assert cells[PROGRESS_COLUMN] == "3 of 3 tries"
    assert cells[DETAILS_COLUMN] == "Step 2 (fit) failed."
    assert cells[PIPELINE_COLUMN] == "original"
    assert cells[SIZE_COLUMN].endswith("B")
    assert cells[TIME_COLUMN] == "ran 2.5 s"
    assert cells[WHO_COLUMN] == "render-07"
    # What a cell cuts, its tooltip holds.
    assert model.data(job.siblingAtColumn(DETAILS_COLUMN), TOOLTIP) == error
    assert "render-07:4242:a1b2c3" in model.data(job.siblingAtColumn(WHO_COLUMN), TOOLTIP)
    assert "Started 2026-11-28" in model.data(job.siblingAtColumn(TIME_COLUMN), TOOLTIP)
    # A job that has not run says nothing it does not know.
    waiting = texts(model, model.index(0, 0, index))
    assert [waiting[c] for c in (PROGRESS_COLUMN, DETAILS_COLUMN, TIME_COLUMN, WHO_COLUMN)] == [
        "",
        "",
        "",
        "",
    ]

    row = texts(model, index)
    assert row[NAME_COLUMN] == batch.base_directory_name
    assert row[PROGRESS_COLUMN] == "1/2"
    assert row[PRIORITY_COLUMN] == "50"
    assert row[DETAILS_COLUMN] == "test batch"
    assert row[PIPELINE_COLUMN] == "original"
    shown_batch = model.batch_at(index)
    assert shown_batch is not None
    assert row[TIME_COLUMN] == shown_batch.created_at.astimezone().strftime("today %H:%M")
    created = shown_batch.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert model.data(index.siblingAtColumn(TIME_COLUMN), TOOLTIP) == f"Created {created}"
    assert row[WHO_COLUMN] == "tester@test"
    set_job_statuses(database_conninfo, batch.id, ["cancelled"])  # now finished, not completed
    model.apply_batch_changes({batch.id})
    qtbot.waitUntil(lambda: "Finished" in model.data(index.siblingAtColumn(TIME_COLUMN), TOOLTIP))
    # Every header says what it holds for a batch and for a job.
    for column in range(len(COLUMNS)):
        tip = model.headerData(column, Qt.Orientation.Horizontal, TOOLTIP)
        assert tip == HEADER_TIPS[column]
        assert "job" in tip.lower()


@pytest.mark.slow
def test_every_column_shows_in_a_1460_by_900_window_and_a_narrow_one(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str
) -> None:
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        window.resize(1460, 900)
        workspace = connected_workspace(qtbot, window)
        tree = workspace.tree
        qtbot.waitUntil(lambda: "No batches yet" in tree.empty_text, timeout=30_000)

        for width in (1460, 1200):
            window.resize(width, 900)
            qtbot.waitUntil(lambda: tree.header().length() <= tree.viewport().width())
            assert not tree.horizontalScrollBar().isVisible()
            last = tree.header().logicalIndex(len(COLUMNS) - 1)
            right = tree.header().sectionViewportPosition(last) + tree.header().sectionSize(last)
            assert right <= tree.viewport().width()
            if width == 1460:  # at the default size every header reads whole
                metrics = tree.header().fontMetrics()
                for column, label in enumerate(COLUMNS):
                    assert tree.columnWidth(column) >= metrics.horizontalAdvance(label), label
    finally:
        window.close()
        session.close()


def test_columns_follow_the_width_until_the_user_resizes_one_and_that_is_kept(
    qtbot: QtBot, model: BatchTreeModel, tmp_path: Path
) -> None:
    tree = shown_view(qtbot, model)
    tree.resize(700, 400)
    qtbot.waitUntil(lambda: tree.header().length() <= tree.viewport().width())
    narrow = tree.columnWidth(DETAILS_COLUMN)
    tree.resize(1200, 400)
    qtbot.waitUntil(lambda: tree.columnWidth(DETAILS_COLUMN) > narrow)
    assert tree.columns_fitted

    tree.header().resizeSection(NAME_COLUMN, 333)  # as a drag of the header's edge does
    tree.resize(800, 400)
    qtbot.wait(50)

    assert not tree.columns_fitted
    assert tree.columnWidth(NAME_COLUMN) == 333
    state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    state.setValue(HEADER_KEY, tree.header().saveState())
    state.setValue(HEADER_VERSION_KEY, HEADER_VERSION)
    again = shown_view(qtbot, model)
    assert again.header().restoreState(state.value(HEADER_KEY))
    assert again.columnWidth(NAME_COLUMN) == 333


def test_a_header_saved_for_the_old_columns_is_not_put_on_the_new_ones(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str
) -> None:
    # The state of the old header (Name, Description, Status, Progress, Files, Size,
    # Created, By), sorted by Files, with a 40-pixel Name, as an older batchdesk saved it.
    old = QHeaderView(Qt.Orientation.Horizontal)
    qtbot.addWidget(old)
    old.setModel(QStandardItemModel(0, 8))
    old.resizeSection(0, 40)
    old.setSortIndicator(4, Qt.SortOrder.AscendingOrder)
    state = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    state.setValue(HEADER_KEY, old.saveState())  # and no version: the old one saved none
    state.sync()

    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        workspace = connected_workspace(qtbot, window)
        tree = workspace.tree
        qtbot.waitUntil(lambda: tree.columnWidth(NAME_COLUMN) > 100)
        assert tree.columns_fitted
        assert workspace.model.query.sort_by == "created_at"  # not "pipeline" (new column 4)
        tree.header().resizeSection(NAME_COLUMN, 321)  # the user widens the names
        window.close()
        session.close()
        reopened = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
        assert str(reopened.value(HEADER_VERSION_KEY)) == str(HEADER_VERSION)

        # The new state is the new columns': it comes back, the user's width with it.
        window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
        again = connected_workspace(qtbot, window)
        qtbot.waitUntil(lambda: again.tree.columnWidth(NAME_COLUMN) == 321)
        assert not again.tree.columns_fitted
    finally:
        window.close()
        session.close()


# --- finding ------------------------------------------------------------------------------


def test_a_search_for_a_file_name_shows_its_batch_with_the_matching_job_marked(
    qtbot: QtBot,
    model: BatchTreeModel,
    database: Database,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    holder = submit(database, tmp_path, files=4)  # files PL_DXB191_view0.png .. view3.png
    submit(database, tmp_path, files=2)
    tree = shown_view(qtbot, model)
    qtbot.waitUntil(lambda: model.rowCount() == 2)

    model.set_query(BatchQuery(text="VIEW3"))
    wait_idle(qtbot, model, tasks)
    assert names(model) == [holder.base_directory_name]
    batch = model.index_of_batch(holder.id)
    tree.expand(batch)
    qtbot.waitUntil(lambda: model.rowCount(batch) == 4)

    marked = [model.data(model.index(row, 0, batch), MATCH_ROLE) for row in range(4)]
    assert marked == [False, False, False, True]
    option = QStyleOptionViewItem()
    tree.itemDelegate().initStyleOption(option, model.index(3, DETAILS_COLUMN, batch))
    assert option.font.bold()
    assert option.backgroundBrush.style() != Qt.BrushStyle.NoBrush
    plain = QStyleOptionViewItem()
    tree.itemDelegate().initStyleOption(plain, model.index(2, DETAILS_COLUMN, batch))
    assert not plain.font.bold()

    # The tint is the palette's highlight, faint, and follows a change of theme.
    palette = tree.palette()
    palette.setColor(QPalette.ColorRole.Highlight, QColor("#ff0000"))
    tree.setPalette(palette)
    tint = model.data(model.index(3, 0, batch), Qt.ItemDataRole.BackgroundRole).color()
    assert (tint.red(), tint.green(), tint.blue()) == (255, 0, 0)
    assert 0 < tint.alpha() < 128


@pytest.mark.slow
def test_the_window_finds_a_file_name_says_how_many_of_all_it_shows_and_narrows_jobs(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database: Database, database_conninfo: str
) -> None:
    holder = submit(database, tmp_path, files=3)
    submit(database, tmp_path, files=1, prefix="AC_ME")
    set_job_statuses(database_conninfo, holder.id, ["completed", "failed", "completed"])
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        workspace = connected_workspace(qtbot, window)
        model, tree, stats = workspace.model, workspace.tree, workspace.stats
        qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=30_000)
        qtbot.waitUntil(lambda: stats.figure_text("total_batches") == "2", timeout=30_000)
        assert not stats.shown_label.isVisible()

        qtbot.keyClicks(workspace.filters.text_field, "view2.png")  # a file of `holder` only
        qtbot.waitUntil(lambda: names(model) == [holder.base_directory_name], timeout=30_000)
        qtbot.waitUntil(lambda: stats.shown_label.text() == "Showing 1 of 2 batches")
        assert stats.shown_label.isVisible()

        batch = model.index(0, 0)
        tree.expand(batch)
        qtbot.waitUntil(lambda: model.rowCount(batch) == 3, timeout=30_000)
        assert [model.data(model.index(r, 0, batch), MATCH_ROLE) for r in range(3)] == [
            False,
            False,
            True,
        ]
        jobs = workspace.filters.job_combo
        jobs.setCurrentIndex(jobs.findData(JobFilter.FAILED.value))
        qtbot.waitUntil(lambda: model.rowCount(batch) == 1, timeout=30_000)
        failed = model.job_at(model.index(0, 0, batch))
        assert failed is not None
        assert failed.status == "failed"

        workspace.filters.clear_button.click()
        qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=30_000)
        assert not stats.shown_label.isVisible()
        assert model.job_filter is JobFilter.ALL
    finally:
        window.close()
        session.close()


def test_a_large_batch_narrows_to_its_failed_jobs_and_back(
    qtbot: QtBot,
    model: BatchTreeModel,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    batch = submit(database, tmp_path, files=1)
    elsewhere(
        database_conninfo,
        "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline)"
        " SELECT j.batch_id, g, 'copy_' || g || '.png', j.input_sha256, j.input_size, j.pipeline"
        " FROM jobs j, generate_series(1, 449) AS g WHERE j.batch_id = %s",
        (batch.id,),
    )
    elsewhere(
        database_conninfo,
        "UPDATE jobs SET status = 'failed' WHERE batch_id = %s AND position IN (7, 300, 449)",
        (batch.id,),
    )
    tree = shown_view(qtbot, model, height=400)
    qtbot.waitUntil(lambda: model.rowCount() == 1)
    index = model.index(0, 0)
    tree.expand(index)
    qtbot.waitUntil(lambda: model.rowCount(index) >= 50)
    wait_idle(qtbot, model, tasks)

    with qtbot.waitSignal(model.job_filter_changed):
        model.set_job_filter(JobFilter.FAILED)
    qtbot.waitUntil(lambda: model.rowCount(index) == 3)
    wait_idle(qtbot, model, tasks)

    shown = [model.job_at(model.index(row, 0, index)) for row in range(3)]
    assert [job.position for job in shown if job is not None] == [7, 300, 449]
    assert not model.canFetchMore(index)
    assert tree.isExpanded(index)

    # A failed job retried elsewhere leaves the failed ones; the view follows.
    elsewhere(
        database_conninfo,
        "UPDATE jobs SET status = 'queued' WHERE batch_id = %s AND position = 300",
        (batch.id,),
    )
    model.apply_batch_changes({batch.id})
    qtbot.waitUntil(lambda: model.rowCount(index) == 2)

    model.set_job_filter(JobFilter.NOT_COMPLETED)
    qtbot.waitUntil(lambda: model.rowCount(index) >= 50)
    model.set_job_filter(JobFilter.ALL)
    qtbot.waitUntil(lambda: model.rowCount(index) >= 50)
    wait_idle(qtbot, model, tasks)
    assert model.job_at(model.index(0, 0, index)).position == 0  # type: ignore[union-attr]


def test_a_batch_with_no_job_the_filter_shows_has_nothing_to_expand(
    qtbot: QtBot,
    model: BatchTreeModel,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    done = submit(database, tmp_path, files=2)
    set_job_statuses(database_conninfo, done.id, ["completed", "completed"])
    model.set_query(BatchQuery())
    wait_idle(qtbot, model, tasks)
    index = model.index_of_batch(done.id)
    assert model.hasChildren(index)

    model.set_job_filter(JobFilter.FAILED)

    assert not model.hasChildren(index)
    assert not model.canFetchMore(index)


# --- the ends of a long list --------------------------------------------------------------


def current_name(tree: BatchTreeView, model: BatchTreeModel) -> str | None:
    batch = model.batch_at(tree.currentIndex())
    return None if batch is None else batch.base_directory_name


def test_end_and_home_reach_the_real_ends_without_reading_every_page(
    qtbot: QtBot,
    qtmodeltester: object,
    model: BatchTreeModel,
    database_conninfo: str,
    tasks: BackgroundTasks,
) -> None:
    add_batches(database_conninfo, 150)  # newest first: batch-150 at the top, batch-1 last
    tree = shown_view(qtbot, model, height=300)
    qtbot.waitUntil(lambda: model.total_count == 150, timeout=15_000)
    wait_idle(qtbot, model, tasks)
    tree.setFocus()
    assert model.rowCount() < 60  # a screen and a screen more, as the view asks

    qtbot.keyClick(tree, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: current_name(tree, model) == "PL_DXB_2026-11-28_batch-1")
    wait_idle(qtbot, model, tasks)

    assert model.at_end
    assert model.rowCount() < 60  # the last pages, not every page between
    assert names(model)[-1] == "PL_DXB_2026-11-28_batch-1"
    numbers = [int(name.rsplit("-", 1)[1]) for name in names(model)]
    assert numbers == sorted(numbers, reverse=True)  # still newest first, top to bottom
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    wait_idle(qtbot, model, tasks)
    last = tree.visualRect(model.index(model.rowCount() - 1, 0))
    assert tree.viewport().rect().contains(last.center())

    # Scrolling up reads the pages above, and the rows in view stay in view.
    for _ in range(3):
        top = QPersistentModelIndex(tree.indexAt(QPoint(1, 1)))
        before = model.rowCount()
        tree.verticalScrollBar().setValue(0)
        qtbot.waitUntil(lambda b=before: model.rowCount() > b or model.all_loaded)
        wait_idle(qtbot, model, tasks)
        if model.all_loaded:
            break
        assert tree.visualRect(QModelIndex(model.index(top.row(), 0))).top() >= 0
    assert model.rowCount() > before

    qtbot.keyClick(tree, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: current_name(tree, model) == "PL_DXB_2026-11-28_batch-150")
    wait_idle(qtbot, model, tasks)
    assert not model.at_end
    assert tree.selection().batch_ids == (model.batch_at(tree.currentIndex()).id,)  # type: ignore[union-attr]


def test_end_in_a_list_that_is_all_loaded_just_moves_there(
    qtbot: QtBot, model: BatchTreeModel, database_conninfo: str, tasks: BackgroundTasks
) -> None:
    add_batches(database_conninfo, 3)
    tree = shown_view(qtbot, model)
    qtbot.waitUntil(lambda: model.rowCount() == 3)
    wait_idle(qtbot, model, tasks)
    tree.setFocus()
    resets: list[object] = []
    model.modelReset.connect(lambda: resets.append(None))

    qtbot.keyClick(tree, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)

    assert current_name(tree, model) == "PL_DXB_2026-11-28_batch-1"
    assert not model.at_end
    assert resets == []
    assert model.index(0, 0, ROOT).isValid()
