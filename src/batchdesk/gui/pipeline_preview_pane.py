"""The editor's before/after pane: a sample PNG the user chooses, and what the pipeline makes of it.

It shows the sample (before) beside one output (after; a list chooses which when the pipeline
writes several), each step's time and each output's size. The work is `PipelinePreview`'s; this
pane only shows its results.
"""

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.units import format_size

from batchdesk.gui.pipeline_preview import PreviewResult

_SHOWN = 320


def _picture(image: QImage) -> QPixmap:
    pixmap = QPixmap.fromImage(image)
    if pixmap.width() > _SHOWN or pixmap.height() > _SHOWN:
        pixmap = pixmap.scaled(
            _SHOWN,
            _SHOWN,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return pixmap


class PreviewPane(QWidget):
    """Before and after on the chosen sample, with each step's time."""

    sample_chosen = Signal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sample: Path | None = None
        self._result: PreviewResult | None = None
        self.choose_button = QPushButton("Choose &Sample PNG...")
        self.choose_button.clicked.connect(self.choose_sample)
        self.sample_label = QLabel("Choose a sample PNG to see the pipeline's result.")
        self.sample_label.setWordWrap(True)
        self.state = QLabel()
        self.state.setObjectName("preview-state")
        self.state.setWordWrap(True)
        self.before = QLabel()
        self.after = QLabel()
        for label in (self.before, self.after):
            label.setMinimumSize(160, 160)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.outputs = QComboBox()
        self.outputs.setObjectName("preview-outputs")
        self.outputs.currentIndexChanged.connect(self._show_after)
        self.timings = QLabel()
        self.timings.setObjectName("preview-timings")
        self.timings.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(self.choose_button)
        top.addWidget(self.sample_label, 1)
        grid = QGridLayout()
        grid.addWidget(QLabel("Before"), 0, 0)
        grid.addWidget(QLabel("After"), 0, 1)
        grid.addWidget(self.before, 1, 0)
        grid.addWidget(self.after, 1, 1)
        grid.addWidget(self.outputs, 2, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.state)
        layout.addLayout(grid, 1)
        layout.addWidget(self.timings)

    def choose_sample(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self, "Choose a sample PNG", "", "PNG images (*.png);;All files (*)"
        )
        if path:
            self.set_sample(Path(path))

    def set_sample(self, path: Path) -> None:
        self.sample = path
        self.sample_label.setText(str(path))
        self.sample_chosen.emit(path)

    def show_waiting(self, text: str) -> None:
        self.state.setText(text)

    def show_result(self, result: PreviewResult) -> None:
        self._result = result
        self.before.setPixmap(_picture(result.before))
        if result.error is not None:
            self.state.setText(result.error)
        else:
            self.state.setText(f"Previewed in {result.seconds:.2f} s.")
        chosen = self.outputs.currentData()
        self.outputs.blockSignals(True)
        self.outputs.clear()
        for output in result.outputs:
            self.outputs.addItem(
                f"{output.name} ({format_size(output.size)}, {output.width} × {output.height})",
                output.name,
            )
        index = max(0, self.outputs.findData(chosen))
        self.outputs.setCurrentIndex(index if result.outputs else -1)
        self.outputs.blockSignals(False)
        self._show_after()
        self.timings.setText(
            "\n".join(f"step {s.number} {s.op}: {s.seconds * 1000:.0f} ms" for s in result.steps)
        )

    @property
    def result(self) -> PreviewResult | None:
        return self._result

    def _show_after(self, *_args: object) -> None:
        result = self._result
        row = self.outputs.currentIndex()
        if result is None or not 0 <= row < len(result.outputs):
            self.after.clear()
            return
        self.after.setPixmap(_picture(result.outputs[row].image))
