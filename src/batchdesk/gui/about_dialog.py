"""The About dialog: what is running, against which database, and where its files are.

Everything shown is also in one plain text ("Copy"), which is what a bug report needs.
"""

import platform
from importlib import metadata

import PySide6
from PySide6.QtCore import qVersion
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from batchdesk import __version__
from batchdesk.settings import AppPaths


def versions_text(
    database_description: str,
    paths: AppPaths | None = None,
    server_version: str | None = None,
) -> str:
    """Return the versions, the database and the local paths as plain text, one per line."""
    lines = [
        f"batchdesk {__version__}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"Qt {qVersion()}, PySide6 {PySide6.__version__}",
        f"Pillow {_distribution_version('Pillow')}",
    ]
    if server_version:
        lines.append(f"Server: {server_version}")
    lines.append(f"Database: {database_description}")
    lines.append(f"Platform: {platform.platform()}")
    if paths is not None:
        lines += [
            f"Settings: {paths.settings_file}",
            f"Logs: {paths.log_dir}",
            f"Data: {paths.data_dir}",
        ]
    return "\n".join(lines)


class AboutDialog(QDialog):
    """Shows the versions text with a Copy button."""

    def __init__(
        self,
        database_description: str,
        paths: AppPaths | None = None,
        parent: QWidget | None = None,
        *,
        server_version: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("About batchdesk")
        self.text = versions_text(database_description, paths, server_version)

        icon = QLabel()
        window_icon = QApplication.windowIcon()
        if not window_icon.isNull():
            icon.setPixmap(window_icon.pixmap(64, 64))
        title = QLabel(
            f"<h2>batchdesk {__version__}</h2>"
            "<p>PNG renders in, named and tracked batches out, shared by a whole studio.</p>"
        )
        title.setWordWrap(True)
        header = QHBoxLayout()
        header.addWidget(icon)
        header.addWidget(title, 1)

        self.details = QPlainTextEdit(self.text)
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setMinimumSize(560, 200)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("&Copy")
        self.copy_button.setToolTip("Copy these details, for a bug report")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy_versions)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)
        buttons.button(QDialogButtonBox.StandardButton.Close).setFocus()

    def copy_versions(self) -> None:
        QGuiApplication.clipboard().setText(self.text)


def _distribution_version(name: str) -> str:
    # Read from the installed metadata, so the About box does not have to import Pillow.
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
