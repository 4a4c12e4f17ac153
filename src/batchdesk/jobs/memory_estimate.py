"""How much memory a job needs: the most image memory alive at once while its pipeline runs.

The runner starts a job only while the estimates of everything running fit in its memory
budget, so the estimate must see what the steps make, not only the input: a `pad` onto a
30000 x 30000 canvas needs 3.6 GB whatever the size of the picture placed on it.

The estimate walks the pipeline's steps from the input's header, keeping the size and mode of
the current image, and for each step counts the images alive while it runs: the current image,
the copy a step makes first when the image is a palette or 1-bit one, the images the step
itself makes (a canvas, premultiplied, reduced and half-resampled copies, bands and masks, an
encoder's buffers) and its result. The job's estimate is the largest of these, and of reading
the input. Pillow keeps 1-bit, greyscale and palette images in one byte a pixel, 16-bit
greyscale in two and everything else (RGB included) in four. Each step's model was measured
against Pillow's real peak in every mode (tests/unit/test_memory_estimate.py keeps a sample of
those measurements as a test); where the pixels decide (how much border trim cuts), it counts
the most. The `original` pipeline holds no image at all: it inflates the pixel data as a stream.

What it cannot see: an external tool's output is assumed to be the size of its input (in four
bytes a pixel); a watermark larger than the image, or a colour-keyed RGB or greyscale image,
needs one more copy than counted. The process itself may hold more than the images alive: the
C allocator keeps some freed memory for the next image.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchdesk.jobs.pipeline_spec import PipelineSpec
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
from batchdesk.jobs.steps import REDUCING_GAP

Size = tuple[int, int]

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2}
_COPY_BYTES = 4  # a working copy in one of the four-byte modes
_GREY_MODES = ("1", "L", "LA", "I;16")
_WEBP_BYTES_PER_PIXEL = 44


@dataclass(frozen=True)
class MemoryEstimate:
    """A job's estimated peak of image memory, and where in the pipeline it happens.

    `step` is 0 while the input is read (then `op` is empty) or the 1-based number of the step,
    and `size` the largest image alive then (a pad step's canvas, or the input).
    """

    peak: int
    step: int
    op: str
    size: Size


@dataclass(frozen=True)
class _Image:
    size: Size
    mode: str

    @property
    def pixels(self) -> int:
        return self.size[0] * self.size[1]

    @property
    def bytes(self) -> int:
        return self.pixels * _BYTES_PER_PIXEL.get(self.mode, 4)

    def as_mode(self, mode: str) -> "_Image":
        return _Image(self.size, mode)

    def ready(self) -> "_Image":
        """The image in the mode pixel steps work in (`working_image.pixel_ready`)."""
        return self.as_mode({"P": "RGBA", "1": "L"}.get(self.mode, self.mode))

    def ready_copy(self) -> int:
        return self.ready().bytes if self.mode in ("P", "1") else 0


@dataclass(frozen=True)
class _Stage:
    alive: int  # bytes of images alive at once during the step
    result: _Image  # the image the pipeline carries on with
    largest: Size  # the largest image alive, for the message


def _scaled_size(size: Size, scale: float, *, upscale: bool) -> Size:
    """The size `steps._scaled` gives an image: unchanged unless it shrinks (or may grow)."""
    if scale >= 1 and not upscale:
        return size
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


def _resize_bytes(image: _Image, new: Size) -> int:
    """Bytes Pillow's resize holds besides its input: its copies, its two passes, its result.

    An image with alpha is resized premultiplied (a copy of the input, and of the result); a
    big reduction first shrinks by a whole factor (a reduced copy); Lanczos resamples across,
    into an image as wide as the result and as tall as its source, and then down.
    """
    mode = "RGBa" if image.mode in ("LA", "RGBA") else image.mode
    source = image.as_mode(mode)
    alive = _Image(new, mode).bytes
    if mode != image.mode:
        alive += source.bytes + _Image(new, image.mode).bytes
    factors = [
        max(1, int(old / want / REDUCING_GAP)) for old, want in zip(image.size, new, strict=True)
    ]
    if max(factors) > 1 and mode != "I;16":  # Pillow cannot reduce 16-bit greyscale
        reduced = (math.ceil(image.size[0] / factors[0]), math.ceil(image.size[1] / factors[1]))
        source = _Image(reduced, mode)
        alive += source.bytes
    if new[0] != source.size[0] and new[1] != source.size[1]:
        alive += _Image((new[0], source.size[1]), mode).bytes
    return alive


def _encoder_bytes(image: _Image, encoding: Encoding) -> int:
    """Bytes a save holds besides the image.

    PNG: none. JPEG: none for RGB and greyscale; otherwise a converted copy, and for alpha a
    flattened canvas and its mask. WebP: libwebp's own buffers, measured at up to 42 bytes a
    pixel (lossless, on noise; 27 at the default quality).
    """
    if encoding.format == "png":
        return 0
    if encoding.format == "jpeg":
        if image.mode in ("L", "RGB"):
            return 0
        return image.ready_copy() + 2 * _COPY_BYTES * image.pixels + image.pixels  # and a mask
    return _WEBP_BYTES_PER_PIXEL * image.pixels


def _scale_stage(current: _Image, new: Size) -> _Stage:
    if new == current.size:
        return _Stage(current.bytes, current, current.size)
    ready = current.ready()
    alive = current.bytes + current.ready_copy() + _resize_bytes(ready, new)
    return _Stage(alive, _Image(new, ready.mode), current.size)


def _fit(step: FitStep, current: _Image) -> _Stage:
    width, height = current.size
    if step.mode == "box":
        assert step.width is not None
        assert step.height is not None
        scale = min(step.width / width, step.height / height)
    else:
        assert step.size is not None
        scale = step.size / max(width, height)
    new = _scaled_size(current.size, scale, upscale=step.upscale)
    stage = _scale_stage(current, new)
    return _Stage(stage.alive, stage.result, max(current.size, new, key=lambda s: s[0] * s[1]))


def _pad(step: PadStep, current: _Image) -> _Stage:
    ready = current.ready()
    grey = ready.mode in _GREY_MODES
    if step.background is None:
        mode = "LA" if grey else "RGBA"
    elif grey and len(set(step.background)) == 1:
        mode = "I;16" if ready.mode == "I;16" else "L"
    else:
        mode = "RGB"
    canvas = _Image((step.width, step.height), mode)
    # The image converted to the canvas's mode, and its alpha as a mask (16-bit greyscale is
    # scaled to 8 bits through Pillow's 32-bit mode first).
    converted = ready.as_mode(mode).bytes + ready.pixels
    if ready.mode == "I;16" and mode != "I;16":
        converted += 2 * _COPY_BYTES * ready.pixels
    alive = current.bytes + current.ready_copy() + converted + canvas.bytes
    return _Stage(alive, canvas, canvas.size)


_BANDS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1}


def _trim(step: TrimStep, current: _Image) -> _Stage:
    """Trim: the image split into 8-bit bands, one band's mask at a time, and the cut region."""
    ready = current.ready()
    work = (_BANDS[ready.mode] + 1) * ready.pixels
    if ready.mode == "I;16":
        work += 2 * _COPY_BYTES * ready.pixels  # scaled to 8 bits through 32-bit images
    # The border's size is not known: the region is counted as large as the image.
    alive = current.bytes + current.ready_copy() + work + ready.bytes
    return _Stage(alive, ready, current.size)


def _watermark(step: WatermarkStep, current: _Image) -> _Stage:
    """Watermark, in place: the mark and its blended region, counted as one image-sized copy."""
    ready = current.ready()
    work = _COPY_BYTES * ready.pixels
    if ready.mode == "I;16":
        work += 2 * _COPY_BYTES * ready.pixels  # blended through 32-bit images
    alive = current.bytes + current.ready_copy() + work
    return _Stage(alive, ready, current.size)


def _sharpen(step: SharpenStep, current: _Image) -> _Stage:
    """Sharpen: the filter's blurred copy and its result, and for alpha the colour apart."""
    ready = current.ready()
    if ready.mode in ("LA", "RGBA"):
        # The colour converted, blurred, sharpened, given back its alpha (a mask).
        work = (3 * _COPY_BYTES + 1) * ready.pixels
        result = ready
    elif ready.mode == "I;16":
        # Scaled to 8 bits through 32-bit images, then filtered as L.
        work = (2 * _COPY_BYTES + 2) * ready.pixels
        result = ready.as_mode("L")
    else:
        work = ready.bytes
        result = ready
    alive = current.bytes + current.ready_copy() + work + result.bytes
    return _Stage(alive, result, current.size)


def _strip_metadata(step: StripMetadataStep, current: _Image) -> _Stage:
    return _Stage(current.bytes, current, current.size)


def _output(step: OutputStep, current: _Image) -> _Stage:
    return _Stage(current.bytes + _encoder_bytes(current, step.encoding), current, current.size)


def _thumbnail(step: ThumbnailStep, current: _Image) -> _Stage:
    new = _scaled_size(current.size, step.size / max(current.size), upscale=False)
    scaled = _scale_stage(current, new)
    alive = scaled.alive + _encoder_bytes(scaled.result, step.encoding)
    return _Stage(alive, current, current.size)


def _external(step: ExternalStep, current: _Image) -> _Stage:
    # The tool's output is read back (assumed the same size) and perhaps converted once.
    result = current.as_mode("RGBA")
    return _Stage(current.bytes + 2 * _COPY_BYTES * current.pixels, result, current.size)


_STEPS: dict[type[StepSpec], Callable[[Any, _Image], _Stage]] = {
    FitStep: _fit,
    PadStep: _pad,
    TrimStep: _trim,
    WatermarkStep: _watermark,
    SharpenStep: _sharpen,
    StripMetadataStep: _strip_metadata,
    OutputStep: _output,
    ThumbnailStep: _thumbnail,
    ExternalStep: _external,
}


def _apply(step: StepSpec, current: _Image) -> _Stage:
    return _STEPS[type(step)](step, current)


def estimate_job_memory(spec: PipelineSpec, width: int, height: int, mode: str) -> MemoryEstimate:
    """Estimate the peak image memory of running `spec` on a PNG of this size and Pillow mode."""
    current = _Image((width, height), mode)
    if not spec.steps:
        return MemoryEstimate(0, 0, "", current.size)  # the pixel data is only inflated
    peak = MemoryEstimate(current.bytes, 0, "", current.size)
    for number, step in enumerate(spec.steps, 1):
        stage = _apply(step, current)
        if stage.alive > peak.peak:
            peak = MemoryEstimate(stage.alive, number, step.op, stage.largest)
        current = stage.result
    return peak


def _amount(count: int) -> str:
    if count >= 1 << 30:
        return f"{count / (1 << 30):.1f} GB"
    return f"{round(count / (1 << 20)):,} MB"


def over_budget_message(file_name: str, pipeline: str, found: MemoryEstimate, budget: int) -> str:
    """Say in one sentence why a job whose own estimate is over the memory budget fails."""
    width, height = found.size
    needs = f"needs about {_amount(found.peak)} of memory"
    over = (
        f"more than this worker's memory budget of {budget >> 20:,} MB (memory_budget_mb in the "
        "settings)"
    )
    if found.step == 0:
        return (
            f"{file_name} is {width} × {height} pixels and {needs} to decode, {over}: raise the "
            "budget and retry the batch, or scale the image down."
        )
    what = "canvas" if found.op == "pad" else "image"
    return (
        f"{file_name}, step {found.step} ({found.op}): a {width} × {height} {what} {needs}, "
        f"{over}: raise the budget and retry the batch, or change pipeline {pipeline}."
    )
