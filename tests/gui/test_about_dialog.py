"""The About dialog names every version a bug report needs, the database and the local paths."""

import platform
from importlib import metadata
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

import PySide6
from PySide6.QtCore import qVersion
from PySide6.QtGui import QGuiApplication

from batchdesk import __version__
from batchdesk.settings import AppPaths

from batchdesk.gui.about_dialog import AboutDialog

pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


def test_about_shows_the_versions_the_database_and_the_paths(qtbot: QtBot, tmp_path: Path) -> None:
    paths = AppPaths(tmp_path / "config", tmp_path / "data", tmp_path / "logs")
    dialog = AboutDialog("anna@db.studio:5432/batchdesk", paths, server_version="PostgreSQL 15.19")
    qtbot.addWidget(dialog)
    dialog.show()
    shown = dialog.details.toPlainText()
    for expected in (
        f"batchdesk {__version__}",
        f"Python {platform.python_version()}",
        f"Qt {qVersion()}, PySide6 {PySide6.__version__}",
        f"Pillow {metadata.version('Pillow')}",
        "Server: PostgreSQL 15.19",
        "Database: anna@db.studio:5432/batchdesk",
        f"Settings: {paths.settings_file}",
        f"Logs: {paths.log_dir}",
    ):
        assert expected in shown
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == shown


def test_about_without_a_server_version_or_paths_leaves_them_out(qtbot: QtBot) -> None:
    dialog = AboutDialog("not connected")
    qtbot.addWidget(dialog)
    assert "Server:" not in dialog.text
    assert "Settings:" not in dialog.text
    assert "Database: not connected" in dialog.text
