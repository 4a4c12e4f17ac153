"""The checked steps of a pipeline: one frozen dataclass per operation, and how outputs are encoded.

`parse_pipeline` builds these from a pipeline's JSON; the step functions read them. Each class
holds only settings that have already been checked, so nothing downstream validates again.
`Encoding` says how one output file is written: its format, name suffix and format settings.
"""

from dataclasses import dataclass
from typing import ClassVar

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tiff"}
"""The file extension each format is written with."""

_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class StepSpec:
    """One checked step of a pipeline; each operation is a subclass holding its settings."""

    op: ClassVar[str] = ""


@dataclass(frozen=True)
class Encoding:
    """How one output is written: file format, name suffix and the format's settings."""

    format: str
    suffix: str
    compress_level: int = 6
    quality: int = 85
    progressive: bool = False
    lossless: bool = False
    keep_icc: bool = True
    background: Colour = (255, 255, 255)

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self.format]

    def file_name(self, stem: str) -> str:
        """Return the output's file name for an input whose name without extension is `stem`."""
        return f"{stem}{self.suffix}{self.extension}"


@dataclass(frozen=True)
class FitStep(StepSpec):
    """Scale (Lanczos) to fit a box, or to a long-edge length; never up unless `upscale`."""

    op: ClassVar[str] = "fit"
    mode: str  # "box" (width x height) or "long_edge" (size)
    width: int | None
    height: int | None
    size: int | None
    upscale: bool


@dataclass(frozen=True)
class PadStep(StepSpec):
    """Place the image on a canvas of a fixed size; `background` None means transparent."""

    op: ClassVar[str] = "pad"
    width: int
    height: int
    background: Colour | None
    position: str


@dataclass(frozen=True)
class TrimStep(StepSpec):
    """Cut away a uniform border: the top-left pixel's colour, or transparency."""

    op: ClassVar[str] = "trim"
    tolerance: int


@dataclass(frozen=True)
class WatermarkStep(StepSpec):
    """Draw a text or an image (exactly one of them) over a corner or the centre."""

    op: ClassVar[str] = "watermark"
    text: str | None
    image_path: str | None
    position: str
    opacity: float
    margin: int
    font_size: float  # fraction of the image width
    font_path: str | None
    colour: Colour
    image_scale: float  # the watermark image's width as a fraction of the image width


@dataclass(frozen=True)
class SharpenStep(StepSpec):
    """Sharpen with an unsharp mask."""

    op: ClassVar[str] = "sharpen"
    radius: float
    percent: int
    threshold: int


@dataclass(frozen=True)
class StripMetadataStep(StepSpec):
    """Drop text chunks and EXIF, and the ICC profile unless `keep_icc`."""

    op: ClassVar[str] = "strip_metadata"
    keep_icc: bool


@dataclass(frozen=True)
class OutputStep(StepSpec):
    """Write the current image as one output; the pipeline carries on with the same image."""

    op: ClassVar[str] = "output"
    encoding: Encoding


@dataclass(frozen=True)
class ThumbnailStep(StepSpec):
    """Write a copy scaled to a long edge of `size` pixels; the current image is unchanged."""

    op: ClassVar[str] = "thumbnail"
    size: int
    encoding: Encoding


@dataclass(frozen=True)
class ExternalStep(StepSpec):
    """Run a studio tool on the current image and carry on with the image it writes."""

    op: ClassVar[str] = "external"
    args: tuple[str, ...]
    output_format: str
    timeout: float
