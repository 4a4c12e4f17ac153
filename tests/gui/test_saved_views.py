"""Saved views in the filter bar, on a real database: "Mine" and "Failed today" out of the box,
the user's own kept in window.ini across restarts, and deleted again."""

from pathlib import Path

import psycopg
import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QInputDialog, QMenu

from batchdesk.domain.batch_query import SortOrder
from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage import job_queue
from batchdesk.storage.database import Database
from batchdesk.storage.submission import current_user
from tests.factories import make_batch
from tests.gui.test_batch_tree_model import elsewhere
from tests.gui.windows import connected_workspace, open_window

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_items import PRIORITY_COLUMN
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.saved_views import VIEWS_KEY, SavedView, load_views
from batchdesk.gui.workspace import Workspace

pytestmark = pytest.mark.slow
WAIT_MS = 30_000


def shown(workspace: Workspace) -> list[str]:
    model = workspace.model
    rows = [model.batch_at(model.index(row, 0)) for row in range(model.rowCount())]
    return sorted(row.customer_prefix for row in rows if row is not None)


def wait_shown(qtbot: QtBot, workspace: Workspace, prefixes: list[str]) -> None:
    model = workspace.model
    qtbot.waitUntil(
        lambda: not model.is_loading and shown(workspace) == sorted(prefixes), timeout=WAIT_MS
    )


def menu_items(menu: QMenu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator() and a.menu() is None]


def choose(workspace: Workspace, name: str) -> None:
    """Choose a view in the Views button's menu, as a click there does."""
    [item] = [a for a in workspace.views.menu.actions() if a.text() == name]
    item.trigger()


def answer_name_dialog(text: str) -> None:
    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QInputDialog):
            QTimer.singleShot(20, answer)
            return
        dialog.setTextValue(text)
        dialog.accept()

    QTimer.singleShot(0, answer)


def opened(
    qtbot: QtBot, tasks: BackgroundTasks, tmp_path: Path, conninfo: str
) -> tuple[MainWindow, Workspace, object]:
    window, session = open_window(qtbot, tasks, tmp_path, conninfo)
    return window, connected_workspace(qtbot, window), session


def test_mine_and_failed_today_come_with_batchdesk(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database_conninfo: str,
    database: Database,
) -> None:
    make_batch(database, tmp_path / "a", count=1, prefix="AA_THEIRS")
    mine = make_batch(database, tmp_path / "b", count=1, prefix="BB_MINE").batches[0]
    elsewhere(
        database_conninfo,
        "UPDATE batches SET created_by = %s WHERE id = %s",
        (current_user(), mine.id),
    )
    make_batch(database, tmp_path / "c", count=1, prefix="CC_FAIL")
    old = make_batch(database, tmp_path / "d", count=1, prefix="DD_OLDFAIL").batches[0]
    long_ago = make_batch(database, tmp_path / "e", count=1, prefix="EE_FAILEDBEFORE").batches[0]
    for _ in range(5):
        claimed = job_queue.claim(database, "render-node:1:abc")
        assert claimed is not None
        if "FAIL" in claimed.base_directory_name:
            job_queue.fail(database, claimed, "Step 1 (fit) failed.", retryable=False)
        else:
            assert job_queue.complete(database, claimed, [])
    elsewhere(  # submitted two days ago, failed today
        database_conninfo,
        "UPDATE batches SET created_at = now() - interval '2 days' WHERE id = %s",
        (old.id,),
    )
    with psycopg.connect(database_conninfo) as conn:  # failed two days ago: the triggers
        conn.execute("SET session_replication_role = replica")  # stamp now(), so bypass them
        conn.execute(
            "UPDATE batches SET finished_at = now() - interval '2 days' WHERE id = %s",
            (long_ago.id,),
        )
    window, workspace, session = opened(qtbot, tasks, tmp_path, database_conninfo)
    try:
        wait_shown(
            qtbot, workspace, ["AA_THEIRS", "BB_MINE", "CC_FAIL", "DD_OLDFAIL", "EE_FAILEDBEFORE"]
        )
        assert menu_items(workspace.views.menu)[:2] == ["Mine", "Failed today"]

        choose(workspace, "Mine")
        wait_shown(qtbot, workspace, ["BB_MINE"])
        assert workspace.filters.creator_combo.currentData() == current_user()
        assert window.status.currentMessage() == "Showing the view 'Mine'."

        choose(workspace, "Failed today")
        wait_shown(qtbot, workspace, ["CC_FAIL", "DD_OLDFAIL"])  # failed today, whenever made
        assert workspace.filters.status_buttons[BatchStatus.FAILED].isChecked()
        assert workspace.filters.period_combo.currentText() == "Finished today"
        assert workspace.filters.creator_combo.currentData() is None  # a view sets every filter
    finally:
        window.close()
        session.close()  # type: ignore[attr-defined]


def test_a_saved_view_keeps_filters_and_sort_across_restarts_until_deleted(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database_conninfo: str,
    database: Database,
) -> None:
    low = make_batch(database, tmp_path / "a", count=1, prefix="AA_LOW").batches[0]
    make_batch(database, tmp_path / "b", count=1, prefix="BB_HIGH")
    make_batch(database, tmp_path / "c", count=1, prefix="CC_OTHER")
    elsewhere(database_conninfo, "UPDATE batches SET priority = 10 WHERE id = %s", (low.id,))
    elsewhere(
        database_conninfo,
        "UPDATE batches SET created_by = 'ops@farm' WHERE customer_prefix = 'CC_OTHER'",
    )
    window, workspace, session = opened(qtbot, tasks, tmp_path, database_conninfo)
    try:
        wait_shown(qtbot, workspace, ["AA_LOW", "BB_HIGH", "CC_OTHER"])
        creators = workspace.filters.creator_combo
        qtbot.waitUntil(lambda: creators.count() == 3, timeout=WAIT_MS)
        creators.setCurrentIndex(creators.findData("tester@test"))
        workspace.tree.sortByColumn(PRIORITY_COLUMN, Qt.SortOrder.DescendingOrder)
        wait_shown(qtbot, workspace, ["AA_LOW", "BB_HIGH"])

        answer_name_dialog("  Testers,  by priority ")
        [save] = [a for a in workspace.views.menu.actions() if a.text() == "Save Current View..."]
        save.trigger()
        qtbot.waitUntil(
            lambda: window.status.currentMessage() == "Saved the view 'Testers, by priority'.",
            timeout=WAIT_MS,
        )
        assert "Testers, by priority" in menu_items(workspace.views.menu)

        # Built-in names and empty names are refused with a sentence; nothing is saved.
        workspace.views.save_as("Mine")
        assert (
            window.status.currentMessage()
            == "'Mine' is a view batchdesk keeps: choose another name."
        )
        workspace.views.save_as("   ")
        assert window.status.currentMessage() == "A view needs a name: nothing saved."

        workspace.filters.clear()
        workspace.tree.sortByColumn(PRIORITY_COLUMN, Qt.SortOrder.AscendingOrder)
        wait_shown(qtbot, workspace, ["AA_LOW", "BB_HIGH", "CC_OTHER"])
    finally:
        window.close()
        session.close()  # type: ignore[attr-defined]

    state = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    [kept] = load_views(state)
    assert kept == SavedView(
        "Testers, by priority", created_by="tester@test", sort_by="priority", order="desc"
    )

    # Next time the view is there: choosing it brings back the filter and the sort.
    window, workspace, session = opened(qtbot, tasks, tmp_path, database_conninfo)
    try:
        wait_shown(qtbot, workspace, ["AA_LOW", "BB_HIGH", "CC_OTHER"])
        choose(workspace, "Testers, by priority")
        wait_shown(qtbot, workspace, ["AA_LOW", "BB_HIGH"])
        assert (workspace.model.query.sort_by, workspace.model.query.order) == (
            "priority",
            SortOrder.DESC,
        )
        first = workspace.model.batch_at(workspace.model.index(0, 0))
        assert first is not None
        assert first.customer_prefix == "BB_HIGH"

        [deleting] = [a.menu() for a in workspace.views.menu.actions() if a.menu() is not None]
        assert deleting is not None
        [item] = deleting.actions()
        item.trigger()
        assert "Testers, by priority" not in menu_items(workspace.views.menu)
        assert not workspace.views.menu.actions()[-1].isEnabled()  # nothing left to delete
        assert window.status.currentMessage() == "Deleted the view 'Testers, by priority'."
    finally:
        window.close()
        session.close()  # type: ignore[attr-defined]
    assert load_views(QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)) == []


def test_a_damaged_views_entry_is_skipped_not_fatal(tmp_path: Path) -> None:
    state = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    state.setValue(VIEWS_KEY, "{not json")
    assert load_views(state) == []
    state.setValue(
        VIEWS_KEY,
        '[{"name": "ok", "statuses": ["failed", "bogus"], "sort_by": "1; DROP TABLE jobs"},'
        ' {"no name": 1}, 7, {"name": "typo", "colour": "red"}]',
    )
    assert load_views(state) == [SavedView("ok", statuses=("failed",)), SavedView("typo")]
