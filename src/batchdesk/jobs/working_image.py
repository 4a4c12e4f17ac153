"""The image a pipeline works on, what each step is handed with it, and writing it to a file.

Pixels are processed in five modes only: L, LA, RGB, RGBA and 16-bit greyscale I;16. Palette,
1-bit and colour-keyed images become one of those the first time a step touches their pixels
(`pixel_ready`), so a pipeline that only strips metadata keeps a palette PNG a palette PNG.
`save_image` turns whatever mode the image holds into one the output's format can store.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from batchdesk.jobs.step_specs import Colour, Encoding

WORKING_MODES = ("L", "LA", "RGB", "RGBA", "I;16")
"""The modes pixel operations work in; see `pixel_ready`."""

STORED_MODES = ("1", "P", *WORKING_MODES)
"""The modes a decoded image may have between steps (plus a colour key in `info`)."""

GREY_MODES = ("1", "L", "LA", "I;16")
"""The greyscale modes among STORED_MODES."""

_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class UnusableImage(Exception):
    """A file a tool wrote cannot be used; the message says what it is: 'a truncated PNG file'."""


class StepError(Exception):
    """A step cannot do its work on this image: what went wrong and what to do, no full stop."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class WorkingImage:
    """The image a pipeline is working on, with the metadata that travels with it.

    The metadata lives here rather than in `image.info`, because Pillow writes some keys of
    `info` (the ICC profile among them) into whatever file the image is saved as: stripping it
    would otherwise depend on which Pillow call made the current image.
    """

    image: Image.Image
    icc_profile: bytes | None = None
    exif: bytes | None = None
    text: tuple[tuple[str, str], ...] = ()
    dpi: tuple[float, float] | None = None

    @classmethod
    def from_decoded(cls, image: Image.Image) -> "WorkingImage":
        """Take the metadata out of a freshly decoded image's `info` (only a colour key stays)."""
        info = image.info
        text: dict[str, str] = {}
        if isinstance(image, PngImagePlugin.PngImageFile):
            text = {k: v for k, v in image.text.items() if isinstance(v, str)}
        icc = info.get("icc_profile")
        exif = info.get("exif")
        dpi = info.get("dpi")
        image.info = {k: v for k, v in info.items() if k == "transparency"}
        return cls(
            image=image,
            icc_profile=icc if isinstance(icc, bytes) and icc else None,
            exif=exif if isinstance(exif, bytes) and exif else None,
            text=tuple(text.items()),
            dpi=(float(dpi[0]), float(dpi[1]))
            if isinstance(dpi, tuple) and len(dpi) == 2
            else None,
        )


@dataclass(frozen=True)
class StepContext:
    """What a step may use besides its image: set up by the pipeline for each step."""

    pipeline: str
    work_dir: Path
    deliver: Callable[[WorkingImage, Encoding], None]
    """Write one output (the pipeline names it, writes it atomically and reports disk full)."""
    read_back: Callable[[Path, str], Image.Image]
    """Open and decode a tool's output (path, format) with the job's limits, or raise
    UnusableImage."""
    stop_if_requested: Callable[[], None]


# -- pixel helpers ----------------------------------------------------------------------------


def pixel_ready(image: Image.Image) -> Image.Image:
    """Return the image in one of WORKING_MODES, turning palettes and colour keys into alpha."""
    mode = image.mode
    if mode in ("P", "PA"):
        target = "RGBA" if image.has_transparency_data else "RGB"
    elif mode == "1":
        target = "L"
    elif mode in ("L", "RGB") and "transparency" in image.info:
        target = mode + "A"
    else:
        return image
    converted = image.convert(target)
    converted.info.pop("transparency", None)
    return converted


def _scale_to_8_bits(value: Image.ImagePointTransform) -> Image.ImagePointTransform:
    return value * (1 / 257)


def _scale_to_16_bits(value: Image.ImagePointTransform) -> Image.ImagePointTransform:
    return value * 257


def eight_bit_grey(image: Image.Image) -> Image.Image:
    """Scale a 16-bit greyscale image to 8 bits (`convert("L")` would clip above 255 instead)."""
    return image.convert("I").point(_scale_to_8_bits).convert("L")


def sixteen_bit_grey(image: Image.Image) -> Image.Image:
    """Scale an 8-bit greyscale image to the 16-bit range."""
    return image.convert("I").point(_scale_to_16_bits).convert("I;16")


def is_grey(colour: Colour) -> bool:
    """Tell whether a colour is a shade of grey (its red, green and blue are equal)."""
    return colour[0] == colour[1] == colour[2]


# -- writing an image to a file ---------------------------------------------------------------


def _icc_fits(icc: bytes | None, mode: str) -> bool:
    """Tell whether a profile's colour space matches the mode (a grey profile on RGB is invalid)."""
    if not icc or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if mode in GREY_MODES else b"RGB ")


def _flattened(image: Image.Image, background: Colour) -> Image.Image:
    """Return an L or RGB image: transparent pixels composited over the background colour."""
    if image.mode in ("L", "RGB"):
        return image
    grey = image.mode == "LA" and is_grey(background)
    canvas = Image.new("L" if grey else "RGB", image.size, background[0] if grey else background)
    canvas.paste(image.convert(canvas.mode), (0, 0), image.getchannel("A"))
    return canvas


def _for_format(image: Image.Image, encoding: Encoding) -> Image.Image:
    if encoding.format == "png":
        return image  # PNG stores every mode we hold, palettes and colour keys included
    image = pixel_ready(image)
    if image.mode == "I;16":
        image = eight_bit_grey(image)
    if encoding.format == "jpeg":
        return _flattened(image, encoding.background)
    return image.convert({"L": "RGB", "LA": "RGBA"}.get(image.mode, image.mode))


def save_image(working: WorkingImage, encoding: Encoding, path: Path) -> tuple[int, int]:
    """Write the image to a file in the encoding's format; return the size in pixels written.

    Always to a file, never a BytesIO: Pillow releases the GIL while it encodes to a file and
    holds it while it encodes into memory.
    """
    image = _for_format(working.image, encoding)
    options: dict[str, Any] = {}
    if encoding.keep_icc and _icc_fits(working.icc_profile, image.mode):
        options["icc_profile"] = working.icc_profile
    if working.exif:
        options["exif"] = working.exif
    if working.dpi and encoding.format != "webp":
        options["dpi"] = working.dpi
    if encoding.format == "png":
        options["compress_level"] = encoding.compress_level
        if working.text:
            chunks = PngImagePlugin.PngInfo()
            for key, value in working.text:
                chunks.add_text(key, value)
            options["pnginfo"] = chunks
    elif encoding.format == "jpeg":
        options.update(quality=encoding.quality, progressive=encoding.progressive)
    else:
        options.update(quality=encoding.quality, lossless=encoding.lossless)
    image.save(path, format=_PILLOW_FORMATS[encoding.format], **options)
    return image.size
