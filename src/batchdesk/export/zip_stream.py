"""A zip written entry by entry from streams of bytes, never holding an entry in memory.

Sizes are declared before each entry is written, so Zip64 records appear exactly where an
entry or the archive passes the 4 GiB limits. Already-compressed images are stored; anything
else is deflated. A stream that delivers other than its declared size is refused.
"""

import zipfile
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import datetime
from typing import IO, BinaryIO

# Deflating these saves ~0.2% for a lot of time: store them.
STORED_MEDIA_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif", "image/avif", "application/zip"}
)
_EARLIEST = (1980, 1, 1, 0, 0, 0)  # the zip format cannot say anything earlier


def zip_time(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    """A timestamp as zip entries hold it: local wall-clock time, whole seconds."""
    if moment is None:
        moment = datetime.now()
    local = moment.astimezone() if moment.tzinfo else moment
    stamp = (local.year, local.month, local.day, local.hour, local.minute, local.second)
    return max(stamp, _EARLIEST)


class ZipStream:
    """Writes a zip archive to a seekable binary stream, one streamed entry at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self._archive = zipfile.ZipFile(stream, "w", allowZip64=True)
        self._entry: IO[bytes] | None = None

    def add(
        self,
        path: str,
        size: int,
        media_type: str,
        when: datetime | None,
        fill: Callable[[Callable[[bytes], object]], None],
    ) -> None:
        """Add an entry of `size` bytes that `fill` writes through the function it is given."""
        info = zipfile.ZipInfo(path, date_time=zip_time(when))
        info.compress_type = (
            zipfile.ZIP_STORED if media_type in STORED_MEDIA_TYPES else zipfile.ZIP_DEFLATED
        )
        info.file_size = size  # decides Zip64 for this entry up front
        info.external_attr = 0o644 << 16  # -rw-r--r-- when unpacked on Unix
        self._entry = self._archive.open(info, "w")
        written = 0

        def write(data: bytes) -> None:
            nonlocal written
            written += len(data)
            assert self._entry is not None
            self._entry.write(data)

        fill(write)
        if written != size:
            raise ValueError(f"{path}: {written} bytes arrived where {size} were declared")
        self._entry.close()
        self._entry = None

    def add_chunks(self, path: str, size: int, media_type: str, chunks: Iterable[bytes]) -> None:
        def fill(write: Callable[[bytes], object]) -> None:
            for chunk in chunks:
                write(chunk)

        self.add(path, size, media_type, None, fill)

    def finish(self, comment: str = "") -> None:
        """Write the central directory; the archive is complete once this returns."""
        self._archive.comment = comment.encode("utf-8")[:65535]
        self._archive.close()

    def abandon(self) -> None:
        """Let go of a broken archive without writing more than it must (its file is deleted)."""
        if self._entry is not None:
            with suppress(Exception):
                self._entry.close()
        with suppress(Exception):
            self._archive.close()
