"""A job's input received into memory, read from there like a file: no temporary file.

The runner receives each input from the database. Writing it to a temporary file only for the
pipeline to read it back (the check, then the decode) costs a copy into the page cache and the
file's creation and removal: on short jobs that was a visible part of what the runner spends
beyond the Pillow work itself (bench/README.md, bench_runner's thumbnails case). The runner
keeps an input in memory only when its memory estimate, with the input's bytes added, fits the
worker's memory budget (job_execution); a larger one still goes through a temporary file.

The bytes live in an anonymous memory map, so releasing them gives the memory back to the
system at once, whatever the C allocator would have kept.
"""

import io
import mmap
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class InputBuffer:
    """A file's bytes, written in order as they arrive, then opened for reading any number of times.

    Use it as a context manager (or call `release`): the memory is freed on leaving it.
    """

    def __init__(self, capacity: int) -> None:
        self._map = mmap.mmap(-1, max(capacity, 1))
        self._size = 0

    @property
    def size(self) -> int:
        """How many bytes were written."""
        return self._size

    def clear(self) -> None:
        """Forget what was written (a download that starts over)."""
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        count = len(data)
        end = self._size + count
        if end > len(self._map):
            raise ValueError(
                f"more bytes arrived ({end:,}) than the input's recorded size ({len(self._map):,})"
            )
        self._map[self._size : end] = data
        self._size = end
        return count

    def head(self, count: int) -> bytes:
        """Return the first `count` bytes (fewer if the file is shorter)."""
        return self._map[: min(count, self._size)]

    def open(self) -> BinaryIO:
        """Return a new reader over the bytes written, with its own position."""
        return io.BufferedReader(_MapReader(self._map, self._size))

    def write_to(self, path: Path) -> None:
        """Write the bytes to a file (the input delivered unchanged)."""
        with path.open("wb") as out, memoryview(self._map) as view:
            out.write(view[: self._size])

    def release(self) -> None:
        self._map.close()

    def __enter__(self) -> "InputBuffer":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class _MapReader(io.RawIOBase):
    """Reads the first `size` bytes of a memory map, copying each read once."""

    def __init__(self, data: mmap.mmap, size: int) -> None:
        super().__init__()
        self._data = data
        self._end = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        with memoryview(buffer) as target, memoryview(self._data) as source:
            count = max(0, min(target.nbytes, self._end - self._position))
            target.cast("B")[:count] = source[self._position : self._position + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._end}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position
