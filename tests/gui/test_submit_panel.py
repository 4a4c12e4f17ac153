"""The submit panel: drops and pastes, the exact batch names, submit, cancel, the keyboard."""

import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QItemSelectionModel, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from batchdesk.domain.units import format_size
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.settings import Settings
from batchdesk.storage import blob_store, pipeline_store
from batchdesk.storage.database import Database
from batchdesk.storage.pool import only_row
from batchdesk.storage.submission import SubmissionResult
from tests.factories import make_batch, make_png
from tests.gui.test_pending_files_model import write_png_header

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.pending_file_delegate import PendingFileDelegate
from batchdesk.gui.submit_panel import EMPTY_TEXT, SubmitPanel, paths_from_mime, progress_text
from batchdesk.gui.workspace import SUBMIT_WIDTH


@pytest.fixture
def panel(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> Iterator[SubmitPanel]:
    pipeline_store.install_missing(database, default_pipelines())  # as the app does at start
    widget = SubmitPanel(database, tasks, Settings())
    qtbot.addWidget(widget)
    yield widget
    # Whatever the test left running finishes before the database goes.
    assert tasks.shutdown(30_000)


def today(database: Database) -> str:
    with database.connect() as connection:
        day: date = only_row(connection.execute("SELECT batchdesk_today()"))[0]
    return day.isoformat()


def batches_in(database: Database) -> list[tuple[str, int, str, str]]:
    with database.connect() as connection:
        rows = connection.execute(
            "SELECT base_directory_name, total_files, render_description, pipeline "
            "FROM batches ORDER BY base_directory_name"
        ).fetchall()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def count(database: Database, table: str) -> int:
    with database.connect() as connection:
        return int(only_row(connection.execute(f"SELECT count(*) FROM {table}"))[0])


def file_urls(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    return mime


def drop(panel: SubmitPanel, mime: QMimeData) -> tuple[QDragEnterEvent, QDropEvent]:
    """Drag `mime` over the panel and drop it, as a file manager does (copy or move offered)."""
    offered = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    # PySide6 6.11 takes a QPoint for the drag events and a QPointF for the drop.
    enter = QDragEnterEvent(QPoint(20, 20), offered, mime, buttons, keys)
    QApplication.sendEvent(panel, enter)
    dropped = QDropEvent(QPointF(20, 20), offered, mime, buttons, keys)
    if enter.isAccepted():
        QApplication.sendEvent(panel, dropped)
    return enter, dropped


def wait_for_names(qtbot: QtBot, panel: SubmitPanel, names: list[str]) -> None:
    qtbot.waitUntil(lambda: panel.batch_names == names, timeout=10_000)


def wait_until_read(qtbot: QtBot, panel: SubmitPanel, rows: int) -> None:
    qtbot.waitUntil(lambda: panel.model.rowCount() == rows and not panel.model.scanning)


def submit_and_wait(qtbot: QtBot, panel: SubmitPanel) -> SubmissionResult:
    with qtbot.waitSignal(panel.batches_submitted, timeout=30_000) as blocker:
        qtbot.mouseClick(panel.submit_button, Qt.MouseButton.LeftButton)
    result: SubmissionResult = blocker.args[0]
    return result


def test_an_empty_panel_asks_for_a_drop_and_cannot_submit(panel: SubmitPanel) -> None:
    assert panel.drop_area.text() == EMPTY_TEXT
    assert panel.drop_area.isVisibleTo(panel)
    assert not panel.list.isVisibleTo(panel)
    assert panel.add_files_button.isVisibleTo(panel)
    assert panel.add_folder_button.isVisibleTo(panel)
    assert not panel.submit_button.isEnabled()
    assert not panel.clear_button.isEnabled()


def test_dropped_files_and_folders_are_copied_in_and_bad_files_flagged(
    qtbot: QtBot, panel: SubmitPanel, tmp_path: Path
) -> None:
    png = make_png(tmp_path / "PL_DXB191_front.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    make_png(tmp_path / "shoot" / "PL_DXB192_back.png", seed=1)
    make_png(tmp_path / "shoot" / "close-ups" / "PL_DXB193_detail.png", seed=2)

    enter, dropped = drop(panel, file_urls(png, notes, tmp_path / "shoot"))

    assert enter.isAccepted()
    assert enter.dropAction() == Qt.DropAction.CopyAction
    assert dropped.isAccepted()
    assert dropped.dropAction() == Qt.DropAction.CopyAction
    wait_until_read(qtbot, panel, 4)
    rows = {row.file_name: row for row in panel.model.files()}
    assert set(rows) == {
        "PL_DXB191_front.png",
        "notes.txt",
        "PL_DXB192_back.png",
        "PL_DXB193_detail.png",
    }
    assert rows["notes.txt"].problem == "not a PNG file (.txt)"
    assert len(panel.model.accepted_files()) == 3
    assert panel.list.isVisibleTo(panel)
    assert not panel.drop_area.isVisibleTo(panel)
    assert panel.submit_button.isEnabled()


def test_a_drag_without_local_files_is_refused(panel: SubmitPanel) -> None:
    web_link = QMimeData()
    web_link.setUrls([QUrl("https://example.com/PL_DXB191_front.png")])

    enter, _dropped = drop(panel, web_link)

    assert not enter.isAccepted()
    assert panel.model.rowCount() == 0


def test_pasted_paths_are_added(qtbot: QtBot, panel: SubmitPanel, tmp_path: Path) -> None:
    first = make_png(tmp_path / "PL_DXB191_front.png")
    second = make_png(tmp_path / "with space" / "PL_DXB192_back.png", seed=1)
    clipboard = QMimeData()
    clipboard.setText(f"{first}\n{second}\n")

    panel.add_paths(paths_from_mime(clipboard))

    wait_until_read(qtbot, panel, 2)
    assert [f.path for f in panel.model.accepted_files()] == [first, second]


def test_the_previewed_name_is_the_name_submit_creates(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path
) -> None:
    day = today(database)
    panel.add_paths([make_png(tmp_path / "PL_DXB191_front.png")])
    wait_for_names(qtbot, panel, [f"PL_DXB_{day}_batch-1"])
    assert f"Will create PL_DXB_{day}_batch-1 (1 file," in panel.form.names.text()
    assert panel.form.customers.text() == "Customer: PL_DXB"

    (batch,) = submit_and_wait(qtbot, panel).batches

    assert batch.base_directory_name == f"PL_DXB_{day}_batch-1"


def test_a_batch_made_elsewhere_today_moves_the_preview_to_the_next_number(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path
) -> None:
    day = today(database)
    make_batch(database, tmp_path / "earlier", prefix="PL_DXB")
    panel.add_paths([make_png(tmp_path / "mine" / "PL_DXB191_front.png", seed=99)])
    wait_for_names(qtbot, panel, [f"PL_DXB_{day}_batch-2"])

    # Another workstation takes batch-2; the window hears of it and refreshes the preview.
    make_batch(database, tmp_path / "elsewhere", prefix="PL_DXB", seed=50)
    panel.refresh_preview()
    wait_for_names(qtbot, panel, [f"PL_DXB_{day}_batch-3"])

    (batch,) = submit_and_wait(qtbot, panel).batches
    assert batch.base_directory_name == f"PL_DXB_{day}_batch-3"


def test_mixed_customers_are_said_and_get_one_batch_each_by_default(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path
) -> None:
    day = today(database)
    make_batch(database, tmp_path / "earlier", prefix="QX_ABC")
    panel.add_paths(
        [
            make_png(tmp_path / "PL_DXB191_front.png", seed=1),
            make_png(tmp_path / "QX_ABC7_side.png", seed=2),
            make_png(tmp_path / "PL_DXB192_back.png", seed=3),
        ]
    )
    wait_for_names(qtbot, panel, [f"PL_DXB_{day}_batch-1", f"QX_ABC_{day}_batch-2"])
    assert panel.form.customers.text() == "These files belong to 2 customers (PL_DXB, QX_ABC)."
    assert panel.form.split.isVisibleTo(panel)
    assert panel.form.split.isChecked()
    assert panel.form.names.text().startswith("Will create 2 batches:")

    panel.form.split.setChecked(False)
    wait_for_names(qtbot, panel, [f"PL_DXB_{day}_batch-1"])
    assert "named after the first file's customer" in panel.form.names.text()
    panel.form.split.setChecked(True)

    result = submit_and_wait(qtbot, panel)

    assert [(b.base_directory_name, b.total_files) for b in result.batches] == [
        (f"PL_DXB_{day}_batch-1", 2),
        (f"QX_ABC_{day}_batch-2", 1),
    ]


def test_submitting_creates_the_batch_clears_the_list_and_says_what_was_created(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path
) -> None:
    day = today(database)
    paths = [make_png(tmp_path / f"PL_DXB19{i}_v.png", seed=i) for i in range(3)]
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    panel.add_paths([*paths, notes])
    wait_until_read(qtbot, panel, 4)
    qtbot.waitUntil(lambda: panel.form.pipeline.count() > 1)
    assert panel.form.pipeline.currentData() == "original"
    panel.form.pipeline.setCurrentIndex(panel.form.pipeline.findData("thumbnails"))
    thumbnails = next(p for p in default_pipelines() if p["name"] == "thumbnails")
    assert panel.form.pipeline_description.text() == f"Version 1. {thumbnails['description']}"
    panel.form.description.setText("Spring shoot, retouched")
    busy: list[bool] = []
    panel.busy_changed.connect(busy.append)

    result = submit_and_wait(qtbot, panel)

    name = f"PL_DXB_{day}_batch-1"
    assert [b.base_directory_name for b in result.batches] == [name]
    assert batches_in(database) == [(name, 3, "Spring shoot, retouched", "thumbnails")]
    assert count(database, "jobs") == 3
    assert busy == [True, False]
    assert panel.model.rowCount() == 0  # the skipped notes.txt goes too
    assert panel.form.description.text() == ""
    assert panel.form.pipeline.currentData() == "thumbnails"
    assert panel.message.startswith(f"Created {name} (3 files,")
    assert not panel.submit_button.isEnabled()


def test_a_file_with_too_many_pixels_is_flagged_and_left_out(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path
) -> None:
    good = make_png(tmp_path / "PL_DXB191_front.png")
    bomb = write_png_header(tmp_path / "PL_DXB192_bomb.png", 50_000, 50_000)
    panel.add_paths([good, bomb])
    wait_until_read(qtbot, panel, 2)

    flagged = next(row for row in panel.model.files() if row.path == bomb)
    assert flagged.problem is not None
    assert flagged.problem.startswith("too many pixels")
    assert "1 will be skipped" in panel.summary.text()

    (batch,) = submit_and_wait(qtbot, panel).batches
    assert batch.total_files == 1


def test_cancelling_an_upload_leaves_no_batch_and_keeps_the_files(
    qtbot: QtBot,
    panel: SubmitPanel,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day = today(database)
    paths = [make_png(tmp_path / f"PL_DXB19{i}_v.png", seed=i) for i in range(6)]
    panel.add_paths(paths)
    wait_for_names(qtbot, panel, [f"PL_DXB_{day}_batch-1"])
    # Hashing the second file waits until Cancel has been pressed, so the upload is surely
    # still under way when the cancel arrives: deterministic, however fast the machine.
    cancel_pressed = threading.Event()
    real_hash_file = blob_store.hash_file

    def hash_after_cancel(path: Path, *args: object) -> blob_store.FileDigest:
        if path != paths[0]:
            cancel_pressed.wait(30)
        return real_hash_file(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(blob_store, "hash_file", hash_after_cancel)
    outcome: list[bool] = []
    panel.busy_changed.connect(outcome.append)
    try:
        panel.submit()
        qtbot.waitUntil(lambda: panel.progress_label.text().startswith("Storing"))
        assert panel.progress.isVisibleTo(panel)
        assert panel.cancel_button.isEnabled()
        assert not panel.submit_button.isEnabled()
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    finally:
        cancel_pressed.set()
    qtbot.waitUntil(lambda: outcome == [True, False], timeout=30_000)

    assert panel.message == "The submission was cancelled; no batch was created."
    assert (count(database, "batches"), count(database, "batch_day_counters")) == (0, 0)
    assert panel.model.rowCount() == 6
    assert not panel.progress.isVisibleTo(panel)
    assert panel.submit_button.isEnabled()
    panel.refresh_preview()
    wait_for_names(qtbot, panel, [f"PL_DXB_{day}_batch-1"])


def test_a_known_error_is_one_sentence_in_the_panel(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path
) -> None:
    panel.add_paths([make_png(tmp_path / "PL_DXB191_front.png")])
    wait_until_read(qtbot, panel, 1)
    qtbot.waitUntil(lambda: panel.form.pipeline_description.text() != "Loading the pipelines...")
    # Another workstation renames the pipeline between choosing it and submitting.
    with database.begin() as connection:
        connection.execute("UPDATE pipelines SET name = 'kept' WHERE name = 'original'")

    with qtbot.waitSignal(panel.busy_changed, check_params_cb=lambda busy: not busy):
        panel.submit()

    assert panel.message.startswith("There is no pipeline named 'original'; choose one of ")
    assert "kept" in panel.message
    assert count(database, "batches") == 0
    assert panel.model.rowCount() == 1


@pytest.mark.parametrize("change", ["retired", "invalid"])
def test_a_pipeline_retired_or_broken_after_it_was_chosen_is_refused_before_any_upload(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path, change: str
) -> None:
    panel.add_paths([make_png(tmp_path / "PL_DXB191_front.png")])
    wait_until_read(qtbot, panel, 1)
    qtbot.waitUntil(lambda: panel.form.pipeline_description.text() != "Loading the pipelines...")
    # Another workstation retires the chosen pipeline, or breaks it by SQL, meanwhile.
    with database.begin() as connection:
        if change == "retired":
            pipeline_store.set_retired(connection, "original", retired=True)
        else:
            connection.execute(
                """UPDATE pipelines SET steps = '[{"op": "trim", "tolerance": 999}]' """
                "WHERE name = 'original'"
            )

    with qtbot.waitSignal(panel.busy_changed, check_params_cb=lambda busy: not busy):
        panel.submit()

    if change == "retired":
        assert panel.message.startswith("Pipeline original is retired and not offered")
    else:
        assert panel.message == (
            "Pipeline original, step 1 (trim): tolerance must be a whole number from 0 to 255, "
            "not 999."
        )
    assert (count(database, "batches"), count(database, "blobs")) == (0, 0)
    assert panel.model.rowCount() == 1


def test_ctrl_return_submits_from_the_description(
    qtbot: QtBot, panel: SubmitPanel, database: Database, tmp_path: Path
) -> None:
    panel.show()
    qtbot.waitExposed(panel)
    panel.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is panel)
    panel.add_paths([make_png(tmp_path / "PL_DXB191_front.png")])
    qtbot.waitUntil(panel.submit_button.isEnabled)
    panel.form.description.setFocus()
    qtbot.keyClicks(panel.form.description, "Front views")

    with qtbot.waitSignal(panel.batches_submitted, timeout=30_000):
        qtbot.keyClick(
            panel.form.description, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier
        )

    assert batches_in(database)[0][2] == "Front views"


def test_tab_goes_from_the_list_to_description_pipeline_and_submit(
    qtbot: QtBot, panel: SubmitPanel, tmp_path: Path
) -> None:
    panel.show()
    qtbot.waitExposed(panel)
    panel.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is panel)
    panel.add_paths([make_png(tmp_path / "PL_DXB191_front.png")])
    qtbot.waitUntil(panel.submit_button.isEnabled)
    panel.list.setFocus()
    order = []
    for _ in range(3):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        order.append(QApplication.focusWidget())

    assert order == [panel.form.description, panel.form.pipeline, panel.submit_button]


def test_progress_says_how_much_is_stored() -> None:
    assert progress_text("Storing", 120_000_000, 266_000_000) == "Storing 45% (120 MB of 266 MB)"
    assert progress_text("Storing", 0, 5_000) == "Storing 0% (0 B of 5 KB)"
    assert progress_text("Storing", 266_000_000, 266_000_000) == (
        "Creating the batch (266 MB stored)..."
    )


def test_names_and_skip_reasons_read_whole_at_the_panel_s_default_width(
    qtbot: QtBot, panel: SubmitPanel, tmp_path: Path
) -> None:
    long_name = "AB_CD1234_living_room_sofa_oslo_front_view_final.png"
    good = make_png(tmp_path / long_name, size=(1600, 1200))
    cut = tmp_path / "AB_CD1235_copy.png"
    cut.write_bytes(make_png(tmp_path / "whole" / "x.png", size=(1600, 1200)).read_bytes()[:100])
    panel.resize(SUBMIT_WIDTH, 860)  # the window's first-start width for this panel
    panel.show()
    panel.add_paths([good, cut])
    wait_until_read(qtbot, panel, 2)

    # Nothing needs a sideways scroll: one column as wide as the list, wrapped inside it.
    assert panel.list.horizontalScrollBar().maximum() == 0
    delegate = panel.list.itemDelegate()
    assert isinstance(delegate, PendingFileDelegate)
    width = delegate.text_width(panel.list.viewport().width())
    line_height = panel.list.fontMetrics().height()
    rows = {row.path: row for row in panel.model.files()}
    for path, expected in (
        (good, f"1600 × 1200 · {format_size(good.stat().st_size)} · customer AB_CD"),
        (cut, "Skipped: damaged PNG: the file is incomplete (cut short at 100 bytes)"),
    ):
        name, details = delegate.text_lines(rows[path], panel.list.font(), width)
        lines = name + details
        # Whole: nothing elided, no line wider than the room, the row tall enough for all.
        assert "".join(name) == path.name
        assert "".join(details).replace(" ", "") == expected.replace(" ", "")
        assert all(panel.list.fontMetrics().horizontalAdvance(line) <= width for line in lines)
        index = panel.model.index(panel.model.files().index(rows[path]), 0)
        assert panel.list.visualRect(index).height() >= len(lines) * line_height
        assert panel.list.visualRect(index).right() < panel.list.viewport().width()
    assert len(delegate.text_lines(rows[good], panel.list.font(), width)[0]) == 2
    assert "(the list says why)" in panel.summary.text()
    assert "Status" not in panel.summary.text()


def test_delete_removes_the_selected_files_from_the_list(
    qtbot: QtBot, panel: SubmitPanel, tmp_path: Path
) -> None:
    paths = [make_png(tmp_path / f"PL_DXB19{i}_v.png", seed=i) for i in range(3)]
    panel.show()
    panel.add_paths(paths)
    wait_until_read(qtbot, panel, 3)
    selection = panel.list.selectionModel()
    for row in (0, 2):
        selection.select(panel.model.index(row, 0), QItemSelectionModel.SelectionFlag.Select)
    panel.list.setFocus()

    qtbot.keyClick(panel.list, Qt.Key.Key_Delete)

    assert [row.path for row in panel.model.files()] == [paths[1]]
