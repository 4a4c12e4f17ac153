"""Reading an input file, or a tool's output, with the job's limits: check it, then decode it once.

The input is checked from the cheapest test to the dearest, so a bad file costs little: its first
bytes (empty? a PNG at all?), its header (how many pixels, which mode), `verify()` on a separate
open (every chunk's checksum; it catches a truncated file in ~30 ms on 11 MB without decoding),
and only then the one full decode. A pipeline that never decodes (`original`) inflates the pixel
data instead (`png_structure`): it refuses every file a decode would refuse, and also pixel data
whose own zlib checksum is wrong or that stops whole rows short, which Pillow does not always
notice.

The pixel limit is applied per call: the PNG is opened through Pillow's PNG class directly
rather than `Image.open`, whose process-wide `Image.MAX_IMAGE_PIXELS` check would warn above 89
megapixels and refuse above 179 whatever limit the studio has set.

A job's input may also be bytes the runner holds in memory (`InputBuffer`): it is checked and
decoded exactly as a file is.

An animated PNG is processed as its first frame (the default image that viewers without APNG
support show); the other frames are ignored.

Whatever is wrong with a file is told in one sentence: for an input, naming the file and what to
do (`JobFailed`); for a tool's output, as a phrase the external step puts in its own sentence
(`UnusableImage`). When Pillow refuses a PNG, what is wrong is read from the file's own chunks
(`png_structure.find_fault`), not from Pillow's message, so every pipeline says the same thing.
"""

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO

from PIL import Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

from batchdesk.domain.file_selection import PNG_SIGNATURE
from batchdesk.jobs import png_structure
from batchdesk.jobs.input_buffer import InputBuffer
from batchdesk.jobs.job_failures import JobFailed
from batchdesk.jobs.working_image import STORED_MODES, UnusableImage

DEFAULT_MAX_PIXELS = 200_000_000

# Where an image's bytes are: a file, or (a job's input) the runner's memory.
Source = Path | InputBuffer

_FACTORIES: dict[str, Callable[[IO[bytes]], Image.Image]] = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
}
_FORMAT_NAMES = {
    "png": "PNG",
    "jpeg": "JPEG",
    "webp": "WebP",
    "tiff": "TIFF",
    "gif": "GIF",
    "bmp": "BMP",
    "pdf": "PDF",
    "psd": "Photoshop",
    "zip": "ZIP",
    "heif": "HEIF or AVIF",
    "jpeg2000": "JPEG 2000",
}
_SIGNATURES = (
    (PNG_SIGNATURE, "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    (b"%PDF", "pdf"),
    (b"8BPS", "psd"),
    (b"PK\x03\x04", "zip"),
    (b"\x00\x00\x00\x0cjP  ", "jpeg2000"),
)
# Modes some formats decode to that we turn into one of STORED_MODES right after decoding.
_CONVERTIBLE_MODES = {
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "RGBX": "RGB",
    "RGBa": "RGBA",
    "La": "LA",
    "PA": "RGBA",
    "I;16B": "I;16",
    "I;16L": "I;16",
    "I;16N": "I;16",
    "I": "I;16",
}
# (bit depth, colour type) in a PNG header -> the mode Pillow decodes it to.
_PNG_MODES = {
    (1, 0): "1",
    (2, 0): "L",
    (4, 0): "L",
    (8, 0): "L",
    (16, 0): "I;16",
    (8, 2): "RGB",
    (16, 2): "RGB",
    (1, 3): "P",
    (2, 3): "P",
    (4, 3): "P",
    (8, 3): "P",
    (8, 4): "LA",
    (16, 4): "RGBA",
    (8, 6): "RGBA",
    (16, 6): "RGBA",
}


# -- what is wrong with a file ----------------------------------------------------------------


class _Unusable(Exception):
    """Why an image file cannot be used, told for an input and for a tool's output."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        *,
        size: tuple[int, int] = (0, 0),
        mode: str = "",
        retryable: bool = False,
    ) -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail
        self.size = size
        self.mode = mode
        self.retryable = retryable


def _megapixels(pixels: int) -> str:
    value = pixels / 1_000_000
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _too_big(size: tuple[int, int], max_pixels: int) -> str:
    width, height = size
    return (
        f"{width} × {height} pixels ({_megapixels(width * height)} megapixels), more than the "
        f"{_megapixels(max_pixels)}-megapixel limit"
    )


def _input_message(file_name: str, problem: _Unusable, max_pixels: int) -> str:
    """Say what is wrong with an input file and what to do, in one sentence."""
    kind, detail = problem.kind, problem.detail
    if kind == "empty":
        return f"{file_name} is empty (0 bytes): export it again and submit the new file."
    if kind == "format":
        return f"{file_name} is not a PNG image ({detail}): export it as PNG and submit it again."
    if kind == "unidentified":
        return (
            f"{file_name} is not a PNG image (it starts with a PNG signature, but {detail}): "
            "export it as PNG and submit it again."
        )
    if kind == "metadata_bomb":
        return (
            f"{file_name} holds metadata that unpacks like a decompression bomb ({detail}): "
            "export it again without that metadata and submit the new file."
        )
    if kind == "truncated":
        return (
            f"{file_name} is truncated (the file ends early): submit it again from the original "
            "render."
        )
    if kind == "damaged":
        return (
            f"{file_name} is damaged ({detail}): export it again from the original render and "
            "submit the new file."
        )
    if kind == "too_big":
        return (
            f"{file_name} is {_too_big(problem.size, max_pixels)}: scale it down, or raise the "
            "limit in the settings."
        )
    if kind == "mode":
        return (
            f"{file_name} uses the colour mode {problem.mode}, which batchdesk cannot process: "
            "save it as an RGB, RGBA or greyscale PNG and submit it again."
        )
    if kind == "memory":
        width, height = problem.size
        return (
            f"{file_name} ({width} × {height} pixels) does not fit in this workstation's memory: "
            "run fewer jobs at once, or scale it down."
        )
    return f"{file_name} cannot be read ({detail}): check the file and submit it again."


def _output_phrase(fmt: str, problem: _Unusable, max_pixels: int) -> str:
    """Say what a tool wrote instead of a usable image: 'a truncated PNG file'."""
    name = _FORMAT_NAMES[fmt]
    phrases = {
        "empty": "an empty file",
        "format": f"a file that is not a {name} image ({problem.detail})",
        "unidentified": f"a file that is not a {name} image (it starts like one, but "
        f"{problem.detail})",
        "metadata_bomb": f"a {name} file whose metadata unpacks like a decompression bomb "
        f"({problem.detail})",
        "truncated": f"a truncated {name} file",
        "damaged": f"a damaged {name} file ({problem.detail})",
        "too_big": f"an image of {_too_big(problem.size, max_pixels)}",
        "mode": f"an image in the colour mode {problem.mode}, which batchdesk cannot process",
        "memory": "an image too big for this workstation's memory",
    }
    return phrases.get(problem.kind, f"a file that cannot be read ({problem.detail})")


# -- reading and checking an image file -------------------------------------------------------


def _sniff(head: bytes) -> str | None:
    """Return the format a file's first bytes announce, or None."""
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"msf1"):
        return "heif"
    return None


def _looks_like(head: bytes) -> str:
    found = _sniff(head)
    if found is not None:
        return f"it looks like {_FORMAT_NAMES[found]} data"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text.strip() and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "it looks like text"
    return "its first bytes are not an image signature batchdesk knows"


def _open(source: Source) -> IO[bytes]:
    """Open an image's bytes for reading, wherever they are.

    Raises:
        _Unusable: the file cannot be opened (worth retrying: a share may come back).
    """
    if isinstance(source, InputBuffer):
        return source.open()
    try:
        return source.open("rb")
    except OSError as exc:
        raise _Unusable("unreadable", exc.strerror or str(exc), retryable=True) from exc


def _broken(source: Source, fmt: str, exc: BaseException) -> _Unusable:
    """Say what is wrong with a file a decoder refused: for a PNG, from its own chunks."""
    if fmt == "png":
        try:
            with _open(source) as file:
                fault = png_structure.find_fault(file)
        except OSError as error:
            raise _Unusable("unreadable", error.strerror or str(error), retryable=True) from error
        if fault is not None:
            return _Unusable(fault.kind, fault.detail)
    elif "truncated" in str(exc).lower():
        return _Unusable("truncated")
    return _Unusable("damaged", f"Pillow cannot decode it: {exc or type(exc).__name__}")


_DECODER_ERRORS = (SyntaxError, OSError, ValueError, EOFError, IndexError, struct.error)


def _read_image(source: Source, fmt: str, max_pixels: int, *, decode: bool) -> Image.Image | None:
    """Check an image file and decode it once; None when only checking (`decode` false).

    Raises:
        _Unusable: what is wrong with the file.
    """
    with _open(source) as file:
        try:
            head = file.read(64)
        except OSError as exc:
            raise _Unusable("unreadable", exc.strerror or str(exc), retryable=True) from exc
        if not head:
            raise _Unusable("empty")
        if _sniff(head) != fmt:
            raise _Unusable("format", _looks_like(head))
        file.seek(0)
        try:
            image = _FACTORIES[fmt](file)
        except _DECODER_ERRORS as exc:
            raise _broken(source, fmt, exc) from exc
        width, height = image.size
        # Our own limit, before a single pixel is decoded.
        if width * height > max_pixels:
            raise _Unusable("too_big", size=image.size)
        if image.mode not in STORED_MODES and image.mode not in _CONVERTIBLE_MODES:
            raise _Unusable("mode", mode=image.mode)
        if fmt == "png":
            _verify_png(source)
        if not decode:
            if isinstance(image, PngImagePlugin.PngImageFile):
                _check_png_without_decoding(source, file, image)
            return None
        try:
            image.load()
        except MemoryError as exc:
            raise _Unusable("memory", size=image.size, retryable=True) from exc
        except Image.DecompressionBombError as exc:  # only from a plugin's own internal check
            raise _Unusable("too_big", size=image.size) from exc
        except _DECODER_ERRORS as exc:
            raise _broken(source, fmt, exc) from exc
    if image.mode in _CONVERTIBLE_MODES:
        image = image.convert(_CONVERTIBLE_MODES[image.mode])
    return image


def _verify_png(source: Source) -> None:
    with _open(source) as file:
        try:
            PngImagePlugin.PngImageFile(file).verify()
        except _DECODER_ERRORS as exc:
            raise _broken(source, "png", exc) from exc


def _check_png_without_decoding(
    source: Source, file: IO[bytes], image: PngImagePlugin.PngImageFile
) -> None:
    """Refuse what decoding this verified PNG would refuse, without holding its pixels.

    The pixel data is inflated as a stream (`png_structure.pixel_data_fault`); the chunks after
    it go through Pillow's own chunk readers, as a decode reads them, so metadata Pillow refuses
    there (a text chunk that unpacks like a bomb) is refused here too.
    """
    first = image.tile[0]
    x0, y0, x1, y1 = first.extents or (0, 0, *image.size)
    layout = png_structure.read_layout(file, (x1 - x0, y1 - y0))
    assert layout is not None  # Pillow has read the same header
    fault = png_structure.pixel_data_fault(file, first.offset - 8, layout)
    if fault is not None:
        # Told as a decoding pipeline tells it: an earlier fault in the file comes first.
        fault = png_structure.find_fault(file) or fault
        raise _Unusable(fault.kind, fault.detail)
    try:
        _read_chunks_after_pixels(file, image, first.offset)
    except _DECODER_ERRORS as exc:
        raise _broken(source, "png", exc) from exc


def _read_chunks_after_pixels(
    file: IO[bytes], image: PngImagePlugin.PngImageFile, pixels_at: int
) -> None:
    """Read the chunks after the first IDAT chunk as Pillow's `load_end` does after a decode."""
    stream = image.png
    assert stream is not None
    file.seek(pixels_at - 8)
    file.seek(pixels_at + struct.unpack(">I", file.read(4))[0])
    while True:
        file.read(4)  # the previous chunk's checksum, already verified
        try:
            kind, position, length = stream.read()
        except (struct.error, SyntaxError):
            return
        if kind == b"IEND" or (kind == b"fcTL" and image.is_animated):
            return  # the end, or the next frame's start
        try:
            stream.call(kind, position, length)
        except UnicodeDecodeError:
            return
        except EOFError:  # pixel data: IDAT, or fdAT whose sequence number has been read
            file.seek(length - 4 if kind == b"fdAT" else length, os.SEEK_CUR)
        except AttributeError:  # a chunk Pillow has no reader for
            file.seek(length, os.SEEK_CUR)


def _header_size(head: bytes) -> tuple[int, int, str]:
    if not head:
        raise _Unusable("empty")
    if not head.startswith(PNG_SIGNATURE):
        raise _Unusable("format", _looks_like(head))
    if len(head) < 33:
        raise _Unusable("truncated")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    mode = _PNG_MODES.get((depth, colour))
    if head[12:16] != b"IHDR" or mode is None or width == 0 or height == 0:
        raise _Unusable("damaged", "its header is not a valid PNG header")
    return width, height, mode


def read_png_size(path: Path | str) -> tuple[int, int, str]:
    """Return a PNG's width, height and decoded Pillow mode from its header, decoding nothing.

    Raises:
        JobFailed: the file is empty, not a PNG, or its header is cut short or damaged.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            head = file.read(33)
    except OSError as exc:
        problem = _Unusable("unreadable", exc.strerror or str(exc), retryable=True)
        raise JobFailed(_input_message(path.name, problem, 0), retryable=True) from exc
    try:
        return _header_size(head)
    except _Unusable as problem:
        raise JobFailed(_input_message(path.name, problem, 0)) from None


def png_header_size(head: bytes) -> tuple[int, int, str] | None:
    """Return width, height and decoded Pillow mode from a PNG's first 33 bytes, or None."""
    try:
        return _header_size(head)
    except _Unusable:
        return None


# -- what the pipeline reads ------------------------------------------------------------------


def read_input(
    source: Source, file_name: str, max_pixels: int, *, decode: bool
) -> Image.Image | None:
    """Check an input PNG (a file, or bytes in memory) and decode it once; None when only checking.

    Raises:
        JobFailed: one sentence naming the file, what is wrong with it and what to do.
    """
    try:
        return _read_image(source, "png", max_pixels, decode=decode)
    except _Unusable as problem:
        message = _input_message(file_name, problem, max_pixels)
        raise JobFailed(message, retryable=problem.retryable) from None


def read_back(path: Path, fmt: str, *, max_pixels: int) -> Image.Image:
    """Check and decode a file a tool wrote (in format `fmt`), or raise UnusableImage."""
    try:
        image = _read_image(path, fmt, max_pixels, decode=True)
    except _Unusable as problem:
        raise UnusableImage(_output_phrase(fmt, problem, max_pixels)) from None
    assert image is not None
    return image
