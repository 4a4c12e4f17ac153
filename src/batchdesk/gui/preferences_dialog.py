"""The Preferences dialog: database, jobs, names, notifications, auto-delivery and the theme.

The dialog edits a copy of the settings. Given the app's paths it also saves them when OK is
pressed: the settings file (never with a password) and the typed password into the OS keyring,
both on a pool thread; a failure (no keyring, a read-only config folder) is shown in the dialog,
which stays open with the user's edits. Without paths it only returns what was chosen
(`result_settings()`, `password()`) and the caller saves.

Database changes take effect at the next start; the dialog says so. "Test connection" connects
on a pool thread with a 5 s timeout, so the window never waits on a server that does not answer.
"""

import dataclasses
import itertools
from pathlib import Path

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.naming import PrefixRule
from batchdesk.errors import KnownError
from batchdesk.settings import MAX_WORKER_THREADS, AppPaths, Settings
from batchdesk.storage import conninfo as conninfo_text
from batchdesk.storage import credentials
from batchdesk.storage.database import server_version

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.theme import THEMES, theme_name

TEST_TIMEOUT_SECONDS = 5
URL_PLACEHOLDER = "postgresql://USER@HOST:PORT/DATABASE"


def save_preferences(paths: AppPaths, settings: Settings, password: str | None) -> None:
    """Keep `password` in the keyring for the settings' server, then write the settings file.

    The password goes first: when the keyring refuses it, nothing has changed yet.

    Raises:
        KnownError: the keyring or the settings file could not be written.
    """
    if password and settings.database_url:
        credentials.store_password(settings.database_url, password)
    try:
        settings.save(paths.settings_file)
    except OSError as exc:
        raise KnownError(
            f"Cannot write the settings file {paths.settings_file}: {exc.strerror}."
        ) from exc


class PreferencesDialog(QDialog):
    """Edit the settings; `exec()`, then read `result_settings()` and `password()`."""

    def __init__(
        self,
        settings: Settings,
        tasks: BackgroundTasks,
        paths: AppPaths | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("batchdesk Preferences")
        self._settings = settings
        self._tasks = tasks
        self._paths = paths
        self._saving = False
        self._test_generation = 0  # a result for an older URL or password is not shown

        # Database
        self.embedded_button = QRadioButton("&Embedded (on this computer)")
        self.server_button = QRadioButton("&Studio server:")
        self._database_choice = QButtonGroup(self)
        self._database_choice.addButton(self.embedded_button)
        self._database_choice.addButton(self.server_button)
        self.url_edit = QLineEdit(settings.database_url or "")
        self.url_edit.setPlaceholderText(URL_PLACEHOLDER)
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText("Leave empty to keep the saved one or use ~/.pgpass")
        self.test_button = QPushButton("Test &connection")
        self.test_result = _wrapping_label()
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        server_form = QFormLayout()
        server_form.addRow(_buddy_label("&URL:", self.url_edit), self.url_edit)
        server_form.addRow(_buddy_label("Pass&word:", self.password_edit), self.password_edit)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addStretch(1)
        server_form.addRow(test_row)
        database_box = QGroupBox("Database")
        database_layout = QVBoxLayout(database_box)
        database_layout.addWidget(self.embedded_button)
        database_layout.addWidget(self.server_button)
        database_layout.addLayout(server_form)
        # A row of its own: QFormLayout squeezes a wrapping label that shares a row.
        database_layout.addWidget(self.test_result)
        database_layout.addWidget(
            _wrapping_label(
                "The password is kept in the system keyring, never in the settings file. "
                "Database changes take effect the next time batchdesk starts."
            )
        )

        # Jobs
        self.run_jobs_check = QCheckBox("&Run jobs on this computer while batchdesk is open")
        self.run_jobs_check.setChecked(settings.run_jobs)
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(1, MAX_WORKER_THREADS)
        self.threads_spin.setValue(min(max(settings.worker_threads, 1), MAX_WORKER_THREADS))
        jobs_box = QGroupBox("Jobs")
        jobs_layout = QFormLayout(jobs_box)
        jobs_layout.addRow(self.run_jobs_check)
        jobs_layout.addRow(_buddy_label("Worker t&hreads:", self.threads_spin), self.threads_spin)

        # Names
        self.pattern_edit = QLineEdit(settings.prefix_pattern)
        self.fallback_edit = QLineEdit(settings.fallback_prefix)
        names_box = QGroupBox("Batch names")
        names_layout = QFormLayout(names_box)
        names_layout.addRow(_buddy_label("&Prefix pattern:", self.pattern_edit), self.pattern_edit)
        names_layout.addRow(
            _buddy_label("&Fallback prefix:", self.fallback_edit), self.fallback_edit
        )

        # Delivery and notifications
        self.notifications_check = QCheckBox("Show a &notification when a batch finishes")
        self.notifications_check.setChecked(settings.notifications)
        self.delivery_edit = QLineEdit(settings.delivery_folder or "")
        self.delivery_edit.setPlaceholderText("Empty: completed batches are not copied anywhere")
        self.browse_button = QPushButton("&Browse...")
        delivery_row = QHBoxLayout()
        delivery_row.addWidget(self.delivery_edit, 1)
        delivery_row.addWidget(self.browse_button)
        delivery_box = QGroupBox("Delivery and notifications")
        delivery_layout = QFormLayout(delivery_box)
        delivery_layout.addRow(self.notifications_check)
        delivery_layout.addRow(
            _buddy_label("Auto-&delivery folder:", self.delivery_edit), delivery_row
        )

        # Appearance
        self.theme_combo = QComboBox()
        for value, text in THEMES:
            self.theme_combo.addItem(text, value)
        self.theme_combo.setCurrentIndex(self.theme_combo.findData(theme_name(settings.theme)))
        appearance_box = QGroupBox("Appearance")
        appearance_layout = QFormLayout(appearance_box)
        appearance_layout.addRow(_buddy_label("The&me:", self.theme_combo), self.theme_combo)

        self.problem = _wrapping_label()
        self.problem.setObjectName("preferences-problem")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        layout = QVBoxLayout(self)
        for box in (database_box, jobs_box, names_box, delivery_box, appearance_box):
            layout.addWidget(box)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)

        QWidget.setTabOrder(self.embedded_button, self.server_button)
        chain: list[QWidget] = [
            self.server_button,
            self.url_edit,
            self.password_edit,
            self.test_button,
            self.run_jobs_check,
            self.threads_spin,
            self.pattern_edit,
            self.fallback_edit,
            self.notifications_check,
            self.delivery_edit,
            self.browse_button,
            self.theme_combo,
            self.buttons,
        ]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)

        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.server_button.toggled.connect(self._on_server_button_toggled)
        self.url_edit.textChanged.connect(self._on_connection_edited)
        self.password_edit.textChanged.connect(self._on_connection_edited)
        self.test_button.clicked.connect(self.test_connection)
        self.pattern_edit.textChanged.connect(self._validate)
        self.fallback_edit.textChanged.connect(self._validate)
        self.browse_button.clicked.connect(self._on_browse_button_clicked)

        if settings.database_url:
            self.server_button.setChecked(True)
        else:
            self.embedded_button.setChecked(True)
        self._on_server_button_toggled(self.server_button.isChecked())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._keep_rows_whole()

    def _say(self, label: QLabel, text: str) -> None:
        label.setText(text)
        label.setVisible(bool(text))  # an empty wrapping label would still take a line
        self._keep_rows_whole()

    def _keep_rows_whole(self) -> None:
        # Qt does not apply height-for-width to a window: without this, a sentence wrapping onto
        # another line squeezes the line edits instead of making the dialog taller.
        layout = self.layout()
        needed = layout.totalHeightForWidth(self.width()) if layout is not None else -1
        if needed > 0 and needed != self.minimumHeight():
            self.setMinimumHeight(needed)
            if self.height() < needed:
                self.resize(self.width(), needed)

    # -- results -----------------------------------------------------------------------------

    def result_settings(self) -> Settings:
        """Return the settings as chosen, never with a password in the database URL."""
        url = self._server_url()
        delivery = self.delivery_edit.text().strip()
        return dataclasses.replace(
            self._settings,
            database_url=conninfo_text.strip_password(url) if url else None,
            run_jobs=self.run_jobs_check.isChecked(),
            worker_threads=self.threads_spin.value(),
            prefix_pattern=self.pattern_edit.text(),
            fallback_prefix=self.fallback_edit.text().strip(),
            notifications=self.notifications_check.isChecked(),
            delivery_folder=delivery or None,
            theme=str(self.theme_combo.currentData()),
        )

    def password(self) -> str | None:
        """Return the password to keep in the keyring, or None to leave the keyring as it is.

        A password typed into the URL itself counts too: it is taken out of the URL, which is
        saved without it.
        """
        url = self._server_url()
        if not url:
            return None
        typed = self.password_edit.text()
        if typed:
            return typed
        try:
            return credentials.password_in(url)
        except KnownError:
            return None

    # -- saving ------------------------------------------------------------------------------

    def accept(self) -> None:
        """Save (when the dialog was given the paths) on a pool thread, then close."""
        if self._saving or self._problem_with_input() is not None:
            return
        if self._paths is None:
            super().accept()
            return
        paths, settings, password = self._paths, self.result_settings(), self.password()
        self._set_saving(True)
        self._say(self.problem, "Saving...")

        def work(_context: TaskContext) -> None:
            save_preferences(paths, settings, password)

        self._tasks.run(
            "save the preferences",
            work,
            on_result=lambda _none: self._on_saved(),
            on_error=self._on_save_failed,
            on_finished=lambda: self._set_saving(False),
        )

    def reject(self) -> None:
        if not self._saving:  # closing now would hide whether the save worked
            super().reject()

    def _set_saving(self, saving: bool) -> None:
        if not shiboken6.isValid(self):
            return
        self._saving = saving
        self.buttons.setEnabled(not saving)
        if not saving:
            self._validate()  # replaces "Saving..."; a failure's sentence follows it

    def _on_saved(self) -> None:
        if shiboken6.isValid(self):
            self._say(self.problem, "")
            super().accept()

    def _on_save_failed(self, error: KnownError) -> None:
        if shiboken6.isValid(self):
            self._say(self.problem, str(error))

    # -- test connection ---------------------------------------------------------------------

    def test_connection(self) -> None:
        """Connect to the server in the URL on a pool thread and show the outcome."""
        url = self._server_url()
        if not url:
            self._say(self.test_result, self._problem_with_input() or "Enter the server's URL.")
            return
        password = self.password_edit.text()
        self._test_generation += 1
        generation = self._test_generation
        self.test_button.setEnabled(False)
        self._say(self.test_result, "Connecting...")

        def work(_context: TaskContext) -> str:
            if password:
                conninfo = credentials.conninfo_with_password(url, password)
            else:
                conninfo = credentials.conninfo_with_keyring_password(url)
            return server_version(conninfo, TEST_TIMEOUT_SECONDS)

        def show(text: str) -> None:
            if shiboken6.isValid(self) and generation == self._test_generation:
                self._say(self.test_result, text)
                self.test_button.setEnabled(self.server_button.isChecked())

        self._tasks.run(
            "test the database connection",
            work,
            on_result=lambda version: show(f"Connected: {version}"),
            on_error=lambda error: show(str(error)),
        )

    # -- slots and checks --------------------------------------------------------------------

    def _on_server_button_toggled(self, checked: bool) -> None:
        for widget in (self.url_edit, self.password_edit, self.test_button):
            widget.setEnabled(checked)
        self._on_connection_edited()

    def _on_connection_edited(self) -> None:
        self._test_generation += 1  # a test still running answers for the old text
        self._say(self.test_result, "")
        self.test_button.setEnabled(self.server_button.isChecked())
        self._validate()

    def _on_browse_button_clicked(self) -> None:
        start = self.delivery_edit.text().strip() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Auto-delivery folder", start)
        if folder:
            self.delivery_edit.setText(folder)

    def _validate(self) -> None:
        if self._saving:
            return
        problem = self._problem_with_input()
        self._say(self.problem, problem or "")
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(problem is None)

    def _problem_with_input(self) -> str | None:
        """Return a sentence saying why OK cannot be pressed yet, or None."""
        if self.server_button.isChecked():
            url = self.url_edit.text().strip()
            if not url:
                return f"Enter the studio server's URL, like {URL_PLACEHOLDER}."
            try:
                conninfo_text.normalise(url)
            except KnownError as exc:
                return str(exc)
        try:
            PrefixRule(pattern=self.pattern_edit.text(), fallback=self.fallback_edit.text().strip())
        except KnownError as exc:
            return str(exc)
        return None

    def _server_url(self) -> str | None:
        if not self.server_button.isChecked():
            return None
        return self.url_edit.text().strip() or None


def _buddy_label(text: str, buddy: QWidget) -> QLabel:
    """Return a label whose mnemonic (the letter after '&') moves the focus to `buddy`."""
    label = QLabel(text)
    label.setBuddy(buddy)
    return label


def _wrapping_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label
