"""The image viewer on real jobs: zoom, checkerboard, compare modes, stepping in tree order, keys.

Each job's input is an RGBA render whose top half is transparent and bottom half red; the
pipeline flattens it onto white as a JPEG, so on screen the input's top half is a checkerboard
and the output's is white: what each surface shows can be told from its pixels.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QModelIndex, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from batchdesk.storage import batch_queries, pipeline_store
from batchdesk.storage.batch_queries import JobRow
from batchdesk.storage.database import Database
from tests.factories import make_damaged_png
from tests.integration.jobs_support import run_all_jobs, submit_paths

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_model import BatchTreeModel
from batchdesk.gui.batch_tree_view import BatchTreeView
from batchdesk.gui.image_canvas import CHECKER_CELL, CHECKER_DARK, ImageCanvas
from batchdesk.gui.image_viewer import SIDE_BY_SIDE, SINGLE, SWIPE, ImageViewer
from batchdesk.gui.viewer_link import ViewerLink

RENDER_SIZE = (1200, 800)
FLATTEN = {
    "name": "flatten-white",
    "description": "JPEG on white",
    "version": 1,
    "steps": [{"op": "output", "format": "jpeg", "background": "#ffffff", "quality": 95}],
}


def make_render(path: Path, seed: int = 0, size: tuple[int, int] = RENDER_SIZE) -> Path:
    """An RGBA PNG: the top half transparent, the bottom half red (a shade per seed)."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste((220 - seed, 30, 40, 255), (0, size[1] // 2, *size))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def completed_jobs(
    database: Database, tmp_path: Path, count: int, size: tuple[int, int] = RENDER_SIZE
) -> list[JobRow]:
    """Submit `count` renders as one batch through the flattening pipeline and run them."""
    pipeline_store.install_missing(database, [FLATTEN])
    paths = [
        make_render(tmp_path / f"PL_DXB{191 + n}_view.png", seed=n, size=size) for n in range(count)
    ]
    name = submit_paths(database, paths, pipeline="flatten-white")
    run_all_jobs(database)
    with database.connect() as connection:
        batch = batch_queries.find_batch(connection, name)
        return batch_queries.list_jobs(connection, batch.id)


@pytest.fixture
def viewer(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> Iterator[ImageViewer]:
    widget = ImageViewer(database, tasks)
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.close()


def show(qtbot: QtBot, viewer: ImageViewer, job: JobRow) -> None:
    with qtbot.waitSignal(viewer.job_shown, timeout=30_000) as shown:
        viewer.show_job(job)
    assert shown.args == [job.id]


def colour_at(canvas: ImageCanvas, point: QPoint) -> QColor:
    return canvas.grab().toImage().pixelColor(point)


def dark_cell_in_clear_half(canvas: ImageCanvas, x: int) -> QPoint:
    """A point in the transparent top half of the picture, on a dark checker cell, near x."""
    scene = canvas.scene_rect()
    y = round(scene.top() + scene.height() / 4)
    x -= x % CHECKER_CELL
    if (x // CHECKER_CELL + y // CHECKER_CELL) % 2:  # the tile is dark on even cells
        x += CHECKER_CELL
    return QPoint(x + CHECKER_CELL // 2, y)


def is_white(colour: QColor) -> bool:
    return min(colour.red(), colour.green(), colour.blue()) >= 245


def wheel(canvas: ImageCanvas, notches: int) -> None:
    middle = QPointF(canvas.width() / 2, canvas.height() / 2)
    event = QWheelEvent(
        middle,
        canvas.mapToGlobal(middle),
        QPoint(),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, event)


def test_the_input_shows_over_a_checkerboard_and_zooms_with_keys_and_the_wheel(
    qtbot: QtBot, viewer: ImageViewer, database: Database, tmp_path: Path
) -> None:
    (job,) = completed_jobs(database, tmp_path, 1)

    show(qtbot, viewer, job)

    assert viewer.mode == SINGLE
    assert not viewer.showing_output
    assert viewer.state.fit
    canvas = viewer.canvas
    fit = viewer.zoom
    assert fit == pytest.approx(min(canvas.width() / 1200, canvas.height() / 800))
    clear = dark_cell_in_clear_half(canvas, canvas.width() // 2)
    assert colour_at(canvas, clear) == CHECKER_DARK
    assert colour_at(canvas, clear + QPoint(CHECKER_CELL, 0)) == QColor("#ffffff")
    red = colour_at(canvas, QPoint(canvas.width() // 2, round(canvas.scene_rect().bottom()) - 20))
    assert (red.red(), red.green(), red.blue()) == (220, 30, 40)

    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert (viewer.zoom, viewer.state.fit) == (1.0, False)
    assert viewer.zoom_label.text() == "100 %"
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    assert viewer.zoom == pytest.approx(1.25)
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    assert viewer.zoom == pytest.approx(0.8)
    wheel(canvas, 2)
    assert viewer.zoom == pytest.approx(1.25)
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert viewer.state.fit
    assert viewer.zoom == pytest.approx(fit)
    assert viewer.zoom_label.text() == f"Fit ({fit * 100:.0f} %)"


def test_toggle_side_by_side_and_swipe_compare_the_input_with_its_output(
    qtbot: QtBot, viewer: ImageViewer, database: Database, tmp_path: Path
) -> None:
    (job,) = completed_jobs(database, tmp_path, 1)
    show(qtbot, viewer, job)
    canvas = viewer.canvas
    point = dark_cell_in_clear_half(canvas, canvas.width() // 2)

    qtbot.keyClick(viewer, Qt.Key.Key_T)  # the output in place of the input
    assert viewer.showing_output
    assert is_white(colour_at(canvas, point))  # flattened onto white
    qtbot.keyClick(viewer, Qt.Key.Key_T)
    assert colour_at(canvas, point) == CHECKER_DARK

    qtbot.keyClick(viewer, Qt.Key.Key_S)
    assert viewer.mode == SIDE_BY_SIDE
    qtbot.waitUntil(lambda: viewer.second_canvas.isVisible() and canvas.width() < 600)
    assert viewer.zoom_label.text() == f"Fit ({canvas.zoom() * 100:.0f} %)"  # the new fit
    left = dark_cell_in_clear_half(canvas, canvas.width() // 2)
    right_canvas = viewer.second_canvas
    right = dark_cell_in_clear_half(right_canvas, right_canvas.width() // 2)
    assert colour_at(canvas, left) == CHECKER_DARK
    assert is_white(colour_at(right_canvas, right))
    qtbot.keyClick(viewer, Qt.Key.Key_1)  # both surfaces zoom together
    assert canvas.zoom() == right_canvas.zoom() == 1.0

    qtbot.keyClick(viewer, Qt.Key.Key_F)
    qtbot.keyClick(viewer, Qt.Key.Key_W)
    assert viewer.mode == SWIPE
    qtbot.waitUntil(lambda: not viewer.second_canvas.isVisible() and canvas.width() > 600)
    assert viewer.zoom_label.text() == f"Fit ({canvas.zoom() * 100:.0f} %)"
    line = canvas.swipe_x
    assert colour_at(canvas, dark_cell_in_clear_half(canvas, line - 60)) == CHECKER_DARK
    assert is_white(colour_at(canvas, dark_cell_in_clear_half(canvas, line + 60)))
    # Dragging the line shows the input further right.
    y = canvas.height() // 2
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(line, y))
    qtbot.mouseMove(canvas, QPoint(line + 200, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(line + 200, y))
    assert canvas.swipe_x == line + 200
    assert colour_at(canvas, dark_cell_in_clear_half(canvas, line + 60)) == CHECKER_DARK


@pytest.fixture
def tree_and_link(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> Iterator[tuple[BatchTreeView, BatchTreeModel, ViewerLink]]:
    window = QWidget()
    window.resize(1000, 700)
    # Two jobs a page, and a tree too low to show a second job: a batch opens with its first
    # page only, and stepping past its second job has to read the next page first.
    model = BatchTreeModel(database, tasks, window, page_size=10, job_page_size=2)
    tree = BatchTreeView(window)
    tree.setModel(model)
    tree.resize(1000, 75)
    link = ViewerLink(tree, model, database, tasks, window)
    window.show()
    qtbot.waitExposed(window)
    yield tree, model, link
    if link.viewer is not None:
        link.viewer.close()
    qtbot.waitUntil(lambda: not model.is_loading and tasks.active == 0, timeout=15_000)
    window.close()
    window.deleteLater()


def expand_the_batch(qtbot: QtBot, tree: BatchTreeView, model: BatchTreeModel) -> QModelIndex:
    """Read the one batch into the tree, expand it and wait for its first page of jobs."""
    model.refresh()
    qtbot.waitUntil(lambda: model.rowCount() == 1 and not model.is_loading, timeout=15_000)
    batch = model.index(0, 0)
    tree.expand(batch)
    qtbot.waitUntil(lambda: model.rowCount(batch) >= 2, timeout=15_000)
    return batch


# Bringing the open viewer forward says this on the offscreen platform.
@pytest.mark.qt_log_ignore(r"This plugin does not support raise\(\)")
def test_arrow_keys_step_through_the_jobs_in_the_tree_s_order_and_escape_closes(
    qtbot: QtBot,
    tree_and_link: tuple[BatchTreeView, BatchTreeModel, ViewerLink],
    database: Database,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    tree, model, link = tree_and_link
    jobs = completed_jobs(database, tmp_path, 12, size=(300, 200))
    batch = expand_the_batch(qtbot, tree, model)
    qtbot.waitUntil(lambda: tasks.active == 0, timeout=15_000)
    # The tree reads a batch's jobs two a page while they are within two screens of the end of
    # what it shows: with a screen of two rows, far fewer than twelve.
    loaded = model.rowCount(batch)
    assert loaded < len(jobs)

    def current_job() -> int | None:
        job = model.job_at(tree.currentIndex())
        return None if job is None else job.id

    link.open_job(jobs[loaded - 1])  # the last job read, as the preview's View Larger does
    viewer = link.viewer
    assert viewer is not None
    assert viewer.previous_button.isEnabled()
    assert viewer.next_button.isEnabled()  # a job not read yet still counts

    with qtbot.waitSignal(viewer.job_shown, timeout=30_000) as shown:
        qtbot.keyClick(viewer, Qt.Key.Key_Right)  # the next page is read first
    assert shown.args == [jobs[loaded].id]
    assert model.rowCount(batch) > loaded
    assert current_job() == jobs[loaded].id  # the tree's selection follows the viewer
    for expected in (jobs[loaded - 1], jobs[loaded - 2]):
        with qtbot.waitSignal(viewer.job_shown, timeout=30_000) as shown:
            qtbot.keyClick(viewer, Qt.Key.Key_Up)
        assert shown.args == [expected.id]
        assert current_job() == expected.id

    link.open_job(jobs[0])
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert "This is the first job in the list." in viewer.info.text()
    assert viewer.job == jobs[0]
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert not viewer.isVisible()

    first = model.index(0, 0, batch)
    tree.scrollTo(first)
    qtbot.waitUntil(lambda: tree.viewport().rect().contains(tree.visualRect(first).center()))
    at = tree.visualRect(first).center()
    # A double-click is a click and then the second press (QTest sends only the latter).
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert viewer.isVisible()
    assert viewer.job == jobs[0]


def test_the_viewer_follows_the_tree_s_selection_while_it_is_open(
    qtbot: QtBot,
    tree_and_link: tuple[BatchTreeView, BatchTreeModel, ViewerLink],
    database: Database,
    tmp_path: Path,
) -> None:
    tree, model, link = tree_and_link
    jobs = completed_jobs(database, tmp_path, 2)
    batch = expand_the_batch(qtbot, tree, model)
    tree.setCurrentIndex(model.index(0, 0, batch))
    link.open_selected()
    viewer = link.viewer
    assert viewer is not None

    with qtbot.waitSignal(viewer.job_shown, timeout=30_000) as shown:
        tree.setCurrentIndex(model.index(1, 0, batch))

    assert shown.args == [jobs[1].id]
    qtbot.waitUntil(lambda: not viewer.next_button.isEnabled())
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert "This is the last job in the list." in viewer.info.text()
    tree.setCurrentIndex(QModelIndex())  # nothing selected: the viewer keeps its job
    assert viewer.job is not None
    assert viewer.job.id == jobs[1].id


def test_a_failed_job_says_why_it_has_no_output_and_offers_no_compare(
    qtbot: QtBot, viewer: ImageViewer, database: Database, tmp_path: Path
) -> None:
    damaged = make_damaged_png(tmp_path / "PL_DXB191_cut.png", size=(300, 200))
    name = submit_paths(database, [damaged])
    run_all_jobs(database)
    with database.connect() as connection:
        (job,) = batch_queries.list_jobs(connection, batch_queries.find_batch(connection, name).id)

    show(qtbot, viewer, job)

    assert viewer.title.text().startswith("PL_DXB191_cut.png · Failed")
    assert "Failed: PL_DXB191_cut.png is damaged" in viewer.info.text()
    assert not viewer.mode_buttons[SIDE_BY_SIDE].isEnabled()
    assert not viewer.mode_buttons[SWIPE].isEnabled()
    assert not viewer.toggle_button.isEnabled()
    qtbot.keyClick(viewer, Qt.Key.Key_W)
    assert not viewer.second_canvas.isVisible()
    assert not viewer.canvas.swiping
