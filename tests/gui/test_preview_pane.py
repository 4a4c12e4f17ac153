"""The preview pane: before and after from the database, errors, details, stale results dropped."""

from pathlib import Path

import pytest
from PIL import Image
from pytestqt.qtbot import QtBot

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from batchdesk.domain.units import format_size
from batchdesk.storage import batch_queries
from batchdesk.storage.batch_queries import BatchRow, JobRow
from batchdesk.storage.database import Database
from tests.factories import make_damaged_png, make_png
from tests.integration.jobs_support import run_all_jobs, submit_paths

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.preview_pane import EMPTY_TEXT, PreviewPane

# Showing a top-level widget with a layout on the offscreen platform logs this; it says nothing
# about the code under test.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


@pytest.fixture
def pane(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> PreviewPane:
    widget = PreviewPane(database, tasks)
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    return widget


def batch_and_jobs(database: Database, name: str) -> tuple[BatchRow, list[JobRow]]:
    with database.connect() as connection:
        batch = batch_queries.find_batch(connection, name)
        return batch, batch_queries.list_jobs(connection, batch.id)


def aspect(label: QLabel) -> float:
    pixmap = label.pixmap()
    assert not pixmap.isNull()
    return pixmap.width() / pixmap.height()


def test_a_completed_job_shows_before_and_after_with_sizes(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    source = make_png(tmp_path / "PL_DXB191_wide.png", size=(600, 300), seed=3)
    name = submit_paths(database, [source], pipeline="thumbnails")
    run_all_jobs(database)
    _batch, (job,) = batch_and_jobs(database, name)

    with qtbot.waitSignal(pane.job_shown, timeout=30_000) as blocker:
        pane.show_job(job)

    assert blocker.args == [job.id]
    assert aspect(pane.before_image) == pytest.approx(2.0, rel=0.02)
    assert aspect(pane.after_image) == pytest.approx(2.0, rel=0.02)
    # Scaled to the room the pane gives each image, never past it.
    assert pane.before_image.pixmap().width() <= pane.before_image.width()
    assert pane.before_info.text() == f"600 × 300 px · {format_size(source.stat().st_size)}"
    name_line, size_line, more_line = pane.after_info.text().splitlines()
    assert name_line == "PL_DXB191_wide_thumb256.jpg"
    assert size_line.startswith("256 × 128 px · ")
    assert more_line == "1 more output"
    assert pane.error_label.isHidden()

    width_before = pane.before_image.pixmap().width()
    pane.resize(400, 600)
    qtbot.waitUntil(lambda: pane.before_image.pixmap().width() < width_before)
    assert aspect(pane.before_image) == pytest.approx(2.0, rel=0.05)


def test_a_failed_job_shows_its_error_and_no_output(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    damaged = make_damaged_png(tmp_path / "PL_DXB192_cut.png", size=(256, 256), seed=99)
    name = submit_paths(database, [damaged])
    run_all_jobs(database)
    _batch, (job,) = batch_and_jobs(database, name)

    with qtbot.waitSignal(pane.job_shown, timeout=30_000):
        pane.show_job(job)

    assert pane.status_label.text().startswith("Failed")
    assert pane.after_image.text() == "Failed — no output"
    assert pane.after_image.pixmap().isNull()
    assert pane.before_image.text().startswith("Cannot show this image")
    assert pane.before_info.text().startswith("256 × 256 px · ")
    assert not pane.error_label.isHidden()
    assert pane.error_label.text() == f"Failed: {job.last_error}"
    assert "PL_DXB192_cut.png" in pane.error_label.text()
    assert pane.error_label.wordWrap()


def test_a_queued_job_says_it_has_no_output_yet(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    name = submit_paths(database, [make_png(tmp_path / "PL_DXB191_a.png", size=(40, 20))])
    _batch, (job,) = batch_and_jobs(database, name)

    with qtbot.waitSignal(pane.job_shown, timeout=30_000):
        pane.show_job(job)

    assert pane.after_image.text() == "Queued — no output yet"
    # A small render is shown at its own size, not blown up.
    assert (pane.before_image.pixmap().width(), pane.before_image.pixmap().height()) == (40, 20)


def test_an_image_too_large_to_decode_is_not_read_past_its_header(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    # 72 megapixels: over Qt's decoding limit as 32-bit pixels, yet a small 1-bit file.
    huge = tmp_path / "PL_DXB191_huge.png"
    Image.new("1", (9000, 8000)).save(huge)
    name = submit_paths(database, [huge])
    _batch, (job,) = batch_and_jobs(database, name)

    with qtbot.waitSignal(pane.job_shown, timeout=30_000):
        pane.show_job(job)

    assert pane.before_image.text() == "Too large to preview here; export it to see it."
    assert pane.before_image.pixmap().isNull()
    assert pane.before_info.text().startswith("9000 × 8000 px · ")


def test_results_for_an_earlier_selection_are_dropped(
    qtbot: QtBot, pane: PreviewPane, tasks: BackgroundTasks, database: Database, tmp_path: Path
) -> None:
    # Several decodes at once on the pool, as when a user holds the arrow key down.
    paths = [
        make_png(tmp_path / f"PL_DXB{191 + i}_v.png", size=(300 + i, 200), seed=i) for i in range(8)
    ]
    name = submit_paths(database, paths)
    _batch, jobs = batch_and_jobs(database, name)
    shown: list[int] = []
    pane.job_shown.connect(shown.append)

    for job in jobs:
        pane.show_job(job)
    qtbot.waitUntil(lambda: tasks.active == 0, timeout=30_000)

    assert shown == [jobs[-1].id]
    assert pane.before_info.text().startswith("307 × 200 px")


def test_a_job_selected_then_a_batch_keeps_the_batch(
    qtbot: QtBot, pane: PreviewPane, tasks: BackgroundTasks, database: Database, tmp_path: Path
) -> None:
    name = submit_paths(database, [make_png(tmp_path / "PL_DXB191_a.png")])
    batch, (job,) = batch_and_jobs(database, name)
    shown: list[int] = []
    pane.job_shown.connect(shown.append)

    pane.show_job(job)
    pane.show_batch(batch)
    qtbot.waitUntil(lambda: tasks.active == 0, timeout=30_000)

    assert shown == []
    assert pane.batch_values["Name"].text() == name


def test_a_batch_shows_its_details(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    paths = [make_png(tmp_path / f"PL_DXB19{i}_v.png", seed=i) for i in range(3)]
    name = submit_paths(database, paths)
    run_all_jobs(database)
    batch, _jobs = batch_and_jobs(database, name)

    pane.show_batch(batch)

    values = {key: label.text() for key, label in pane.batch_values.items()}
    assert values["Name"] == name
    assert values["Status"] == "Completed"
    assert values["Jobs"] == "3 completed"
    assert values["Pipeline"] == "original"
    assert values["Files"].startswith("3 files, ")
    assert values["Created"].endswith(" by t@t")
    assert values["Completed"] != "—"
    assert values["Delivered"] == "Not delivered"


def test_clear_shows_what_to_do(pane: PreviewPane) -> None:
    pane.clear()
    visible = [label.text() for label in pane.findChildren(QLabel) if label.isVisible()]
    assert visible == [EMPTY_TEXT]


def test_a_tall_narrow_pane_puts_before_above_after_to_show_them_larger(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    name = submit_paths(database, [make_png(tmp_path / "PL_DXB191_a.png", size=(1600, 1200))])
    run_all_jobs(database)
    _batch, (job,) = batch_and_jobs(database, name)
    pane.resize(300, 860)  # the window's preview width, the window's height

    with qtbot.waitSignal(pane.job_shown, timeout=30_000):
        pane.show_job(job)

    assert pane.arranged_vertically
    # Nearly the pane's width each (side by side they had ~130 px).
    qtbot.waitUntil(lambda: pane.before_image.pixmap().width() >= 250)
    assert pane.after_image.pixmap().width() >= 250
    pane.resize(1100, 500)  # wide and low: side by side is larger
    qtbot.waitUntil(lambda: not pane.arranged_vertically)
    qtbot.waitUntil(lambda: pane.before_image.pixmap().height() >= 300)


def test_view_larger_and_a_double_click_on_an_image_ask_for_the_viewer(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    name = submit_paths(database, [make_png(tmp_path / "PL_DXB191_a.png", size=(64, 48))])
    _batch, (job,) = batch_and_jobs(database, name)
    with qtbot.waitSignal(pane.job_shown, timeout=30_000):
        pane.show_job(job)

    with qtbot.waitSignal(pane.viewer_requested) as clicked:
        qtbot.mouseClick(pane.view_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(pane.viewer_requested) as double_clicked:
        qtbot.mouseDClick(pane.before_image, Qt.MouseButton.LeftButton)

    assert clicked.args == [job]
    assert double_clicked.args == [job]


def test_the_pane_says_whether_it_has_anything_to_show(
    qtbot: QtBot, pane: PreviewPane, database: Database, tmp_path: Path
) -> None:
    name = submit_paths(database, [make_png(tmp_path / "PL_DXB191_a.png")])
    batch, (job,) = batch_and_jobs(database, name)
    said: list[bool] = []
    pane.has_content_changed.connect(said.append)

    pane.show_batch(batch)
    pane.clear()
    with qtbot.waitSignal(pane.job_shown, timeout=30_000):
        pane.show_job(job)

    assert said == [True, False, True]
    assert pane.has_content
    assert pane.shown_job == job
