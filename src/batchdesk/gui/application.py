"""Start the window: the QApplication, crash handling, the database session, the main window.

The window opens at once; the database is opened in the background and the window fills in
when it answers (or says why not, and keeps trying).
"""

import logging
import sys
from importlib.resources import files

from PySide6.QtCore import (
    QCoreApplication,
    QMessageLogContext,
    QSettings,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from batchdesk import __version__
from batchdesk.app import load_settings
from batchdesk.errors import KnownError

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.crash_handler import install_crash_handler
from batchdesk.gui.session import DatabaseSession

HEADLESS_PLATFORMS = frozenset({"offscreen", "minimal"})


# Said by the offscreen platform for every window with a layout; noise, not news.
HARMLESS_QT_MESSAGES = ("This plugin does not support propagateSizeHints",)
log = logging.getLogger("batchdesk.qt")


def _on_qt_message(kind: QtMsgType, _context: QMessageLogContext, message: str) -> None:
    """Qt's own messages go to our log (and its file), not raw onto stderr."""
    if message.startswith(HARMLESS_QT_MESSAGES) or kind in (
        QtMsgType.QtDebugMsg,
        QtMsgType.QtInfoMsg,
    ):
        log.debug("%s", message)
    else:
        log.warning("%s", message)


def route_qt_messages() -> None:
    """Send Qt's own messages to our log from now on."""
    qInstallMessageHandler(_on_qt_message)


def app_icon() -> QIcon:
    return QIcon(str(files("batchdesk.gui") / "icons" / "batchdesk.svg"))


def make_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or sys.argv[:1])
    QCoreApplication.setOrganizationName("batchdesk")
    QCoreApplication.setApplicationName("batchdesk")
    QCoreApplication.setApplicationVersion(__version__)
    app.setApplicationDisplayName("batchdesk")
    app.setDesktopFileName("batchdesk")
    app.setWindowIcon(app_icon())
    return app


def run_gui(database_url: str | None, *, error_dialogs: bool = True) -> int:
    """Open the window and run until it closes; return the exit code."""
    route_qt_messages()
    app = make_application()
    try:
        paths, settings = load_settings()
    except KnownError as exc:  # a broken settings file: say so where the user looks
        QMessageBox.critical(None, "batchdesk cannot start", str(exc))
        raise
    crash_handler = install_crash_handler(app, paths.log_dir, show_dialogs=error_dialogs)
    tasks = BackgroundTasks(parent=app)
    tasks.bug_raised.connect(crash_handler.report_exception)
    session = DatabaseSession(tasks, database_url)
    # The database opens on a pool thread (keyring, connect, schema check: ~0.3 s to a server)
    # while this thread imports the window's modules (~0.3 s); its answer waits in the event
    # queue until app.exec(), by which time the window is listening.
    session.open()
    from batchdesk.gui.main_window import MainWindow

    window_state = QSettings(str(paths.config_dir / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(session, tasks, paths, settings, window_state=window_state)
    exit_code = 0

    def refuse(sentence: str) -> None:
        nonlocal exit_code
        exit_code = 1
        print(sentence, file=sys.stderr, flush=True)
        # With no screen (offscreen, a test) nobody could close a dialog: say it and go.
        if error_dialogs and QGuiApplication.platformName() not in HEADLESS_PLATFORMS:
            QMessageBox.critical(window, "batchdesk cannot use this database", sentence)
        app.exit(1)

    session.refused.connect(refuse)
    window.show()
    crash_handler.show_previous_crash(window)  # a hard crash last time: offer its report
    try:
        code = app.exec()
        return exit_code or code
    finally:
        window.shut_down()
        tasks.shutdown()
        session.close()
        crash_handler.uninstall()
