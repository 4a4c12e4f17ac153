"""The status bar: which database, whether it answers, and what this computer's workers do."""

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

MESSAGE_MS = 8_000


class StatusBar(QStatusBar):
    """Messages on the left; database, connection and worker state on the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._database = QLabel("No database yet")
        self._connection = QLabel("Connecting...")
        self._workers = QLabel("")
        for label, name in (
            (self._database, "Database"),
            (self._connection, "Connection state"),
            (self._workers, "Jobs on this computer"),
        ):
            label.setAccessibleName(name)
            label.setContentsMargins(6, 0, 6, 0)
            self.addPermanentWidget(label)

    def show_text(self, text: str) -> None:
        self.showMessage(text, MESSAGE_MS)

    def set_database(self, description: str) -> None:
        self._database.setText(description)
        self._database.setToolTip(description)

    def set_connection(self, state: str, detail: str = "") -> None:
        """Show `state` (connected, connecting, reconnecting, unreachable); `detail` as tooltip."""
        texts = {
            "connected": "● Connected",
            "connecting": "○ Connecting...",
            "reconnecting": "◌ Reconnecting...",
            "unreachable": "✕ Database unreachable",
        }
        self._connection.setText(texts.get(state, state))
        self._connection.setToolTip(detail)
        self._connection.setProperty("state", state)

    def set_workers(
        self, *, enabled: bool, busy: int, threads: int, done_today: int | None
    ) -> None:
        """Show this window's workers and the jobs this computer completed today (once known).

        "Here" is this computer: its headless workers count too, as do windows closed since.
        """
        text = f"Jobs: {busy} of {threads} threads busy" if enabled else "Jobs: off in this window"
        if done_today is not None:
            text += f" · {done_today:,} done here today"
        self._workers.setText(text)
        self._workers.setToolTip(
            "Jobs completed today by this computer's workers (windows and headless ones), "
            "in the studio's day"
        )

    @property
    def connection_text(self) -> str:
        return self._connection.text()

    @property
    def workers_text(self) -> str:
        return self._workers.text()
