"""What happens to an exception nobody caught: KnownError as a message, anything else as a bug.

Modelled on qutebrowser's crashsignal. `install_crash_handler` sets `sys.excepthook` (which
PySide6 also calls for an exception raised in a slot) and `threading.excepthook`, and lets
`faulthandler` write a hard crash (a segfault in Qt, an abort) to `crash.log`, which the next
start offers to the user (`previous_crash_report`).

A bug is logged with its traceback to `batchdesk.log`, written to stderr, and shown in a
`CrashDialog`; the app keeps running. A `KnownError` that reaches the hook is shown as a plain
warning. Hooks may run on any thread, so the report is formatted there (values, not frames, cross
threads) and handed to the GUI thread by a queued signal; only the GUI thread makes widgets.
Every text that leaves the process (log, stderr, dialog) passes `redact` first: a password never
appears in a report.
"""

import datetime
import faulthandler
import logging
import logging.handlers
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import IO

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal, SignalInstance
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from batchdesk.errors import FileProblem, KnownError
from batchdesk.redaction import RedactingFormatter, redact

log = logging.getLogger(__name__)

LOG_FILE_NAME = "batchdesk.log"
CRASH_LOG_NAME = "crash.log"
OLD_CRASH_LOGS_KEPT = 5
MAX_CRASH_REPORT_CHARS = 200_000  # a dump of many threads is long; the start is what matters
_LOG_FILE_BYTES = 5 * 1024 * 1024
_LOG_FILES_KEPT = 3


def previous_crash_report(log_dir: Path) -> str | None:
    """Return what faulthandler wrote before the last run died, or None after a clean run.

    The file is moved aside to `crash-YYYYmmdd-HHMMSS.log` (the newest few are kept), so the
    same crash is offered once.
    """
    crash_log = log_dir / CRASH_LOG_NAME
    try:
        with crash_log.open(encoding="utf-8", errors="replace") as crash_file:
            text = crash_file.read(MAX_CRASH_REPORT_CHARS)
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable: nothing to offer, and no reason not to start
        log.warning("cannot read the crash log %s: %s", crash_log, exc.strerror)
        return None
    if not text.strip():
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    try:
        crash_log.replace(log_dir / f"crash-{stamp}.log")
        for old in sorted(log_dir.glob("crash-*.log"))[:-OLD_CRASH_LOGS_KEPT]:
            old.unlink(missing_ok=True)
    except OSError as exc:  # then it is offered again next time, which is the lesser harm
        log.warning("cannot move the crash log %s aside: %s", crash_log, exc.strerror)
    return redact(text)


class CrashDialog(QDialog):
    """Shows a bug's details, lets the user copy them, and closes; the app keeps running."""

    def __init__(
        self,
        details: str,
        log_path: Path,
        parent: QWidget | None = None,
        *,
        heading: str = "batchdesk hit a bug",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(heading)
        self.setObjectName("crash-dialog")
        self.setModal(True)
        self._reports = [details]

        title = QLabel(f"<b>{heading}</b>")
        explanation = QLabel(
            "batchdesk keeps running, but what you were doing may not have finished. "
            "Please send these details to whoever looks after batchdesk."
        )
        explanation.setWordWrap(True)
        self.details = QPlainTextEdit(details)
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setMinimumSize(640, 280)
        location = QLabel(f"Also saved in {log_path}")
        location.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        location.setWordWrap(True)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("&Copy details")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy_details)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(explanation)
        layout.addWidget(self.details, 1)
        layout.addWidget(location)
        layout.addWidget(buttons)
        buttons.button(QDialogButtonBox.StandardButton.Close).setFocus()

    def add_report(self, details: str) -> None:
        """Append another bug that happened while this dialog was open (one dialog, not many)."""
        self._reports.append(details)
        self.details.setPlainText("\n\n".join(self._reports))

    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(self.details.toPlainText())


class CrashHandler(QObject):
    """Owns the exception hooks, the log file and faulthandler; `uninstall()` gives them back."""

    # Emitted from whichever thread failed; connected queued, so the slots run on the GUI thread.
    bug_reported = Signal(str, str)  # one-line summary, full details (redacted)
    known_error_reported = Signal(str)

    def __init__(self, app: QApplication, log_dir: Path, show_dialogs: bool) -> None:
        super().__init__(app)
        self.log_dir = log_dir
        self.log_file = log_dir / LOG_FILE_NAME
        self.crash_log = log_dir / CRASH_LOG_NAME
        self.show_dialogs = show_dialogs
        self.previous_crash: str | None = None  # what a hard crash of the last run left
        self.dialog: CrashDialog | None = None
        # Dialogs without a parent window are deleted with their Python wrapper: keep them
        # referenced until they close.
        self._open_windows: set[QWidget] = set()
        self._installed = False
        self._old_excepthook = sys.excepthook
        self._old_threading_hook = threading.excepthook
        self._faulthandler_was_enabled = False
        self._crash_file: IO[str] | None = None
        self._log_handler: logging.Handler | None = None
        self.bug_reported.connect(self._on_bug_reported, Qt.ConnectionType.QueuedConnection)
        self.known_error_reported.connect(
            self._on_known_error_reported, Qt.ConnectionType.QueuedConnection
        )

    def install(self) -> None:
        """Offer last run's crash log, open this run's logs and take over the hooks."""
        handler: logging.Handler | None = None
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.previous_crash = previous_crash_report(self.log_dir)
            handler = logging.handlers.RotatingFileHandler(
                self.log_file,
                maxBytes=_LOG_FILE_BYTES,
                backupCount=_LOG_FILES_KEPT,
                encoding="utf-8",
            )
            # Kept open for the whole run: after a segfault nothing can open a file any more.
            crash_file = self.crash_log.open("w", encoding="utf-8")
        except OSError as exc:
            if handler is not None:
                handler.close()
            raise FileProblem(
                f"Cannot write batchdesk's logs in {self.log_dir}: {exc.strerror}."
            ) from exc
        handler.setFormatter(
            RedactingFormatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
        )
        logging.getLogger("batchdesk").addHandler(handler)
        self._log_handler = handler
        self._crash_file = crash_file
        self._faulthandler_was_enabled = faulthandler.is_enabled()
        faulthandler.enable(file=self._crash_file, all_threads=True)
        self._old_excepthook = sys.excepthook
        self._old_threading_hook = threading.excepthook
        sys.excepthook = self._excepthook
        threading.excepthook = self._threading_excepthook
        self._installed = True

    def uninstall(self) -> None:
        """Give back the hooks, stop faulthandler writing to crash.log and close the log file."""
        if not self._installed:
            return
        self._installed = False
        sys.excepthook = self._old_excepthook
        threading.excepthook = self._old_threading_hook
        faulthandler.disable()
        if self._faulthandler_was_enabled and sys.__stderr__ is not None:
            faulthandler.enable(file=sys.__stderr__, all_threads=True)
        if self._crash_file is not None:
            self._crash_file.close()
            self._crash_file = None
        if self._log_handler is not None:
            logging.getLogger("batchdesk").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def report_exception(self, exc: BaseException) -> None:
        """Report an exception caught elsewhere (`BackgroundTasks.bug_raised`); any thread."""
        self._handle(type(exc), exc, exc.__traceback__, threading.current_thread().name)

    def show_previous_crash(self, parent: QWidget | None = None) -> CrashDialog | None:
        """Show what the last run's hard crash left, if anything; the window calls this once."""
        if self.previous_crash is None:
            return None
        dialog = CrashDialog(
            self.previous_crash,
            self.log_dir,
            parent,
            heading="batchdesk stopped unexpectedly last time",
        )
        self.previous_crash = None
        self._keep_until_closed(dialog)
        dialog.open()
        return dialog

    # -- hooks (any thread) ------------------------------------------------------------------

    def _excepthook(
        self,
        exc_type: type[BaseException],
        exc_value: BaseException,
        exc_tb: TracebackType | None,
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            self._old_excepthook(exc_type, exc_value, exc_tb)
            return
        self._handle(exc_type, exc_value, exc_tb, threading.current_thread().name)

    def _threading_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if issubclass(args.exc_type, SystemExit):
            return  # how a thread may end on purpose; the default hook ignores it too
        if args.exc_value is None:  # only a hand-made call looks like this
            self._old_threading_hook(args)
            return
        thread = args.thread.name if args.thread is not None else "a thread"
        self._handle(args.exc_type, args.exc_value, args.exc_traceback, thread)

    def _handle(
        self,
        exc_type: type[BaseException],
        exc_value: BaseException,
        exc_tb: TracebackType | None,
        thread: str,
    ) -> None:
        try:
            if isinstance(exc_value, KnownError):
                sentence = redact(str(exc_value))
                log.warning("%s (in %s)", sentence, thread)
                _write_stderr(f"batchdesk: {sentence}\n")
                self._emit(self.known_error_reported, sentence)
                return
            summary = redact("".join(traceback.format_exception_only(exc_type, exc_value)))
            details = redact(
                f"batchdesk hit a bug in thread {thread}:\n\n"
                + "".join(traceback.format_exception(exc_type, exc_value, exc_tb))
            )
            # The redacted text rather than exc_info: every handler, not only ours, gets it clean.
            log.error("%s", details.rstrip())
            _write_stderr(details)
            self._emit(self.bug_reported, summary.strip(), details)
        except Exception:  # the hook must never fail silently: fall back to Python's own
            sys.__excepthook__(exc_type, exc_value, exc_tb)

    def _emit(self, signal: SignalInstance, *args: str) -> None:
        # At interpreter exit the QObject (or the application) may be gone already: the log and
        # stderr have the report, which is all that can be done then.
        if self.show_dialogs and shiboken6.isValid(self) and QApplication.instance() is not None:
            signal.emit(*args)

    # -- dialogs (GUI thread) ----------------------------------------------------------------

    def _on_bug_reported(self, _summary: str, details: str) -> None:
        if self.dialog is not None and shiboken6.isValid(self.dialog) and self.dialog.isVisible():
            self.dialog.add_report(details)
            return
        self.dialog = CrashDialog(details, self.log_file, QApplication.activeWindow())
        self.dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
        self._keep_until_closed(self.dialog)
        self.dialog.show()

    def _on_known_error_reported(self, sentence: str) -> None:
        # Not the static QMessageBox.warning(): its nested event loop would keep the hook's
        # caller waiting until the user clicks OK.
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "batchdesk",
            sentence,
            QMessageBox.StandardButton.Ok,
            QApplication.activeWindow(),
        )
        box.setObjectName("known-error-message")
        box.setWindowModality(Qt.WindowModality.ApplicationModal)
        self._keep_until_closed(box)
        box.show()

    def _keep_until_closed(self, dialog: QDialog) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._open_windows.add(dialog)
        dialog.finished.connect(lambda _result: self._open_windows.discard(dialog))


def install_crash_handler(app: QApplication, log_dir: Path, show_dialogs: bool) -> CrashHandler:
    """Install the hooks, the log file and faulthandler; call `uninstall()` on the result at exit.

    With `show_dialogs` False (`--no-error-dialogs`, for tests) reports go to the log and stderr
    only.
    """
    handler = CrashHandler(app, log_dir, show_dialogs)
    handler.install()
    return handler


def _write_stderr(text: str) -> None:
    stream = sys.stderr
    if stream is None:  # a windowed build on Windows has no console
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # a closed or broken stream
        pass
