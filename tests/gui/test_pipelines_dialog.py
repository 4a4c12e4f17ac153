"""Tools → Pipelines: every step can be added and edited, the preview follows, problems are marked.

Real PostgreSQL, real Pillow on generated PNGs, the preview on its own threads as in the window.
"""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

from batchdesk.errors import InvalidRequest
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.pipeline_spec import OPS, parse_pipeline
from batchdesk.settings import Settings
from batchdesk.storage import pipeline_store
from batchdesk.storage.database import Database
from tests.database_fixtures import TestServer
from tests.factories import make_png
from tests.studio_roles import studio_roles

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.pipelines_dialog import PipelinesDialog
from batchdesk.gui.submit_form import SubmitForm

PREVIEW_TIMEOUT_MS = 60_000


@pytest.fixture
def dialog(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> Iterator[PipelinesDialog]:
    pipeline_store.install_missing(database, default_pipelines())
    widget = PipelinesDialog(database, tasks, preview_delay_ms=20)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: widget.pipelines.count() == len(default_pipelines()))
    yield widget
    assert widget.shutdown(), "previews still running after 30 s"


def make_render(path: Path, size: tuple[int, int]) -> Path:
    """A PNG with the detail of a render (gradients and noise), not one flat colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = Image.effect_noise(size, 40)
    ramp = Image.linear_gradient("L").resize(size)
    Image.merge("RGB", (ramp, noise, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).save(path)
    return path


def wait_for_preview(qtbot: QtBot, dialog: PipelinesDialog) -> Any:
    """The newest preview's result, once no newer one is waiting or running."""

    def settled() -> bool:
        result = dialog.preview_pane.result
        return (
            not dialog.preview.busy
            and result is not None
            and result.generation == dialog.preview.generation
        )

    qtbot.waitUntil(settled, timeout=PREVIEW_TIMEOUT_MS)
    return dialog.preview_pane.result


def field(dialog: PipelinesDialog, name: str) -> QWidget:
    return dialog.editor.form.widget(name)


def set_field(name: str, value: Any) -> Callable[[PipelinesDialog], None]:
    """An edit a user makes in the step's form: type a number or text, pick, tick."""

    def edit(dialog: PipelinesDialog) -> None:
        widget = field(dialog, name)
        if isinstance(widget, QSpinBox | QDoubleSpinBox):
            widget.setValue(value)
        elif isinstance(widget, QLineEdit):
            widget.setText(value)
        elif isinstance(widget, QComboBox):
            widget.setCurrentText(value)
        else:
            assert isinstance(widget, QCheckBox), widget
            assert widget.isChecked() != value
            widget.toggle()

    return edit


# Each op: an edit made in its form, the field and value it must store, and the output the
# preview must then show (name, width, height) for a 120 x 80 sample.
EDITS: dict[str, tuple[Callable[[PipelinesDialog], None], str, Any, tuple[str, int, int]]] = {
    "fit": (set_field("size", 60), "size", 60, ("sample_web.jpg", 60, 40)),
    "pad": (set_field("height", 100), "height", 100, ("sample_web.jpg", 2000, 100)),
    "trim": (set_field("tolerance", 30), "tolerance", 30, ("sample_web.jpg", 120, 80)),
    "watermark": (set_field("text", "Proof"), "text", "Proof", ("sample_web.jpg", 120, 80)),
    "sharpen": (set_field("percent", 300), "percent", 300, ("sample_web.jpg", 120, 80)),
    "strip_metadata": (
        set_field("keep_icc", False),
        "keep_icc",
        False,
        ("sample_web.jpg", 120, 80),
    ),
    "output": (set_field("format", "webp"), "format", "webp", ("sample_web.webp", 120, 80)),
    "thumbnail": (set_field("size", 30), "size", 30, ("sample_thumb.jpg", 30, 20)),
    "external": (set_field("timeout", 30.0), "timeout", 30.0, ("sample_web.jpg", 120, 80)),
}


def test_the_edits_cover_every_operation() -> None:
    assert set(EDITS) == set(OPS)


@pytest.mark.parametrize("op", list(EDITS))
def test_every_step_op_can_be_added_edited_and_its_preview_updates(
    qtbot: QtBot, dialog: PipelinesDialog, tmp_path: Path, op: str
) -> None:
    edit, name, value, (output, width, height) = EDITS[op]
    dialog.set_sample(make_png(tmp_path / "sample.png", size=(120, 80), seed=3))
    dialog.new_pipeline()
    dialog.editor.name.setText("studio-test")
    dialog.editor.load("studio-test", "", [])
    dialog.editor.add_step(op)
    if op not in ("output", "thumbnail"):
        dialog.editor.add_step("output")
    dialog.editor.steps.setCurrentRow(0)
    before = wait_for_preview(qtbot, dialog)
    assert before.error is None, before.error

    edit(dialog)
    after = wait_for_preview(qtbot, dialog)

    assert after.generation > before.generation
    assert after.error is None, after.error
    assert dialog.editor.json_steps()[0][name] == value
    assert [s.op for s in after.steps] == [s["op"] for s in dialog.editor.json_steps()]
    shown = {o.name: (o.width, o.height) for o in after.outputs}
    assert shown[output] == (width, height)
    picture = after.outputs[0].image
    assert not picture.isNull()
    assert dialog.preview_pane.after.pixmap().width() > 0
    assert "ms" in dialog.preview_pane.timings.text()
    assert dialog.save_button.isEnabled()


def test_a_field_left_out_is_marked_with_the_sentence_the_command_line_gives(
    qtbot: QtBot, dialog: PipelinesDialog
) -> None:
    dialog.editor.load(
        "studio-box", "", [{"op": "fit", "width": 100, "height": 80}, {"op": "output"}]
    )
    dialog.editor.steps.setCurrentRow(0)

    width = field(dialog, "width")
    assert isinstance(width, QSpinBox)
    width.setValue(width.minimum())  # "(not set)"

    steps = dialog.editor.json_steps()
    with pytest.raises(InvalidRequest) as refused:
        parse_pipeline("studio-box", "", 1, steps)
    sentence = str(refused.value)
    assert sentence == (
        "Pipeline studio-box, step 1 (fit): width is missing; it must be a whole number from 1 "
        "to 30000."
    )
    assert width.property("problem") == sentence
    assert width.toolTip() == sentence
    assert dialog.editor.problem.text() == sentence
    assert dialog.editor.steps.item(0).toolTip() == sentence
    assert not dialog.save_button.isEnabled()
    width.setValue(90)
    assert not width.property("problem")
    assert dialog.save_button.isEnabled()


def test_remove_duplicate_and_reorder_steps(dialog: PipelinesDialog) -> None:
    editor = dialog.editor
    editor.load("studio-order", "", [{"op": "trim"}, {"op": "output"}])
    editor.steps.setCurrentRow(1)

    editor.duplicate_step()
    assert [s.get("suffix") for s in editor.json_steps()] == [None, None, "_copy"]
    editor.move_step(-1)
    editor.move_step(-1)
    assert [s["op"] for s in editor.json_steps()] == ["output", "trim", "output"]
    assert editor.problem_sentence is None
    editor.steps.setCurrentRow(2)
    editor.remove_step()

    assert [s["op"] for s in editor.json_steps()] == ["output", "trim"]
    assert editor.problem_sentence == (
        "Pipeline studio-order, step 2 (trim) comes after the last output, so its result would "
        "be lost: move it before an output step or remove it."
    )
    # Dragging a row is a move of the list's model, as the view makes it.
    model = editor.steps.model()
    assert model.moveRow(model.index(1, 0).parent(), 1, model.index(0, 0).parent(), 0)
    assert [s["op"] for s in editor.json_steps()] == ["trim", "output"]
    assert editor.problem_sentence is None


def test_save_as_new_version_and_retire_reach_the_database_and_the_picker(
    qtbot: QtBot, dialog: PipelinesDialog, database: Database, tasks: BackgroundTasks
) -> None:
    form = SubmitForm(database, tasks, Settings())
    qtbot.addWidget(form)
    dialog.pipelines_changed.connect(form.reload_pipelines)
    qtbot.waitUntil(lambda: form.pipeline.count() == len(default_pipelines()))
    item = next(
        dialog.pipelines.item(r)
        for r in range(dialog.pipelines.count())
        if dialog.pipelines.item(r).text().startswith("thumbnails")
    )
    dialog.pipelines.setCurrentItem(item)
    dialog.editor.description.setText("Two sizes of JPEG thumbnail.")

    dialog.save_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved"))

    assert dialog.status.text() == "Saved thumbnails as version 2."
    with database.connect() as connection:
        stored = pipeline_store.load_pipeline(connection, "thumbnails")
    assert (stored.version, stored.description) == (2, "Two sizes of JPEG thumbnail.")
    qtbot.waitUntil(lambda: form.pipeline.findText("thumbnails  v2") >= 0)
    form.pipeline.setCurrentIndex(form.pipeline.findData("thumbnails"))
    assert form.pipeline_description.text() == "Version 2. Two sizes of JPEG thumbnail."

    qtbot.waitUntil(lambda: dialog.retire_button.text() == "&Retire")
    dialog.retire_button.click()
    qtbot.waitUntil(lambda: form.pipeline.findData("thumbnails") < 0)
    assert dialog.retire_button.text() == "&Restore"
    with database.connect() as connection:
        assert pipeline_store.load_pipeline(connection, "thumbnails").retired


def test_the_picker_shows_versions_and_marks_a_pipeline_that_cannot_run(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    pipeline_store.install_missing(database, default_pipelines())
    with database.begin() as connection:
        connection.execute(
            "INSERT INTO pipelines (name, steps) VALUES "
            """('broken', '[{"op": "fit", "mode": "box", "width": -5, "height": 10}]')"""
        )
        pipeline_store.set_retired(connection, "optimised-png", retired=True)
    form = SubmitForm(database, tasks, Settings())
    qtbot.addWidget(form)
    qtbot.waitUntil(lambda: form.pipeline.count() == len(default_pipelines()))

    texts = [form.pipeline.itemText(i) for i in range(form.pipeline.count())]
    form.pipeline.setCurrentIndex(form.pipeline.findData("broken"))

    assert "web-delivery  v1" in texts
    assert "broken  v1  (invalid)" in texts
    assert form.pipeline.findData("optimised-png") < 0
    assert form.pipeline_description.text() == (
        "Version 1 cannot be used: Pipeline broken, step 1 (fit): width must be a whole number "
        "from 1 to 30000, not -5."
    )


def test_a_4k_preview_does_not_block_the_gui_thread(
    qtbot: QtBot, dialog: PipelinesDialog, tmp_path: Path
) -> None:
    """An event-loop latency probe: a 10 ms timer's longest gap while a 4K preview runs."""
    sample = make_render(tmp_path / "render-4k.png", (3840, 2160))
    web = next(
        dialog.pipelines.item(r)
        for r in range(dialog.pipelines.count())
        if dialog.pipelines.item(r).text().startswith("web-delivery")
    )
    dialog.pipelines.setCurrentItem(web)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    probe = QTimer(interval=10)
    probe.timeout.connect(tick)
    with qtbot.waitSignal(dialog.preview.started, timeout=PREVIEW_TIMEOUT_MS):
        dialog.set_sample(sample)
    last[0] = time.perf_counter()
    probe.start()
    result = wait_for_preview(qtbot, dialog)
    probe.stop()

    assert result.error is None, result.error
    assert [o.name for o in result.outputs] == [
        "render-4k.png",
        "render-4k_web.jpg",
        "render-4k_thumb.jpg",
    ]
    print(f"longest gap {max(gaps) * 1000:.1f} ms in {len(gaps)} ticks; {result.seconds:.2f} s")
    assert len(gaps) > 10, "the probe hardly ran: the preview was too short to say anything"
    assert max(gaps) < 0.100, f"the window froze for {max(gaps) * 1000:.0f} ms"


@pytest.mark.slow
def test_a_viewer_may_look_and_preview_but_is_refused_saving_and_retiring_with_a_sentence(
    qtbot: QtBot, tasks: BackgroundTasks, pg_server: TestServer, tmp_path: Path
) -> None:
    with studio_roles(pg_server.admin_conninfo, tmp_path) as studio:
        owner = Database(studio.conninfo(studio.owner), "the owner's connection")
        try:
            pipeline_store.install_missing(owner, default_pipelines())
        finally:
            owner.close()
        viewer = Database(studio.conninfo(studio.viewer), "the viewer's connection")
        try:
            dialog = PipelinesDialog(viewer, tasks, preview_delay_ms=20)
            qtbot.addWidget(dialog)
            dialog.show()
            qtbot.waitUntil(lambda: dialog.pipelines.count() == len(default_pipelines()))
            dialog.set_sample(make_png(tmp_path / "sample.png", size=(64, 48)))
            assert wait_for_preview(qtbot, dialog).error is None
            dialog.editor.description.setText("A viewer's change")

            dialog.save_button.click()
            qtbot.waitUntil(lambda: dialog.status.text() != "")
            saving = dialog.status.text()
            dialog.status.clear()
            dialog.retire_button.click()
            qtbot.waitUntil(lambda: dialog.status.text() != "")
            retiring = dialog.status.text()
            assert dialog.shutdown()
            tasks.shutdown()
        finally:
            viewer.close()
        for sentence, action in ((saving, "saving"), (retiring, "retiring")):
            assert sentence.startswith(f"The database role {studio.viewer} may only read"), sentence
            assert f"{action} pipelines needs INSERT, UPDATE and DELETE" in sentence
        with psycopg.connect(studio.conninfo(studio.owner)) as connection:
            rows = connection.execute("SELECT max(version), count(retired_at) FROM pipelines")
            assert rows.fetchone() == (1, 0)
