"""The registry of pipeline steps: what each operation does to an image, with Pillow.

Each step takes the current `WorkingImage` and returns the next one. Output steps hand an image
to the pipeline's writer and return the current image unchanged, so one job can deliver several
files. Pixels are processed in five modes only: L, LA, RGB, RGBA and 16-bit greyscale I;16.
Palette, 1-bit and colour-keyed images become one of those the first time a step touches their
pixels, so a pipeline that only strips metadata keeps a palette PNG a palette PNG.

Pillow holds the GIL in `Image.alpha_composite`, `Image.blend` and `ImageChops`, for 60-110 ms on a
12-megapixel image, which would stall every other thread of the process. Whole images therefore
go through `paste` with a mask (it releases the GIL); `alpha_composite` only ever sees a
watermark-sized region.
"""

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageMath, PngImagePlugin

from batchdesk.jobs.pipeline_spec import (
    EXTENSIONS,
    Colour,
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

WORKING_MODES = ("L", "LA", "RGB", "RGBA", "I;16")
"""The modes pixel operations work in; see `pixel_ready`."""

STORED_MODES = ("1", "P", *WORKING_MODES)
"""The modes a decoded image may have between steps (plus a colour key in `info`)."""

_GREY_MODES = ("1", "L", "LA", "I;16")
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_MAX_SIDE = {"jpeg": 65_535, "webp": 16_383}
_TOOL_POLL_SECONDS = 0.2
_TOOL_OUTPUT_CHARS = 500


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
    return pixel_ready(image).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _faded(alpha: Image.Image, opacity: float) -> Image.Image:
    return alpha.point([round(a * opacity) for a in range(256)])


def _is_grey(colour: Colour) -> bool:
    return colour[0] == colour[1] == colour[2]


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
    grey = image.mode in _GREY_MODES
    if background is None:
        if image.mode == "I;16":
            image = eight_bit_grey(image)  # no 16-bit mode with alpha exists in Pillow
        mode = "LA" if grey else "RGBA"
        canvas = Image.new(mode, size, (0, 0) if grey else (0, 0, 0, 0))
        canvas.paste(image.convert(mode), at)
        return replace(working, image=canvas)
    mask = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    if grey and _is_grey(background) and image.mode == "I;16":
        canvas = Image.new("I;16", size, background[0] * 257)
    elif grey and _is_grey(background):
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


def _icc_fits(icc: bytes | None, mode: str) -> bool:
    """Tell whether a profile's colour space matches the mode (a grey profile on RGB is invalid)."""
    if not icc or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if mode in _GREY_MODES else b"RGB ")


def _flattened(image: Image.Image, background: Colour) -> Image.Image:
    """Return an L or RGB image: transparent pixels composited over the background colour."""
    if image.mode in ("L", "RGB"):
        return image
    grey = image.mode == "LA" and _is_grey(background)
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


# -- the external tool step -------------------------------------------------------------------


def _tail(data: bytes) -> str:
    """Return the last lines of a tool's output, at most ~500 characters, on one line."""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    if len(lines[-1]) > _TOOL_OUTPUT_CHARS:
        return "…" + lines[-1][-_TOOL_OUTPUT_CHARS:]
    kept: list[str] = []
    for line in reversed(lines):
        if sum(len(k) + 3 for k in kept) + len(line) > _TOOL_OUTPUT_CHARS:
            break
        kept.insert(0, line)
    return " / ".join(kept)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the tool and everything it started: a child left holding our pipes would hang us."""
    if sys.platform == "win32":
        process.kill()
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # Something escaped the process group and still holds a pipe: stop waiting for it.
        process.kill()
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _run_tool(args: list[str], step: ExternalStep, context: StepContext, cwd: Path) -> None:
    tool = step.args[0]
    advice = f"install it or take the step out of pipeline {context.pipeline}"
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            # Its own process group, so a timeout or a cancel can stop everything it started.
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise StepError(
            f"the tool {tool!r} is not installed on this workstation; {advice}", retryable=True
        ) from exc
    except OSError as exc:
        raise StepError(
            f"the tool {tool!r} cannot be run ({exc.strerror or exc}); {advice}", retryable=True
        ) from exc
    deadline = time.monotonic() + step.timeout
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=_TOOL_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                context.stop_if_requested()
                if time.monotonic() >= deadline:
                    raise StepError(
                        f"the tool {tool!r} did not finish within {step.timeout:g} s; check it "
                        f"by hand, or raise timeout in pipeline {context.pipeline}",
                        retryable=True,
                    ) from None
    finally:
        if process.returncode is None:
            _kill(process)
    code = process.returncode
    if code == 0:
        return
    if code > 0:
        how = f"exit code {code}"
    else:
        try:
            how = f"signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"signal {-code}"
    said = _tail(stderr) or _tail(stdout)
    said = f" and said: {said}" if said else ""
    raise StepError(
        f"the tool {tool!r} failed with {how}{said}; check the tool and its arguments in "
        f"pipeline {context.pipeline}"
    )


def external(step: ExternalStep, working: WorkingImage, context: StepContext) -> WorkingImage:
    """Run a studio tool on the current image (as PNG) and carry on with the image it writes.

    The metadata carries across the tool; an ICC profile in the tool's output replaces ours.
    """
    folder = Path(tempfile.mkdtemp(prefix="external-", dir=context.work_dir))
    try:
        source = folder / "input.png"
        target = folder / f"output{EXTENSIONS[step.output_format]}"
        # Level 1: the tool reads this file once, so speed matters more than its size.
        save_image(working, Encoding("png", "", compress_level=1), source)
        args = [
            a.replace("{input}", str(source)).replace("{output}", str(target)) for a in step.args
        ]
        _run_tool(args, step, context, folder)
        what = f"the tool {step.args[0]!r}"
        if not target.is_file():
            raise StepError(
                f"{what} finished without writing its output file; check that its arguments in "
                f"pipeline {context.pipeline} write to {{output}}"
            )
        try:
            image = context.read_back(target, step.output_format)
        except UnusableImage as exc:
            raise StepError(
                f"{what} wrote {exc}; check the tool and its arguments in pipeline "
                f"{context.pipeline}"
            ) from exc
        produced = WorkingImage.from_decoded(image)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return replace(
        working, image=produced.image, icc_profile=produced.icc_profile or working.icc_profile
    )


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
