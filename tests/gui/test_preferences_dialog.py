"""The Preferences dialog: edits come back as Settings, bad input blocks OK, the connection test
runs in the background, and a password goes to the keyring, never into the settings file."""

import json
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLabel, QWidget

from batchdesk.settings import AppPaths, Settings
from batchdesk.storage.conninfo import strip_password
from tests.integration.test_credentials import MemoryKeyring

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.preferences_dialog import PreferencesDialog

SECRET = "typed-s3cret"

# The offscreen platform says this whenever a window with a layout is shown; it is not ours.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths(tmp_path / "config", tmp_path / "data", tmp_path / "logs")


def make_dialog(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    settings: Settings | None = None,
    paths: AppPaths | None = None,
) -> PreferencesDialog:
    dialog = PreferencesDialog(settings or Settings(), tasks, paths)
    qtbot.addWidget(dialog)
    dialog.open()
    return dialog


def ok_button(dialog: PreferencesDialog) -> QWidget:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def replace_text(qtbot: QtBot, widget: QWidget, text: str) -> None:
    widget.clear()  # type: ignore[attr-defined]
    qtbot.keyClicks(widget, text)


def test_the_dialog_starts_from_the_settings_it_was_given(
    qtbot: QtBot, tasks: BackgroundTasks
) -> None:
    settings = Settings(
        database_url="postgresql://anna@db.studio/batchdesk",
        run_jobs=False,
        worker_threads=6,
        notifications=False,
        delivery_folder="/mnt/deliveries",
    )
    dialog = make_dialog(qtbot, tasks, settings)
    assert dialog.server_button.isChecked()
    assert dialog.url_edit.text() == "postgresql://anna@db.studio/batchdesk"
    assert dialog.password_edit.echoMode() == dialog.password_edit.EchoMode.Password
    assert not dialog.run_jobs_check.isChecked()
    assert dialog.threads_spin.value() == 6
    assert not dialog.notifications_check.isChecked()
    assert dialog.delivery_edit.text() == "/mnt/deliveries"
    assert dialog.result_settings() == settings
    assert dialog.password() is None


def test_changed_fields_come_back_in_result_settings(qtbot: QtBot, tasks: BackgroundTasks) -> None:
    dialog = make_dialog(qtbot, tasks, Settings(default_pipeline="web-delivery"))
    assert dialog.embedded_button.isChecked()
    assert not dialog.url_edit.isEnabled()
    qtbot.mouseClick(dialog.run_jobs_check, Qt.MouseButton.LeftButton)
    dialog.threads_spin.setValue(8)
    replace_text(qtbot, dialog.pattern_edit, r"^(?P<prefix>[A-Z]{3})-")
    replace_text(qtbot, dialog.fallback_edit, "OTHER")
    dialog.notifications_check.setChecked(False)
    qtbot.keyClicks(dialog.delivery_edit, "/srv/out")
    qtbot.mouseClick(ok_button(dialog), Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.result_settings() == Settings(
        default_pipeline="web-delivery",
        run_jobs=False,
        worker_threads=8,
        prefix_pattern=r"^(?P<prefix>[A-Z]{3})-",
        fallback_prefix="OTHER",
        notifications=False,
        delivery_folder="/srv/out",
    )


def test_an_empty_delivery_folder_turns_delivery_off(qtbot: QtBot, tasks: BackgroundTasks) -> None:
    dialog = make_dialog(qtbot, tasks, Settings(delivery_folder="/mnt/deliveries"))
    dialog.delivery_edit.clear()
    assert dialog.result_settings().delivery_folder is None


def test_browse_puts_the_chosen_folder_in_the_field(
    qtbot: QtBot, tasks: BackgroundTasks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_args: str(tmp_path))
    dialog = make_dialog(qtbot, tasks)
    qtbot.mouseClick(dialog.browse_button, Qt.MouseButton.LeftButton)
    assert dialog.result_settings().delivery_folder == str(tmp_path)


def test_an_invalid_prefix_pattern_says_why_and_disables_ok(
    qtbot: QtBot, tasks: BackgroundTasks
) -> None:
    dialog = make_dialog(qtbot, tasks)
    assert ok_button(dialog).isEnabled()
    replace_text(qtbot, dialog.pattern_edit, "([A-Z")
    assert not ok_button(dialog).isEnabled()
    assert "is not a valid regular expression" in dialog.problem.text()
    qtbot.keyClick(dialog, Qt.Key.Key_Return)
    assert dialog.isVisible()  # Enter does not get past a disabled OK
    qtbot.keyClicks(dialog.pattern_edit, "])")
    assert ok_button(dialog).isEnabled()
    assert dialog.problem.text() == ""


def test_a_studio_server_needs_a_url(qtbot: QtBot, tasks: BackgroundTasks) -> None:
    dialog = make_dialog(qtbot, tasks)
    qtbot.keyClick(dialog.server_button, Qt.Key.Key_Space)
    assert dialog.server_button.isChecked()
    assert dialog.url_edit.isEnabled()
    assert not ok_button(dialog).isEnabled()
    assert "Enter the studio server's URL" in dialog.problem.text()
    qtbot.keyClicks(dialog.url_edit, "postgresql://anna@db.studio/batchdesk")
    assert ok_button(dialog).isEnabled()
    assert dialog.result_settings().database_url == "postgresql://anna@db.studio/batchdesk"


def test_test_connection_reaches_the_real_server_without_blocking(
    qtbot: QtBot, tasks: BackgroundTasks, memory_keyring: MemoryKeyring, database_conninfo: str
) -> None:
    dialog = make_dialog(qtbot, tasks)
    dialog.server_button.setChecked(True)
    dialog.url_edit.setText(strip_password(database_conninfo))
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    # The click returned before any answer could come: the GUI thread did not wait.
    assert dialog.test_result.text() == "Connecting..."
    assert not dialog.test_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.test_result.text() != "Connecting...", timeout=15_000)
    assert dialog.test_result.text().startswith("Connected: PostgreSQL 1")
    assert dialog.test_button.isEnabled()


def test_test_connection_to_a_closed_port_fails_with_a_sentence(
    qtbot: QtBot, tasks: BackgroundTasks, memory_keyring: MemoryKeyring
) -> None:
    dialog = make_dialog(qtbot, tasks)
    dialog.server_button.setChecked(True)
    dialog.url_edit.setText("postgresql://nobody@127.0.0.1:1/batchdesk")
    qtbot.keyClicks(dialog.password_edit, SECRET)
    dialog.test_connection()
    assert dialog.test_result.text() == "Connecting..."
    qtbot.waitUntil(lambda: dialog.test_result.text() != "Connecting...", timeout=15_000)
    text = dialog.test_result.text()
    assert text.startswith("Cannot use the database nobody@127.0.0.1:1/batchdesk: ")
    assert text.endswith(".")
    assert "\n" not in text
    assert SECRET not in text


def test_ok_keeps_the_password_in_the_keyring_and_never_in_the_settings_file(
    qtbot: QtBot, tasks: BackgroundTasks, memory_keyring: MemoryKeyring, paths: AppPaths
) -> None:
    dialog = make_dialog(qtbot, tasks, paths=paths)
    dialog.server_button.setChecked(True)
    qtbot.keyClicks(dialog.url_edit, "postgresql://anna@db.studio/batchdesk")
    qtbot.keyClicks(dialog.password_edit, SECRET)
    assert dialog.password() == SECRET
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        qtbot.mouseClick(ok_button(dialog), Qt.MouseButton.LeftButton)
    assert memory_keyring.passwords == {("batchdesk", "anna@db.studio:5432/batchdesk"): SECRET}
    saved = paths.settings_file.read_text()
    assert SECRET not in saved
    assert json.loads(saved)["database_url"] == "postgresql://anna@db.studio/batchdesk"
    assert Settings.load(paths.settings_file) == dialog.result_settings()


def test_a_password_typed_into_the_url_goes_to_the_keyring_instead(
    qtbot: QtBot, tasks: BackgroundTasks, memory_keyring: MemoryKeyring, paths: AppPaths
) -> None:
    dialog = make_dialog(qtbot, tasks, paths=paths)
    dialog.server_button.setChecked(True)
    qtbot.keyClicks(dialog.url_edit, f"postgresql://anna:{SECRET}@db.studio/batchdesk")
    assert SECRET not in str(dialog.result_settings())
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        dialog.accept()
    assert list(memory_keyring.passwords.values()) == [SECRET]
    assert SECRET not in paths.settings_file.read_text()


def test_a_save_that_fails_keeps_the_dialog_open_and_says_why(
    qtbot: QtBot, tasks: BackgroundTasks, paths: AppPaths
) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        dialog = make_dialog(qtbot, tasks, paths=paths)
        dialog.server_button.setChecked(True)
        qtbot.keyClicks(dialog.url_edit, "postgresql://anna@db.studio/batchdesk")
        qtbot.keyClicks(dialog.password_edit, SECRET)
        dialog.accept()
        qtbot.waitUntil(lambda: "keyring" in dialog.problem.text(), timeout=10_000)
    finally:
        keyring.set_keyring(previous)
    assert "~/.pgpass" in dialog.problem.text()
    assert dialog.isVisible()
    assert dialog.buttons.isEnabled()
    assert not paths.settings_file.exists()


def test_every_field_has_a_mnemonic_label_and_tab_follows_the_layout(
    qtbot: QtBot, tasks: BackgroundTasks
) -> None:
    dialog = make_dialog(qtbot, tasks, Settings(database_url="postgresql://anna@db/x"))
    labels = [label for label in dialog.findChildren(QLabel) if label.buddy() is not None]
    buddies = {label.buddy() for label in labels}
    for field in (
        dialog.url_edit,
        dialog.password_edit,
        dialog.threads_spin,
        dialog.pattern_edit,
        dialog.fallback_edit,
        dialog.delivery_edit,
    ):
        assert field in buddies
    mnemonics = [label.text().split("&")[1][0].lower() for label in labels]
    for button in (
        dialog.embedded_button,
        dialog.server_button,
        dialog.test_button,
        dialog.run_jobs_check,
        dialog.notifications_check,
        dialog.browse_button,
    ):
        mnemonics.append(button.text().split("&")[1][0].lower())
    assert len(mnemonics) == len(set(mnemonics)), mnemonics

    order = [
        dialog.server_button,
        dialog.url_edit,
        dialog.password_edit,
        dialog.test_button,
        dialog.run_jobs_check,
        dialog.threads_spin,
        dialog.pattern_edit,
        dialog.fallback_edit,
        dialog.notifications_check,
        dialog.delivery_edit,
        dialog.browse_button,
    ]
    dialog.server_button.setFocus()
    for expected in order[1:]:
        qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
        assert dialog.focusWidget() is expected
