"""The window for a viewer's database role (README, "Roles on a studio server"): it opens and
shows every batch, runs no jobs, and refuses a submission or a change with a sentence."""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from batchdesk.settings import AppPaths, Settings
from batchdesk.storage import worker_liveness
from batchdesk.storage.database import Database
from tests.database_fixtures import TestServer
from tests.factories import make_batch, make_png
from tests.gui.windows import connected_workspace
from tests.studio_roles import StudioRoles, studio_roles

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession

pytestmark = pytest.mark.slow


@pytest.fixture
def studio(pg_server: TestServer, tmp_path: Path) -> Iterator[StudioRoles]:
    with studio_roles(pg_server.admin_conninfo, tmp_path) as roles:
        yield roles


def batch_names(roles: StudioRoles) -> list[str]:
    with psycopg.connect(roles.conninfo(roles.owner)) as connection:
        rows = connection.execute("SELECT base_directory_name FROM batches ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def test_a_viewer_sees_the_batches_runs_no_jobs_and_is_refused_changes_with_a_sentence(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    studio: StudioRoles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    artist = Database(studio.conninfo(studio.artist), "the artist's connection")
    try:
        [made] = make_batch(artist, tmp_path / "made", count=2, prefix="RO_VIEW").batches
        worker_liveness.register_worker(artist, "render-07:4242:a1b2c3", 1)  # a render node's
    finally:
        artist.close()
    problems: list[str] = []

    def warn(_parent: object, _title: str, text: str, *_args: object) -> object:
        problems.append(text)
        return QMessageBox.StandardButton.Yes  # also the answer to "Delete ...?"

    monkeypatch.setattr(QMessageBox, "warning", warn)
    environ = {"BATCHDESK_HOME": str(tmp_path / "home")}
    session = DatabaseSession(tasks, studio.conninfo(studio.viewer), environ=environ)
    window = MainWindow(
        session,
        tasks,
        AppPaths.from_environment(environ),
        Settings(run_jobs=True),  # would run jobs, were the role allowed to
        window_state=QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat),
    )
    qtbot.addWidget(window)
    window.show()
    session.open()
    try:
        workspace = connected_workspace(qtbot, window)
        assert "may only read" in window.status.currentMessage()
        model = workspace.model
        qtbot.waitUntil(lambda: model.rowCount() == 1 and not model.is_loading, timeout=30_000)
        shown = model.batch_at(model.index(0, 0))
        assert shown is not None
        assert shown.base_directory_name == made.base_directory_name
        assert not workspace.runner.enabled

        window.add_paths([make_png(tmp_path / "in" / "RO_VIEW9_new.png")])
        qtbot.waitUntil(lambda: workspace.submit.submit_button.isEnabled(), timeout=30_000)
        workspace.submit.submit_button.click()
        qtbot.waitUntil(lambda: not workspace.submit.busy, timeout=30_000)
        assert workspace.submit.message.startswith(
            f"The database role {studio.viewer} may only read"
        ), workspace.submit.message
        assert "INSERT" in workspace.submit.message

        workspace.tree.setCurrentIndex(model.index(0, 0))
        window.window_actions.cancel.trigger()
        qtbot.waitUntil(lambda: len(problems) == 1, timeout=30_000)
        window.window_actions.delete.trigger()  # asks first (answered Yes), then is refused
        qtbot.waitUntil(lambda: len(problems) == 3, timeout=30_000)
        # Steering the farm is a change too: each is refused, naming what was asked.
        for action, asked in (
            (window.window_actions.raise_priority, "changing priorities"),
            (window.window_actions.pause, "pausing"),
        ):
            assert action.isEnabled()
            before = len(problems)
            action.trigger()
            qtbot.waitUntil(lambda: len(problems) == before + 1, timeout=30_000)  # noqa: B023
            assert f": {asked} needs INSERT, UPDATE and DELETE" in problems[-1], problems[-1]
        panel = window.workers_panel
        assert panel is not None
        panel.toggleViewAction().trigger()
        qtbot.waitUntil(lambda: panel.list.topLevelItemCount() == 1, timeout=30_000)
        panel.list.topLevelItem(0).setSelected(True)  # type: ignore[union-attr]
        panel.pause_action.trigger()
        qtbot.waitUntil(lambda: len(problems) == 6, timeout=30_000)
        assert ": pausing workers needs INSERT, UPDATE and DELETE" in problems[-1], problems[-1]
        refusals = [problems[0], problems[2], *problems[3:]]
        for sentence in refusals:
            assert sentence.startswith(f"The database role {studio.viewer} may only read")
            assert "INSERT" in sentence, sentence
        assert batch_names(studio) == [made.base_directory_name]
        assert model.batch_at(model.index(0, 0)).priority == 50  # type: ignore[union-attr]
    finally:
        window.close()
        session.close()
