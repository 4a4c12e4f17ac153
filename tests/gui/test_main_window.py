"""The whole window on a real database: it opens whatever the database does, and the parts
work together: a drop becomes a batch in the tree, another workstation's change shows, the
window's own workers run what is queued, delete asks first."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtWidgets import QMessageBox

from batchdesk.storage.database import Database
from tests.e2e.processes import environment_for
from tests.factories import make_batch, make_png
from tests.gui.windows import connected_workspace, open_window

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession

pytestmark = pytest.mark.slow


def submit_png(qtbot: QtBot, window: MainWindow, png: Path, batches_shown: int) -> None:
    """Add one PNG as an artist would, submit it, and wait until the tree shows its batch."""
    workspace = window.workspace
    assert workspace is not None
    window.add_paths([make_png(png)])
    qtbot.waitUntil(lambda: workspace.submit.submit_button.isEnabled(), timeout=30_000)
    workspace.submit.submit_button.click()
    qtbot.waitUntil(lambda: not workspace.submit.busy, timeout=30_000)
    qtbot.waitUntil(lambda: workspace.model.rowCount() == batches_shown, timeout=30_000)


@pytest.fixture
def closing() -> Iterator[list[tuple[MainWindow, DatabaseSession]]]:
    opened: list[tuple[MainWindow, DatabaseSession]] = []
    yield opened
    for window, session in opened:
        window.close()
        session.close()


def test_an_unreachable_database_is_said_and_retried_without_a_crash(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, closing: list
) -> None:
    window, session = open_window(qtbot, tasks, tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    closing.append((window, session))

    qtbot.waitUntil(lambda: "cannot be reached" in window.waiting.text(), timeout=30_000)
    assert "Trying again every 5 s" in window.waiting.text()
    assert "unreachable" in window.status.connection_text
    assert window.workspace is None
    assert not window.window_actions.add_files.isEnabled()
    # A first start never opens wider or taller than the screen (a laptop's, here 800 x 600).
    room = window.screen().availableGeometry()
    assert window.width() <= room.width()
    assert window.height() <= room.height()


def test_a_dropped_file_becomes_a_batch_in_the_tree(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str, closing: list
) -> None:
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    closing.append((window, session))
    workspace = connected_workspace(qtbot, window)

    window.add_paths([make_png(tmp_path / "in" / "PL_DXB191_front.png", (40, 30))])
    qtbot.waitUntil(lambda: workspace.submit.submit_button.isEnabled(), timeout=30_000)
    # The name preview is read in the background and may come after the button is enabled.
    qtbot.waitUntil(lambda: len(workspace.submit.batch_names) == 1, timeout=30_000)
    [name] = workspace.submit.batch_names
    workspace.submit.submit_button.click()

    def shown() -> list[str]:
        model = workspace.model
        rows = [model.batch_at(model.index(row, 0)) for row in range(model.rowCount())]
        return [row.base_directory_name for row in rows if row is not None]

    qtbot.waitUntil(lambda: shown() == [name], timeout=30_000)
    assert name.startswith("PL_DXB_")
    assert "connected" in window.status.connection_text.lower()


def test_a_change_made_by_another_workstation_appears(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str, closing: list
) -> None:
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    closing.append((window, session))
    workspace = connected_workspace(qtbot, window)
    submit_png(qtbot, window, tmp_path / "in" / "QX_ABC1_a.png", batches_shown=1)
    workspace.tree.expand(workspace.model.index(0, 0))
    qtbot.waitUntil(lambda: workspace.model.rowCount(workspace.model.index(0, 0)) == 1)

    # Another workstation, a real process: a render node runs the job (this window runs none).
    worker = ("worker", "--drain", "--threads", "1")
    node = subprocess.run(
        [sys.executable, "-m", "batchdesk", "--database-url", database_conninfo, *worker],
        env=environment_for(tmp_path / "node"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert node.returncode == 0, node.stderr

    def statuses() -> tuple[str | None, str | None]:
        batch_index = workspace.model.index(0, 0)
        batch = workspace.model.batch_at(batch_index)
        job = workspace.model.job_at(workspace.model.index(0, 0, batch_index))
        return (batch.status if batch else None, job.status if job else None)

    qtbot.waitUntil(lambda: statuses() == ("completed", "completed"), timeout=30_000)
    qtbot.waitUntil(lambda: workspace.stats.figure_text("completed") == "1", timeout=30_000)


def test_a_window_that_runs_jobs_processes_the_queued_batch_it_shows(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database: Database,
    database_conninfo: str,
    closing: list,
) -> None:
    queued = make_batch(database, tmp_path / "renders", count=2).batches[0]
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo, run_jobs=True)
    closing.append((window, session))
    workspace = connected_workspace(qtbot, window)

    def shown_status() -> str | None:
        batch = workspace.model.batch_at(workspace.model.index(0, 0))
        return batch.status if batch and batch.id == queued.id else None

    qtbot.waitUntil(lambda: shown_status() == "completed", timeout=60_000)
    assert workspace.runner.enabled
    # The status bar's count is read from the database a moment after the changes.
    qtbot.waitUntil(lambda: "2 done here today" in window.status.workers_text, timeout=30_000)
    workspace.shut_down()


def test_delete_asks_first_naming_the_batch(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database_conninfo: str,
    closing: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    closing.append((window, session))
    workspace = connected_workspace(qtbot, window)
    submit_png(qtbot, window, tmp_path / "in" / "RN_LHR1_a.png", batches_shown=1)
    name = workspace.model.batch_at(workspace.model.index(0, 0)).base_directory_name
    workspace.tree.setCurrentIndex(workspace.model.index(0, 0))
    asked: list[str] = []
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes])

    def answer(_parent: object, _title: str, text: str, *_args: object) -> object:
        asked.append(text)
        return next(answers)

    monkeypatch.setattr(QMessageBox, "warning", answer)

    window.window_actions.delete.trigger()  # answered Cancel
    assert workspace.model.rowCount() == 1
    window.window_actions.delete.trigger()  # answered Yes
    qtbot.waitUntil(lambda: workspace.model.rowCount() == 0, timeout=30_000)

    assert len(asked) == 2
    assert name in asked[0]
    assert "cannot be undone" in asked[0]
    with psycopg.connect(database_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM batches").fetchone() == (0,)


def test_an_empty_database_shows_figures_and_says_how_to_start(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str, closing: list
) -> None:
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    closing.append((window, session))
    workspace = connected_workspace(qtbot, window)

    # The figures are read at once, not only after the first change.
    qtbot.waitUntil(lambda: workspace.stats.figure_text("total_batches") == "0", timeout=30_000)
    qtbot.waitUntil(lambda: "No batches yet" in workspace.tree.empty_text, timeout=30_000)

    submit_png(qtbot, window, tmp_path / "in" / "PL_DXB1_a.png", batches_shown=1)
    assert workspace.tree.empty_text == ""

    workspace.filters.text_field.setText("no such render")
    qtbot.waitUntil(
        lambda: workspace.tree.empty_text == "No batches match these filters.", timeout=30_000
    )


def test_expanded_batches_are_expanded_again_next_time(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, database_conninfo: str, closing: list
) -> None:
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    closing.append((window, session))
    workspace = connected_workspace(qtbot, window)
    for shown, prefix in enumerate(("PL_DXB1", "QX_ABC1", "RN_LHR1"), start=1):
        submit_png(qtbot, window, tmp_path / "in" / prefix / f"{prefix}_a.png", shown)
    middle = workspace.model.index(1, 0)
    expanded_name = workspace.model.batch_at(middle).base_directory_name
    workspace.tree.expand(middle)
    window.close()
    session.close()

    again, again_session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    closing.append((again, again_session))
    qtbot.waitUntil(lambda: again.workspace is not None, timeout=30_000)
    tree, model = again.workspace.tree, again.workspace.model

    def expanded() -> list[str]:
        rows = [model.index(row, 0) for row in range(model.rowCount())]
        return [model.batch_at(i).base_directory_name for i in rows if tree.isExpanded(i)]

    qtbot.waitUntil(lambda: expanded() == [expanded_name], timeout=30_000)
