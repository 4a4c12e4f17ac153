"""The window's link to the database: opened in the background, retried, watched.

The window opens at once whatever the database does. `DatabaseSession` opens it on a pool
thread (the embedded server's first start takes seconds), says what it is doing, retries every
few seconds while it is unreachable, and once connected pings it so the status bar can say
"reconnecting..." and then "connected" again after an outage.
"""

import os

from PySide6.QtCore import QObject, QTimer, Signal

from batchdesk.app import AppContext, open_database
from batchdesk.errors import AccessDenied, DatabaseUnavailable, KnownError, SchemaMismatch

from batchdesk.gui.background import BackgroundTasks, TaskContext

RETRY_INTERVAL_MS = 5_000
PING_INTERVAL_MS = 5_000


class DatabaseSession(QObject):
    """Opens the configured database once and keeps an eye on it."""

    status_changed = Signal(str)  # what is happening, for the status bar
    connected = Signal(object)  # the AppContext, once
    unavailable = Signal(str)  # a sentence; another attempt follows in retry_seconds
    refused = Signal(str)  # a sentence; waiting cannot help (a newer schema, a missing right)
    connection_lost = Signal(str)
    connection_restored = Signal()

    def __init__(
        self,
        tasks: BackgroundTasks,
        database_url: str | None = None,
        environ: dict[str, str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._database_url = database_url
        self._environ = dict(os.environ) if environ is None else environ
        self.context: AppContext | None = None
        self.online = False
        self._closed = False
        self._pinging = False
        self._retry = QTimer(self, singleShot=True, interval=RETRY_INTERVAL_MS)
        self._retry.timeout.connect(self.open)
        self._ping = QTimer(self, interval=PING_INTERVAL_MS)
        self._ping.timeout.connect(self._on_ping_timeout)

    @property
    def retry_seconds(self) -> int:
        """How long after a failed open the next attempt starts."""
        return RETRY_INTERVAL_MS // 1000

    def open(self) -> None:
        if self._closed or self.context is not None:
            return
        self.status_changed.emit("Connecting to the database...")

        def work(context: TaskContext) -> AppContext:
            return open_database(
                self._database_url,
                self._environ,
                on_status=lambda text: context.progress(text, force=True),
            )

        self._tasks.run(
            "open the database",
            work,
            on_result=self._on_opened,
            on_error=self._on_open_failed,
            on_progress=lambda text: self.status_changed.emit(str(text)),
        )

    def _on_opened(self, context: AppContext) -> None:
        if self._closed:  # the window closed while the server was starting
            context.database.close()
            return
        self.context = context
        self.online = True
        self.status_changed.emit(f"Connected to the {context.database.description}.")
        self.connected.emit(context)
        self._ping.start()

    def _on_open_failed(self, error: KnownError) -> None:
        if self._closed:
            return
        # Only a newer batchdesk, or the database's owner (an upgrade, a GRANT), can help.
        if isinstance(error, SchemaMismatch | AccessDenied):
            self.refused.emit(str(error))
            return
        self.unavailable.emit(str(error))
        self._retry.start()

    def report_failure(self, error: KnownError) -> None:
        """Called by any task that lost the connection: the status bar shows it at once."""
        if isinstance(error, DatabaseUnavailable) and self.online:
            self.online = False
            self.connection_lost.emit(str(error))

    def _on_ping_timeout(self) -> None:
        if self.context is None or self._pinging:
            return
        self._pinging = True
        database = self.context.database

        def ping(_context: TaskContext) -> None:
            with database.connect() as connection:
                connection.execute("SELECT 1")

        self._tasks.run(
            "check the connection",
            ping,
            on_result=lambda _none: self._on_ping_answered(None),
            on_error=self._on_ping_answered,
        )

    def _on_ping_answered(self, error: KnownError | None) -> None:
        self._pinging = False
        if error is None and not self.online:
            self.online = True
            self.connection_restored.emit()
        elif error is not None:
            self.report_failure(error)

    def close(self) -> None:
        """Stop retrying and pinging, and close the database (stopping an embedded server)."""
        self._closed = True
        self._retry.stop()
        self._ping.stop()
        if self.context is not None:
            self.context.database.close()
            self.context = None
