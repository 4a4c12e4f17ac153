"""Uncaught exceptions: bugs are logged with their traceback and shown, KnownErrors are a message,
a hard crash is offered at the next start, and no report ever holds a password."""

import faulthandler
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox

from batchdesk.errors import DatabaseUnavailable

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.crash_handler import (
    CrashDialog,
    CrashHandler,
    install_crash_handler,
    previous_crash_report,
)

SECRET = "s3cret-pw"
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def installed(qapp: QApplication, log_dir: Path) -> Iterator[Callable[[bool], CrashHandler]]:
    """Install the crash handler (with or without dialogs); uninstalled after the test."""
    handlers: list[CrashHandler] = []

    def install(show_dialogs: bool) -> CrashHandler:
        handler = install_crash_handler(qapp, log_dir, show_dialogs=show_dialogs)
        handlers.append(handler)
        return handler

    yield install
    for handler in handlers:
        handler.uninstall()
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, CrashDialog | QMessageBox):
            widget.close()


def crash_dialogs() -> list[CrashDialog]:
    return [
        w for w in QApplication.topLevelWidgets() if isinstance(w, CrashDialog) and w.isVisible()
    ]


def divide_by_zero() -> None:
    print(1 / 0)


def raise_in_thread(target: Callable[[], None], name: str = "render-thread") -> None:
    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()


def test_a_bug_in_a_qt_slot_is_logged_with_its_traceback_and_no_dialog(
    qtbot: QtBot,
    installed: Callable[[bool], CrashHandler],
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = installed(False)
    QTimer.singleShot(0, divide_by_zero)
    qtbot.waitUntil(lambda: handler.log_file.exists() and "ZeroDivisionError" in _read(handler))
    log_text = _read(handler)
    assert "Traceback (most recent call last)" in log_text
    assert "in divide_by_zero" in log_text
    assert "ZeroDivisionError" in capsys.readouterr().err
    qtbot.wait(50)  # a dialog would have been queued by now
    assert crash_dialogs() == []


def test_a_bug_in_a_thread_is_logged_with_its_traceback_and_thread(
    installed: Callable[[bool], CrashHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    handler = installed(False)
    raise_in_thread(divide_by_zero)
    log_text = _read(handler)
    assert "batchdesk hit a bug in thread render-thread" in log_text
    assert "in divide_by_zero" in log_text
    assert "render-thread" in capsys.readouterr().err


def test_a_bug_from_a_background_task_is_logged(
    qtbot: QtBot, tasks: BackgroundTasks, installed: Callable[[bool], CrashHandler]
) -> None:
    handler = installed(False)
    tasks.bug_raised.connect(handler.report_exception)

    def work(_context: TaskContext) -> None:
        divide_by_zero()

    with qtbot.waitSignal(tasks.bug_raised):
        tasks.run("divide", work)
    assert "in divide_by_zero" in _read(handler)


def test_with_dialogs_a_thread_bug_shows_one_crash_dialog_that_can_be_copied_and_closed(
    qtbot: QtBot, installed: Callable[[bool], CrashHandler]
) -> None:
    handler = installed(True)
    raise_in_thread(divide_by_zero)
    qtbot.waitUntil(lambda: len(crash_dialogs()) == 1)
    dialog = crash_dialogs()[0]
    assert dialog.windowTitle() == "batchdesk hit a bug"
    assert dialog.isModal()
    assert dialog.details.isReadOnly()
    assert "in divide_by_zero" in dialog.details.toPlainText()

    raise_in_thread(lambda: [][1], name="second")  # while the dialog is open: same dialog
    qtbot.waitUntil(lambda: "IndexError" in dialog.details.toPlainText())
    assert crash_dialogs() == [dialog]

    dialog.copy_button.click()
    assert "ZeroDivisionError" in QGuiApplication.clipboard().text()
    assert str(handler.log_file) in "".join(label.text() for label in _labels(dialog))
    dialog.close()
    qtbot.waitUntil(lambda: crash_dialogs() == [])


def test_a_known_error_reaching_the_hook_is_a_plain_warning(
    qtbot: QtBot, installed: Callable[[bool], CrashHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    installed(True)

    def fail() -> None:
        raise DatabaseUnavailable("Cannot use the database db.studio: Connection refused.")

    QTimer.singleShot(0, fail)

    def warnings_shown() -> list[QMessageBox]:
        return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]

    qtbot.waitUntil(lambda: len(warnings_shown()) == 1)
    box = warnings_shown()[0]
    assert box.text() == "Cannot use the database db.studio: Connection refused."
    assert box.icon() == QMessageBox.Icon.Warning
    assert crash_dialogs() == []
    assert "Traceback" not in capsys.readouterr().err
    box.close()


def test_no_report_holds_a_password(
    qtbot: QtBot, installed: Callable[[bool], CrashHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    handler = installed(True)

    def leak() -> None:
        url = f"postgresql://anna:{SECRET}@db.studio/batchdesk"
        raise ValueError(f"cannot use {url} or host=db password={SECRET} sslmode=require")

    QTimer.singleShot(0, leak)
    qtbot.waitUntil(lambda: len(crash_dialogs()) == 1)
    shown = crash_dialogs()[0].details.toPlainText()
    assert "postgresql://anna:***@db.studio/batchdesk" in shown
    for text in (shown, _read(handler), capsys.readouterr().err):
        assert "ValueError" in text
        assert SECRET not in text


def test_a_hard_crash_is_offered_once_at_the_next_start(qapp: QApplication, log_dir: Path) -> None:
    # A real process that installs the handler and then dies of a segfault.
    script = textwrap.dedent(
        f"""
        import faulthandler
        from pathlib import Path
        from PySide6.QtWidgets import QApplication
        from batchdesk.gui.crash_handler import install_crash_handler
        app = QApplication([])
        install_crash_handler(app, Path({str(log_dir)!r}), show_dialogs=False)
        faulthandler._sigsegv()
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode != 0, run
    report = previous_crash_report(log_dir)
    assert report is not None
    assert "Segmentation fault" in report
    assert not (log_dir / "crash.log").exists()
    assert len(list(log_dir.glob("crash-*.log"))) == 1
    assert previous_crash_report(log_dir) is None


def test_the_handler_offers_the_previous_crash_and_starts_a_fresh_log(
    qtbot: QtBot, installed: Callable[[bool], CrashHandler], log_dir: Path
) -> None:
    log_dir.mkdir()
    (log_dir / "crash.log").write_text("Fatal Python error: Segmentation fault\n")
    handler = installed(True)
    assert handler.previous_crash is not None
    assert "Segmentation fault" in handler.previous_crash
    assert (log_dir / "crash.log").read_text() == ""
    dialog = handler.show_previous_crash()
    assert dialog is not None
    assert "Segmentation fault" in dialog.details.toPlainText()
    dialog.close()
    assert handler.show_previous_crash() is None


def test_uninstall_gives_the_hooks_back(qapp: QApplication, log_dir: Path) -> None:
    before = (sys.excepthook, threading.excepthook, faulthandler.is_enabled())
    handler = install_crash_handler(qapp, log_dir, show_dialogs=False)
    assert sys.excepthook != before[0]
    assert threading.excepthook != before[1]
    handler.uninstall()
    handler.uninstall()  # twice is harmless
    assert (sys.excepthook, threading.excepthook, faulthandler.is_enabled()) == before


def _read(handler: CrashHandler) -> str:
    return handler.log_file.read_text(encoding="utf-8")


def _labels(dialog: CrashDialog) -> list[QLabel]:
    return dialog.findChildren(QLabel)
