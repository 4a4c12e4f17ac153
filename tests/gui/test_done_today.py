"""The status bar's "N done here today": this computer's completions, read from the database."""

import subprocess
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QSettings

from batchdesk.settings import AppPaths, Settings
from batchdesk.storage import job_queue
from batchdesk.storage.database import Database
from tests.e2e.processes import environment_for
from tests.factories import make_batch

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession

pytestmark = pytest.mark.slow

WORKER = ("worker", "--drain", "--threads", "1")


def open_window(
    qtbot: QtBot, tasks: BackgroundTasks, home: Path, url: str
) -> tuple[MainWindow, DatabaseSession]:
    environ = {"BATCHDESK_HOME": str(home)}
    session = DatabaseSession(tasks, url, environ=environ)
    state = QSettings(str(home / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        session,
        tasks,
        AppPaths.from_environment(environ),
        Settings(run_jobs=False),
        window_state=state,
    )
    qtbot.addWidget(window)
    window.show()
    session.open()
    return window, session


def test_a_headless_worker_here_counts_another_computer_does_not_and_reopening_keeps_it(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database: Database,
    database_conninfo: str,
) -> None:
    make_batch(database, tmp_path / "renders", count=3)
    elsewhere = job_queue.claim(database, "render-node-7:4242:abcdef")  # another computer
    assert elsewhere is not None
    assert job_queue.complete(database, elsewhere, [])
    window, session = open_window(qtbot, tasks, tmp_path / "home", database_conninfo)
    try:
        qtbot.waitUntil(
            lambda: window.status.workers_text == "Jobs: off in this window · 0 done here today",
            timeout=30_000,
        )

        # A render node's worker on this computer, a real process, runs the other two jobs.
        node = subprocess.run(
            [sys.executable, "-m", "batchdesk", "--database-url", database_conninfo, *WORKER],
            env=environment_for(tmp_path / "node"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert node.returncode == 0, node.stderr
        # The window hears of it live, without being reopened.
        qtbot.waitUntil(lambda: "· 2 done here today" in window.status.workers_text, timeout=30_000)
    finally:
        window.close()
        session.close()

    again, again_session = open_window(qtbot, tasks, tmp_path / "home", database_conninfo)
    try:
        qtbot.waitUntil(lambda: "· 2 done here today" in again.status.workers_text, timeout=30_000)
    finally:
        again.close()
        again_session.close()
