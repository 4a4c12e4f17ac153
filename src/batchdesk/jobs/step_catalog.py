"""What each step's fields are, as data: the pipeline editor builds its forms from this.

`pipeline_spec` checks a step's JSON field by field; this catalog describes the same fields (kind,
range, choices, default) so a form can offer the right widget for each: a spin box with the
range, a list of choices, a colour picker, a file picker for a watermark image or a font. A test
keeps the two in step (every field the parser accepts is here, and each default parses).
"""

from dataclasses import dataclass
from typing import Any

from batchdesk.jobs.pipeline_spec import (
    EXTERNAL_FORMATS,
    MAX_DIMENSION,
    OUTPUT_FORMATS,
    PAD_POSITIONS,
    POSITIONS,
    WATERMARK_TEXT_MAX_LENGTH,
)
from batchdesk.jobs.step_fields import SUFFIX_MAX_LENGTH


@dataclass(frozen=True)
class FieldSpec:
    """One field of a step: its JSON name, what kind of value it holds, and its limits.

    `kind` is one of: whole, number, flag, choice, colour, colour_or_transparent, suffix, text,
    image_path, font_path, strings. `default` None means the field may be left out (it is then
    required only where the step says so, e.g. a box fit's width).
    """

    name: str
    kind: str
    default: Any = None
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()
    max_length: int = 4096
    formats: tuple[str, ...] = ()  # output fields: the formats they apply to (empty: all)
    label: str = ""
    format_highs: tuple[tuple[str, float], ...] = ()  # a lower maximum for some formats

    def high_for(self, fmt: str) -> float:
        """The largest value allowed when the step writes `fmt` (JPEG quality stops at 95)."""
        return dict(self.format_highs).get(fmt, self.high)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


def _encoding(default_format: str, default_suffix: str) -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("format", "choice", default_format, choices=OUTPUT_FORMATS),
        FieldSpec("suffix", "suffix", default_suffix, max_length=SUFFIX_MAX_LENGTH),
        FieldSpec("compress_level", "whole", 6, 0, 9, formats=("png",)),
        FieldSpec(
            "quality", "whole", 85, 1, 100, formats=("jpeg", "webp"), format_highs=(("jpeg", 95),)
        ),
        FieldSpec("progressive", "flag", False, formats=("jpeg",)),
        FieldSpec("lossless", "flag", False, formats=("webp",)),
        FieldSpec("keep_icc", "flag", True, label="Keep colour profile"),
        FieldSpec("background", "colour", "#ffffff", formats=("jpeg",)),
    )


STEP_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "fit": (
        FieldSpec("mode", "choice", "box", choices=("box", "long_edge")),
        FieldSpec("width", "whole", None, 1, MAX_DIMENSION),
        FieldSpec("height", "whole", None, 1, MAX_DIMENSION),
        FieldSpec("size", "whole", None, 1, MAX_DIMENSION, label="Long edge"),
        FieldSpec("upscale", "flag", False),
    ),
    "pad": (
        FieldSpec("width", "whole", None, 1, MAX_DIMENSION),
        FieldSpec("height", "whole", None, 1, MAX_DIMENSION),
        FieldSpec("background", "colour_or_transparent", "#ffffff"),
        FieldSpec("position", "choice", "center", choices=PAD_POSITIONS),
    ),
    "trim": (FieldSpec("tolerance", "whole", 0, 0, 255),),
    "watermark": (
        FieldSpec("text", "text", None, max_length=WATERMARK_TEXT_MAX_LENGTH),
        FieldSpec("image_path", "image_path", None, label="Image"),
        FieldSpec("position", "choice", "bottom-right", choices=POSITIONS),
        FieldSpec("opacity", "number", 0.5, 0.0, 1.0),
        FieldSpec("margin", "whole", 24, 0, MAX_DIMENSION),
        FieldSpec("font_size", "number", 0.04, 0.005, 0.5, label="Font size (x width)"),
        FieldSpec("font_path", "font_path", None, label="Font"),
        FieldSpec("colour", "colour", "#ffffff"),
        FieldSpec("image_scale", "number", 0.2, 0.01, 1.0, label="Image scale (x width)"),
    ),
    "sharpen": (
        FieldSpec("radius", "number", 2.0, 0.1, 100.0),
        FieldSpec("percent", "whole", 150, 1, 500),
        FieldSpec("threshold", "whole", 3, 0, 255),
    ),
    "strip_metadata": (FieldSpec("keep_icc", "flag", False, label="Keep colour profile"),),
    "output": _encoding("png", ""),
    "thumbnail": (
        FieldSpec("size", "whole", None, 1, MAX_DIMENSION, label="Long edge"),
        *_encoding("jpeg", "_thumb"),
    ),
    "external": (
        FieldSpec("args", "strings", None, label="Command"),
        FieldSpec("output_format", "choice", "png", choices=EXTERNAL_FORMATS),
        FieldSpec("timeout", "number", 60.0, 1.0, 3600.0, label="Timeout (s)"),
    ),
}
"""Each operation's fields, in the order a form shows them."""

STARTER_STEPS: dict[str, dict[str, Any]] = {
    "fit": {"op": "fit", "mode": "long_edge", "size": 2000},
    "pad": {"op": "pad", "width": 2000, "height": 2000},
    "trim": {"op": "trim", "tolerance": 8},
    "watermark": {"op": "watermark", "text": "© Studio"},
    "sharpen": {"op": "sharpen"},
    "strip_metadata": {"op": "strip_metadata", "keep_icc": True},
    "output": {"op": "output", "format": "jpeg", "suffix": "_web"},
    "thumbnail": {"op": "thumbnail", "size": 400},
    "external": {"op": "external", "args": ["cp", "{input}", "{output}"]},
}
"""A valid step of each operation, which the editor adds and the user then changes."""


def field_spec(op: str, name: str) -> FieldSpec | None:
    """Return the description of one field of an operation, or None if it has no such field."""
    return next((f for f in STEP_FIELDS.get(op, ()) if f.name == name), None)
