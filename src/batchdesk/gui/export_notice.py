"""The message an export ends with: what was written where, any warnings, and Open Folder.

Non-modal, as a browser's finished download: the window goes on while it is shown, and the
next export's message replaces it. Warnings (failed or unfinished jobs, batches gone meanwhile)
are part of it rather than a box of their own.
"""

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

from batchdesk.domain.units import plural

# Warnings listed in the message itself; all of them are under "Show Details...".
MAX_WARNINGS_SHOWN = 4


def folder_url(folder: Path) -> QUrl:
    """The URL the desktop opens for `folder`."""
    return QUrl.fromLocalFile(str(folder))


class ExportNotice(QMessageBox):
    """ "Exported X to Y." with Open Folder and Close; `folder_not_opened(str)` if it failed."""

    folder_not_opened = Signal(str)

    def __init__(
        self, text: str, folder: Path, warnings: tuple[str, ...], parent: QWidget | None
    ) -> None:
        icon = QMessageBox.Icon.Warning if warnings else QMessageBox.Icon.Information
        title = "Exported with warnings" if warnings else "Export finished"
        super().__init__(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
        self.setObjectName("export-notice")
        self.folder = folder
        self.open_button: QPushButton = self.addButton(
            "&Open Folder", QMessageBox.ButtonRole.ActionRole
        )
        self.open_button.setToolTip(str(folder))
        self.addButton(QMessageBox.StandardButton.Close)
        self.setDefaultButton(self.open_button)
        self.setEscapeButton(QMessageBox.StandardButton.Close)
        if warnings:
            shown = list(warnings[:MAX_WARNINGS_SHOWN])
            if len(warnings) > len(shown):
                more = len(warnings) - len(shown)
                shown.append(f"And {plural(more, 'more warning')} under Show Details.")
                self.setDetailedText("\n\n".join(warnings))
            self.setInformativeText("\n\n".join(shown))
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.open_button.clicked.connect(self._on_open_button_clicked)

    def _on_open_button_clicked(self) -> None:
        if not QDesktopServices.openUrl(folder_url(self.folder)):
            self.folder_not_opened.emit(
                f"Could not open {self.folder}: no file manager answered. "
                "The files are there; open the folder from your file manager."
            )
