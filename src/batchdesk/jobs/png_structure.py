"""A PNG's chunks read without Pillow: whether its pixel data inflates, and what is wrong with it.

Pillow's `verify()` checks every chunk's checksum but does not inflate the pixel data, so a file
whose checksums are right and whose compressed pixel data is corrupt passes it and fails only when
decoded. `pixel_data_fault` inflates the pixel data as a stream and checks that it holds every row
(with a valid filter byte at the start of each) and that the stream ends with its own checksum,
holding a quarter of a megabyte instead of the image. The `original` pipeline, which never decodes,
relies on it: measured on a 4K and a 12-megapixel render it takes a third to a half of the time of
Pillow's full decode.

`find_fault` says what is wrong with a PNG that Pillow refused, from the file's own structure in
file order: where it ends early, a header that is missing or invalid, a checksum that does not
match, metadata that unpacks like a decompression bomb, no pixel data, pixel data that does not
inflate. Every pipeline then tells the same fault in the same words, whatever Pillow's message.
"""

import os
import struct
import zlib
from dataclasses import dataclass
from typing import IO

from PIL import PngImagePlugin

from batchdesk.domain.file_selection import PNG_SIGNATURE

_INFLATE_PIECE = 1 << 18  # bytes inflated at a time
_READ_PIECE = 1 << 20
# (bit depth, colour type) -> bits per pixel, for the combinations PNG allows.
_PIXEL_BITS = {
    (1, 0): 1,
    (2, 0): 2,
    (4, 0): 4,
    (8, 0): 8,
    (16, 0): 16,
    (8, 2): 24,
    (16, 2): 48,
    (1, 3): 1,
    (2, 3): 2,
    (4, 3): 4,
    (8, 3): 8,
    (8, 4): 16,
    (16, 4): 32,
    (8, 6): 32,
    (16, 6): 64,
}
# Adam7 interlacing: each pass's first column and row, and its steps across and down.
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
# Chunks that carry the first image's compressed pixels, as Pillow reads them.
_PIXEL_CHUNKS = (b"IDAT", b"fdAT", b"DDAT")


@dataclass(frozen=True)
class PngFault:
    """What is wrong with a PNG file: a kind, and for some kinds a detail in plain words.

    Kinds: "truncated" (the file ends early), "unidentified" (a PNG signature and then no PNG),
    "damaged" (detail says how), "metadata_bomb" (detail names the chunk that unpacks too far).
    """

    kind: str
    detail: str = ""


_TRUNCATED = PngFault("truncated")
_CORRUPT_PIXELS = PngFault("damaged", "its compressed pixel data is corrupt")
_SHORT_PIXELS = PngFault("damaged", "its pixel data ends before the last row")


@dataclass(frozen=True)
class PixelLayout:
    """How the first image's pixel data is laid out: its size, bits per pixel and interlacing."""

    width: int
    height: int
    bits_per_pixel: int
    interlaced: bool

    @classmethod
    def from_header(
        cls, header: bytes, size: tuple[int, int] | None = None
    ) -> "PixelLayout | None":
        """Read an IHDR chunk's data; `size` overrides its size (an animated PNG's first frame)."""
        if len(header) < 13:
            return None
        width, height, depth, colour = struct.unpack(">IIBB", header[:10])
        bits = _PIXEL_BITS.get((depth, colour))
        if bits is None:
            return None
        width, height = size or (width, height)
        return cls(width, height, bits, header[12] != 0)

    def row_runs(self) -> list[tuple[int, int]]:
        """Return (rows, bytes per row including its filter byte) for each pass, in order."""
        passes = _ADAM7 if self.interlaced else ((0, 0, 1, 1),)
        runs = []
        for x0, y0, dx, dy in passes:
            columns = (self.width - x0 + dx - 1) // dx if self.width > x0 else 0
            rows = (self.height - y0 + dy - 1) // dy if self.height > y0 else 0
            if columns and rows:
                runs.append((rows, 1 + (columns * self.bits_per_pixel + 7) // 8))
        return runs


def _is_chunk_type(kind: bytes) -> bool:
    return all(65 <= c <= 90 or 97 <= c <= 122 for c in kind)


# -- the pixel data ---------------------------------------------------------------------------


class _RowChecker:
    """Follow the inflated bytes row by row: count them and check every row's filter byte."""

    def __init__(self, layout: PixelLayout) -> None:
        self.runs = layout.row_runs()
        self.expected = sum(rows * length for rows, length in self.runs)
        self.seen = 0
        self._run = 0
        self._rows_left = self.runs[0][0] if self.runs else 0
        self._next_row = 0 if self.runs else self.expected + 1

    def feed(self, data: bytes) -> bool:
        """Take the next inflated bytes; False if a row starts with a filter type PNG lacks."""
        end = self.seen + len(data)
        while self._next_row < end:
            if data[self._next_row - self.seen] > 4:
                return False
            self._next_row += self.runs[self._run][1]
            self._rows_left -= 1
            if self._rows_left == 0:
                self._run += 1
                if self._run == len(self.runs):
                    self._next_row = 1 << 62  # every row checked; any more bytes are ignored
                else:
                    self._rows_left = self.runs[self._run][0]
        self.seen = end
        return True


def pixel_data_fault(file: IO[bytes], position: int, layout: PixelLayout) -> PngFault | None:
    """Inflate the pixel data that starts with the chunk at `position`, holding no image.

    The data is the run of IDAT chunks (or APNG fdAT chunks) that starts there. It must inflate
    without error to at least every row of `layout`, each row starting with a valid filter type,
    and the zlib stream must end with its checksum. Bytes after the last row are ignored, as
    Pillow and libpng ignore them.
    """
    rows = _RowChecker(layout)
    inflater = zlib.decompressobj()
    while not inflater.eof:
        file.seek(position)
        head = file.read(8)
        if len(head) < 8:
            return _TRUNCATED
        length, kind = struct.unpack(">I4s", head)
        if kind not in _PIXEL_CHUNKS:
            break
        position += 12 + length
        if kind == b"fdAT":
            file.seek(4, os.SEEK_CUR)  # its sequence number
            length -= 4
        while length > 0 and not inflater.eof:
            data = file.read(min(length, _READ_PIECE))
            if not data:
                return _TRUNCATED
            length -= len(data)
            while data and not inflater.eof:
                try:
                    out = inflater.decompress(data, _INFLATE_PIECE)
                except zlib.error:
                    return _CORRUPT_PIXELS
                data = inflater.unconsumed_tail
                if not rows.feed(out):
                    return _CORRUPT_PIXELS
    if rows.seen < rows.expected:
        return _SHORT_PIXELS if inflater.eof else _CORRUPT_PIXELS
    if not inflater.eof:
        return _CORRUPT_PIXELS  # every row is there, but the stream never ends
    return None


# -- what is wrong with a file ----------------------------------------------------------------


class _MetadataCheck:
    """Apply Pillow's limits on compressed metadata, chunk by chunk, as Pillow reads them."""

    def __init__(self) -> None:
        self.text = 0  # bytes of text so far, which Pillow also limits in total

    def fault(self, kind: bytes, data: bytes) -> PngFault | None:
        if kind == b"tEXt":
            self.text += len(data.partition(b"\0")[2])
        elif kind in (b"iCCP", b"zTXt"):
            rest = data.partition(b"\0")[2]
            what = "its iCCP colour profile" if kind == b"iCCP" else "a zTXt text chunk"
            if rest[:1] not in (b"", b"\0"):
                return PngFault("damaged", f"{what} uses an unknown compression method")
            fault = self._compressed_fault(rest[1:], what, text=kind == b"zTXt")
            if fault is not None:
                return fault
        elif kind == b"iTXt":
            _, found, rest = data.partition(b"\0")
            fields = rest[2:].split(b"\0", 2)
            if found and len(rest) >= 2 and len(fields) == 3:
                compressed, method = rest[0] != 0, rest[1]
                if not compressed:
                    self.text += len(fields[2])
                elif method == 0:
                    fault = self._compressed_fault(fields[2], "an iTXt text chunk", text=True)
                    if fault is not None:
                        return fault
        limit = PngImagePlugin.MAX_TEXT_MEMORY
        if self.text > limit:
            return PngFault(
                "metadata_bomb", f"its text chunks unpack to more than {_megabytes(limit)} in all"
            )
        return None

    def _compressed_fault(self, data: bytes, what: str, *, text: bool) -> PngFault | None:
        limit = PngImagePlugin.MAX_TEXT_CHUNK
        inflater = zlib.decompressobj()
        try:
            unpacked = inflater.decompress(data, limit)
        except zlib.error:
            return None  # Pillow skips metadata that does not inflate
        if inflater.unconsumed_tail:
            return PngFault("metadata_bomb", f"{what} unpacks to more than {_megabytes(limit)}")
        if text:
            self.text += len(unpacked)
        return None


def _megabytes(count: int) -> str:
    return f"{count / (1 << 20):.0f} MB"


def _chunk_data_fault(
    file: IO[bytes], kind: bytes, length: int, metadata: _MetadataCheck
) -> PngFault | None:
    """Check the data and checksum of the chunk the file is at; metadata chunks are read whole."""
    checksum = zlib.crc32(kind)
    whole = kind not in _PIXEL_CHUNKS
    pieces = []
    left = length
    while left:
        data = file.read(min(left, _READ_PIECE))
        left -= len(data)
        checksum = zlib.crc32(data, checksum)
        if whole:
            pieces.append(data)
    if file.read(4) != struct.pack(">I", checksum):
        return PngFault("damaged", "a checksum does not match")
    return metadata.fault(kind, b"".join(pieces)) if whole else None


def find_fault(file: IO[bytes]) -> PngFault | None:
    """Say what is wrong with a PNG file (one that starts with the PNG signature), or None.

    The chunks are walked in file order and the first fault found is told: the file ending
    early or holding something else than chunks, no valid header before the pixel data, a
    checksum, metadata that unpacks past Pillow's limits, no pixel data before the end, pixel
    data that does not inflate. Like Pillow, it accepts a header that is not the first chunk.
    """
    end = file.seek(0, os.SEEK_END)  # a file, or a job's input in memory: no fstat
    position = len(PNG_SIGNATURE)
    metadata = _MetadataCheck()
    layout: PixelLayout | None = None
    frame_size: tuple[int, int] | None = None
    pixels_at: int | None = None
    while True:
        file.seek(position)
        head = file.read(8)
        if len(head) < 8:
            return _TRUNCATED
        length, kind = struct.unpack(">I4s", head)
        if not _is_chunk_type(kind):
            if position == len(PNG_SIGNATURE):
                return PngFault("unidentified", "what follows is not PNG data")
            return PngFault("damaged", "its chunks are garbled")
        if position + 12 + length > end:
            return _TRUNCATED
        if kind == b"IHDR" and pixels_at is None:
            header = file.read(length)
            file.seek(position + 8)
            layout = PixelLayout.from_header(header)
            if layout is None or header[11] != 0:
                return PngFault("damaged", "its header is not a valid PNG header")
        fault = _chunk_data_fault(file, kind, length, metadata)
        if fault is not None:
            return fault
        if kind in (b"IDAT", b"IEND") and layout is None:
            return PngFault("unidentified", "has no PNG header")
        if kind == b"fcTL" and pixels_at is None and length >= 26:
            file.seek(position + 12)
            frame_size = struct.unpack(">II", file.read(8))
        elif kind == b"IDAT" and pixels_at is None:
            pixels_at = position
        elif kind == b"IEND":
            break
        position += 12 + length
    if pixels_at is None or layout is None:
        return PngFault("damaged", "it holds no pixel data")
    if frame_size is not None:
        layout = PixelLayout(*frame_size, layout.bits_per_pixel, layout.interlaced)
    return pixel_data_fault(file, pixels_at, layout)


def read_layout(file: IO[bytes], size: tuple[int, int]) -> PixelLayout | None:
    """Find the header of a PNG that Pillow has opened and return the layout of `size` pixels."""
    position = len(PNG_SIGNATURE)
    while True:
        file.seek(position)
        head = file.read(8)
        if len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IHDR":
            return PixelLayout.from_header(file.read(length), size)
        if kind in (b"IDAT", b"IEND"):
            return None
        position += 12 + length
