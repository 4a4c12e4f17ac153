"""The editor's live preview: the pipeline run on a sample PNG, off the GUI thread, debounced.

Every change asks for a preview; the request waits `delay_ms` for the next change (typing a
number is one preview, not one per digit), then runs `try_pipeline` on a pool thread of its own,
exactly as a worker would run the steps, and loads the sample and each output as a QImage
scaled for the screen, still on that thread. A newer request cancels the running one (the
pipeline stops at its next step) and a result that is not the newest is dropped, so only the
last edit's preview is ever shown. Only values cross threads: frozen dataclasses and QImages.
"""

import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage

from batchdesk.errors import KnownError
from batchdesk.jobs.job_failures import StopRequested
from batchdesk.jobs.pipeline_spec import PipelineSpec
from batchdesk.jobs.pipeline_trial import StepTiming, try_pipeline

PREVIEW_SIZE = QSize(640, 640)
DEFAULT_DELAY_MS = 250


@dataclass(frozen=True)
class PreviewOutput:
    """One output of the previewed pipeline: its name, size on disk, pixels, and its picture."""

    name: str
    size: int
    width: int
    height: int
    image: QImage


@dataclass(frozen=True)
class PreviewResult:
    """What one preview run produced, or the sentence that says why it could not."""

    generation: int
    before: QImage
    outputs: tuple[PreviewOutput, ...]
    steps: tuple[StepTiming, ...]
    seconds: float
    error: str | None = None


def _screen_image(path: Path) -> QImage:
    image = QImage(str(path))
    if image.isNull():
        return image
    return image.scaled(
        PREVIEW_SIZE,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )


def run_preview(
    generation: int, spec: PipelineSpec, sample: Path, stop: threading.Event
) -> PreviewResult | None:
    """Run the pipeline on `sample` in a folder of its own; None when stopped on the way."""
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-preview-"))
    try:
        before = _screen_image(sample)
        try:
            trial = try_pipeline(spec, sample, folder, should_stop=stop.is_set)
        except StopRequested:
            return None
        except KnownError as exc:  # the sample's problem or a step's, as a worker would say it
            return PreviewResult(generation, before, (), (), 0.0, str(exc))
        outputs = []
        for output in trial.outputs:
            if stop.is_set():
                return None
            outputs.append(
                PreviewOutput(
                    output.name,
                    output.size,
                    output.width,
                    output.height,
                    _screen_image(output.path),
                )
            )
        return PreviewResult(generation, before, tuple(outputs), trial.steps, trial.seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Signals(QObject):
    # Made on the GUI thread: emitted on a pool thread, delivered queued on the GUI thread.
    done = Signal(object)
    failed = Signal(object)


class _PreviewRunnable(QRunnable):
    def __init__(
        self, signals: _Signals, generation: int, spec: PipelineSpec, sample: Path
    ) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._signals = signals
        self._generation = generation
        self._spec = spec
        self._sample = sample
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            result = run_preview(self._generation, self._spec, self._sample, self.stop)
        except BaseException as exc:  # a bug: the GUI thread hands it to the crash handler
            self._signals.failed.emit(exc)
        else:
            self._signals.done.emit(result)


class PipelinePreview(QObject):
    """Debounced previews of a pipeline on a sample; `finished` carries only the newest."""

    started = Signal()
    finished = Signal(object)  # PreviewResult
    bug_raised = Signal(object)

    def __init__(self, delay_ms: int = DEFAULT_DELAY_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)  # the newest, and a superseded one finishing its step
        self._timer = QTimer(self, singleShot=True, interval=delay_ms)
        self._timer.timeout.connect(self._start)
        self._signals = _Signals(self)
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self.bug_raised)
        self._pending: tuple[PipelineSpec, Path] | None = None
        self._running: _PreviewRunnable | None = None
        self._generation = 0

    @property
    def busy(self) -> bool:
        return self._timer.isActive() or self._running is not None

    @property
    def generation(self) -> int:
        """The number of the newest preview started."""
        return self._generation

    def request(self, spec: PipelineSpec, sample: Path) -> None:
        """Preview `spec` on `sample` once the changes pause for the delay."""
        self._pending = (spec, sample)
        self._timer.start()

    def cancel(self) -> None:
        """Drop the waiting request and stop the running one; nothing more is shown."""
        self._timer.stop()
        self._pending = None
        self._generation += 1  # whatever is running now is stale
        if self._running is not None:
            self._running.stop.set()
            self._running = None

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Wait for the preview threads to end (when the editor closes)."""
        return self._pool.waitForDone(timeout_ms)

    def _start(self) -> None:
        if self._pending is None:
            return
        spec, sample = self._pending
        self._pending = None
        if self._running is not None:
            self._running.stop.set()  # superseded: it stops at its next step
        self._generation += 1
        runnable = _PreviewRunnable(self._signals, self._generation, spec, sample)
        self._running = runnable
        self._pool.start(runnable)
        self.started.emit()

    def _on_done(self, result: Any) -> None:
        if not isinstance(result, PreviewResult) or result.generation != self._generation:
            return  # stopped, or superseded by a newer request
        self._running = None
        self.finished.emit(result)
