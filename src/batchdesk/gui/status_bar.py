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

    def set_workers(self, *, enabled: bool, busy: int, threads: int, done_today: int) -> None:
        if not enabled:
            self._workers.setText("Jobs run elsewhere (off on this computer)")
            return
        self._workers.setText(
            f"Jobs: {busy} of {threads} threads busy · {done_today} done here today"
        )

    @property
    def connection_text(self) -> str:
        return self._connection.text()

    @property
    def workers_text(self) -> str:
        return self._workers.text()
