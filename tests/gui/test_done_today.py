"""The status bar's "N done here today": this computer's completions, read from the database."""

import subprocess
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from batchdesk.storage import job_queue
from batchdesk.storage.database import Database
from tests.e2e.processes import environment_for
from tests.factories import make_batch
from tests.gui.windows import open_window

from batchdesk.gui.background import BackgroundTasks

pytestmark = pytest.mark.slow

WORKER = ("worker", "--drain", "--threads", "1")


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
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
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

    again, again_session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        qtbot.waitUntil(lambda: "· 2 done here today" in again.status.workers_text, timeout=30_000)
    finally:
        again.close()
        again_session.close()
