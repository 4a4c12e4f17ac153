"""The registry of pipeline steps: what each operation does to an image, with Pillow.

Each step takes the current `WorkingImage` and returns the next one. Output steps hand an image
to the pipeline's writer and return the current image unchanged, so one job can deliver several
files. The working image, its modes and `save_image` live in `working_image`; the external tool
step lives in `external_step`.

Pillow holds the GIL in `Image.alpha_composite`, `Image.blend` and `ImageChops`, for 60-110 ms on a
12-megapixel image, which would stall every other thread of the process. Whole images therefore
go through `paste` with a mask (it releases the GIL); `alpha_composite` only ever sees a
watermark-sized region.
"""

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageMath

from batchdesk.jobs.external_step import external
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
from batchdesk.jobs.working_image import (
    GREY_MODES,
    StepContext,
    StepError,
    WorkingImage,
    eight_bit_grey,
    is_grey,
    pixel_ready,
    sixteen_bit_grey,
)

_MAX_SIDE = {"jpeg": 65_535, "webp": 16_383}
REDUCING_GAP = 3.0
"""How far `fit` and `thumbnail` shrink by whole factors before resampling (see `_scaled`)."""


# -- pixel helpers ----------------------------------------------------------------------------


def _cut(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """Copy a region out of an image.

    `Image.crop` applies Pillow's process-wide decompression-bomb limit to the region; our limit
    is per job and has already been applied, so a big image must not trip the global one here.
    """
    left, top, right, bottom = box
    region = Image.new(image.mode, (right - left, bottom - top))
    region.paste(image, (-left, -top))
    return region


def _scaled(image: Image.Image, scale: float, *, upscale: bool) -> Image.Image:
    if scale >= 1 and not upscale:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    # A reducing gap of 3 first shrinks by whole factors (cheap), then resamples with Lanczos:
    # indistinguishable from plain Lanczos at that gap, and several times faster on big renders.
    # Pillow cannot reduce 16-bit greyscale, which is resampled in one go.
    image = pixel_ready(image)
    gap = None if image.mode == "I;16" else REDUCING_GAP
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=gap)


def _faded(alpha: Image.Image, opacity: float) -> Image.Image:
    return alpha.point([round(a * opacity) for a in range(256)])


def _offset(
    position: str, outer: tuple[int, int], inner: tuple[int, int], margin: int = 0
) -> tuple[int, int]:
    """Return the top-left corner that puts `inner` at `position` inside `outer`."""
    free_x, free_y = outer[0] - inner[0], outer[1] - inner[1]
    x = {"left": margin, "right": free_x - margin}
    y = {"top": margin, "bottom": free_y - margin}
    vertical, _, horizontal = position.partition("-")
    if position in ("left", "right"):
        vertical, horizontal = "", position
    return (x.get(horizontal, free_x // 2), y.get(vertical, free_y // 2))


# -- steps that change pixels -----------------------------------------------------------------


def fit(step: FitStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Scale to fit a box or a long edge (Lanczos); never up unless the step allows it."""
    width, height = working.image.size
    if step.mode == "box":
        assert step.width is not None
        assert step.height is not None
        scale = min(step.width / width, step.height / height)
    else:
        assert step.size is not None
        scale = step.size / max(width, height)
    return replace(working, image=_scaled(working.image, scale, upscale=step.upscale))


def pad(step: PadStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Place the image on a canvas; an opaque background also flattens transparency onto it."""
    image = pixel_ready(working.image)
    size = (step.width, step.height)
    if image.width > step.width or image.height > step.height:
        raise StepError(
            f"the image is {image.width} × {image.height} pixels, larger than the "
            f"{step.width} × {step.height} canvas; put a fit step before pad in pipeline "
            f"{context.pipeline}"
        )
    at = _offset(step.position, size, image.size)
    background = step.background
    grey = image.mode in GREY_MODES
    if background is None:
        if image.mode == "I;16":
            image = eight_bit_grey(image)  # no 16-bit mode with alpha exists in Pillow
        mode = "LA" if grey else "RGBA"
        canvas = Image.new(mode, size, (0, 0) if grey else (0, 0, 0, 0))
        canvas.paste(image.convert(mode), at)
        return replace(working, image=canvas)
    mask = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    if grey and is_grey(background) and image.mode == "I;16":
        canvas = Image.new("I;16", size, background[0] * 257)
    elif grey and is_grey(background):
        canvas = Image.new("L", size, background[0])
    else:
        if image.mode == "I;16":
            image = eight_bit_grey(image)
        canvas = Image.new("RGB", size, background)
    canvas.paste(image if image.mode == canvas.mode else image.convert(canvas.mode), at, mask)
    return replace(working, image=canvas)


def _content_box(image: Image.Image, tolerance: int) -> tuple[int, int, int, int] | None:
    """Return the box inside the border whose colour (or transparency) is the top-left pixel's."""
    probe = eight_bit_grey(image) if image.mode == "I;16" else image
    corner = probe.getpixel((0, 0))
    assert corner is not None
    values = corner if isinstance(corner, tuple) else (int(corner),)
    bands = probe.split()
    if probe.mode in ("LA", "RGBA") and values[-1] <= tolerance:
        # A transparent corner: the border is whatever is (almost) fully transparent.
        return bands[-1].point([0 if a <= tolerance else 255 for a in range(256)]).getbbox()
    boxes = [
        band.point([0 if abs(v - c) <= tolerance else 255 for v in range(256)]).getbbox()
        for band, c in zip(bands, values, strict=True)
    ]
    found = [box for box in boxes if box is not None]
    if not found:
        return None
    return (
        min(b[0] for b in found),
        min(b[1] for b in found),
        max(b[2] for b in found),
        max(b[3] for b in found),
    )


def trim(step: TrimStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Cut away a uniform border; an image that is all border is left as it is."""
    image = pixel_ready(working.image)
    box = _content_box(image, step.tolerance)
    if box is None or box == (0, 0, image.width, image.height):
        return replace(working, image=image)
    return replace(working, image=_cut(image, box))


def _font(
    step: WatermarkStep, size: int, pipeline: str
) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if step.font_path is None:
        return ImageFont.load_default(size)
    try:
        return ImageFont.truetype(step.font_path, size)
    except OSError as exc:
        raise StepError(
            f"the font file {step.font_path} cannot be opened on this workstation; install it "
            f"there or change font_path in pipeline {pipeline}"
        ) from exc


def _text_mark(step: WatermarkStep, image_width: int, pipeline: str) -> Image.Image:
    assert step.text is not None
    font = _font(step, max(8, round(step.font_size * image_width)), pipeline)
    left, top, right, bottom = font.getbbox(step.text)
    coverage = Image.new("L", (max(1, math.ceil(right - left)), max(1, math.ceil(bottom - top))))
    ImageDraw.Draw(coverage).text((-left, -top), step.text, fill=255, font=font)
    # A solid colour with the glyphs as alpha: no dark fringes from anti-aliased edges.
    mark = Image.new("RGBA", coverage.size, (*step.colour, 0))
    mark.putalpha(_faded(coverage, step.opacity))
    return mark


def _image_mark(step: WatermarkStep, image_width: int, pipeline: str) -> Image.Image:
    assert step.image_path is not None
    what = f"the watermark image {step.image_path}"
    try:
        with Image.open(step.image_path) as source:
            mark = source.convert("RGBA")
    except FileNotFoundError as exc:
        raise StepError(
            f"{what} does not exist on this workstation; put it there or change image_path in "
            f"pipeline {pipeline}"
        ) from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise StepError(
            f"{what} cannot be read ({exc}); replace it with a PNG or change image_path in "
            f"pipeline {pipeline}"
        ) from exc
    width = max(1, round(step.image_scale * image_width))
    height = max(1, round(mark.height * width / mark.width))
    mark = mark.resize((width, height), Image.Resampling.LANCZOS)
    mark.putalpha(_faded(mark.getchannel("A"), step.opacity))
    return mark


def _blend_16_bits(region: Image.Image, mark: Image.Image) -> Image.Image:
    """Blend an RGBA mark over a 16-bit grey region (Pillow's masked paste mangles I;16)."""
    colour = sixteen_bit_grey(mark.convert("L")).convert("I")
    alpha = mark.getchannel("A").convert("I")
    blended = ImageMath.lambda_eval(
        lambda v: (v["base"] * (255 - v["alpha"]) + v["colour"] * v["alpha"]) / 255,
        base=region.convert("I"),
        colour=colour,
        alpha=alpha,
    )
    assert isinstance(blended, Image.Image)
    return blended.convert("I;16")


def watermark(step: WatermarkStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Draw a text or an image over one corner or the centre, blending only that region."""
    image = pixel_ready(working.image)
    if step.text is not None:
        mark = _text_mark(step, image.width, context.pipeline)
    else:
        mark = _image_mark(step, image.width, context.pipeline)
    x, y = _offset(step.position, image.size, mark.size, step.margin)
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + mark.width, image.width), min(y + mark.height, image.height)
    if right <= left or bottom <= top:
        return replace(working, image=image)
    if (left, top, right, bottom) != (x, y, x + mark.width, y + mark.height):
        mark = mark.crop((left - x, top - y, right - x, bottom - y))  # small: the mark only
    # The image belongs to this pipeline alone, so it is changed in place: a copy of a
    # 100-megapixel render would cost time and memory for nothing.
    box = (left, top, right, bottom)
    if image.mode in ("RGBA", "LA"):
        # Blending into transparent pixels needs real "over" compositing, which paste is not.
        region = _cut(image, box).convert("RGBA")
        image.paste(Image.alpha_composite(region, mark).convert(image.mode), box[:2])
    elif image.mode == "I;16":
        image.paste(_blend_16_bits(_cut(image, box), mark), box[:2])
    else:
        colour = mark.convert("RGB" if image.mode == "RGB" else "L")
        image.paste(colour, box[:2], mark.getchannel("A"))
    return replace(working, image=image)


def sharpen(step: SharpenStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Sharpen the colour channels with an unsharp mask; alpha is kept as it is."""
    image = pixel_ready(working.image)
    if image.mode == "I;16":
        image = eight_bit_grey(image)  # Pillow's filters work on 8-bit channels only
    unsharp = ImageFilter.UnsharpMask(step.radius, step.percent, step.threshold)
    if image.mode in ("LA", "RGBA"):
        sharp = image.convert(image.mode[:-1]).filter(unsharp)
        sharp.putalpha(image.getchannel("A"))
    else:
        sharp = image.filter(unsharp)
    return replace(working, image=sharp)


def strip_metadata(
    step: StripMetadataStep, working: WorkingImage, context: StepContext
) -> WorkingImage:
    """Drop text chunks and EXIF, and the ICC profile unless the step keeps it."""
    icc = working.icc_profile if step.keep_icc else None
    return replace(working, exif=None, text=(), icc_profile=icc)


# -- steps that write files -------------------------------------------------------------------


def _deliver(working: WorkingImage, encoding: Encoding, context: StepContext) -> None:
    limit = _MAX_SIDE.get(encoding.format)
    if limit is not None and max(working.image.size) > limit:
        raise StepError(
            f"{encoding.format.upper()} images can be at most {limit} pixels on a side and this "
            f"one is {working.image.width} × {working.image.height}; put a fit step before this "
            f"step in pipeline {context.pipeline}"
        )
    context.deliver(working, encoding)


def output(step: OutputStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Write the current image as one output; the pipeline carries on with the same image."""
    _deliver(working, step.encoding, context)
    return working


def thumbnail(step: ThumbnailStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Write a copy scaled down to a long edge of `size` pixels; the current image is unchanged."""
    scale = step.size / max(working.image.size)
    small = replace(working, image=_scaled(working.image, scale, upscale=False))
    _deliver(small, step.encoding, context)
    return working


# -- the registry -----------------------------------------------------------------------------

StepFunction = Callable[[Any, WorkingImage, StepContext], WorkingImage]

REGISTRY: dict[type[StepSpec], StepFunction] = {
    FitStep: fit,
    PadStep: pad,
    TrimStep: trim,
    WatermarkStep: watermark,
    SharpenStep: sharpen,
    StripMetadataStep: strip_metadata,
    OutputStep: output,
    ThumbnailStep: thumbnail,
    ExternalStep: external,
}
"""Each step class and the function that applies it."""


def apply_step(step: StepSpec, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Apply one checked step to the working image and return the next working image."""
    return REGISTRY[type(step)](step, working, context)
