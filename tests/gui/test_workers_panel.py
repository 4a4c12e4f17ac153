"""The Workers panel on a real database: the facts of `batchdesk workers`, live, and pause and
resume for the selected workers, obeyed by the worker at its heartbeat."""

import socket
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from batchdesk.storage import job_queue, worker_liveness, workers
from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.gui.windows import open_window

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.workers_panel import (
    HEADERS,
    HEARD_COLUMN,
    STATE_COLUMN,
    WorkersPanel,
)

pytestmark = pytest.mark.slow
WAIT_MS = 30_000
NODE = "render-07:4242:a1b2c3"
WORKSTATION = "anna-ws:777:d4e5f6"


def texts(panel: WorkersPanel) -> dict[str, dict[str, str]]:
    """Each row's cells by header, by worker id."""
    found = {}
    for row in range(panel.list.topLevelItemCount()):
        item = panel.list.topLevelItem(row)
        assert item is not None
        found[item.text(0)] = {name: item.text(c) for c, name in enumerate(HEADERS)}
    return found


def shown_panel(qtbot: QtBot, window: MainWindow) -> WorkersPanel:
    qtbot.waitUntil(lambda: window.workers_panel is not None, timeout=WAIT_MS)
    panel = window.workers_panel
    assert panel is not None
    assert panel.isHidden()  # until chosen in the View menu
    toggle = panel.toggleViewAction()
    [view] = [a.menu() for a in window.menuBar().actions() if a.text() == "&View"]
    assert toggle in view.actions()  # type: ignore[union-attr]
    toggle.trigger()
    qtbot.waitUntil(panel.isVisible, timeout=WAIT_MS)
    return panel


def select(panel: WorkersPanel, worker_id: str) -> None:
    panel.list.clearSelection()
    for row in range(panel.list.topLevelItemCount()):
        item = panel.list.topLevelItem(row)
        if item is not None and item.text(0) == worker_id:
            item.setSelected(True)


def test_the_panel_lists_every_live_worker_with_what_it_runs_and_has_done(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database_conninfo: str,
    database: Database,
) -> None:
    batch = make_batch(database, tmp_path / "a", count=3, prefix="WK_PANEL").batches[0]
    worker_liveness.register_worker(database, NODE, 4)
    worker_liveness.register_worker(database, WORKSTATION, 2, kind="window")
    done = job_queue.claim(database, NODE)
    assert done is not None
    assert job_queue.complete(database, done, [])
    running = job_queue.claim(database, NODE)
    assert running is not None
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        panel = shown_panel(qtbot, window)
        qtbot.waitUntil(lambda: len(texts(panel)) == 2, timeout=WAIT_MS)
        node = texts(panel)[NODE]
        assert node["Host"] == socket.gethostname()
        assert (node["Kind"], node["Threads"], node["State"]) == ("headless", "4", "running")
        assert node["Running now"] == f"{batch.base_directory_name} / {running.file_name}"
        assert (node["Today"], node["Week"]) == ("1", "1")
        assert node["Heard"].endswith("s ago")
        desk = texts(panel)[WORKSTATION]
        assert (desk["Kind"], desk["Running now"], desk["Today"]) == ("window", "", "0")

        # A job finishing elsewhere is announced: the panel reads again by itself.
        panel.read_timer.stop()
        assert job_queue.complete(database, running, [])
        qtbot.waitUntil(lambda: texts(panel)[NODE]["Today"] == "2", timeout=WAIT_MS)
        assert texts(panel)[NODE]["Running now"] == ""
        # Between reads, "heard" counts on by itself.
        before = texts(panel)[NODE]["Heard"]
        qtbot.waitUntil(lambda: texts(panel)[NODE]["Heard"] != before, timeout=WAIT_MS)

        # Hidden, it reads nothing; shown again, it reads at once.
        panel.toggleViewAction().trigger()
        assert not panel.read_timer.isActive()
        worker_liveness.unregister_worker(database, WORKSTATION)
        panel.toggleViewAction().trigger()
        qtbot.waitUntil(lambda: list(texts(panel)) == [NODE], timeout=WAIT_MS)
    finally:
        window.close()
        session.close()


def test_pause_and_resume_reach_the_worker_and_show_what_it_obeys(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database_conninfo: str,
    database: Database,
) -> None:
    make_batch(database, tmp_path / "a", count=2, prefix="WK_STEER")
    worker_liveness.register_worker(database, NODE, 1)
    worker_liveness.register_worker(database, WORKSTATION, 1, kind="window")
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        panel = shown_panel(qtbot, window)
        qtbot.waitUntil(lambda: len(texts(panel)) == 2, timeout=WAIT_MS)
        panel.read_timer.stop()  # what follows comes by the database's announcements
        assert not panel.pause_action.isEnabled()  # nothing selected

        select(panel, NODE)
        assert panel.pause_action.isEnabled()
        assert not panel.resume_action.isEnabled()
        panel.pause_action.trigger()
        qtbot.waitUntil(
            lambda: texts(panel)[NODE]["State"] == "running, paused asked", timeout=WAIT_MS
        )
        assert window.status.currentMessage() == (
            f"Asked {NODE} to pause: running jobs finish, and no new one starts."
        )
        assert job_queue.claim(database, NODE) is None  # it claims nothing from now on
        # The worker's heartbeat: it obeys, and says so.
        assert worker_liveness.heartbeat(database, NODE).desired_state == "paused"
        qtbot.waitUntil(lambda: texts(panel)[NODE]["State"] == "paused", timeout=WAIT_MS)
        item = panel.list.topLevelItem(0)
        assert item is not None
        assert item.isSelected()  # the selection survives the reads
        assert panel.resume_action.isEnabled()

        # Another workstation (`batchdesk workers pause`) pauses the other: it shows here.
        workers.set_desired_state(database, WORKSTATION, "paused")
        qtbot.waitUntil(
            lambda: texts(panel)[WORKSTATION]["State"] == "running, paused asked",
            timeout=WAIT_MS,
        )

        select(panel, NODE)
        panel.resume_action.trigger()
        qtbot.waitUntil(
            lambda: texts(panel)[NODE]["State"] == "paused, running asked", timeout=WAIT_MS
        )
        worker_liveness.heartbeat(database, NODE)
        qtbot.waitUntil(lambda: texts(panel)[NODE]["State"] == "running", timeout=WAIT_MS)
        assert job_queue.claim(database, NODE) is not None
        assert texts(panel)[NODE][HEADERS[STATE_COLUMN]] == "running"
        assert texts(panel)[NODE][HEADERS[HEARD_COLUMN]].endswith("s ago")
    finally:
        window.close()
        session.close()
