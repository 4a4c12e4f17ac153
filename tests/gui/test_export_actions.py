"""Export from the window: dialogs patched at the edge, real exports from a real database."""

import hashlib
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QSettings, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QPushButton, QWidget

from batchdesk.domain.units import format_size
from batchdesk.export import zip_export
from batchdesk.storage import batch_queries
from batchdesk.storage.batch_queries import BatchRow
from batchdesk.storage.database import Database
from tests.factories import make_batch, make_damaged_png, make_png
from tests.integration.jobs_support import run_all_jobs, submit_paths

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.export_actions import ExportActions
from batchdesk.gui.export_notice import ExportNotice

# Showing a QMessageBox on the offscreen platform logs this; it says nothing about the code.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


@pytest.fixture
def window(qtbot: QtBot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


class Recorder:
    """What an ExportActions said, signal by signal."""

    def __init__(self, actions: ExportActions) -> None:
        self.finished: list[Any] = []
        self.progress: list[Any] = []
        self.messages: list[str] = []
        self.failures: list[str] = []
        actions.export_finished.connect(self.finished.append)
        actions.progressed.connect(self.progress.append)
        actions.message.connect(self.messages.append)
        actions.failed.connect(self.failures.append)


def find_batch(database: Database, name: str) -> BatchRow:
    with database.connect() as connection:
        return batch_queries.find_batch(connection, name)


def completed_batch(database: Database, folder: Path, count: int = 3, seed: int = 0) -> BatchRow:
    result = make_batch(database, folder, count=count, seed=seed)
    run_all_jobs(database)
    return find_batch(database, result.batches[0].base_directory_name)


def stored_outputs(database: Database, batch: BatchRow) -> dict[str, str]:
    with database.connect() as connection:
        rows = connection.execute(
            "SELECT o.name, o.sha256 FROM job_outputs o JOIN jobs j ON j.id = o.job_id "
            f"WHERE j.batch_id = '{batch.id}'"
        ).fetchall()
    return {name: bytes(sha).hex() for name, sha in rows}


def answer_save(monkeypatch: pytest.MonkeyPatch, path: Path | str) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []

    def get_save_file_name(
        _parent: QWidget, _caption: str, directory: str, filter_: str
    ) -> tuple[str, str]:
        asked.append((directory, filter_))
        return str(path), filter_

    monkeypatch.setattr(QFileDialog, "getSaveFileName", get_save_file_name)
    return asked


def answer_folder(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_args: str(path))


def answer_replace(monkeypatch: pytest.MonkeyPatch, yes: bool) -> list[str]:
    asked: list[str] = []

    def question(_parent: QWidget, _title: str, text: str, *_rest: object) -> object:
        asked.append(text)
        return QMessageBox.StandardButton.Yes if yes else QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def boxes(window: QWidget) -> list[QMessageBox]:
    return [box for box in window.findChildren(QMessageBox) if box.isVisible()]


def test_export_zip_suggests_the_batch_name_in_the_last_folder_and_writes_a_valid_zip(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders")
    name = batch.base_directory_name
    settings.setValue("export/last_folder", str(out))
    asked = answer_save(monkeypatch, out / "client.zip")
    actions = ExportActions(database, tasks, window, settings)
    said = Recorder(actions)

    with qtbot.waitSignal(actions.export_finished, timeout=30_000):
        actions.export_zip(batch)

    assert asked == [(str(out / f"{name}.zip"), "Zip archives (*.zip)")]
    summary = said.finished[0]
    assert (summary.path, summary.files, summary.warnings) == (out / "client.zip", 3, ())
    size = format_size(summary.bytes)
    assert said.messages == [f"Exported {name} to {out / 'client.zip'} (3 files, {size})."]
    assert said.progress
    assert said.progress[0].total_files == 3
    with zipfile.ZipFile(out / "client.zip") as archive:
        assert archive.testzip() is None
        entries = {
            info.filename.removeprefix(f"{name}/"): hashlib.sha256(archive.read(info)).hexdigest()
            for info in archive.infolist()
        }
    assert entries.pop("manifest.csv")
    assert entries == stored_outputs(database, batch)
    assert sorted(p.name for p in out.iterdir()) == ["client.zip"]  # no temporary left
    assert actions.progress_dialog is None
    (notice,) = boxes(window)
    assert notice.icon() == QMessageBox.Icon.Information
    assert notice.text() == said.messages[0]


def test_originals_are_included_when_asked_and_the_choice_is_remembered(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=2)
    answer_save(monkeypatch, out / "with-inputs")  # no extension typed: .zip is added
    actions = ExportActions(database, tasks, window, settings)
    actions.include_originals_action.trigger()

    with qtbot.waitSignal(actions.export_finished, timeout=30_000):
        actions.export_zip(batch)

    with zipfile.ZipFile(out / "with-inputs.zip") as archive:
        names = archive.namelist()
    folder = batch.base_directory_name
    assert f"{folder}/originals/PL_DXB191_view0.png" in names
    assert f"{folder}/originals/PL_DXB192_view1.png" in names
    assert ExportActions(database, tasks, window, settings).include_inputs
    assert settings.value("export/last_folder") == str(out)


def test_cancel_stops_the_export_and_leaves_no_file(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders")
    real_export = zip_export.export_zip

    def held_export(*args: Any, progress: Callable[[Any], None], cancelled: Any, **kw: Any) -> Any:
        def hold(value: Any) -> None:
            progress(value)
            # Keep the export going until the window has cancelled it.
            deadline = time.monotonic() + 20
            while not cancelled() and time.monotonic() < deadline:
                time.sleep(0.01)

        return real_export(*args, progress=hold, cancelled=cancelled, **kw)

    monkeypatch.setattr(zip_export, "export_zip", held_export)
    answer_save(monkeypatch, out / "cancelled.zip")
    actions = ExportActions(database, tasks, window, settings)
    said = Recorder(actions)

    with qtbot.waitSignal(actions.progressed, timeout=30_000):
        actions.export_zip(batch)
    dialog = actions.progress_dialog
    assert dialog is not None
    assert "of 3 files" in dialog.labelText()
    with qtbot.waitSignal(actions.message, timeout=30_000) as blocker:
        dialog.findChild(QPushButton).click()

    assert "cancelled" in blocker.args[0]
    assert said.finished == []
    assert said.failures == []
    assert list(out.iterdir()) == []
    assert boxes(window) == []


def test_a_batch_with_a_failed_job_exports_with_a_visible_warning(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = make_png(tmp_path / "PL_DXB191_good.png", size=(64, 64))
    damaged = make_damaged_png(tmp_path / "PL_DXB192_cut.png", size=(256, 256), seed=99)
    name = submit_paths(database, [good, damaged])
    run_all_jobs(database)
    batch = find_batch(database, name)
    answer_save(monkeypatch, out / f"{name}.zip")
    actions = ExportActions(database, tasks, window, settings)
    said = Recorder(actions)

    with qtbot.waitSignal(actions.export_finished, timeout=30_000):
        actions.export_zip(batch)

    assert said.messages[0].endswith("with 1 warning.")
    (box,) = boxes(window)
    assert box.icon() == QMessageBox.Icon.Warning
    assert f"1 job in {name} failed; manifest.csv gives each reason." in box.informativeText()
    assert (out / f"{name}.zip").is_file()


def test_an_export_that_cannot_be_written_says_why_in_one_sentence(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=1)
    missing = tmp_path / "gone" / "x.zip"
    answer_save(monkeypatch, missing)
    actions = ExportActions(database, tasks, window, settings)

    with qtbot.waitSignal(actions.failed, timeout=30_000) as blocker:
        actions.export_zip(batch)

    assert blocker.args == [f"The folder {missing.parent} does not exist; choose another."]
    assert boxes(window) == []  # the window shows `failed` sentences in a box of its own


def test_closing_the_save_dialog_exports_nothing(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=1)
    answer_save(monkeypatch, "")
    actions = ExportActions(database, tasks, window, settings)
    actions.export_zip(batch)
    assert tasks.active == 0
    assert actions.progress_dialog is None


def test_save_job_outputs_writes_them_and_asks_before_replacing(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=2)
    with database.connect() as connection:
        job = batch_queries.list_jobs(connection, batch.id)[1]
    answer_folder(monkeypatch, out)
    actions = ExportActions(database, tasks, window, settings)
    said = Recorder(actions)

    with qtbot.waitSignal(actions.export_finished, timeout=30_000):
        actions.save_job_outputs(batch, job)
    written = out / job.file_name
    assert written.read_bytes() == (tmp_path / "renders" / job.file_name).read_bytes()
    size = format_size(written.stat().st_size)
    assert said.messages == [f"Saved 1 output of {job.file_name} to {out} ({size})."]

    written.write_bytes(b"old")
    asked = answer_replace(monkeypatch, yes=True)
    with qtbot.waitSignal(actions.export_finished, timeout=30_000):
        actions.save_job_outputs(batch, job)
    assert asked == [f"{job.file_name} already exists in {out}. Replace?"]
    assert written.read_bytes() == (tmp_path / "renders" / job.file_name).read_bytes()


def test_several_batches_go_to_one_folder_each_as_its_own_zip(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_batch(database, tmp_path / "a", count=2, seed=0)
    make_batch(database, tmp_path / "b", count=3, seed=10)
    run_all_jobs(database)
    with database.connect() as connection:
        batches = batch_queries.list_batches(connection, batch_queries.BatchQuery())
    names = sorted(f"{b.base_directory_name}.zip" for b in batches)
    answer_folder(monkeypatch, out)
    actions = ExportActions(database, tasks, window, settings)
    said = Recorder(actions)

    with qtbot.waitSignal(actions.message, timeout=30_000):
        actions.export_zips(batches)
    assert sorted(p.name for p in out.iterdir()) == names
    assert len(said.finished) == 2
    size = format_size(sum(summary.bytes for summary in said.finished))
    assert said.messages == [f"Exported 2 batches to {out} (5 files, {size})."]

    asked = answer_replace(monkeypatch, yes=True)
    actions.export_zips(batches)
    qtbot.waitUntil(lambda: len(said.finished) == 4, timeout=30_000)
    assert len(asked) == 1
    assert all(name in asked[0] for name in names)
    assert said.messages[-1] == f"Exported 2 batches to {out} (5 files, {size})."


def test_the_end_of_an_export_is_a_message_that_opens_the_folder_and_blocks_nothing(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=1)
    answer_save(monkeypatch, out / "client.zip")
    opened: list[QUrl] = []

    def open_url(url: QUrl) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    actions = ExportActions(database, tasks, window, settings)
    with qtbot.waitSignal(actions.export_finished, timeout=30_000):
        actions.export_zip(batch)

    notice = actions.notice
    assert notice is not None
    assert notice.isVisible()
    assert not notice.isModal()
    assert QApplication.activeModalWidget() is None  # the window goes on meanwhile
    assert notice.windowTitle() == "Export finished"
    notice.open_button.click()
    assert opened == [QUrl.fromLocalFile(str(out))]
    qtbot.waitUntil(lambda: boxes(window) == [])  # it closes once the folder is opened


def test_a_folder_that_cannot_be_opened_is_said_in_the_status_bar(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=1)
    with database.connect() as connection:
        job = batch_queries.list_jobs(connection, batch.id)[0]
    answer_folder(monkeypatch, out)
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda _url: False)
    actions = ExportActions(database, tasks, window, settings)
    said = Recorder(actions)
    with qtbot.waitSignal(actions.export_finished, timeout=30_000):
        actions.save_job_outputs(batch, job)

    notice = actions.notice
    assert notice is not None
    assert notice.text() == said.messages[0]
    notice.open_button.click()
    assert said.messages[-1] == (
        f"Could not open {out}: no file manager answered. "
        "The files are there; open the folder from your file manager."
    )


def test_the_next_export_replaces_the_last_ones_message(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=1)
    actions = ExportActions(database, tasks, window, settings)
    for name in ("first.zip", "second.zip"):
        answer_save(monkeypatch, out / name)
        with qtbot.waitSignal(actions.export_finished, timeout=30_000):
            actions.export_zip(batch)

    qtbot.waitUntil(lambda: len(boxes(window)) == 1)
    (notice,) = boxes(window)
    assert "second.zip" in notice.text()


def test_the_save_dialog_starts_where_the_last_export_went_even_after_a_restart(
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    out: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=1)
    state_file = str(tmp_path / "window.ini")
    answer_save(monkeypatch, out / "client.zip")
    first = ExportActions(
        database, tasks, window, QSettings(state_file, QSettings.Format.IniFormat)
    )
    with qtbot.waitSignal(first.export_finished, timeout=30_000):
        first.export_zip(batch)
    del first

    # The next start reads the same file anew.
    asked = answer_save(monkeypatch, "")
    again = ExportActions(
        database, tasks, window, QSettings(state_file, QSettings.Format.IniFormat)
    )
    again.export_zip(batch)
    assert asked == [(str(out / f"{batch.base_directory_name}.zip"), "Zip archives (*.zip)")]


@pytest.mark.parametrize("pictures_exists", [True, False])
def test_a_first_export_starts_in_pictures_else_home_never_the_working_folder(
    pictures_exists: bool,
    qtbot: QtBot,
    database: Database,
    tasks: BackgroundTasks,
    window: QWidget,
    settings: QSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = completed_batch(database, tmp_path / "renders", count=1)
    home = tmp_path / "home"
    (home / "Pictures").mkdir(parents=True) if pictures_exists else home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user-dirs.dirs there
    started_in = tmp_path / "started-here"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    settings.setValue("export/last_folder", str(tmp_path / "a folder deleted since"))
    asked = answer_save(monkeypatch, "")

    ExportActions(database, tasks, window, settings).export_zip(batch)

    folder = home / "Pictures" if pictures_exists else home
    assert asked == [(str(folder / f"{batch.base_directory_name}.zip"), "Zip archives (*.zip)")]


def test_many_warnings_show_the_first_few_and_keep_all_in_the_details(qtbot: QtBot) -> None:
    warnings = tuple(f"{n} jobs in PL_DXB_2026-11-28_batch-{n} failed." for n in range(1, 8))
    notice = ExportNotice("Exported 7 batches to /tmp/out.", Path("/tmp/out"), warnings, None)
    qtbot.addWidget(notice)

    assert notice.windowTitle() == "Exported with warnings"
    assert notice.icon() == QMessageBox.Icon.Warning
    shown = notice.informativeText()
    assert warnings[0] in shown
    assert warnings[3] in shown
    assert warnings[4] not in shown
    assert "And 3 more warnings under Show Details." in shown
    assert notice.detailedText() == "\n\n".join(warnings)
