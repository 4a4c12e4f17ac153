"""A zip written entry by entry from streams of bytes, never holding an entry in memory.

Sizes are declared before each entry is written, so Zip64 records appear exactly where an
entry or the archive passes the 4 GiB limits. Already-compressed images are stored; anything
else is deflated. A stream that delivers other than its declared size is refused.

Stored entries, nearly all of an export's bytes, are written here rather than by `zipfile`,
because `zipfile` computes their CRC-32 with zlib's, at ~4 GB/s a quarter of an export's CPU;
zlib-ng's is eight times faster. They are written the way `zipfile` writes an entry to a
seekable stream (its local header, the bytes, the header again with the CRC), with its own
header and its own central directory, so the archive is the same.
"""

import zipfile
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import datetime
from typing import IO, BinaryIO

from zlib_ng import zlib_ng

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
        if info.compress_type == zipfile.ZIP_STORED:
            self._add_stored(info, fill)
            return
        self._entry = self._archive.open(info, "w")
        written = 0

        def write(data: bytes) -> None:
            nonlocal written
            written += len(data)
            assert self._entry is not None
            self._entry.write(data)

        fill(write)
        _check_size(info, written)
        self._entry.close()
        self._entry = None

    def _add_stored(
        self, info: zipfile.ZipInfo, fill: Callable[[Callable[[bytes], object]], None]
    ) -> None:
        """Write a stored entry as `zipfile` would, with zlib-ng's CRC-32 (see the module)."""
        archive = self._archive
        out = archive.fp
        assert out is not None
        zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # as zipfile decides
        info.compress_size = info.file_size
        info.CRC = 0  # until the bytes are written
        info.header_offset = out.tell()
        out.write(info.FileHeader(zip64))
        crc = 0
        written = 0

        def write(data: bytes) -> None:
            nonlocal crc, written
            crc = zlib_ng.crc32(data, crc)
            written += len(data)
            out.write(data)

        fill(write)
        _check_size(info, written)
        info.CRC = crc
        end = out.tell()
        out.seek(info.header_offset)
        out.write(info.FileHeader(zip64))
        out.seek(end)
        # What zipfile does once an entry is written: the central directory lists it, and
        # starts after it.
        archive.filelist.append(info)
        archive.NameToInfo[info.filename] = info
        archive.start_dir = end

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


def _check_size(info: zipfile.ZipInfo, written: int) -> None:
    if written != info.file_size:
        raise ValueError(
            f"{info.filename}: {written} bytes arrived where {info.file_size} were declared"
        )
