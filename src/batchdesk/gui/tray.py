"""Desktop notifications when a batch finishes, through the system tray where there is one.

Many desktops (and every headless or Xvfb session) have no system tray; there the notifier does
nothing, quietly: the status bar and the batch list already say what happened.
"""

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle, QSystemTrayIcon

MESSAGE_MILLISECONDS = 10_000
_FAILED_STATUSES = frozenset({"failed"})


class Notifier(QObject):
    """Shows "batch finished" messages from the tray icon, if enabled and a tray exists.

    The tray icon is made on the first message rather than at start, so a user who turned
    notifications off never gets an icon in the tray.
    """

    message_clicked = Signal()  # the user clicked a message: the window may raise itself

    def __init__(self, parent: QObject | None = None, *, enabled: bool = True) -> None:
        super().__init__(parent)
        self._enabled = enabled
        self._tray: QSystemTrayIcon | None = None
        self.last_message: tuple[str, str] | None = None  # (title, text) last shown

    @property
    def enabled(self) -> bool:
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Turn notifications on or off; off also removes the tray icon."""
        self._enabled = enabled
        if not enabled and self._tray is not None:
            self._tray.hide()

    def is_available(self) -> bool:
        """Whether a message would be shown now: enabled, and the desktop has a tray."""
        return self._enabled and QSystemTrayIcon.isSystemTrayAvailable()

    def notify_batch_finished(self, name: str, status: str, detail: str) -> None:
        """Tell the user that batch `name` ended with `status` ("completed", "failed", ...)."""
        if not self.is_available():
            return
        tray = self._tray_icon()
        tray.show()
        title = f"{name} {status}"
        icon = (
            QSystemTrayIcon.MessageIcon.Warning
            if status in _FAILED_STATUSES
            else QSystemTrayIcon.MessageIcon.Information
        )
        tray.showMessage(title, detail, icon, MESSAGE_MILLISECONDS)
        self.last_message = (title, detail)

    def _tray_icon(self) -> QSystemTrayIcon:
        if self._tray is None:
            self._tray = QSystemTrayIcon(_notification_icon(), self)
            self._tray.setToolTip("batchdesk")
            self._tray.messageClicked.connect(self.message_clicked)
        return self._tray


def _notification_icon() -> QIcon:
    # A tray icon without an icon is refused with a warning: fall back to a standard one.
    icon = QApplication.windowIcon()
    if icon.isNull():
        icon = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon)
    return icon
