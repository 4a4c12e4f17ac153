"""Opening the real main window in a test: on a database URL, with its own home and window.ini."""

from pathlib import Path

from pytestqt.qtbot import QtBot

from PySide6.QtCore import QSettings

from batchdesk.settings import AppPaths, Settings

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession
from batchdesk.gui.workspace import Workspace

CONNECT_MS = 30_000


def open_window(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    folder: Path,
    url: str,
    *,
    settings: Settings | None = None,
    run_jobs: bool = False,
) -> tuple[MainWindow, DatabaseSession]:
    """Show the window on `url` with `folder/home` as BATCHDESK_HOME and `folder/window.ini`.

    Opening again with the same folder is the same user starting the app again. The caller
    closes the window and the session.
    """
    environ = {"BATCHDESK_HOME": str(folder / "home")}
    session = DatabaseSession(tasks, url, environ=environ)
    state = QSettings(str(folder / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        session,
        tasks,
        AppPaths.from_environment(environ),
        settings or Settings(run_jobs=run_jobs),
        window_state=state,
    )
    qtbot.addWidget(window)
    window.show()
    session.open()
    return window, session


def connected_workspace(qtbot: QtBot, window: MainWindow) -> Workspace:
    """Wait until the window has connected and shows its workspace; return it."""
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=CONNECT_MS)
    assert window.workspace is not None
    return window.workspace
