"""Copying stored files out (of the database or the file store): chunk by chunk, counted,
cancellable, verified."""

from collections.abc import Callable
from dataclasses import dataclass

from batchdesk.errors import Cancelled, NotFound
from batchdesk.storage import file_bytes
from batchdesk.storage.batch_contents import StoredFile
from batchdesk.storage.pool import Connection
from batchdesk.storage.share_paths import SharePaths


@dataclass(frozen=True)
class ExportProgress:
    """How far an export is: bytes and files written of those known when it started."""

    done_bytes: int
    total_bytes: int
    done_files: int
    total_files: int
    current: str  # the file being written

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 0.0


ProgressCallback = Callable[[ExportProgress], None]
CancelCheck = Callable[[], bool]


class Transfer:
    """Counts what an export has written and stops it when asked to."""

    def __init__(
        self,
        total_bytes: int,
        total_files: int,
        progress: ProgressCallback | None,
        cancelled: CancelCheck | None,
        cancel_message: str,
        *,
        share_paths: SharePaths,
    ) -> None:
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.done_bytes = 0
        self.done_files = 0
        self._progress = progress or (lambda _progress: None)
        self._cancelled = cancelled or (lambda: False)
        self._cancel_message = cancel_message
        self._share_paths = share_paths

    def check_cancelled(self) -> None:
        if self._cancelled():
            raise Cancelled(self._cancel_message)

    def report(self, current: str) -> None:
        self._progress(
            ExportProgress(
                self.done_bytes,
                max(self.total_bytes, self.done_bytes),
                self.done_files,
                max(self.total_files, self.done_files),
                current,
            )
        )

    def copy(
        self,
        connection: Connection,
        stored: StoredFile,
        label: str,
        write: Callable[[bytes], object],
        *,
        batch: str,
    ) -> None:
        """Stream one stored file into `write`, checking it arrives whole."""
        written = 0
        for chunk in file_bytes.chunks(connection, stored.sha256, self._share_paths):
            self.check_cancelled()
            write(chunk)
            written += len(chunk)
            self.done_bytes += len(chunk)
            self.report(label)
        if written != stored.size:
            raise NotFound(
                f"{label} of batch {batch} is no longer stored "
                "(was the batch deleted while it was being exported?)."
            )
        self.done_files += 1
        self.report(label)
