"""The preview pane: the selected job before and after its pipeline, or the selected batch.

A job's input and first image output are read from the database and decoded on a pool thread
(QImageReader, scaled to at most PREVIEW_EDGE); the GUI thread only turns the finished QImage
into a pixmap at the size the pane has, again whenever it is resized. Each selection gets a
number: results for an earlier one are dropped, and its task is cancelled so that it stops
reading. An image too large to decode within Qt's allocation limit is not read past its header
and says so instead.
"""

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.units import format_size, plural
from batchdesk.errors import Cancelled, KnownError, NotFound
from batchdesk.storage import batch_contents, blob_store
from batchdesk.storage.batch_contents import StoredFile
from batchdesk.storage.batch_queries import BatchRow, JobRow
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection

from batchdesk.gui.background import BackgroundTasks, TaskContext, TaskHandle

EMPTY_TEXT = "Select a batch or a job to see it here"
# Decoded once at this long edge at most: sharp on a pane of 800 logical pixels at 2x.
PREVIEW_EDGE = 1600
NO_OUTPUT = {
    "queued": "Queued — no output yet",
    "processing": "Processing — no output yet",
    "failed": "Failed — no output",
    "cancelled": "Cancelled — no output",
    "completed": "No image output",
}


@dataclass(frozen=True)
class ImagePreview:
    """One stored image as the pane shows it; `image` is None when it cannot be shown."""

    name: str
    size: int
    width: int | None
    height: int | None
    image: QImage | None
    problem: str = ""

    @property
    def info(self) -> str:
        dimensions = f"{self.width} × {self.height} px · " if self.width and self.height else ""
        return f"{dimensions}{format_size(self.size)}"


@dataclass(frozen=True)
class JobPreview:
    job_id: int
    file_name: str
    status: str
    attempts: int
    last_error: str | None
    before: ImagePreview
    after: ImagePreview | None
    more_outputs: int  # outputs besides the one shown


def _too_large_to_decode(reader: QImageReader, size: QSize) -> bool:
    """True when Qt would refuse to decode the image (and log a warning saying so)."""
    limit = QImageReader.allocationLimit() << 20  # 0: no limit
    if not limit or not size.isValid():
        return False
    image_format = reader.imageFormat()
    depth = QImage.toPixelFormat(image_format).bitsPerPixel() if image_format.value else 0
    # At least 4: smooth scaling turns any format into 32-bit pixels first; 16-bit takes 8.
    bytes_per_pixel = max(4, depth // 8)
    return size.width() * size.height() * bytes_per_pixel > limit


def read_preview(
    connection: Connection, stored: StoredFile, context: TaskContext, edge: int = PREVIEW_EDGE
) -> ImagePreview:
    """Read one stored image and decode it scaled to `edge`; runs on a pool thread.

    The bytes go to a temporary file, not into memory, and the header is looked at after the
    first chunk: an image Qt would refuse to decode is not read further. A file rather than a
    QBuffer also keeps Python out of Qt's reading: a QBuffer made in Python calls back into
    Python (taking the GIL) while Qt holds its image-plugin lock, and two previews decoding at
    once then deadlock.
    """
    chunks = blob_store.read_chunks(connection, stored.sha256)
    with tempfile.TemporaryDirectory(prefix="batchdesk-preview-") as folder:
        image_path = Path(folder) / "image"
        path = str(image_path)  # what Qt takes
        with image_path.open("wb") as out:
            out.write(next(chunks, b""))
        size = QImageReader(path).size()
        width = stored.width or (size.width() if size.isValid() else None)
        height = stored.height or (size.height() if size.isValid() else None)
        if _too_large_to_decode(QImageReader(path), size):
            chunks.close()
            problem = "Too large to preview here; export it to see it."
            return ImagePreview(stored.name, stored.size, width, height, None, problem)
        with image_path.open("ab") as out:
            for chunk in chunks:
                if context.cancelled():
                    raise Cancelled("The preview was replaced by another.")
                out.write(chunk)
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        if size.isValid() and max(size.width(), size.height()) > edge:
            # JPEG decodes straight at this size; PNG is decoded whole and scaled here, off
            # the GUI thread, so the pane only ever holds the small copy.
            scaled = size.scaled(edge, edge, Qt.AspectRatioMode.KeepAspectRatio)
            # A very long, thin image would otherwise scale to zero pixels on one side.
            reader.setScaledSize(scaled.expandedTo(QSize(1, 1)))
        image = reader.read()
        error = reader.errorString()
    if image.isNull():
        problem = f"Cannot show this image: {error.rstrip('.')}."
        return ImagePreview(stored.name, stored.size, width, height, None, problem)
    return ImagePreview(stored.name, stored.size, width, height, image)


def load_job_preview(database: Database, job: JobRow, context: TaskContext) -> JobPreview:
    """Read a job's input and first image output as previews; runs on a pool thread."""
    with database.connect() as connection:
        try:
            contents = batch_contents.find_job(connection, job.batch_id, "", str(job.id))
        except NotFound:
            raise NotFound(
                f"{job.file_name} is no longer stored; its batch may have been deleted."
            ) from None
        before = read_preview(connection, contents.input, context)
        images = [o for o in contents.outputs if o.media_type.startswith("image/")]
        after = read_preview(connection, images[0], context) if images else None
    more = len(contents.outputs) - (1 if images else 0)
    return JobPreview(
        contents.id,
        contents.file_name,
        contents.status,
        contents.attempts,
        contents.last_error,
        before,
        after,
        more,
    )


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "—"


def _text_label(text: str = "", *, selectable: bool = True) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class _ImageLabel(QLabel):
    """An image cell as tall as its width and the image's shape ask, so captions sit close."""

    def __init__(self) -> None:
        super().__init__(alignment=Qt.AlignmentFlag.AlignCenter)
        self.aspect = 0.75  # height / width; a render's usual 4:3 until an image says otherwise
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def set_aspect(self, image: QImage | None) -> None:
        if image is not None and image.width() > 0:
            self.aspect = min(max(image.height() / image.width(), 0.2), 3.0)
            self.updateGeometry()

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        return max(64, round(width * self.aspect))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(160, self.heightForWidth(160))


class PreviewPane(QWidget):
    """Shows the selection: a job before and after, or a batch's details, or what to do."""

    job_shown = Signal(int)  # a job's images are on screen (its id)
    load_failed = Signal(object)  # KnownError: the database went away, the job was deleted

    BATCH_FIELDS = (
        "Name", "Description", "Status", "Jobs", "Pipeline", "Files",
        "Created", "Completed", "Delivered",
    )  # fmt: skip

    def __init__(
        self, database: Database, tasks: BackgroundTasks, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self._request = 0
        self._handle: TaskHandle[JobPreview] | None = None
        self._images: dict[QLabel, QImage | None] = {}
        self.setAccessibleName("Preview")

        self._title = _text_label()
        font = self._title.font()
        font.setBold(True)
        self._title.setFont(font)
        self._stack = QStackedWidget()
        layout = QVBoxLayout(self)
        layout.addWidget(self._title)
        layout.addWidget(self._stack, 1)

        self._empty = QLabel(EMPTY_TEXT, alignment=Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._stack.addWidget(self._empty)

        batch_page = QWidget()
        form = QFormLayout(batch_page)
        self.batch_values: dict[str, QLabel] = {}
        for name in self.BATCH_FIELDS:
            value = _text_label()
            value.setAccessibleName(name)
            self.batch_values[name] = value
            form.addRow(f"{name}:", value)
        self._stack.addWidget(batch_page)

        job_page = QWidget()
        grid = QGridLayout(job_page)
        self.status_label = _text_label()
        grid.addWidget(self.status_label, 0, 0, 1, 2)
        self.before_image, self.before_info = self._image_column(grid, 0, "Before")
        self.after_image, self.after_info = self._image_column(grid, 1, "After")
        self.error_label = _text_label()
        self.error_label.setAccessibleName("Error")
        grid.addWidget(self.error_label, 4, 0, 1, 2)
        grid.setRowStretch(5, 1)  # what is left goes below, so captions stay by their images
        self._stack.addWidget(job_page)
        self.clear()

    def _image_column(self, grid: QGridLayout, column: int, caption: str) -> tuple[QLabel, QLabel]:
        grid.addWidget(QLabel(caption, alignment=Qt.AlignmentFlag.AlignCenter), 1, column)
        image = _ImageLabel()
        image.setWordWrap(True)
        image.setAccessibleName(f"{caption} image")
        # The pixmap follows the space the pane has, never the other way round.
        image.setMinimumSize(64, 64)
        image.installEventFilter(self)  # refit the pixmap whenever the label changes size
        grid.addWidget(image, 2, column)
        info = _text_label()
        info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        info.setAccessibleName(f"{caption} details")
        grid.addWidget(info, 3, column)
        grid.setColumnStretch(column, 1)
        return image, info

    # -- what to show -----------------------------------------------------------------------

    def clear(self) -> None:
        """Show the empty state."""
        self._forget_request()
        self._title.setText("")
        self._title.hide()
        self._stack.setCurrentWidget(self._empty)

    def show_batch(self, batch: BatchRow) -> None:
        """Show a batch's details (all in the row: no query)."""
        self._forget_request()
        self._title.setText(batch.base_directory_name)
        self._title.show()
        parts = [
            f"{batch.completed_count} completed",
            f"{batch.failed_count} failed",
            f"{batch.cancelled_count} cancelled",
            f"{batch.processing_count} processing",
            f"{batch.queued_count} queued",
        ]
        counts = ", ".join(part for part in parts if not part.startswith("0 "))
        delivered = (
            f"{_when(batch.delivered_at)} to {batch.delivered_to}"
            if batch.delivered_at
            else "Not delivered"
        )
        values = {
            "Name": batch.base_directory_name,
            "Description": batch.render_description or "—",
            "Status": batch.status.capitalize(),
            "Jobs": counts or "None",
            "Pipeline": batch.pipeline,
            "Files": f"{plural(batch.total_files, 'file')}, {format_size(batch.total_size)}",
            "Created": f"{_when(batch.created_at)} by {batch.created_by}",
            "Completed": _when(batch.completed_at),
            "Delivered": delivered,
        }
        for name, text in values.items():
            self.batch_values[name].setText(text)
        self._stack.setCurrentIndex(1)

    def show_job(self, job: JobRow) -> None:
        """Show a job at once with what its row says; its images follow from the background."""
        self._forget_request()
        self._request += 1
        request = self._request
        self._title.setText(job.file_name)
        self._title.show()
        self.status_label.setText(job.status.capitalize())
        for label, info in (
            (self.before_image, self.before_info),
            (self.after_image, self.after_info),
        ):
            self._set_image(label, None, "Loading…")
            info.setText("")
        self.error_label.hide()
        self._stack.setCurrentIndex(2)
        database = self._database
        self._handle = self._tasks.run(
            f"preview {job.file_name}",
            lambda context: load_job_preview(database, job, context),
            on_result=lambda preview: self._on_loaded(request, preview),
            on_error=lambda error: self._on_load_failed(request, error),
        )

    def _forget_request(self) -> None:
        self._request += 1  # whatever is on its way is for an earlier selection
        if self._handle is not None and not self._handle.done:
            self._handle.cancel()
        self._handle = None

    def _on_loaded(self, request: int, preview: JobPreview) -> None:
        if request != self._request:
            return
        self._handle = None
        status = preview.status.capitalize()
        if preview.attempts:
            status += f" · {plural(preview.attempts, 'attempt')}"
        self.status_label.setText(status)
        self._show_preview(self.before_image, self.before_info, preview.before)
        if preview.after is None:
            self._set_image(self.after_image, None, NO_OUTPUT.get(preview.status, "No output"))
            self.after_info.setText("")
        else:
            self._show_preview(self.after_image, self.after_info, preview.after)
            if preview.more_outputs:
                more = plural(preview.more_outputs, "more output")
                self.after_info.setText(f"{self.after_info.text()}\n{more}")
        if preview.last_error:
            lead = "Failed" if preview.status == "failed" else "The last attempt failed"
            self.error_label.setText(f"{lead}: {preview.last_error}")
            self.error_label.show()
        self.job_shown.emit(preview.job_id)

    def _on_load_failed(self, request: int, error: KnownError) -> None:
        if request != self._request or isinstance(error, Cancelled):
            return
        self._handle = None
        for label in (self.before_image, self.after_image):
            self._set_image(label, None, "")
        self.error_label.setText(f"Could not load the preview: {error}")
        self.error_label.show()
        self.load_failed.emit(error)

    def _show_preview(self, label: QLabel, info: QLabel, preview: ImagePreview) -> None:
        self._set_image(label, preview.image, preview.problem)
        name = preview.name if label is self.after_image else ""
        info.setText("\n".join(part for part in (name, preview.info) if part))

    # -- pixmaps ----------------------------------------------------------------------------

    def _set_image(self, label: QLabel, image: QImage | None, text: str) -> None:
        self._images[label] = image
        if isinstance(label, _ImageLabel):
            label.set_aspect(image)
        if image is None:
            label.setPixmap(QPixmap())
            label.setText(text)
        else:
            label.setText("")
            self._fit(label)

    def _fit(self, label: QLabel) -> None:
        image = self._images.get(label)
        if image is None:
            return
        ratio = label.devicePixelRatioF()
        room = label.contentsRect().size() * ratio
        # Never enlarged: a small render shows at its own size rather than blurred.
        if image.width() > room.width() or image.height() > room.height():
            image = image.scaled(
                room.expandedTo(QSize(1, 1)),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(ratio)
        label.setPixmap(pixmap)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Resize and watched in self._images:
            self._fit(watched)
        return super().eventFilter(watched, event)
