"""A job's stored images, read from the database and decoded on a pool thread for the window.

The preview pane asks for the input and the first image output scaled to at most PREVIEW_EDGE
(`load_job_preview`); the viewer asks for the input and every image output at full size, each
with smaller copies for drawing it at any zoom (`load_job_images`). Both decode with
QImageReader off the GUI thread, which only ever turns a finished QImage into pixels on screen.
An image too large to decode within Qt's allocation limit is not read past its header and says
so instead.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader

from batchdesk.domain.units import format_size
from batchdesk.errors import Cancelled, NotFound
from batchdesk.storage import batch_contents, file_bytes
from batchdesk.storage.batch_contents import JobContents, StoredFile
from batchdesk.storage.batch_queries import JobRow
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection
from batchdesk.storage.share_paths import SharePaths

from batchdesk.gui.background import TaskContext

# Decoded once at this long edge at most: sharp on a pane of 800 logical pixels at 2x.
PREVIEW_EDGE = 1600
# The viewer keeps halved copies down to this long edge, to draw any zoom from a near size.
SMALLEST_LEVEL_EDGE = 128
# What stands where a job's output would be, by the job's status.
NO_OUTPUT = {
    "queued": "Queued — no output yet",
    "processing": "Processing — no output yet",
    "failed": "Failed — no output",
    "cancelled": "Cancelled — no output",
    "completed": "No image output",
}


@dataclass(frozen=True)
class ImagePreview:
    """One stored image as the window shows it; `image` is None when it cannot be shown."""

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


@dataclass(frozen=True)
class JobFiles:
    """What the viewer lists before any image is decoded: the job and its image files."""

    job_id: int
    file_name: str
    status: str
    attempts: int
    last_error: str | None
    input: StoredFile
    outputs: tuple[StoredFile, ...]  # the image outputs, in name order
    other_outputs: int  # outputs that are not images


@dataclass(frozen=True)
class ViewerImage:
    """One decoded image for the viewer: `index` 0 is the input, 1.. the image outputs.

    `levels` holds the full-size image first, then copies halved again and again, so a zoomed
    out view draws from a copy near its size rather than sampling a huge image sparsely.
    """

    index: int
    preview: ImagePreview
    levels: tuple[QImage, ...]


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
    connection: Connection,
    stored: StoredFile,
    share_paths: SharePaths,
    context: TaskContext,
    edge: int | None = PREVIEW_EDGE,
) -> ImagePreview:
    """Read one stored image and decode it scaled to `edge` (None: full size); pool thread only.

    The bytes go to a temporary file, not into memory, and the header is looked at after the
    first chunk: an image Qt would refuse to decode is not read further. A file rather than a
    QBuffer also keeps Python out of Qt's reading: a QBuffer made in Python calls back into
    Python (taking the GIL) while Qt holds its image-plugin lock, and two previews decoding at
    once then deadlock.
    """
    # A chunk per query: stopping after the header must leave the connection usable.
    chunks = file_bytes.chunks(connection, stored.sha256, share_paths, streamed=False)
    with tempfile.TemporaryDirectory(prefix="batchdesk-preview-") as folder:
        image_path = Path(folder) / "image"
        path = str(image_path)  # what Qt takes
        with image_path.open("wb") as out:
            out.write(next(chunks, b""))
        size = QImageReader(path).size()
        width = stored.width or (size.width() if size.isValid() else None)
        height = stored.height or (size.height() if size.isValid() else None)
        if _too_large_to_decode(QImageReader(path), size):
            problem = "Too large to preview here; export it to see it."
            return ImagePreview(stored.name, stored.size, width, height, None, problem)
        with image_path.open("ab") as out:
            for chunk in chunks:
                if context.cancelled():
                    raise Cancelled("The preview was replaced by another.")
                out.write(chunk)
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        if edge is not None and size.isValid() and max(size.width(), size.height()) > edge:
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


def _find(connection: Connection, job: JobRow) -> JobContents:
    try:
        return batch_contents.find_job(connection, job.batch_id, "", str(job.id))
    except NotFound:
        raise NotFound(
            f"{job.file_name} is no longer stored; its batch may have been deleted."
        ) from None


def load_job_preview(database: Database, job: JobRow, context: TaskContext) -> JobPreview:
    """Read a job's input and first image output as previews; runs on a pool thread."""
    with database.connect() as connection:
        contents = _find(connection, job)
        before = read_preview(connection, contents.input, database.share_paths, context)
        images = [o for o in contents.outputs if o.media_type.startswith("image/")]
        after = (
            read_preview(connection, images[0], database.share_paths, context) if images else None
        )
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


def load_job_images(database: Database, job: JobRow, context: TaskContext) -> JobFiles:
    """Read a job's input and image outputs at full size for the viewer; pool thread only.

    Reports the JobFiles first and then each ViewerImage as it is decoded, through
    `context.progress`, so the viewer lays itself out at once and shows the input while the
    outputs are still being read. Returns the JobFiles again at the end.
    """
    with database.connect() as connection:
        contents = _find(connection, job)
        images = tuple(o for o in contents.outputs if o.media_type.startswith("image/"))
        files = JobFiles(
            contents.id,
            contents.file_name,
            contents.status,
            contents.attempts,
            contents.last_error,
            contents.input,
            images,
            len(contents.outputs) - len(images),
        )
        context.progress(files, force=True)
        for index, stored in enumerate((contents.input, *images)):
            if context.cancelled():
                raise Cancelled("The viewer moved on to another job.")
            preview = read_preview(connection, stored, database.share_paths, context, edge=None)
            levels = _levels(preview.image) if preview.image is not None else ()
            context.progress(ViewerImage(index, preview, levels), force=True)
    return files


def _levels(image: QImage) -> tuple[QImage, ...]:
    """Return the image in a format quick to draw, then halved copies of it, smallest last."""
    fast = (
        QImage.Format.Format_ARGB32_Premultiplied
        if image.hasAlphaChannel()
        else QImage.Format.Format_RGB32
    )
    levels = [image.convertToFormat(fast)]
    while max(levels[-1].width(), levels[-1].height()) > 2 * SMALLEST_LEVEL_EDGE:
        last = levels[-1]
        half = QSize(max(1, last.width() // 2), max(1, last.height() // 2))
        levels.append(
            last.scaled(
                half,
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
    return tuple(levels)
