"""Drive the real window through the README's scenes and save a screenshot of each.

    BATCHDESK_HOME=/tmp/demo .venv/bin/python scripts/screenshots.py docs/screenshots [--dark]

Run by `scripts/screenshot.sh`, which fills the home with demo batches and provides the screen
(Xvfb). Scenes: the main window with a finished job's before/after preview, the large viewer
comparing a job's input and output, a batch being processed by this window's workers, the
preferences dialog, and the first start (empty home: `--empty`). With `--dark` the window uses
its dark theme and each picture's name ends in `-dark`. Each scene waits for what it shows
rather than for a fixed time.
"""

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSettings
from PySide6.QtWidgets import QApplication, QWidget

from batchdesk.app import load_settings

from batchdesk.gui.application import make_application
from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.preferences_dialog import PreferencesDialog
from batchdesk.gui.session import DatabaseSession

WINDOW_SIZE = (1500, 860)


def wait_until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: gave up waiting for {condition.__doc__ or 'a scene'}")
        QApplication.processEvents()
        time.sleep(0.02)


def settle(seconds: float = 0.6) -> None:
    """Let background loads (thumbnails, previews, badges) land and paint."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)


def save(widget: QWidget, path: Path, settle_for: float = 0.6) -> None:
    settle(settle_for)
    if not widget.grab().save(str(path)):
        raise SystemExit(f"screenshots: could not write {path}")
    print(f"wrote {path}")


def select_batch(window: MainWindow, description: str, *, expand: bool) -> None:
    workspace = window.workspace
    assert workspace is not None
    model, tree = workspace.model, workspace.tree

    def batch_row() -> int | None:
        for row in range(model.rowCount()):
            batch = model.batch_at(model.index(row, 0))
            if batch is not None and batch.render_description.startswith(description):
                return row
        return None

    wait_until(lambda: batch_row() is not None)
    index = model.index(batch_row() or 0, 0)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | (
        QItemSelectionModel.SelectionFlag.Rows
    )
    tree.selectionModel().setCurrentIndex(index, flags)
    if expand:
        tree.expand(index)
        wait_until(lambda: model.rowCount(index) > 0)


def select_job(window: MainWindow, description: str, job_row: int) -> None:
    workspace = window.workspace
    assert workspace is not None
    model, tree = workspace.model, workspace.tree
    select_batch(window, description, expand=True)
    batch_index = tree.currentIndex()
    wait_until(lambda: model.rowCount(batch_index) > job_row)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | (
        QItemSelectionModel.SelectionFlag.Rows
    )
    tree.selectionModel().setCurrentIndex(model.index(job_row, 0, batch_index), flags)


def scenes(window: MainWindow, folder: Path, suffix: str) -> None:
    wait_until(lambda: window.workspace is not None and window.workspace.model.rowCount() >= 4)
    workspace = window.workspace
    assert workspace is not None
    select_job(window, "3-view", 0)
    select_batch(window, "Lamp", expand=True)
    select_job(window, "3-view", 1)
    save(window, folder / f"main-window{suffix}.png")

    workspace.viewer.open_selected()
    viewer = workspace.viewer.viewer
    assert viewer is not None
    viewer.set_mode("side by side")
    save(viewer, folder / f"viewer{suffix}.png", settle_for=1.5)
    viewer.close()

    workspace.runner.set_enabled(True)

    def campaign_under_way() -> bool:
        """the campaign batch to be part done"""
        for row in range(workspace.model.rowCount()):
            batch = workspace.model.batch_at(workspace.model.index(row, 0))
            if batch is not None and batch.base_directory_name.startswith("RN_LHR"):
                return batch.status == "processing" and batch.completed_count >= 6
        return False

    select_batch(window, "Spring", expand=True)
    wait_until(campaign_under_way, timeout=180)
    save(window, folder / f"processing{suffix}.png", settle_for=0.3)
    workspace.runner.set_enabled(False)

    dialog = PreferencesDialog(window.settings, window.tasks, window.paths, window)
    dialog.show()
    save(dialog, folder / f"preferences{suffix}.png")
    dialog.reject()


def empty_scene(window: MainWindow, folder: Path, suffix: str) -> None:
    wait_until(lambda: window.workspace is not None)
    save(window, folder / f"first-start{suffix}.png")


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    app = make_application()
    dark = "--dark" in sys.argv
    paths, settings = load_settings()
    tasks = BackgroundTasks(parent=app)
    session = DatabaseSession(tasks, None)
    state = QSettings(str(paths.config_dir / "window.ini"), QSettings.Format.IniFormat)
    # The window's workers stay off until the processing scene, so the first scene is stable.
    window = MainWindow(
        session,
        tasks,
        paths,
        dataclasses.replace(settings, run_jobs=False, theme="dark" if dark else "light"),
        window_state=state,
    )
    window.resize(*WINDOW_SIZE)
    window.show()
    session.open()
    try:
        scene = empty_scene if "--empty" in sys.argv else scenes
        scene(window, folder, "-dark" if dark else "")
    finally:
        window.shut_down()
        tasks.shutdown()
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
