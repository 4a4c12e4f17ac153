"""The preview pane: the selected job before and after its pipeline, or the selected batch.

A job's input and first image output are read and decoded on a pool thread (`job_images.py`,
scaled to at most PREVIEW_EDGE); the GUI thread only turns the finished QImage into a pixmap
at the size the pane has, again whenever it is resized. The two images sit side by side when
the pane is wide and one above the other when it is tall, whichever shows them larger. Each
selection gets a number: results for an earlier one are dropped, and its task is cancelled so
that it stops reading. With nothing selected the pane says so and reports that it has nothing
to show (`has_content_changed`), so the window can give its room to the tree.
"""

from datetime import datetime

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.units import format_size, plural
from batchdesk.errors import Cancelled, KnownError
from batchdesk.storage.batch_queries import BatchRow, JobRow
from batchdesk.storage.database import Database

from batchdesk.gui.attempt_history import AttemptHistory
from batchdesk.gui.background import BackgroundTasks, TaskHandle
from batchdesk.gui.job_images import NO_OUTPUT, ImagePreview, JobPreview, load_job_preview

EMPTY_TEXT = "Select a batch or a job to see it here"


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
    has_content_changed = Signal(bool)  # sent on every change: a batch or job (True), or nothing
    viewer_requested = Signal(object)  # JobRow: View Larger, or a double-click on an image

    BATCH_FIELDS = (
        "Name", "Description", "Status", "Priority", "Jobs", "Pipeline", "Files",
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
        self._job: JobRow | None = None
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
        page = QVBoxLayout(job_page)
        page.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.status_label = _text_label()
        top.addWidget(self.status_label, 1)
        self.view_button = QPushButton("&View Larger")
        self.view_button.setToolTip(
            "Look at the input and every output in a large viewer (Space or double-click the job)"
        )
        self.view_button.clicked.connect(self._request_viewer)
        top.addWidget(self.view_button)
        page.addLayout(top)
        self._cells = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        page.addLayout(self._cells)
        self.before_image, self.before_info = self._image_cell("Before")
        self.after_image, self.after_info = self._image_cell("After")
        self.error_label = _text_label()
        self.error_label.setAccessibleName("Error")
        page.addWidget(self.error_label)
        self.history = AttemptHistory(database, tasks)
        self.history.load_failed.connect(self.load_failed)
        page.addWidget(self.history)
        page.addStretch(1)  # what is left goes below, so captions stay by their images
        self._stack.addWidget(job_page)
        self.clear()

    def _image_cell(self, caption: str) -> tuple[QLabel, QLabel]:
        cell = QVBoxLayout()
        cell.addWidget(QLabel(caption, alignment=Qt.AlignmentFlag.AlignCenter))
        image = _ImageLabel()
        image.setWordWrap(True)
        image.setAccessibleName(f"{caption} image")
        image.setToolTip("Double-click to view it larger")
        # The pixmap follows the space the pane has, never the other way round.
        image.setMinimumSize(64, 64)
        image.installEventFilter(self)  # refit the pixmap whenever the label changes size
        cell.addWidget(image)
        info = _text_label()
        info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        info.setAccessibleName(f"{caption} details")
        cell.addWidget(info)
        self._cells.addLayout(cell, 1)
        return image, info

    # -- what to show -----------------------------------------------------------------------

    @property
    def has_content(self) -> bool:
        """Whether a batch or a job is shown (else the pane only says what to do)."""
        return self._stack.currentWidget() is not self._empty

    @property
    def shown_job(self) -> JobRow | None:
        """The job on show, or None for a batch or nothing."""
        return self._job

    @property
    def arranged_vertically(self) -> bool:
        """Whether before and after sit one above the other (a tall pane) or side by side."""
        return self._cells.direction() == QBoxLayout.Direction.TopToBottom

    def clear(self) -> None:
        """Show the empty state."""
        self._forget_request()
        self.history.clear()
        self._job = None
        self._title.setText("")
        self._title.hide()
        self._stack.setCurrentWidget(self._empty)
        self.has_content_changed.emit(False)

    def show_batch(self, batch: BatchRow) -> None:
        """Show a batch's details (all in the row: no query)."""
        self._forget_request()
        self.history.clear()
        self._job = None
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
            "Priority": f"{batch.priority}"
            + (f", paused since {_when(batch.paused_at)}" if batch.paused_at else ""),
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
        self.has_content_changed.emit(True)

    def show_job(self, job: JobRow) -> None:
        """Show a job at once with what its row says; its images follow from the background."""
        self._forget_request()
        self._job = job
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
        self.history.show_job(job.id)
        self._stack.setCurrentIndex(2)
        self.has_content_changed.emit(True)
        database = self._database
        self._handle = self._tasks.run(
            f"preview {job.file_name}",
            lambda context: load_job_preview(database, job, context),
            on_result=lambda preview: self._on_loaded(request, preview),
            on_error=lambda error: self._on_load_failed(request, error),
        )

    def _request_viewer(self) -> None:
        if self._job is not None:
            self.viewer_requested.emit(self._job)

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
        self._arrange()
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

    # -- layout and pixmaps -----------------------------------------------------------------

    def _arrange(self) -> None:
        """Put before and after side by side or one above the other, whichever is larger."""
        room = self._stack.size()
        aspect = self.before_image.aspect if isinstance(self.before_image, _ImageLabel) else 0.75
        text = 4 * self.fontMetrics().height()  # caption and details of one image
        beside = min(room.width() / 2, (room.height() - text) / aspect)
        above = min(room.width(), (room.height() - 2 * text) / 2 / aspect)
        vertical = above > beside
        direction = (
            QBoxLayout.Direction.TopToBottom if vertical else QBoxLayout.Direction.LeftToRight
        )
        if self._cells.direction() != direction:
            self._cells.setDirection(direction)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._arrange()

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
        if isinstance(watched, QLabel) and watched in self._images:
            if event.type() == QEvent.Type.Resize:
                self._fit(watched)
            elif event.type() == QEvent.Type.MouseButtonDblClick:
                self._request_viewer()
                return True
        return super().eventFilter(watched, event)
