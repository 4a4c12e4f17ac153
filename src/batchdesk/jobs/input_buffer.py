"""A job's input received into memory, read from there like a file: no temporary file.

The runner receives each input from the database. Writing it to a temporary file only for the
pipeline to read it back (the check, then the decode) costs a copy into the page cache and the
file's creation and removal: on short jobs that was a visible part of what the runner spends
beyond the Pillow work itself (bench/README.md, bench_runner's thumbnails case). The runner
keeps an input in memory only when its memory estimate, with the input's bytes added, fits the
worker's memory budget (job_execution); a larger one still goes through a temporary file.

The bytes live in a private anonymous memory map, and the maps are kept for the next jobs
(`InputBuffers`): a new map costs a page fault and a zeroed page for every 4 KB written, which
made a fresh buffer dearer than the temporary file (bench/README.md). A map handed back is
marked free to the system (MADV_FREE): it takes the pages back whenever it needs the memory,
and while it does not, the next job writes into them without a fault.
"""

import contextlib
import io
import mmap
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# Maps are made in steps of this size, so inputs of about the same size reuse one map.
_GRAIN = 8 << 20
# Larger maps are not kept: their jobs are long enough that a fresh map costs little beside them.
KEEP_UP_TO = 256 << 20


def _new_map(capacity: int) -> mmap.mmap:
    if sys.platform == "win32":
        return mmap.mmap(-1, capacity)
    # Private: a shared anonymous map is backed by shared memory, slower to fault in and not
    # something MADV_FREE applies to.
    return mmap.mmap(-1, capacity, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


class InputBuffer:
    """A file's bytes, written in order as they arrive, then opened for reading any number of times.

    It takes at most `size` bytes (the input's recorded size). Use it as a context manager (or
    call `release`) when it is not lent by `InputBuffers`: the memory is freed on leaving it.
    """

    def __init__(self, size: int, *, capacity: int | None = None) -> None:
        self._map = _new_map(max(capacity or size, size, 1))
        self._limit = size
        self._size = 0

    @property
    def size(self) -> int:
        """How many bytes were written."""
        return self._size

    @property
    def capacity(self) -> int:
        return len(self._map)

    @property
    def room(self) -> int:
        """How many more bytes it takes before the input's recorded size is reached."""
        return self._limit - self._size

    def clear(self) -> None:
        """Forget what was written (a download that starts over)."""
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        count = len(data)
        end = self._size + count
        if end > self._limit:
            raise ValueError(
                f"more bytes arrived ({end:,}) than the input's recorded size ({self._limit:,})"
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

    def _reuse(self, size: int) -> None:
        self._limit = size
        self._size = 0

    def _free_pages(self) -> None:
        """Let the system take the pages back if it needs them; keep them if it does not."""
        if sys.platform != "win32" and hasattr(mmap, "MADV_FREE"):
            # A kernel without it (before Linux 4.5) refuses it: the pages stay.
            with contextlib.suppress(OSError):
                self._map.madvise(mmap.MADV_FREE)

    def __enter__(self) -> "InputBuffer":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class InputBuffers:
    """Buffers lent to jobs one at a time and kept for the next ones (one per job running)."""

    def __init__(self, keep_up_to: int = KEEP_UP_TO) -> None:
        self._keep_up_to = keep_up_to
        self._free: list[InputBuffer] = []
        self._lock = threading.Lock()

    @contextmanager
    def lent(self, size: int) -> Iterator[InputBuffer]:
        """Lend a buffer for an input of `size` bytes until the block ends."""
        buffer = self._take(size)
        try:
            yield buffer
        finally:
            self._give_back(buffer)

    def _take(self, size: int) -> InputBuffer:
        with self._lock:
            buffer = self._free.pop() if self._free else None
        if buffer is not None and buffer.capacity >= size:
            buffer._reuse(size)
            return buffer
        if buffer is not None:
            buffer.release()  # too small: one map per job running, never more
        return InputBuffer(size, capacity=-(-size // _GRAIN) * _GRAIN)

    def _give_back(self, buffer: InputBuffer) -> None:
        if buffer.capacity > self._keep_up_to:
            buffer.release()
            return
        buffer._free_pages()
        with self._lock:
            self._free.append(buffer)


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
