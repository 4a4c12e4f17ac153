"""Pipelines as data: the checked form of a pipeline's JSON steps, and the pipelines we ship.

A pipeline is stored as JSON (name, description, version, steps) and shared by every workstation.
`parse_pipeline` turns that JSON into frozen step objects or raises `InvalidRequest` with one
sentence naming the pipeline, the step (1-based number and op) and the field, so a bad pipeline
is refused when it is saved and again, cheaply, before a job uses it.
"""

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from batchdesk.errors import InvalidRequest

MAX_DIMENSION = 30_000
"""The largest width, height or edge a step accepts, in pixels."""

MAX_STEPS = 100
NAME_MAX_LENGTH = 100
SUFFIX_MAX_LENGTH = 64
WATERMARK_TEXT_MAX_LENGTH = 200
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
PAD_POSITIONS = (
    "center",
    "top-left",
    "top",
    "top-right",
    "left",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
)
OUTPUT_FORMATS = ("png", "jpeg", "webp")
EXTERNAL_FORMATS = ("png", "jpeg", "webp", "tiff")
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tiff"}
"""The file extension each format is written with."""

_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# Suffixes become part of file names on every OS and inside zips: keep them boring.
_SUFFIX_PATTERN = re.compile(r"[A-Za-z0-9_.@+-]*")
_COLOUR_PATTERN = re.compile(r"#([0-9a-fA-F]{6})")

Colour = tuple[int, int, int]


# -- the checked steps ------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PipelineSpec:
    """A checked pipeline: what the runner applies to every file of a batch."""

    name: str
    description: str
    version: int
    steps: tuple[StepSpec, ...]

    @property
    def output_steps(self) -> tuple[OutputStep | ThumbnailStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, OutputStep | ThumbnailStep))


# -- reading one step's fields ----------------------------------------------------------------


def _show(value: object) -> str:
    """Return a value as a person wrote it in JSON, shortened: 'big', 12, true, a list."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _number_text(value: float) -> str:
    return f"{value:g}"


def _words(names: Iterable[str]) -> str:
    return ", ".join(names)


class _StepFields:
    """Read one step's fields, each checked, failing with a sentence that names the field."""

    def __init__(self, where: str, op: str, raw: Mapping[str, Any], allowed: Sequence[str]):
        self.where = where
        self.raw = raw
        for name in raw:
            if name == "op" or name in allowed:
                continue
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.fail(
                f"{_show(name)} is not a field of {op}{hint}; its fields are {_words(allowed)}"
            )

    def fail(self, message: str) -> NoReturn:
        raise InvalidRequest(f"{self.where}: {message}.")

    def has(self, name: str) -> bool:
        return name in self.raw

    def _wrong(self, name: str, expected: str, value: object) -> NoReturn:
        self.fail(f"{name} must be {expected}, not {_show(value)}")

    def _missing(self, name: str, expected: str) -> NoReturn:
        self.fail(f"{name} is missing; it must be {expected}")

    def whole(self, name: str, low: int, high: int, default: int | None = None) -> int:
        """Read a whole number in [low, high]; required when there is no default."""
        expected = f"a whole number from {low} to {high}"
        if name not in self.raw:
            if default is None:
                self._missing(name, expected)
            return default
        value = self.raw[name]
        # JSON has one number type: 2000.0 is a whole number, true is not a number at all.
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong(name, expected, value)
        if isinstance(value, float) and not value.is_integer():
            self._wrong(name, expected, value)
        if not low <= value <= high:
            self._wrong(name, expected, value)
        return int(value)

    def number(self, name: str, low: float, high: float, default: float) -> float:
        """Read a number in [low, high], or the default when the field is absent."""
        expected = f"a number from {_number_text(low)} to {_number_text(high)}"
        if name not in self.raw:
            return default
        value = self.raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong(name, expected, value)
        if not math.isfinite(value) or not low <= value <= high:
            self._wrong(name, expected, value)
        return float(value)

    def flag(self, name: str, default: bool) -> bool:
        if name not in self.raw:
            return default
        value = self.raw[name]
        if not isinstance(value, bool):
            self._wrong(name, "true or false", value)
        return value

    def choice(self, name: str, choices: Sequence[str], default: str | None = None) -> str:
        expected = "one of " + _words(repr(c) for c in choices)
        if name not in self.raw:
            if default is None:
                self._missing(name, expected)
            return default
        value = self.raw[name]
        if not isinstance(value, str) or value not in choices:
            self._wrong(name, expected, value)
        return value

    def colour(self, name: str, default: str) -> Colour:
        """Read a colour written '#rrggbb'."""
        return self._colour(name, self.raw.get(name, default), "a colour like '#ffffff'")

    def colour_or_transparent(self, name: str, default: str) -> Colour | None:
        """Read '#rrggbb' or 'transparent' (returned as None)."""
        value = self.raw.get(name, default)
        if value == "transparent":
            return None
        return self._colour(name, value, "'transparent' or a colour like '#ffffff'")

    def _colour(self, name: str, value: object, expected: str) -> Colour:
        match = _COLOUR_PATTERN.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            self._wrong(name, expected, value)
        rgb = int(match.group(1), 16)
        return (rgb >> 16, (rgb >> 8) & 0xFF, rgb & 0xFF)

    def suffix(self, name: str, default: str) -> str:
        expected = (
            f"text of at most {SUFFIX_MAX_LENGTH} letters, digits and the characters _ - . @ +"
        )
        value = self.raw.get(name, default)
        if (
            not isinstance(value, str)
            or len(value) > SUFFIX_MAX_LENGTH
            or not _SUFFIX_PATTERN.fullmatch(value)
        ):
            self._wrong(name, expected, value)
        return value

    def text(self, name: str, max_length: int) -> str | None:
        """Read optional text of 1 to `max_length` characters, without control characters."""
        if name not in self.raw:
            return None
        value = self.raw[name]
        expected = f"text of 1 to {max_length} characters"
        if (
            not isinstance(value, str)
            or not 1 <= len(value) <= max_length
            or any(ord(c) < 32 for c in value)
        ):
            self._wrong(name, expected, value)
        return value

    def strings(self, name: str, max_items: int, max_length: int) -> tuple[str, ...]:
        expected = f"a list of 1 to {max_items} strings"
        if name not in self.raw:
            self._missing(name, expected)
        value = self.raw[name]
        if not isinstance(value, list) or not 1 <= len(value) <= max_items:
            self._wrong(name, expected, value)
        for item in value:
            if not isinstance(item, str) or len(item) > max_length or "\0" in item:
                self._wrong(
                    name, f"{expected}, each at most {max_length} characters without NUL", item
                )
        return tuple(value)

    def forbid(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            if name in self.raw:
                self.fail(f"{name} {reason}")


# -- one parser per operation -----------------------------------------------------------------

_FORMAT_FIELDS = {
    "png": ("compress_level", "keep_icc"),
    "jpeg": ("quality", "progressive", "keep_icc", "background"),
    "webp": ("quality", "lossless", "keep_icc"),
}
_ENCODING_FIELDS = (
    "format",
    "suffix",
    "compress_level",
    "quality",
    "progressive",
    "lossless",
    "keep_icc",
    "background",
)


def _encoding(fields: _StepFields, *, default_format: str, default_suffix: str) -> Encoding:
    fmt = fields.choice("format", OUTPUT_FORMATS, default_format)
    others = [name for name in _ENCODING_FIELDS[2:] if name not in _FORMAT_FIELDS[fmt]]
    for name in others:
        if fields.has(name):
            users = [f for f, names in _FORMAT_FIELDS.items() if name in names]
            fields.fail(f"{name} applies only to {' and '.join(users)} output, not {fmt}")
    return Encoding(
        format=fmt,
        suffix=fields.suffix("suffix", default_suffix),
        compress_level=fields.whole("compress_level", 0, 9, 6),
        quality=fields.whole("quality", 1, 95 if fmt == "jpeg" else 100, 85),
        progressive=fields.flag("progressive", False),
        lossless=fields.flag("lossless", False),
        keep_icc=fields.flag("keep_icc", True),
        background=fields.colour("background", "#ffffff"),
    )


def _fit(fields: _StepFields) -> FitStep:
    mode = fields.choice("mode", ("box", "long_edge"), "box")
    width = height = size = None
    if mode == "box":
        fields.forbid(["size"], "applies only with mode 'long_edge'; use width and height")
        width = fields.whole("width", 1, MAX_DIMENSION)
        height = fields.whole("height", 1, MAX_DIMENSION)
    else:
        fields.forbid(["width", "height"], "applies only with mode 'box'; use size (the long edge)")
        size = fields.whole("size", 1, MAX_DIMENSION)
    return FitStep(mode, width, height, size, fields.flag("upscale", False))


def _pad(fields: _StepFields) -> PadStep:
    return PadStep(
        width=fields.whole("width", 1, MAX_DIMENSION),
        height=fields.whole("height", 1, MAX_DIMENSION),
        background=fields.colour_or_transparent("background", "#ffffff"),
        position=fields.choice("position", PAD_POSITIONS, "center"),
    )


def _trim(fields: _StepFields) -> TrimStep:
    return TrimStep(tolerance=fields.whole("tolerance", 0, 255, 0))


def _watermark(fields: _StepFields) -> WatermarkStep:
    text = fields.text("text", WATERMARK_TEXT_MAX_LENGTH)
    image_path = fields.text("image_path", 4096)
    if (text is None) == (image_path is None):
        fields.fail("give either text or image_path (exactly one of them)")
    if text is None:
        fields.forbid(["font_size", "font_path", "colour"], "applies only to a text watermark")
    else:
        fields.forbid(["image_scale"], "applies only to an image watermark")
    return WatermarkStep(
        text=text,
        image_path=image_path,
        position=fields.choice("position", POSITIONS, "bottom-right"),
        opacity=fields.number("opacity", 0.0, 1.0, 0.5),
        margin=fields.whole("margin", 0, MAX_DIMENSION, 24),
        font_size=fields.number("font_size", 0.005, 0.5, 0.04),
        font_path=fields.text("font_path", 4096),
        colour=fields.colour("colour", "#ffffff"),
        image_scale=fields.number("image_scale", 0.01, 1.0, 0.2),
    )


def _sharpen(fields: _StepFields) -> SharpenStep:
    return SharpenStep(
        radius=fields.number("radius", 0.1, 100.0, 2.0),
        percent=fields.whole("percent", 1, 500, 150),
        threshold=fields.whole("threshold", 0, 255, 3),
    )


def _strip_metadata(fields: _StepFields) -> StripMetadataStep:
    return StripMetadataStep(keep_icc=fields.flag("keep_icc", False))


def _output(fields: _StepFields) -> OutputStep:
    return OutputStep(_encoding(fields, default_format="png", default_suffix=""))


def _thumbnail(fields: _StepFields) -> ThumbnailStep:
    size = fields.whole("size", 1, MAX_DIMENSION)
    return ThumbnailStep(size, _encoding(fields, default_format="jpeg", default_suffix="_thumb"))


def _external(fields: _StepFields) -> ExternalStep:
    args = fields.strings("args", 100, 4096)
    if not args[0]:
        fields.fail("args must start with the tool to run, not an empty string")
    for placeholder in ("{input}", "{output}"):
        if not any(placeholder in arg for arg in args):
            fields.fail(f"args must contain {placeholder} where the tool takes that file's path")
    return ExternalStep(
        args=args,
        output_format=fields.choice("output_format", EXTERNAL_FORMATS, "png"),
        timeout=fields.number("timeout", 1.0, 3600.0, 60.0),
    )


_PARSERS = {
    "fit": (_fit, ("mode", "width", "height", "size", "upscale")),
    "pad": (_pad, ("width", "height", "background", "position")),
    "trim": (_trim, ("tolerance",)),
    "watermark": (
        _watermark,
        (
            "text",
            "image_path",
            "position",
            "opacity",
            "margin",
            "font_size",
            "font_path",
            "colour",
            "image_scale",
        ),
    ),
    "sharpen": (_sharpen, ("radius", "percent", "threshold")),
    "strip_metadata": (_strip_metadata, ("keep_icc",)),
    "output": (_output, _ENCODING_FIELDS),
    "thumbnail": (_thumbnail, ("size", *_ENCODING_FIELDS)),
    "external": (_external, ("args", "output_format", "timeout")),
}

OPS: tuple[str, ...] = tuple(_PARSERS)
"""Every operation a step can name, in the order the documentation lists them."""


# -- a whole pipeline -------------------------------------------------------------------------


def _parse_step(pipeline: str, number: int, raw: object) -> StepSpec:
    where = f"Pipeline {pipeline}, step {number}"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object with an op field, not {_show(raw)}.")
    if "op" not in raw:
        raise InvalidRequest(f"{where}: op is missing; it must be one of {_words(OPS)}.")
    op = raw["op"]
    if not isinstance(op, str) or op not in _PARSERS:
        raise InvalidRequest(f"{where}: op must be one of {_words(OPS)}, not {_show(op)}.")
    parser, allowed = _PARSERS[op]
    return parser(_StepFields(f"{where} ({op})", op, raw, allowed))


def parse_pipeline(
    name: str, description: str, version: int, steps_json: list[dict[str, Any]]
) -> PipelineSpec:
    """Check a pipeline's JSON and return it as a PipelineSpec.

    Raises:
        InvalidRequest: one sentence naming the pipeline, the step (1-based number and op) and
            the field that is wrong, and what it must be.
    """
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= NAME_MAX_LENGTH:
        raise InvalidRequest(
            f"A pipeline's name must be text of 1 to {NAME_MAX_LENGTH} characters, "
            f"not {_show(name)}."
        )
    if not isinstance(description, str):
        raise InvalidRequest(
            f"Pipeline {name}: description must be text, not {_show(description)}."
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidRequest(
            f"Pipeline {name}: version must be a whole number from 1 up, not {_show(version)}."
        )
    if not isinstance(steps_json, list) or len(steps_json) > MAX_STEPS:
        raise InvalidRequest(
            f"Pipeline {name}: steps must be a list of at most {MAX_STEPS} steps, "
            f"not {_show(steps_json)}."
        )
    steps = tuple(_parse_step(name, n, raw) for n, raw in enumerate(steps_json, 1))
    _check_outputs(name, steps)
    return PipelineSpec(name, description, version, steps)


def _check_outputs(pipeline: str, steps: Sequence[StepSpec]) -> None:
    """Refuse pipelines that deliver nothing, waste their last steps or repeat an output name."""
    if not steps:
        return  # the input is delivered unchanged
    producing = [n for n, s in enumerate(steps, 1) if isinstance(s, OutputStep | ThumbnailStep)]
    if not producing:
        raise InvalidRequest(
            f"Pipeline {pipeline} produces nothing: add an output or thumbnail step, or leave "
            "the steps empty to deliver each input unchanged as PNG."
        )
    if len(steps) > producing[-1]:
        number = producing[-1] + 1
        raise InvalidRequest(
            f"Pipeline {pipeline}, step {number} ({steps[number - 1].op}) comes after the last "
            "output, so its result would be lost: move it before an output step or remove it."
        )
    seen: dict[str, int] = {}
    for number in producing:
        step = steps[number - 1]
        assert isinstance(step, OutputStep | ThumbnailStep)
        name = step.encoding.file_name("NAME")
        # Names must stay distinct on case-insensitive file systems and in zips opened there.
        key = name.casefold()
        if key in seen:
            raise InvalidRequest(
                f"Pipeline {pipeline}, step {number} ({step.op}): its output would be named "
                f"{name} like step {seen[key]}'s; give it a different suffix."
            )
        seen[key] = number


# -- the pipelines we ship --------------------------------------------------------------------


def default_pipelines() -> list[dict[str, Any]]:
    """Return the shipped pipelines as JSON-ready dicts: name, description, version, steps."""
    return [
        {
            "name": "original",
            "description": "Keep each PNG exactly as submitted (no processing).",
            "version": 1,
            "steps": [],
        },
        {
            "name": "web-delivery",
            "description": (
                "Full-size PNG, a web JPEG (long edge 2000 px, quality 85, colour profile kept) "
                "and a 400 px thumbnail."
            ),
            "version": 1,
            "steps": [
                {"op": "output", "format": "png", "compress_level": 6},
                {"op": "fit", "mode": "long_edge", "size": 2000},
                {
                    "op": "output",
                    "format": "jpeg",
                    "suffix": "_web",
                    "quality": 85,
                    "keep_icc": True,
                },
                {"op": "thumbnail", "size": 400, "format": "jpeg", "suffix": "_thumb"},
            ],
        },
        {
            "name": "ecommerce-square",
            "description": (
                "Trim the background, fit into 1800 x 1800 and centre on a white 2000 x 2000 "
                "canvas; JPEG quality 90."
            ),
            "version": 1,
            "steps": [
                {"op": "trim", "tolerance": 8},
                {"op": "fit", "mode": "box", "width": 1800, "height": 1800},
                {"op": "pad", "width": 2000, "height": 2000, "background": "#ffffff"},
                {"op": "output", "format": "jpeg", "suffix": "_square", "quality": 90},
            ],
        },
        {
            "name": "thumbnails",
            "description": "JPEG thumbnails with long edges of 256 and 512 px.",
            "version": 1,
            "steps": [
                {"op": "thumbnail", "size": 256, "suffix": "_thumb256"},
                {"op": "thumbnail", "size": 512, "suffix": "_thumb512"},
            ],
        },
        {
            "name": "optimised-png",
            "description": (
                "Strip text and EXIF metadata (the colour profile stays) and recompress as PNG "
                "at level 9."
            ),
            "version": 1,
            "steps": [
                {"op": "strip_metadata", "keep_icc": True},
                {"op": "output", "format": "png", "compress_level": 9},
            ],
        },
    ]
