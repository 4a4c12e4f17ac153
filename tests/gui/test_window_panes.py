"""The window's side panes on a real database: the submit panel's width is kept across starts."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.gui.test_main_window import open_window

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession
from batchdesk.gui.workspace import SUBMIT_WIDTH, Workspace

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
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=30_000)
    assert window.workspace is not None
    return window, window.workspace


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
