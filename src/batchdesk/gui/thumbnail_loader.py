"""Thumbnails of the pending files, made on a pool thread so the window never decodes an image.

`QImageReader` reads the size from the header, then decodes and scales (Qt releases the GIL while
it does). Qt's PNG reader decodes the whole image before scaling it, 4 bytes a pixel, so renders
over `THUMBNAIL_MAX_PIXELS` (or over Qt's allocation limit, which would also log a warning) get
no thumbnail rather than hundreds of megabytes of memory for a 48-pixel picture. A `QImage` may
be made off the GUI thread; the `QPixmap` a view paints is made from it by the model, on the GUI
thread.

One task at a time works through a queue, however many files arrive: thumbnails must not take
every thread of the pool away from database work such as the batch-name preview.
"""

import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader

from batchdesk.gui.background import BackgroundTasks, TaskContext, TaskHandle

THUMBNAIL_SIZE = 48
# 40 megapixels decode to 160 MB for a moment: the largest that is still worth a thumbnail.
THUMBNAIL_MAX_PIXELS = 40_000_000


def make_thumbnail(path: Path, size: int = THUMBNAIL_SIZE) -> QImage:
    """Return the image at `path` scaled to fit a `size` square, or a null QImage if unreadable.

    Images with more pixels than `THUMBNAIL_MAX_PIXELS` also give a null QImage. Safe on any
    thread: it makes a QImage, never a QPixmap.
    """
    try:
        reader = QImageReader(str(path))
    except (UnicodeError, ValueError):
        # A file name that is not valid text cannot be handed to Qt; the job will still run.
        return QImage()
    full = reader.size()
    if not full.isValid() or full.isEmpty() or full.width() * full.height() > _max_pixels():
        return QImage()
    if full.width() > size or full.height() > size:
        scaled = full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio)
        # A very long, thin image would otherwise scale to zero pixels on one side.
        reader.setScaledSize(QSize(max(1, scaled.width()), max(1, scaled.height())))
    return reader.read()


def _max_pixels() -> int:
    limit_mb = QImageReader.allocationLimit()  # 0: no limit
    if limit_mb <= 0:
        return THUMBNAIL_MAX_PIXELS
    return min(THUMBNAIL_MAX_PIXELS, limit_mb * (1 << 20) // 4)


class _Run:
    """The queue one background task works through; `open` while that task still takes from it."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.queue: deque[Path] = deque(paths)
        self.open = True


class ThumbnailLoader(QObject):
    """Makes thumbnails in the background and hands each one back on the GUI thread."""

    thumbnail_ready = Signal(object, object)  # Path, QImage (null when it could not be read)

    def __init__(
        self, tasks: BackgroundTasks, size: int = THUMBNAIL_SIZE, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._size = size
        # Guards `_run` and its queue, shared by the GUI thread and the task's pool thread.
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._handle: TaskHandle[None] | None = None

    @property
    def size(self) -> int:
        return self._size

    def request(self, paths: Iterable[Path]) -> None:
        """Queue thumbnails of `paths`; each arrives later through `thumbnail_ready`."""
        paths = list(paths)
        if not paths:
            return
        with self._lock:
            run = self._run
            if run is not None and run.open:
                run.queue.extend(paths)
                return
            run = self._run = _Run(paths)
        self._handle = self._tasks.run(
            "make thumbnails",
            lambda context: self._work(context, run),
            on_progress=self._on_task_progress,
        )

    def cancel(self) -> None:
        """Forget the queued thumbnails and stop the running task at its next file."""
        with self._lock:
            if self._run is not None:
                self._run.open = False
                self._run.queue.clear()
                self._run = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _work(self, context: TaskContext, run: _Run) -> None:
        while True:
            with self._lock:
                if context.cancelled() or not run.queue:
                    # Decided under the lock: a request that sees the run closed starts another.
                    run.open = False
                    return
                path = run.queue.popleft()
            context.progress((path, make_thumbnail(path, self._size)), force=True)

    def _on_task_progress(self, value: tuple[Path, QImage]) -> None:
        path, image = value
        self.thumbnail_ready.emit(path, image)
