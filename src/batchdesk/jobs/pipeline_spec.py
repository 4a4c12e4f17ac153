"""Pipelines as data: a checked pipeline, and the parser that checks a pipeline's JSON steps.

A pipeline is stored as JSON (name, description, version, steps) and shared by every workstation.
`parse_pipeline` turns that JSON into frozen step objects or raises `InvalidRequest` with one
sentence naming the pipeline, the step (1-based number and op) and the field, so a bad pipeline
is refused when it is saved and again, cheaply, before a job uses it. The step classes it builds
live in `step_specs`, the field readers in `step_fields`, the shipped pipelines in
`default_pipelines`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batchdesk.errors import InvalidRequest
from batchdesk.jobs.step_fields import StepFields, show, words
from batchdesk.jobs.step_specs import (
    Encoding,
    ExternalStep,
    FitStep,
    OutputStep,
    PadStep,
    SharpenStep,
    StepSpec,
    StripMetadataStep,
    ThumbnailStep,
    TrimStep,
    WatermarkStep,
)

MAX_DIMENSION = 30_000
"""The largest width, height or edge a step accepts, in pixels."""

MAX_STEPS = 100
NAME_MAX_LENGTH = 100
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


def _encoding(fields: StepFields, *, default_format: str, default_suffix: str) -> Encoding:
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


def _fit(fields: StepFields) -> FitStep:
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


def _pad(fields: StepFields) -> PadStep:
    return PadStep(
        width=fields.whole("width", 1, MAX_DIMENSION),
        height=fields.whole("height", 1, MAX_DIMENSION),
        background=fields.colour_or_transparent("background", "#ffffff"),
        position=fields.choice("position", PAD_POSITIONS, "center"),
    )


def _trim(fields: StepFields) -> TrimStep:
    return TrimStep(tolerance=fields.whole("tolerance", 0, 255, 0))


def _watermark(fields: StepFields) -> WatermarkStep:
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


def _sharpen(fields: StepFields) -> SharpenStep:
    return SharpenStep(
        radius=fields.number("radius", 0.1, 100.0, 2.0),
        percent=fields.whole("percent", 1, 500, 150),
        threshold=fields.whole("threshold", 0, 255, 3),
    )


def _strip_metadata(fields: StepFields) -> StripMetadataStep:
    return StripMetadataStep(keep_icc=fields.flag("keep_icc", False))


def _output(fields: StepFields) -> OutputStep:
    return OutputStep(_encoding(fields, default_format="png", default_suffix=""))


def _thumbnail(fields: StepFields) -> ThumbnailStep:
    size = fields.whole("size", 1, MAX_DIMENSION)
    return ThumbnailStep(size, _encoding(fields, default_format="jpeg", default_suffix="_thumb"))


def _external(fields: StepFields) -> ExternalStep:
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
        raise InvalidRequest(f"{where} must be an object with an op field, not {show(raw)}.")
    if "op" not in raw:
        raise InvalidRequest(f"{where}: op is missing; it must be one of {words(OPS)}.")
    op = raw["op"]
    if not isinstance(op, str) or op not in _PARSERS:
        raise InvalidRequest(f"{where}: op must be one of {words(OPS)}, not {show(op)}.")
    parser, allowed = _PARSERS[op]
    return parser(StepFields(f"{where} ({op})", op, raw, allowed))


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
            f"not {show(name)}."
        )
    if not isinstance(description, str):
        raise InvalidRequest(f"Pipeline {name}: description must be text, not {show(description)}.")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidRequest(
            f"Pipeline {name}: version must be a whole number from 1 up, not {show(version)}."
        )
    if not isinstance(steps_json, list) or len(steps_json) > MAX_STEPS:
        raise InvalidRequest(
            f"Pipeline {name}: steps must be a list of at most {MAX_STEPS} steps, "
            f"not {show(steps_json)}."
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
