"""The image viewer: a job's input and outputs, large, to judge what a pipeline made.

A window of its own over the main one. The job's input and every image output are read and
decoded at full size on a pool thread (`job_images.load_job_images`); the input shows as soon
as it arrives and the outputs follow. Three ways to look:

- one image at a time, toggling between input and output (T) to see what changed in place;
- side by side (S), two surfaces that zoom and move together;
- swipe (W): the input left of a line and the output right of it; drag the line across.

Fit (F or 0), 100 % (1), zoom with the wheel (around the pointer) or + and -, drag to move,
double-click for 100 % there and back to fit. O picks the next output when a pipeline made
several. Left/Right (and Up/Down, Page Up/Down) ask for the previous or next job
(`step_requested`); the window moves the tree's selection, so the viewer follows the tree's
order, and calls `show_job`. Escape (or Space) closes it. Each job keeps the zoom and position
of the one before when its images are the same size, so a batch of renders is compared detail
by detail.
"""

from PySide6.QtCore import QEvent, QObject, QSize, QSizeF, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.units import plural
from batchdesk.errors import Cancelled, KnownError
from batchdesk.storage.batch_queries import JobRow
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskHandle
from batchdesk.gui.image_canvas import ImageCanvas, ViewState
from batchdesk.gui.job_images import NO_OUTPUT, JobFiles, ViewerImage, load_job_images

SINGLE, SIDE_BY_SIDE, SWIPE = "single", "side by side", "swipe"
KEY_HINTS = "← → job · wheel, + − zoom · F fit · 1 100 % · T toggle · S side by side · W swipe"
_PREVIOUS_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_PageUp)
_NEXT_KEYS = (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_PageDown)


def _tool_button(text: str, tip: str, *, checkable: bool = False) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setCheckable(checkable)
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # every key goes to the viewer
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    return button


class ImageViewer(QWidget):
    """A window showing one job's input and outputs, with zoom, compare and job stepping."""

    step_requested = Signal(int)  # -1 previous job, +1 next job
    job_shown = Signal(int)  # every image of this job id is on screen
    load_failed = Signal(object)  # KnownError

    def __init__(
        self, database: Database, tasks: BackgroundTasks, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self._database = database
        self._tasks = tasks
        self._handle: TaskHandle[JobFiles] | None = None
        self._request = 0
        self._job: JobRow | None = None
        self._files: JobFiles | None = None
        self._images: dict[int, ViewerImage] = {}
        self._mode = SINGLE
        self._showing_output = False
        self._note = ""
        self.setWindowTitle("batchdesk viewer")
        self.setAccessibleName("Image viewer")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.state = ViewState(self)
        self.state.changed.connect(self._update_zoom_label)
        self._build()
        self.resize(1200, 800)

    def _build(self) -> None:
        self.previous_button = _tool_button("◀ Previous", "Previous job (Left)")
        self.previous_button.clicked.connect(lambda: self.step_requested.emit(-1))
        self.next_button = _tool_button("Next ▶", "Next job (Right)")
        self.next_button.clicked.connect(lambda: self.step_requested.emit(1))
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.output_choice = QComboBox()
        self.output_choice.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.output_choice.setToolTip("Which output to compare with the input (O)")
        self.output_choice.currentIndexChanged.connect(lambda _index: self._render())

        self.toggle_button = _tool_button(
            "⇄ Output", "Show the output in place of the input, and back (T)"
        )
        self.toggle_button.clicked.connect(self.toggle)
        modes = (
            (SINGLE, "One", "One image at a time (T toggles input and output)"),
            (SIDE_BY_SIDE, "Side by Side", "Input and output side by side (S)"),
            (SWIPE, "Swipe", "Input left of a line, output right of it (W)"),
        )
        self.mode_buttons = {
            mode: _tool_button(text, tip, checkable=True) for mode, text, tip in modes
        }
        group = QButtonGroup(self)
        for mode, button in self.mode_buttons.items():
            group.addButton(button)
            button.clicked.connect(lambda _checked, mode=mode: self.set_mode(mode))
        self.mode_buttons[SINGLE].setChecked(True)

        zoom_out = _tool_button("−", "Zoom out (−, wheel)")
        zoom_out.clicked.connect(lambda: self._zoom_step(-1))
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("Fit (100 %)") + 8)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        zoom_in = _tool_button("+", "Zoom in (+, wheel)")
        zoom_in.clicked.connect(lambda: self._zoom_step(1))
        fit = _tool_button("Fit", "Fit the image in the window (F)")
        fit.clicked.connect(self.fit)
        actual = _tool_button("100 %", "One image pixel per screen pixel (1)")
        actual.clicked.connect(self.actual_size)

        bar = QHBoxLayout()
        for widget in (self.previous_button, self.next_button):
            bar.addWidget(widget)
        bar.addSpacing(8)
        bar.addWidget(self.title, 1)
        self._output_label = QLabel("&Output:")
        self._output_label.setBuddy(self.output_choice)
        bar.addWidget(self._output_label)
        bar.addWidget(self.output_choice)
        bar.addSpacing(8)
        for widget in (self.toggle_button, *self.mode_buttons.values()):
            bar.addWidget(widget)
        bar.addSpacing(8)
        for zoom_widget in (zoom_out, self.zoom_label, zoom_in, fit, actual):
            bar.addWidget(zoom_widget)

        self.canvas = ImageCanvas(self.state)
        self.canvas.installEventFilter(self)
        self.second_canvas = ImageCanvas(self.state)
        self.second_canvas.hide()
        surfaces = QHBoxLayout()
        surfaces.setSpacing(2)
        surfaces.addWidget(self.canvas)
        surfaces.addWidget(self.second_canvas)

        self.info = QLabel()
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        hints = QLabel(KEY_HINTS)
        hints.setEnabled(False)  # drawn muted: a reminder, not content
        bottom = QHBoxLayout()
        bottom.addWidget(self.info, 1)
        bottom.addWidget(hints)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addLayout(surfaces, 1)
        layout.addLayout(bottom)

    # -- what the window asks ---------------------------------------------------------------

    @property
    def job(self) -> JobRow | None:
        """The job on show."""
        return self._job

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def showing_output(self) -> bool:
        """In one-image mode: whether the output (else the input) is shown."""
        return self._showing_output

    @property
    def zoom(self) -> float:
        """Screen pixels per input pixel, as on the main surface now."""
        return self.canvas.zoom()

    def show_job(self, job: JobRow) -> None:
        """Show this job: its row at once, its images as they are decoded."""
        self._cancel_loading()
        self._request += 1
        request = self._request
        self._job, self._files, self._images, self._note = job, None, {}, ""
        self.setWindowTitle(f"{job.file_name} — batchdesk viewer")
        self.title.setText(f"{job.file_name} · {job.status.capitalize()}")
        self.output_choice.clear()
        self.output_choice.hide()
        self._output_label.hide()
        self._render()
        database = self._database
        self._handle = self._tasks.run(
            f"view {job.file_name}",
            lambda context: load_job_images(database, job, context),
            on_progress=lambda value: self._on_progress(request, value),
            on_result=lambda files: self._on_loaded(request, files),
            on_error=lambda error: self._on_load_failed(request, error),
        )

    def set_neighbours(self, *, previous: bool, following: bool) -> None:
        """Enable Previous and Next as the tree has jobs before and after this one."""
        self.previous_button.setEnabled(previous)
        self.next_button.setEnabled(following)

    def note(self, text: str) -> None:
        """Say something short under the images until the next job ("the last job")."""
        self._note = text
        self._update_info()

    def set_mode(self, mode: str) -> None:
        """One image, side by side or swipe."""
        self._mode = mode
        self.mode_buttons[mode].setChecked(True)
        self._render()

    def toggle(self) -> None:
        """Show the output where the input is, or back (one-image mode)."""
        if self._mode != SINGLE:
            self.set_mode(SINGLE)
        self._showing_output = not self._showing_output
        self._render()

    def fit(self) -> None:
        self.state.set_fit()

    def actual_size(self) -> None:
        self.state.set_zoom(1.0, self.canvas.size())

    def _zoom_step(self, steps: int) -> None:
        self.state.step(steps, self.canvas.size())

    # -- loading ----------------------------------------------------------------------------

    def _cancel_loading(self) -> None:
        self._request += 1
        if self._handle is not None and not self._handle.done:
            self._handle.cancel()
        self._handle = None

    def _on_progress(self, request: int, value: object) -> None:
        if request != self._request:
            return
        if isinstance(value, JobFiles):
            self._files = value
            self.output_choice.blockSignals(True)
            for stored in value.outputs:
                self.output_choice.addItem(stored.name)
            self.output_choice.blockSignals(False)
            self.output_choice.setVisible(len(value.outputs) > 1)
            self._output_label.setVisible(len(value.outputs) > 1)
            status = value.status.capitalize()
            if value.attempts:
                status += f" · {plural(value.attempts, 'attempt')}"
            self.title.setText(f"{value.file_name} · {status}")
        elif isinstance(value, ViewerImage):
            self._images[value.index] = value
            if self._frames_the_scene(value):
                full = value.levels[0]
                self.state.set_scene(QSizeF(full.width(), full.height()), keep_view=True)
        self._render()

    def _frames_the_scene(self, image: ViewerImage) -> bool:
        """Whether this image sets the scene: the input, else the first output that shows."""
        if not image.levels:
            return False
        # Images arrive in order, the input first.
        return not any(self._images[index].levels for index in range(image.index))

    def _on_loaded(self, request: int, files: JobFiles) -> None:
        if request == self._request:
            self._handle = None
            self.job_shown.emit(files.job_id)

    def _on_load_failed(self, request: int, error: KnownError) -> None:
        if request != self._request or isinstance(error, Cancelled):
            return
        self._handle = None
        self.canvas.show_image(None, "", f"Could not load this job: {error}")
        self.second_canvas.hide()
        self.load_failed.emit(error)

    # -- drawing ----------------------------------------------------------------------------

    def _output_index(self) -> int | None:
        """The index of the chosen output among the images, or None when there is none."""
        if self._files is None or not self._files.outputs:
            return None
        return max(self.output_choice.currentIndex(), 0) + 1

    def _message_for(self, index: int | None) -> str:
        if self._files is None:
            return "Loading…"
        if index is None:
            return NO_OUTPUT.get(self._files.status, "No image output")
        image = self._images.get(index)
        if image is None:
            return "Loading…"
        return image.preview.problem

    def _drawable(self, index: int | None) -> ViewerImage | None:
        image = self._images.get(index) if index is not None else None
        return image if image is not None and image.levels else None

    def _render(self) -> None:
        input_image = self._drawable(0)
        output_index = self._output_index()
        output_image = self._drawable(output_index)
        output_caption = "Output"
        if self._files is not None and output_index is not None:
            output_caption = f"Output · {self._files.outputs[output_index - 1].name}"
        compare = output_index is not None
        for mode in (SIDE_BY_SIDE, SWIPE):
            self.mode_buttons[mode].setEnabled(compare)
        self.toggle_button.setEnabled(compare)
        mode = self._mode if compare else SINGLE
        self.second_canvas.setVisible(mode == SIDE_BY_SIDE)
        self.toggle_button.setText("⇄ Input" if self._showing_output and compare else "⇄ Output")
        if mode == SIDE_BY_SIDE:
            self.canvas.show_image(input_image, "Input", self._message_for(0))
            self.second_canvas.show_image(
                output_image, output_caption, self._message_for(output_index)
            )
        elif mode == SWIPE:
            self.canvas.show_swipe(input_image, output_image, ("Input", output_caption))
        elif self._showing_output and compare:
            self.canvas.show_image(output_image, output_caption, self._message_for(output_index))
        else:
            self.canvas.show_image(input_image, "Input", self._message_for(0))
        self._update_info()
        self._update_zoom_label()

    def _update_info(self) -> None:
        files = self._files
        lines = []
        if files is not None:
            shown = [(0, "Input")] + [
                (number + 1, f"Output {stored.name}") for number, stored in enumerate(files.outputs)
            ]
            parts = []
            for index, label in shown:
                image = self._images.get(index)
                parts.append(f"{label}: {image.preview.info if image else '…'}")
            lines.append("   ".join(parts))
            if files.other_outputs:
                lines.append(f"and {plural(files.other_outputs, 'output')} that is not an image")
            if files.last_error:
                lead = "Failed" if files.status == "failed" else "The last attempt failed"
                lines.append(f"{lead}: {files.last_error}")
        if self._note:
            lines.append(self._note)
        self.info.setText("\n".join(lines))

    def _update_zoom_label(self) -> None:
        percent = f"{self.zoom * 100:.0f} %"
        self.zoom_label.setText(f"Fit ({percent})" if self.state.fit else percent)

    # -- keys and closing -------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key = event.key()
        text = event.text().lower()
        if key in (Qt.Key.Key_Escape, Qt.Key.Key_Space):
            self.close()
        elif key in _PREVIOUS_KEYS:
            self.step_requested.emit(-1)
        elif key in _NEXT_KEYS:
            self.step_requested.emit(1)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal) or event.matches(
            QKeySequence.StandardKey.ZoomIn
        ):
            self._zoom_step(1)
        elif key == Qt.Key.Key_Minus or event.matches(QKeySequence.StandardKey.ZoomOut):
            self._zoom_step(-1)
        elif text in ("f", "0"):
            self.fit()
        elif text == "1":
            self.actual_size()
        elif text == "t":
            self.toggle()
        elif text == "s":
            self.set_mode(SIDE_BY_SIDE)
        elif text == "w":
            self.set_mode(SWIPE)
        elif text == "o" and self.output_choice.count() > 1:
            self.output_choice.setCurrentIndex(
                (self.output_choice.currentIndex() + 1) % self.output_choice.count()
            )
        else:
            super().keyPressEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.canvas and event.type() == QEvent.Type.Resize:
            self._update_zoom_label()  # fit is another zoom on a surface of another size
        return super().eventFilter(watched, event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        # The decoded images can be hundreds of megabytes: let them go with the window.
        self._cancel_loading()
        self._images = {}
        self._render()
        super().closeEvent(event)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(1200, 800)
