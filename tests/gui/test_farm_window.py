"""Steering the farm from the window, on a real database: priority, pause and resume, jobs run
again; and what another workstation changes shows in every open window."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QInputDialog, QMessageBox

from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage import farm_controls, job_queue, worker_liveness
from batchdesk.storage.batch_queries import BatchRow, JobRow
from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.gui.windows import connected_workspace, open_window

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_items import PRIORITY_COLUMN, STATUS_COLUMN
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession
from batchdesk.gui.workspace import Workspace

pytestmark = pytest.mark.slow
WAIT_MS = 30_000


@pytest.fixture
def opened(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str
) -> Iterator[tuple[MainWindow, Workspace]]:
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        yield window, connected_workspace(qtbot, window)
    finally:
        close(window, session)


def close(window: MainWindow, session: DatabaseSession) -> None:
    window.close()
    session.close()


def shown(workspace: Workspace) -> dict[str, BatchRow]:
    """The batch rows the tree shows, by customer prefix."""
    model = workspace.model
    rows = [model.batch_at(model.index(row, 0)) for row in range(model.rowCount())]
    return {row.customer_prefix: row for row in rows if row is not None}


def cell(workspace: Workspace, batch_id: UUID, column: int) -> str:
    return str(workspace.model.index_of_batch(batch_id, column).data())


def select_batches(window: MainWindow, ids: list[UUID]) -> None:
    workspace = window.workspace
    assert workspace is not None
    selection = workspace.tree.selectionModel()
    flags = selection.SelectionFlag
    selection.clear()
    for n, batch_id in enumerate(ids):
        index = workspace.model.index_of_batch(batch_id)
        how = flags.ClearAndSelect if n == 0 else flags.Select
        if n == 0:
            selection.setCurrentIndex(index, how | flags.Rows)
        else:
            selection.select(index, how | flags.Rows)


def job_indexes(qtbot: QtBot, workspace: Workspace, batch_id: UUID) -> list[QModelIndex]:
    model = workspace.model
    parent = model.index_of_batch(batch_id)
    workspace.tree.expand(parent)
    batch = model.batch_at(parent)
    assert batch is not None
    qtbot.waitUntil(lambda: model.rowCount(parent) == batch.total_files, timeout=WAIT_MS)
    return [model.index(row, 0, parent) for row in range(model.rowCount(parent))]


def job_of(workspace: Workspace, index: QModelIndex) -> JobRow:
    job = workspace.model.job_at(index)
    assert job is not None
    return job


def answer_priority_dialog(value: int) -> list[str]:
    """Type `value` into the Set Priority dialog when it opens and press OK; return its text."""
    asked: list[str] = []

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QInputDialog):
            QTimer.singleShot(20, answer)
            return
        asked.append(dialog.labelText())
        dialog.setIntValue(value)
        dialog.accept()

    QTimer.singleShot(0, answer)
    return asked


def wait_loaded(qtbot: QtBot, workspace: Workspace, count: int) -> None:
    model = workspace.model
    qtbot.waitUntil(lambda: model.rowCount() == count and not model.is_loading, timeout=WAIT_MS)


def test_priority_shows_sorts_and_changes_for_the_selected_batches(
    qtbot: QtBot, opened: tuple[MainWindow, Workspace], database: Database, tmp_path: Path
) -> None:
    window, workspace = opened
    first = make_batch(database, tmp_path / "a", count=1, prefix="AA_ONE").batches[0]
    second = make_batch(database, tmp_path / "b", count=1, prefix="BB_TWO").batches[0]
    window.refresh()
    wait_loaded(qtbot, workspace, 2)
    assert cell(workspace, first.id, PRIORITY_COLUMN) == "50"
    actions = window.window_actions
    select_batches(window, [])
    assert not actions.set_priority.isEnabled()

    select_batches(window, [first.id])
    assert actions.set_priority.isEnabled()
    asked = answer_priority_dialog(80)
    actions.set_priority.trigger()
    qtbot.waitUntil(lambda: cell(workspace, first.id, PRIORITY_COLUMN) == "80", timeout=WAIT_MS)
    assert first.base_directory_name in asked[0]
    assert "was 50" in window.status.currentMessage()

    # Ctrl+Down on the tree lowers each selected batch by 10 from its own priority.
    select_batches(window, [first.id, second.id])
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    workspace.tree.setFocus()
    qtbot.waitUntil(workspace.tree.hasFocus)
    QTest.keyClick(workspace.tree, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: cell(workspace, first.id, PRIORITY_COLUMN) == "70", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: cell(workspace, second.id, PRIORITY_COLUMN) == "40", timeout=WAIT_MS)
    actions.raise_priority.trigger()
    qtbot.waitUntil(lambda: cell(workspace, second.id, PRIORITY_COLUMN) == "50", timeout=WAIT_MS)

    # A header click sorts by priority, highest first.
    workspace.tree.sortByColumn(PRIORITY_COLUMN, Qt.SortOrder.DescendingOrder)
    qtbot.waitUntil(lambda: workspace.model.query.sort_by == "priority", timeout=WAIT_MS)
    wait_loaded(qtbot, workspace, 2)
    top = workspace.model.batch_at(workspace.model.index(0, 0))
    assert top is not None
    assert top.id == first.id

    # A dialog cancelled changes nothing.
    select_batches(window, [first.id])
    QTimer.singleShot(0, lambda: _reject_modal())
    actions.set_priority.trigger()
    qtbot.waitUntil(lambda: window.status.currentMessage() == "Priority unchanged.")
    assert cell(workspace, first.id, PRIORITY_COLUMN) == "80"


def _reject_modal() -> None:
    dialog = QApplication.activeModalWidget()
    if isinstance(dialog, QInputDialog):
        dialog.reject()
    else:
        QTimer.singleShot(20, _reject_modal)


def test_pause_and_resume_follow_the_selection_and_paused_is_a_status_to_filter_by(
    qtbot: QtBot, opened: tuple[MainWindow, Workspace], database: Database, tmp_path: Path
) -> None:
    window, workspace = opened
    waiting = make_batch(database, tmp_path / "a", count=2, prefix="AA_WAIT").batches[0]
    later = make_batch(database, tmp_path / "b", count=1, prefix="BB_DONE").batches[0]
    claimed = job_queue.claim(database, "render-node:1:abc")
    assert claimed is not None
    job_queue.fail(database, claimed, "Step 1 (fit) failed.", retryable=False)
    window.refresh()
    wait_loaded(qtbot, workspace, 2)
    qtbot.waitUntil(lambda: cell(workspace, waiting.id, STATUS_COLUMN) == "processing")
    actions = window.window_actions

    select_batches(window, [later.id])
    qtbot.waitUntil(lambda: cell(workspace, later.id, STATUS_COLUMN) == "queued")
    select_batches(window, [later.id])
    assert actions.pause.isEnabled()
    assert not actions.resume.isEnabled()
    actions.pause.trigger()
    qtbot.waitUntil(lambda: cell(workspace, later.id, STATUS_COLUMN) == "paused", timeout=WAIT_MS)
    assert window.status.currentMessage().startswith(f"Paused {later.base_directory_name}: 1 ")
    qtbot.waitUntil(lambda: actions.resume.isEnabled() and not actions.pause.isEnabled())
    # Nothing of it is claimed while paused: the other batch's last job is all there is.
    other = job_queue.claim(database, "render-node:1:abc")
    assert other is not None
    assert other.batch_id == waiting.id
    assert job_queue.claim(database, "render-node:1:abc") is None

    workspace.filters.status_buttons[BatchStatus.PAUSED].click()
    wait_loaded(qtbot, workspace, 1)
    assert list(shown(workspace)) == ["BB_DONE"]
    workspace.filters.clear()
    wait_loaded(qtbot, workspace, 2)

    select_batches(window, [later.id])
    actions.resume.trigger()
    qtbot.waitUntil(lambda: cell(workspace, later.id, STATUS_COLUMN) == "queued", timeout=WAIT_MS)
    assert "1 queued job may run" in window.status.currentMessage()


def test_run_again_queues_the_selected_finished_jobs_and_refuses_a_running_one(
    qtbot: QtBot,
    opened: tuple[MainWindow, Workspace],
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, workspace = opened
    batch = make_batch(database, tmp_path / "a", count=3, prefix="AA_JOBS").batches[0]
    for outcome in ("failed", "completed"):
        claimed = job_queue.claim(database, "render-node:1:abc")
        assert claimed is not None
        if outcome == "failed":
            job_queue.fail(database, claimed, "Step 1 (fit) failed.", retryable=False)
        else:
            job_queue.complete(database, claimed, [])
    running = job_queue.claim(database, "render-node:1:abc")
    assert running is not None
    window.refresh()
    wait_loaded(qtbot, workspace, 1)
    indexes = job_indexes(qtbot, workspace, batch.id)
    qtbot.waitUntil(
        lambda: (
            [job_of(workspace, i).status for i in indexes] == ["failed", "completed", "processing"]
        ),
        timeout=WAIT_MS,
    )
    actions = window.window_actions
    selection = workspace.tree.selectionModel()
    flags = selection.SelectionFlag
    selection.setCurrentIndex(indexes[2], flags.ClearAndSelect | flags.Rows)
    assert not actions.run_again.isEnabled()  # a running job cannot run again

    # The running job is left as it is and says why; the two finished ones go back.
    selection.select(indexes[0], flags.Select | flags.Rows)
    selection.select(indexes[1], flags.Select | flags.Rows)
    assert actions.run_again.isEnabled()
    actions.run_again.trigger()
    qtbot.waitUntil(
        lambda: (
            [job_of(workspace, i).status for i in indexes] == ["queued", "queued", "processing"]
        ),
        timeout=WAIT_MS,
    )
    message = window.status.currentMessage()
    assert message.startswith("Queued 2 jobs again"), message
    assert "is running: only a finished job can run again" in message

    # A row that is out of date (its job started meanwhile) is refused by the database.
    problems: list[str] = []

    def warn(_parent: object, _title: str, text: str, *_args: object) -> object:
        problems.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", warn)
    stale = job_of(workspace, indexes[2])
    workspace.farm.run_again([replace(stale, status="failed")])
    qtbot.waitUntil(lambda: bool(problems), timeout=WAIT_MS)
    assert problems == [
        f"{stale.file_name} of {batch.base_directory_name} is running: only a finished job "
        "(failed, completed or cancelled) can be queued again."
    ]


def test_a_change_made_elsewhere_shows_in_every_open_window(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database_conninfo: str,
    database: Database,
) -> None:
    batch = make_batch(database, tmp_path / "a", count=1, prefix="AA_LIVE").batches[0]
    windows = [
        open_window(qtbot, tasks, tmp_path / name, database_conninfo) for name in ("one", "two")
    ]
    try:
        spaces = []
        for window, _session in windows:
            qtbot.waitUntil(lambda w=window: w.workspace is not None, timeout=WAIT_MS)
            assert window.workspace is not None
            spaces.append(window.workspace)
            wait_loaded(qtbot, window.workspace, 1)
        # Another workstation (its own connection) steers the batch, as `batchdesk` does.
        farm_controls.set_priority(database, [batch.id], 95)
        farm_controls.pause(database, [batch.id])
        for workspace in spaces:
            qtbot.waitUntil(
                lambda w=workspace: (
                    (
                        cell(w, batch.id, PRIORITY_COLUMN),
                        cell(w, batch.id, STATUS_COLUMN),
                    )
                    == ("95", "paused")
                ),
                timeout=WAIT_MS,
            )
        # The first window resumes it: the second sees it.
        select_batches(windows[0][0], [batch.id])
        windows[0][0].window_actions.resume.trigger()
        qtbot.waitUntil(
            lambda: cell(spaces[1], batch.id, STATUS_COLUMN) == "queued", timeout=WAIT_MS
        )
    finally:
        for window, session in windows:
            close(window, session)


def test_a_jobs_attempts_are_listed_with_each_attempts_error_and_log(
    qtbot: QtBot,
    opened: tuple[MainWindow, Workspace],
    database: Database,
    database_conninfo: str,
    tmp_path: Path,
) -> None:
    window, workspace = opened
    batch = make_batch(database, tmp_path / "a", count=1, prefix="AA_HIST").batches[0]
    worker_liveness.register_worker(database, "render-07:4242:a1b2c3", 1)
    first = job_queue.claim(database, "render-07:4242:a1b2c3")
    assert first is not None
    job_queue.fail(
        database, first, "The disk is full.", retryable=True, log="convert: no space left"
    )
    with psycopg.connect(database_conninfo) as connection:  # the back-off, skipped
        connection.execute("UPDATE jobs SET run_after = now()")
    second = job_queue.claim(database, "render-07:4242:a1b2c3")
    assert second is not None
    job_queue.fail(database, second, "Step 1 (fit) failed.", retryable=False)
    window.refresh()
    wait_loaded(qtbot, workspace, 1)
    [index] = job_indexes(qtbot, workspace, batch.id)
    qtbot.waitUntil(lambda: job_of(workspace, index).status == "failed", timeout=WAIT_MS)

    selection = workspace.tree.selectionModel()
    flags = selection.SelectionFlag
    selection.setCurrentIndex(index, flags.ClearAndSelect | flags.Rows)
    history = workspace.preview.history
    qtbot.waitUntil(lambda: len(history.attempts) == 2, timeout=WAIT_MS)
    assert history.title.text().startswith("Attempts (2): the last failed on render-07 after ")
    assert history.list.isHidden()  # folded: the images keep their room
    history.title.click()
    assert history.list.isVisible()
    rows = [
        [history.list.topLevelItem(row).text(column) for column in (0, 1, 2, 6)]  # type: ignore[union-attr]
        for row in range(history.list.topLevelItemCount())
    ]
    assert rows == [
        ["1", "failed", "render-07", "The disk is full."],
        ["2", "failed", "render-07", "Step 1 (fit) failed."],
    ]
    # The last attempt is chosen; choosing the first shows its error and the tool's log.
    assert "Attempt 2: failed" in history.details.toPlainText()
    assert "No log" in history.details.toPlainText()
    history.list.setCurrentItem(history.list.topLevelItem(0))
    text = history.details.toPlainText()
    assert "Worker: render-07:4242:a1b2c3" in text
    assert "Error: The disk is full." in text
    assert "Log:\nconvert: no space left" in text

    # Run again: the history stays, and the next attempt is numbered 3.
    window.window_actions.run_again.trigger()
    qtbot.waitUntil(lambda: job_of(workspace, index).status == "queued", timeout=WAIT_MS)
    third = job_queue.claim(database, "render-07:4242:a1b2c3")
    assert third is not None
    qtbot.waitUntil(lambda: len(history.attempts) == 3, timeout=WAIT_MS)
    assert history.attempts[-1].outcome == "running"
    assert history.list.topLevelItem(2).text(5).endswith("so far")  # type: ignore[union-attr]
    assert job_queue.complete(database, third, [])
