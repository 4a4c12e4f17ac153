"""`batchdesk --self-test`: prove that this installation works, end to end, in a minute.

For the admin who has just installed batchdesk on a workstation (or a render node): the real
window opens offscreen, an embedded PostgreSQL starts in a temporary home, a generated PNG is
submitted through the window, this computer's workers run it through the default pipeline, the
batch is exported as a zip and the zip is checked. Nothing of the user's own settings, database
or window state is read or touched, and the temporary home is removed afterwards.

One line on stdout when it passes; `self-test failed at STEP: SENTENCE` on stderr and exit 1
when it does not, so that a script (or the installer test) knows which part is broken; then the
temporary home is kept, with the embedded server's log, for whoever looks into it.
"""

import dataclasses
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from batchdesk.app import load_settings
from batchdesk.domain.units import format_size
from batchdesk.errors import KnownError
from batchdesk.export.layout import MANIFEST_NAME
from batchdesk.export.zip_export import export_zip
from batchdesk.storage.batch_queries import BatchRow

from batchdesk.gui.application import make_application, route_qt_messages
from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_model import BatchTreeModel
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession

STEP_TIMEOUT = 120.0  # seconds for any one step; the whole test takes a few seconds
SAMPLE_NAME = "PL_DXB_selftest_0001.png"


class StepFailed(Exception):
    """A step did not do what it should; the message is the sentence to print."""


class _Steps:
    """Names the step under way, so a failure can say where it happened."""

    def __init__(self) -> None:
        self.current = "start"

    def __call__(self, name: str) -> None:
        self.current = name


def run_self_test() -> int:
    """Run every step; print the summary line or the failing step; return the exit code."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    steps = _Steps()
    started = time.monotonic()
    steps("temporary home")
    try:
        home = Path(tempfile.mkdtemp(prefix="batchdesk-self-test-"))
        summary = _run(home, steps)
    except (StepFailed, KnownError, OSError) as exc:
        print(f"self-test failed at {steps.current}: {exc}", file=sys.stderr, flush=True)
        if "home" in locals():
            print(f"Its files (logs included) are kept in {home}.", file=sys.stderr, flush=True)
        return 1
    shutil.rmtree(home, ignore_errors=True)
    print(f"self-test passed: {summary}, {time.monotonic() - started:.1f} s", flush=True)
    return 0


def _run(home: Path, steps: _Steps) -> str:
    environ = {
        key: value
        for key, value in os.environ.items()
        if key != "BATCHDESK_DATABASE_URL" and not key.startswith("PG")
    }
    environ["BATCHDESK_HOME"] = str(home)
    steps("open window")
    route_qt_messages()
    app = make_application()
    paths, settings = load_settings(environ)
    settings = dataclasses.replace(
        settings, database_url=None, run_jobs=True, notifications=False, delivery_folder=None
    )
    tasks = BackgroundTasks(parent=app)
    session = DatabaseSession(tasks, None, environ=environ)
    problems: list[str] = []
    # The window would keep trying; a test says what went wrong once.
    session.unavailable.connect(
        lambda sentence: problems.append(sentence.split(" Trying again")[0])
    )
    session.refused.connect(problems.append)
    tasks.bug_raised.connect(lambda error: problems.append(f"a bug: {error!r}"))
    state = QSettings(str(home / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(session, tasks, paths, settings, window_state=state)
    window.show()
    try:
        steps("start database")
        session.open()
        _wait(lambda: window.workspace is not None, problems)
        workspace = window.workspace
        assert workspace is not None

        steps("submit")
        sample = _sample_png(home / "renders" / SAMPLE_NAME)
        window.add_paths([sample])
        _wait(lambda: workspace.submit.submit_button.isEnabled(), problems)
        workspace.submit.submit_button.click()
        _wait(lambda: _only_batch(workspace.model) is not None, problems)

        steps("process")
        _wait(lambda: _finished(_only_batch(workspace.model)), problems)
        batch = _only_batch(workspace.model)
        assert batch is not None
        if batch.status != "completed":
            raise StepFailed(f"the job ended {batch.status}, not completed.")

        steps("export")
        target = home / "export" / f"{batch.base_directory_name}.zip"
        target.parent.mkdir()
        export_zip(workspace.context.database, batch.id, target)

        steps("check zip")
        _check_zip(target)
        return f"{batch.base_directory_name}, 1 job, zip {format_size(target.stat().st_size)}"
    finally:
        window.shut_down()
        window.close()
        tasks.shutdown()
        session.close()


def _wait(condition: Callable[[], bool], problems: list[str]) -> None:
    """Let the window work until `condition` holds; fail on a reported problem or a timeout."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while not condition():
        QApplication.processEvents()
        if problems:
            raise StepFailed(problems[0])
        if time.monotonic() > deadline:
            raise StepFailed(f"nothing happened for {STEP_TIMEOUT:.0f} s.")
        time.sleep(0.01)


def _only_batch(model: BatchTreeModel) -> BatchRow | None:
    return model.batch_at(model.index(0, 0)) if model.rowCount() == 1 else None


def _finished(batch: BatchRow | None) -> bool:
    return batch is not None and batch.status in ("completed", "failed", "cancelled")


def _sample_png(path: Path) -> Path:
    """A small render: a gradient backdrop and a rounded object, as a studio would send."""
    path.parent.mkdir(parents=True)
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    ImageDraw.Draw(image).rounded_rectangle((220, 120, 420, 380), radius=40, fill=(70, 120, 200))
    image.save(path)
    return path


def _check_zip(target: Path) -> None:
    with zipfile.ZipFile(target) as archive:
        broken = archive.testzip()
        if broken is not None:
            raise StepFailed(f"{broken} in the zip is damaged.")
        names = archive.namelist()
        if not any(name.endswith("/" + MANIFEST_NAME) for name in names):
            raise StepFailed(f"the zip has no {MANIFEST_NAME}.")
        images = [name for name in names if name.lower().endswith((".png", ".jpg", ".webp"))]
        if not images:
            raise StepFailed("the zip holds no image output.")
        with archive.open(images[0]) as member, Image.open(member) as image:
            image.verify()
