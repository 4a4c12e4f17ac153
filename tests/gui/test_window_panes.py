"""The window's side panes on a real database: widths kept, a preview that follows the selection
(and folds away without one), and the image viewer opened from a job row."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QModelIndex, QPoint, Qt

from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.gui.windows import connected_workspace, open_window
from tests.integration.jobs_support import run_all_jobs

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession
from batchdesk.gui.workspace import PREVIEW_WIDTH, SUBMIT_WIDTH, Workspace

pytestmark = pytest.mark.slow

Opened = list[tuple[MainWindow, DatabaseSession]]


@pytest.fixture
def opened() -> Iterator[Opened]:
    """The windows a test opens, closed at its end."""
    windows: Opened = []
    yield windows
    for window, session in windows:
        window.close()
        session.close()


def connected(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, url: str, opened: Opened
) -> tuple[MainWindow, Workspace]:
    """Open the window on `url` at its first-start size and wait for its workspace."""
    window, session = open_window(qtbot, tasks, tmp_path, url)
    opened.append((window, session))
    window.resize(1460, 900)
    return window, connected_workspace(qtbot, window)


def test_the_submit_panel_keeps_the_width_it_was_given_across_restarts(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str, opened: Opened
) -> None:
    window, workspace = connected(qtbot, tasks, tmp_path, database_conninfo, opened)
    qtbot.waitUntil(lambda: workspace.submit.width() > 0)
    assert workspace.splitter.sizes()[0] == SUBMIT_WIDTH
    sizes = workspace.splitter.sizes()
    workspace.splitter.setSizes([420, sizes[1] + sizes[0] - 420, sizes[2]])
    assert workspace.splitter.sizes()[0] == 420
    window.close()  # saves the layout, as quitting does

    _again, restarted = connected(qtbot, tasks, tmp_path, database_conninfo, opened)

    qtbot.waitUntil(lambda: restarted.splitter.sizes()[0] == 420, timeout=10_000)


def shown_jobs(
    qtbot: QtBot, workspace: Workspace, database: Database, tmp_path: Path
) -> QModelIndex:
    """Make a finished batch of two jobs, wait for it in the tree, expand it; its index."""
    make_batch(database, tmp_path / "renders", count=2)
    run_all_jobs(database)
    workspace.refresh()
    model, tree = workspace.model, workspace.tree
    qtbot.waitUntil(lambda: model.rowCount() == 1 and not model.is_loading, timeout=30_000)
    batch = model.index(0, 0)
    tree.expand(batch)
    qtbot.waitUntil(lambda: model.rowCount(batch) == 2, timeout=30_000)
    qtbot.waitUntil(lambda: tree.visualRect(model.index(1, 0, batch)).isValid())
    return batch


def click(qtbot: QtBot, workspace: Workspace, index: QModelIndex) -> None:
    tree = workspace.tree
    qtbot.mouseClick(
        tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualRect(index).center()
    )


def test_clicking_empty_space_in_the_tree_clears_the_preview(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database: Database,
    database_conninfo: str,
    opened: Opened,
) -> None:
    window, workspace = connected(qtbot, tasks, tmp_path, database_conninfo, opened)
    batch = shown_jobs(qtbot, workspace, database, tmp_path)
    job = workspace.model.index(0, 0, batch)
    with qtbot.waitSignal(workspace.preview.job_shown, timeout=30_000):
        click(qtbot, workspace, job)
    assert workspace.preview.shown_job == workspace.model.job_at(job)
    assert window.window_actions.view_job.isEnabled()

    below_the_rows = QPoint(40, workspace.tree.viewport().height() - 10)
    qtbot.mouseClick(workspace.tree.viewport(), Qt.MouseButton.LeftButton, pos=below_the_rows)

    assert workspace.tree.selectionModel().selectedRows() == []
    assert not workspace.preview.has_content
    assert workspace.preview.shown_job is None
    assert not window.window_actions.view_job.isEnabled()
    assert not window.window_actions.save_job.isEnabled()


def test_the_preview_folds_away_with_nothing_to_show_and_opens_for_a_selection(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database: Database,
    database_conninfo: str,
    opened: Opened,
) -> None:
    _window, workspace = connected(qtbot, tasks, tmp_path, database_conninfo, opened)
    batch = shown_jobs(qtbot, workspace, database, tmp_path)
    splitter = workspace.splitter
    qtbot.waitUntil(lambda: splitter.sizes()[2] == 0)  # nothing selected: the tree has it all
    tree_alone = splitter.sizes()[1]

    click(qtbot, workspace, workspace.model.index(0, 0, batch))

    qtbot.waitUntil(lambda: splitter.sizes()[2] == PREVIEW_WIDTH)
    assert splitter.sizes()[1] == tree_alone - PREVIEW_WIDTH
    workspace.tree.clearSelection()
    qtbot.waitUntil(lambda: splitter.sizes()[2] == 0)
    assert splitter.sizes()[1] == tree_alone


def test_space_or_view_job_on_a_job_row_opens_the_viewer(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database: Database,
    database_conninfo: str,
    opened: Opened,
) -> None:
    window, workspace = connected(qtbot, tasks, tmp_path, database_conninfo, opened)
    batch = shown_jobs(qtbot, workspace, database, tmp_path)
    click(qtbot, workspace, batch)
    assert not window.window_actions.view_job.isEnabled()  # a batch row: no job to view
    second = workspace.model.index(1, 0, batch)
    click(qtbot, workspace, second)
    workspace.tree.setFocus()

    qtbot.keyClick(workspace.tree, Qt.Key.Key_Space)

    viewer = workspace.viewer.viewer
    assert viewer is not None
    qtbot.waitUntil(viewer.isVisible)
    assert viewer.job == workspace.model.job_at(second)
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert not viewer.isVisible()
    workspace.preview.view_button.click()
    assert viewer.isVisible()
    window.close()  # the viewer goes with the window
    assert not viewer.isVisible()
