"""Running pipelines on real generated PNGs: every step on every PNG mode, and every bad file.

Images are generated here with Pillow: a 64 × 48 picture with a uniform (or transparent) border
around a 32 × 24 block, so trim, pad and fit have something definite to do.
"""

import ast
import contextlib
import errno
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from batchdesk.errors import KnownError
from batchdesk.jobs import external_step, image_input, image_pipeline, steps, working_image
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.image_input import read_png_size
from batchdesk.jobs.image_pipeline import ProducedOutput, run_pipeline
from batchdesk.jobs.job_failures import JobFailed, StopRequested
from batchdesk.jobs.pipeline_spec import parse_pipeline

FILE = "PL_DXB191_front.png"
SIZE = (64, 48)
BLOCK = (16, 12, 48, 36)  # the picture's content; everything else is border
KINDS = ("RGB", "RGBA", "L", "LA", "P", "P-transparent", "I;16", "RGB-icc", "1")
# The mode each kind is processed in once a step touches its pixels.
WORKING_MODE = {
    "RGB": "RGB",
    "RGB-icc": "RGB",
    "RGBA": "RGBA",
    "L": "L",
    "LA": "LA",
    "P": "RGB",
    "P-transparent": "RGBA",
    "I;16": "I;16",
    "1": "L",
}
GREY_KINDS = {"L", "LA", "I;16", "1"}
ALPHA_KINDS = {"RGBA", "LA", "P-transparent"}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
COPY_TOOL = [
    sys.executable,
    "-c",
    "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])",
    "{input}",
    "{output}",
]


# -- factories --------------------------------------------------------------------------------


def make_picture(kind: str, size: tuple[int, int] = SIZE) -> tuple[Image.Image, dict[str, Any]]:
    """Return an image of the kind (a PNG mode, or P-transparent, RGB-icc) and its save options."""
    options: dict[str, Any] = {}
    if kind in ("RGB", "RGB-icc"):
        image = Image.new("RGB", size, (255, 255, 255))
        image.paste((200, 30, 30), BLOCK)
        if kind == "RGB-icc":
            options["icc_profile"] = SRGB
    elif kind == "RGBA":
        image = Image.new("RGBA", size, (0, 0, 0, 0))
        image.paste((200, 30, 30, 255), BLOCK)
    elif kind == "L":
        image = Image.new("L", size, 255)
        image.paste(60, BLOCK)
    elif kind == "LA":
        image = Image.new("LA", size, (0, 0))
        image.paste((60, 255), BLOCK)
    elif kind in ("P", "P-transparent"):
        image = Image.new("P", size, 0)
        image.putpalette([255, 255, 255, 200, 30, 30])
        image.paste(1, BLOCK)
        if kind == "P-transparent":
            options["transparency"] = 0
    elif kind == "I;16":
        image = Image.new("I;16", size, 60000)
        # Pasting a number into I;16 keeps only its low byte (Pillow 13): paste an image.
        image.paste(Image.new("I;16", (32, 24), 1000), BLOCK[:2])
    elif kind == "1":
        image = Image.new("1", size, 1)
        image.paste(0, BLOCK)
    else:
        raise ValueError(kind)
    return image, options


def make_png(folder: Path, kind: str = "RGB", name: str = FILE, **extra: Any) -> Path:
    """Write a generated picture of the kind as a PNG file; `extra` goes to Image.save."""
    folder.mkdir(parents=True, exist_ok=True)
    image, options = make_picture(kind)
    path = folder / name
    image.save(path, format="PNG", **options, **extra)
    return path


def make_noise_png(path: Path, size: tuple[int, int] = (200, 200)) -> Path:
    """Write a PNG of random pixels: it does not compress, so its size is about 3 bytes a pixel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(path, format="PNG")
    return path


def make_bomb(path: Path, width: int, height: int) -> Path:
    """Write a small real PNG whose header claims width × height pixels (CRC fixed up)."""
    make_png(path.parent, "RGB", path.name)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr[4:]
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


def write_script(folder: Path, name: str, source: str) -> list[str]:
    """Write a tiny Python tool and return the start of its command line."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(source, encoding="utf-8")
    return [sys.executable, str(script)]


# -- helpers ----------------------------------------------------------------------------------


def run(
    tmp_path: Path, source: Path, step_list: list[dict[str, Any]], **kwargs: Any
) -> list[ProducedOutput]:
    spec = parse_pipeline("test-pipeline", "", 1, step_list)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return run_pipeline(spec, source, work, file_name=kwargs.pop("file_name", FILE), **kwargs)


def failure(tmp_path: Path, source: Path, step_list: list[dict[str, Any]], **kwargs: Any) -> str:
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, source, step_list, **kwargs)
    return str(caught.value)


def reopen(path: Path) -> Image.Image:
    """Read an output back with Pillow, as anyone receiving it would."""
    with Image.open(path) as image:
        image.load()
        copy = image.copy()
        copy.format = image.format
        copy.info = dict(image.info)
        if isinstance(image, PngImagePlugin.PngImageFile):
            copy.info["text"] = dict(image.text)
        return copy


def only_output(outputs: list[ProducedOutput]) -> Image.Image:
    assert len(outputs) == 1
    return reopen(outputs[0].path)


# -- every step on every mode -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_fit_box_scales_down_keeping_the_aspect_ratio(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    result = only_output(
        run(tmp_path, source, [{"op": "fit", "width": 32, "height": 32}, {"op": "output"}])
    )
    assert (result.format, result.size, result.mode) == ("PNG", (32, 24), WORKING_MODE[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_fit_long_edge_never_upscales_unless_asked(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    kept = run(
        tmp_path, source, [{"op": "fit", "mode": "long_edge", "size": 128}, {"op": "output"}]
    )
    upscaled = run(
        tmp_path,
        source,
        [{"op": "fit", "mode": "long_edge", "size": 128, "upscale": True}, {"op": "output"}],
    )
    assert reopen(kept[0].path).size == SIZE
    assert reopen(upscaled[0].path).size == (128, 96)
    assert reopen(upscaled[0].path).mode == WORKING_MODE[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_fit_and_thumbnail_scale_far_down(tmp_path: Path, kind: str) -> None:
    # Shrinking by 3x or more first reduces by a whole factor, which Pillow cannot do in every
    # mode (16-bit greyscale): every kind must still come out at the asked size.
    source = make_png(tmp_path / "in", kind)
    outputs = run(
        tmp_path,
        source,
        [
            {"op": "thumbnail", "size": 8, "format": "png"},
            {"op": "fit", "mode": "long_edge", "size": 16},
            {"op": "output"},
        ],
    )
    assert [reopen(output.path).size for output in outputs] == [(8, 6), (16, 12)]


@pytest.mark.parametrize("kind", KINDS)
def test_pad_onto_a_colour_flattens_transparency(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    pad = {"op": "pad", "width": 80, "height": 70, "background": "#ffffff"}
    result = only_output(run(tmp_path, source, [pad, {"op": "output"}]))
    grey_mode = "I;16" if kind == "I;16" else "L"
    assert result.size == (80, 70)
    assert result.mode == (grey_mode if kind in GREY_KINDS else "RGB")
    # The block lands in the middle: 8 px of padding left and right, 11 top and bottom.
    corner = result.getpixel((0, 0))
    inside_border = result.getpixel((8 + 2, 11 + 2))
    assert corner == inside_border or kind not in ALPHA_KINDS
    assert corner in (255, (255, 255, 255), 65535)


@pytest.mark.parametrize("kind", KINDS)
def test_pad_onto_transparency_adds_alpha(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    pad = {"op": "pad", "width": 70, "height": 70, "background": "transparent"}
    result = only_output(run(tmp_path, source, [pad, {"op": "output"}]))
    assert result.size == (70, 70)
    assert result.mode == ("LA" if kind in GREY_KINDS else "RGBA")
    assert result.getchannel("A").getpixel((0, 0)) == 0


@pytest.mark.parametrize("position", ["top-left", "bottom-right", "center"])
def test_pad_position_places_the_image(tmp_path: Path, position: str) -> None:
    source = make_png(tmp_path / "in", "RGB")
    pad = {"op": "pad", "width": 100, "height": 100, "background": "#000000", "position": position}
    result = only_output(run(tmp_path, source, [pad, {"op": "output"}]))
    x, y = {"top-left": (0, 0), "bottom-right": (36, 52), "center": (18, 26)}[position]
    assert result.getpixel((x, y)) == (255, 255, 255)  # the picture's white border
    assert result.getpixel((x + 20, y + 20)) == (200, 30, 30)


def test_pad_onto_a_smaller_canvas_says_to_fit_first(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB")
    message = failure(
        tmp_path, source, [{"op": "pad", "width": 50, "height": 50}, {"op": "output"}]
    )
    assert message == (
        "PL_DXB191_front.png, step 1 (pad): the image is 64 × 48 pixels, larger than the "
        "50 × 50 canvas; put a fit step before pad in pipeline test-pipeline."
    )


@pytest.mark.parametrize("kind", KINDS)
def test_trim_cuts_the_uniform_or_transparent_border(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    result = only_output(run(tmp_path, source, [{"op": "trim"}, {"op": "output"}]))
    assert (result.size, result.mode) == ((32, 24), WORKING_MODE[kind])


def test_trim_tolerance_treats_near_border_colours_as_border(tmp_path: Path) -> None:
    image = Image.new("RGB", SIZE, (255, 255, 255))
    image.paste((250, 250, 250), (0, 44, 64, 48))  # a faint band along the bottom
    image.paste((0, 0, 0), BLOCK)
    image.save(tmp_path / FILE)
    strict = only_output(run(tmp_path, tmp_path / FILE, [{"op": "trim"}, {"op": "output"}]))
    tolerant = run(tmp_path, tmp_path / FILE, [{"op": "trim", "tolerance": 8}, {"op": "output"}])
    assert strict.size == (64, 36)
    assert reopen(tolerant[0].path).size == (32, 24)


def test_trim_leaves_an_image_that_is_all_border(tmp_path: Path) -> None:
    Image.new("RGB", SIZE, (9, 9, 9)).save(tmp_path / FILE)
    result = only_output(run(tmp_path, tmp_path / FILE, [{"op": "trim"}, {"op": "output"}]))
    assert result.size == SIZE


def _watermarked(
    tmp_path: Path, kind: str, mark: dict[str, Any]
) -> tuple[Image.Image, Image.Image]:
    source = make_png(tmp_path / "in", kind)
    before = working_image.pixel_ready(reopen(source))
    marked = run(tmp_path, source, [mark, {"op": "output", "suffix": "_marked"}])
    return before, only_output(marked)


@pytest.mark.parametrize("kind", KINDS)
def test_text_watermark_changes_only_its_corner(tmp_path: Path, kind: str) -> None:
    mark = {
        "op": "watermark",
        "text": "© PL",
        "colour": "#808080",
        "opacity": 1,
        "font_size": 0.25,
        "margin": 2,
    }
    before, after = _watermarked(tmp_path, kind, mark)
    assert (after.size, after.mode) == (SIZE, WORKING_MODE[kind])
    corner = (32, 24, 64, 48)
    assert before.crop((0, 0, 32, 24)).tobytes() == after.crop((0, 0, 32, 24)).tobytes()
    assert before.crop(corner).tobytes() != after.crop(corner).tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_image_watermark_changes_only_its_corner(tmp_path: Path, kind: str) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (20, 10), (0, 128, 255, 255)).save(logo)
    mark = {
        "op": "watermark",
        "image_path": str(logo),
        "position": "top-left",
        "opacity": 0.8,
        "image_scale": 0.25,
        "margin": 0,
    }
    before, after = _watermarked(tmp_path, kind, mark)
    assert (after.size, after.mode) == (SIZE, WORKING_MODE[kind])
    assert before.crop((0, 0, 16, 8)).tobytes() != after.crop((0, 0, 16, 8)).tobytes()
    assert before.crop((16, 8, 64, 48)).tobytes() == after.crop((16, 8, 64, 48)).tobytes()


def test_watermark_on_transparency_keeps_its_colour(tmp_path: Path) -> None:
    # "Over" compositing: a half-opaque white mark on a transparent pixel is white, half opaque
    # (a plain masked paste would mix in the transparent pixel's black).
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (16, 16), (255, 255, 255, 255)).save(logo)
    source = make_png(tmp_path / "in", "RGBA")
    mark = {
        "op": "watermark",
        "image_path": str(logo),
        "position": "top-left",
        "opacity": 0.5,
        "image_scale": 0.25,
        "margin": 0,
    }
    result = only_output(run(tmp_path, source, [mark, {"op": "output"}]))
    assert result.getpixel((2, 2)) == (255, 255, 255, 128)


def test_watermark_with_a_missing_image_says_where_to_put_it(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB")
    mark = {"op": "watermark", "image_path": "/nowhere/logo.png"}
    message = failure(tmp_path, source, [mark, {"op": "output"}])
    assert message == (
        "PL_DXB191_front.png, step 1 (watermark): the watermark image /nowhere/logo.png does not "
        "exist on this workstation; put it there or change image_path in pipeline test-pipeline."
    )


@pytest.mark.parametrize("kind", KINDS)
def test_sharpen_keeps_size_and_alpha(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    result = only_output(run(tmp_path, source, [{"op": "sharpen"}, {"op": "output"}]))
    # Pillow's filters work on 8-bit channels: 16-bit greyscale comes out as 8-bit.
    expected_mode = "L" if kind == "I;16" else WORKING_MODE[kind]
    assert (result.size, result.mode) == (SIZE, expected_mode)
    if kind in ALPHA_KINDS:
        assert result.getchannel("A").getpixel((0, 0)) == 0


def test_sharpen_changes_edges(tmp_path: Path) -> None:
    image = Image.linear_gradient("L").resize(SIZE).convert("RGB")
    image.save(tmp_path / FILE)
    plain = reopen(run(tmp_path, tmp_path / FILE, [{"op": "output"}])[0].path)
    sharp = run(
        tmp_path,
        tmp_path / FILE,
        [{"op": "sharpen", "percent": 500, "threshold": 0}, {"op": "output", "suffix": "_s"}],
    )
    assert reopen(sharp[0].path).tobytes() != plain.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_strip_metadata_drops_text_and_exif_and_keeps_icc_only_when_asked(
    tmp_path: Path, kind: str
) -> None:
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text("Comment", "client secret")
    exif = Image.Exif()
    exif[0x010E] = "render notes"
    source = make_png(tmp_path / "in", kind, pnginfo=chunks, exif=exif.tobytes())
    kept = reopen(run(tmp_path, source, [{"op": "output"}])[0].path)
    assert kept.info["text"] == {"Comment": "client secret"}
    assert kept.getexif()[0x010E] == "render notes"
    stripped = only_output(
        run(tmp_path, source, [{"op": "strip_metadata"}, {"op": "output", "suffix": "_s"}])
    )
    assert stripped.info["text"] == {}
    assert "exif" not in stripped.info
    assert stripped.mode == make_picture(kind)[0].mode  # pixels untouched, palettes kept


@pytest.mark.parametrize("keep_icc", [True, False])
def test_strip_metadata_keeps_the_icc_profile_only_when_asked(
    tmp_path: Path, keep_icc: bool
) -> None:
    source = make_png(tmp_path / "in", "RGB-icc")
    strip = {"op": "strip_metadata", "keep_icc": keep_icc}
    result = only_output(run(tmp_path, source, [strip, {"op": "output"}]))
    assert (result.info.get("icc_profile") == SRGB) is keep_icc


@pytest.mark.parametrize("kind", KINDS)
def test_png_output_keeps_the_mode(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    output = run(tmp_path, source, [{"op": "output", "compress_level": 1}])[0]
    result = reopen(output.path)
    assert (output.name, output.media_type) == ("PL_DXB191_front.png", "image/png")
    assert (result.format, result.mode, result.size) == ("PNG", make_picture(kind)[0].mode, SIZE)
    assert (output.width, output.height, output.size) == (64, 48, output.path.stat().st_size)
    if kind == "P-transparent":
        assert result.info["transparency"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_jpeg_output_flattens_onto_white_and_scales_16_bits(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    output = run(tmp_path, source, [{"op": "output", "format": "jpeg", "suffix": "_web"}])[0]
    result = reopen(output.path)
    assert (output.name, output.media_type) == ("PL_DXB191_front_web.jpg", "image/jpeg")
    assert (result.format, result.size) == ("JPEG", SIZE)
    assert result.mode == ("L" if kind in GREY_KINDS else "RGB")
    border = result.getpixel((1, 1))
    block = result.getpixel((32, 24))
    if kind in ALPHA_KINDS:  # a transparent border turns white
        assert border in (255, (255, 255, 255))
    elif kind == "I;16":  # 60000 and 1000 of 65535, scaled rather than clipped to 255
        assert abs(border - 233) <= 2
        assert abs(block - 4) <= 2
    else:
        assert border in (255, (255, 255, 255))


@pytest.mark.parametrize("kind", KINDS)
def test_webp_output_keeps_alpha(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    output = run(tmp_path, source, [{"op": "output", "format": "webp", "lossless": True}])[0]
    result = reopen(output.path)
    assert (output.name, output.media_type) == ("PL_DXB191_front.webp", "image/webp")
    assert (result.format, result.size) == ("WEBP", SIZE)
    assert result.mode == ("RGBA" if kind in ALPHA_KINDS else "RGB")


def test_jpeg_output_keeps_the_icc_profile_unless_told_not_to(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB-icc")
    outputs = run(
        tmp_path,
        source,
        [
            {"op": "output", "format": "jpeg", "suffix": "_kept", "progressive": True},
            {"op": "output", "format": "jpeg", "suffix": "_dropped", "keep_icc": False},
        ],
    )
    kept, dropped = (reopen(o.path) for o in outputs)
    assert kept.info.get("icc_profile") == SRGB
    assert kept.info.get("progressive") == 1
    assert "icc_profile" not in dropped.info


def test_exif_and_dpi_travel_into_jpeg_output(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010E] = "render notes"
    source = make_png(tmp_path / "in", "RGB", exif=exif.tobytes(), dpi=(300, 300))
    result = only_output(run(tmp_path, source, [{"op": "output", "format": "jpeg"}]))
    assert result.getexif()[0x010E] == "render notes"
    assert result.info["dpi"] == (300, 300)


def test_a_colour_key_becomes_alpha_when_pixels_change(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB", transparency=(255, 255, 255))
    pad = {"op": "pad", "width": 70, "height": 50, "background": "transparent"}
    result = only_output(run(tmp_path, source, [pad, {"op": "output"}]))
    assert result.mode == "RGBA"
    assert result.getpixel((4, 4))[3] == 0  # the picture's white border was the key colour
    assert result.getpixel((35, 25)) == (200, 30, 30, 255)


def test_webp_output_wider_than_webp_allows_says_to_fit_first(tmp_path: Path) -> None:
    source = tmp_path / FILE
    Image.new("L", (16_400, 2), 128).save(source)
    message = failure(tmp_path, source, [{"op": "output", "format": "webp"}])
    assert message == (
        "PL_DXB191_front.png, step 1 (output): WEBP images can be at most 16383 pixels on a side "
        "and this one is 16400 × 2; put a fit step before this step in pipeline test-pipeline."
    )


def test_a_missing_font_says_where_to_change_it(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB")
    mark = {"op": "watermark", "text": "PL", "font_path": "/nowhere/Brand.ttf"}
    assert failure(tmp_path, source, [mark, {"op": "output"}]) == (
        "PL_DXB191_front.png, step 1 (watermark): the font file /nowhere/Brand.ttf cannot be "
        "opened on this workstation; install it there or change font_path in pipeline "
        "test-pipeline."
    )


def test_an_rgb_profile_is_not_written_into_a_grey_image(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "L", icc_profile=SRGB)
    result = only_output(run(tmp_path, source, [{"op": "output", "format": "jpeg"}]))
    assert "icc_profile" not in result.info


@pytest.mark.parametrize("kind", KINDS)
def test_thumbnail_writes_a_small_copy_and_leaves_the_image_alone(
    tmp_path: Path, kind: str
) -> None:
    source = make_png(tmp_path / "in", kind)
    thumb, full = run(tmp_path, source, [{"op": "thumbnail", "size": 16}, {"op": "output"}])
    assert thumb.name == "PL_DXB191_front_thumb.jpg"
    assert (reopen(thumb.path).format, reopen(thumb.path).size) == ("JPEG", (16, 12))
    assert (thumb.width, thumb.height) == (16, 12)
    assert reopen(full.path).size == SIZE


@pytest.mark.parametrize("kind", KINDS)
def test_external_tool_output_becomes_the_current_image(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    tool = {"op": "external", "args": COPY_TOOL}
    result = only_output(run(tmp_path, source, [tool, {"op": "output"}]))
    expected, _ = make_picture(kind)
    assert (result.size, result.mode) == (SIZE, expected.mode)
    assert result.tobytes() == expected.tobytes()


def test_external_tool_may_write_another_format(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB-icc")
    to_jpeg = write_script(
        tmp_path / "tools",
        "to_jpeg.py",
        "import sys\nfrom PIL import Image\nImage.open(sys.argv[1]).save(sys.argv[2], 'JPEG')\n",
    )
    tool = {"op": "external", "args": [*to_jpeg, "{input}", "{output}"], "output_format": "jpeg"}
    result = only_output(run(tmp_path, source, [tool, {"op": "output"}]))
    assert (result.format, result.size, result.mode) == ("PNG", SIZE, "RGB")
    # The tool dropped the profile; ours carries across it.
    assert result.info.get("icc_profile") == SRGB


# -- whole pipelines --------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", default_pipelines(), ids=lambda p: p["name"])
def test_every_default_pipeline_produces_its_outputs(
    tmp_path: Path, pipeline: dict[str, Any]
) -> None:
    source = tmp_path / "in" / FILE
    image = Image.new("RGBA", (2400, 1600), (0, 0, 0, 0))
    image.paste((30, 90, 200, 255), (200, 100, 2200, 1500))
    source.parent.mkdir()
    image.save(source, icc_profile=SRGB)
    spec = parse_pipeline(
        pipeline["name"], pipeline["description"], pipeline["version"], pipeline["steps"]
    )
    work = tmp_path / "work"
    work.mkdir()
    outputs = run_pipeline(spec, source, work, file_name=FILE)
    found = {o.name: (reopen(o.path).format, reopen(o.path).size) for o in outputs}
    expected = {
        "original": {"PL_DXB191_front.png": ("PNG", (2400, 1600))},
        "web-delivery": {
            "PL_DXB191_front.png": ("PNG", (2400, 1600)),
            "PL_DXB191_front_web.jpg": ("JPEG", (2000, 1333)),
            "PL_DXB191_front_thumb.jpg": ("JPEG", (400, 267)),
        },
        "ecommerce-square": {"PL_DXB191_front_square.jpg": ("JPEG", (2000, 2000))},
        "thumbnails": {
            "PL_DXB191_front_thumb256.jpg": ("JPEG", (256, 171)),
            "PL_DXB191_front_thumb512.jpg": ("JPEG", (512, 341)),
        },
        "optimised-png": {"PL_DXB191_front.png": ("PNG", (2400, 1600))},
    }[pipeline["name"]]
    assert found == expected
    for output in outputs:
        assert output.path.is_relative_to(work)
        assert output.size == output.path.stat().st_size


def test_ecommerce_square_centres_the_trimmed_product_on_white(tmp_path: Path) -> None:
    source = tmp_path / FILE
    image = Image.new("RGBA", (3000, 1000), (0, 0, 0, 0))
    image.paste((30, 90, 200, 255), (1000, 300, 1900, 700))  # a 900 × 400 product
    image.save(source)
    pipeline = next(p for p in default_pipelines() if p["name"] == "ecommerce-square")
    result = only_output(run(tmp_path, source, pipeline["steps"]))
    assert result.size == (2000, 2000)
    assert result.getpixel((5, 5)) == (255, 255, 255)
    # Trimmed to 900 × 400, no upscaling: centred at (550, 800) - (1450, 1200).
    assert result.getpixel((560, 810))[2] > 150
    assert result.getpixel((540, 790)) == (255, 255, 255)


def test_an_empty_pipeline_delivers_the_input_bytes_unchanged(tmp_path: Path) -> None:
    for kind in ("P-transparent", "I;16", "RGB-icc"):
        source = make_png(tmp_path / kind, kind)
        output = only_output_file(run(tmp_path, source, []))
        assert output.path.read_bytes() == source.read_bytes()
        assert (output.name, output.media_type) == (FILE, "image/png")
        assert (output.width, output.height) == SIZE


def only_output_file(outputs: list[ProducedOutput]) -> ProducedOutput:
    assert len(outputs) == 1
    return outputs[0]


def test_an_animated_png_is_processed_as_its_first_frame(tmp_path: Path) -> None:
    source = tmp_path / FILE
    frames = [Image.new("RGB", SIZE, colour) for colour in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(source, save_all=True, append_images=frames[1:])
    result = only_output(run(tmp_path, source, [{"op": "output"}]))
    assert result.getpixel((0, 0)) == (255, 0, 0)
    assert not getattr(result, "is_animated", False)


def test_output_names_come_from_the_submitted_name_and_files_keep_short_paths(
    tmp_path: Path,
) -> None:
    name = "Ünïcode name with spaces " + "x" * 300 + ".PNG"
    source = make_png(tmp_path / "in", "RGB", "input.png")
    outputs = run(
        tmp_path,
        source,
        [{"op": "output"}, {"op": "output", "format": "jpeg", "suffix": "_web"}],
        file_name=name,
    )
    assert [o.name for o in outputs] == [name[:-4] + ".png", name[:-4] + "_web.jpg"]
    assert all(len(o.path.name) < 20 for o in outputs)
    assert source.exists()  # the input is never overwritten, whatever it is called


def test_folders_in_the_submitted_name_do_not_reach_output_names(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB")
    outputs = run(tmp_path, source, [{"op": "output"}], file_name="../../etc/passwd.png")
    assert outputs[0].name == "passwd.png"


def test_the_pixel_limit_is_per_call_not_pillows_global(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pillow's own limit, made tiny here, would refuse this image in Image.open and Image.crop.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    source = make_png(tmp_path / "in", "RGBA")
    result = only_output(run(tmp_path, source, [{"op": "trim"}, {"op": "output"}]))
    assert result.size == (32, 24)
    message = failure(tmp_path, source, [{"op": "output"}], max_pixels=3000)
    assert "more than the 0.003-megapixel limit" in message


# -- bad files --------------------------------------------------------------------------------


def test_a_renamed_jpeg_is_not_a_png(tmp_path: Path) -> None:
    source = tmp_path / FILE
    Image.new("RGB", SIZE).save(source, format="JPEG")
    assert failure(tmp_path, source, [{"op": "output"}]) == (
        "PL_DXB191_front.png is not a PNG image (it looks like JPEG data): export it as PNG and "
        "submit it again."
    )


def test_a_text_file_is_not_a_png(tmp_path: Path) -> None:
    source = tmp_path / FILE
    source.write_text("this is not a picture\n", encoding="utf-8")
    assert "(it looks like text)" in failure(tmp_path, source, [])


@pytest.mark.parametrize("step_list", [[], [{"op": "output"}]], ids=["original", "output"])
def test_a_truncated_png_is_truncated(tmp_path: Path, step_list: list[dict[str, Any]]) -> None:
    source = make_noise_png(tmp_path / "in" / FILE)
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    assert failure(tmp_path, source, step_list) == (
        "PL_DXB191_front.png is truncated (the file ends early): submit it again from the "
        "original render."
    )


def test_a_png_cut_inside_its_header_is_truncated(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in", "RGB")
    source.write_bytes(source.read_bytes()[:20])
    assert "is truncated (the file ends early)" in failure(tmp_path, source, [{"op": "output"}])


def test_a_png_with_a_bad_checksum_is_damaged(tmp_path: Path) -> None:
    source = make_noise_png(tmp_path / "in" / FILE)
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    source.write_bytes(bytes(data))
    assert failure(tmp_path, source, [{"op": "output"}]) == (
        "PL_DXB191_front.png is damaged (a checksum does not match): export it again from the "
        "original render and submit the new file."
    )


def test_an_empty_file_is_empty(tmp_path: Path) -> None:
    source = tmp_path / FILE
    source.write_bytes(b"")
    assert failure(tmp_path, source, [{"op": "output"}]) == (
        "PL_DXB191_front.png is empty (0 bytes): export it again and submit the new file."
    )


def test_an_unreadable_input_says_so(tmp_path: Path) -> None:
    folder = tmp_path / FILE
    folder.mkdir()
    message = failure(tmp_path, folder, [{"op": "output"}])
    assert message.startswith("PL_DXB191_front.png cannot be read (Is a directory)")


@pytest.mark.parametrize("step_list", [[], [{"op": "output"}]], ids=["original", "output"])
def test_a_decompression_bomb_is_refused_before_decoding(
    tmp_path: Path, step_list: list[dict[str, Any]]
) -> None:
    source = make_bomb(tmp_path / "in" / FILE, 40000, 40000)
    assert read_png_size(source) == (40000, 40000, "RGB")
    message = failure(tmp_path, source, step_list, max_pixels=100_000_000)
    assert message == (
        "PL_DXB191_front.png is 40000 × 40000 pixels (1,600 megapixels), more than the "
        "100-megapixel limit: scale it down, or raise the limit in the settings."
    )


def test_failures_that_retrying_cannot_fix_are_not_retryable(tmp_path: Path) -> None:
    source = tmp_path / FILE
    source.write_bytes(b"")
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, source, [])
    assert caught.value.retryable is False
    assert isinstance(caught.value, KnownError)


# -- the external step ------------------------------------------------------------------------


def test_a_missing_tool_is_not_installed(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    tool = {"op": "external", "args": ["batchdesk-no-such-tool", "{input}", "{output}"]}
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, source, [{"op": "output"}, tool, {"op": "output", "suffix": "_q"}])
    assert str(caught.value) == (
        "PL_DXB191_front.png, step 2 (external): the tool 'batchdesk-no-such-tool' is not "
        "installed on this workstation; install it or take the step out of pipeline "
        "test-pipeline."
    )
    assert caught.value.retryable  # another workstation may have it


def test_a_failing_tool_reports_its_exit_code_and_last_words(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    args = [sys.executable, "-c", "import sys; sys.exit('boom')", "{input}", "{output}"]
    message = failure(tmp_path, source, [{"op": "external", "args": args}, {"op": "output"}])
    assert message == (
        f"PL_DXB191_front.png, step 1 (external): the tool {sys.executable!r} failed with exit "
        "code 1 and said: boom; check the tool and its arguments in pipeline test-pipeline."
    )


def test_a_tool_s_long_complaint_is_cut_to_its_last_lines(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    noisy = "import sys\nfor i in range(1000): print(f'line {i}', file=sys.stderr)\nsys.exit(3)\n"
    args = [*write_script(tmp_path / "tools", "noisy.py", noisy), "{input}", "{output}"]
    message = failure(tmp_path, source, [{"op": "external", "args": args}, {"op": "output"}])
    said = message.split("and said: ")[1].split("; check")[0]
    assert said.endswith("line 998 / line 999")
    assert 400 < len(said) <= 500


def test_a_tool_that_runs_too_long_is_stopped(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    args = [sys.executable, "-c", "import time; time.sleep(60)", "{input}", "{output}"]
    began = time.monotonic()
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, source, [{"op": "external", "args": args, "timeout": 1}, {"op": "output"}])
    assert time.monotonic() - began < 10
    assert str(caught.value) == (
        f"PL_DXB191_front.png, step 1 (external): the tool {sys.executable!r} did not finish "
        "within 1 s; check it by hand, or raise timeout in pipeline test-pipeline."
    )
    assert caught.value.retryable


def test_a_timed_out_tool_s_children_are_stopped_too(tmp_path: Path) -> None:
    # A wrapper whose child keeps our pipes open: without killing the group we would hang.
    source = make_png(tmp_path / "in")
    wrapper = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n"
    )
    args = [*write_script(tmp_path / "tools", "wrapper.py", wrapper), "{input}", "{output}"]
    began = time.monotonic()
    message = failure(
        tmp_path, source, [{"op": "external", "args": args, "timeout": 1}, {"op": "output"}]
    )
    assert "did not finish within 1 s" in message
    assert time.monotonic() - began < 10


def test_a_tool_that_writes_nothing_says_so(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    args = [sys.executable, "-c", "pass", "{input}", "{output}"]
    message = failure(tmp_path, source, [{"op": "external", "args": args}, {"op": "output"}])
    assert "finished without writing its output file" in message


def test_a_tool_that_writes_the_wrong_format_says_what_it_wrote(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    to_jpeg = write_script(
        tmp_path / "tools",
        "to_jpeg.py",
        "import sys\nfrom PIL import Image\nImage.open(sys.argv[1]).save(sys.argv[2], 'JPEG')\n",
    )
    tool = {"op": "external", "args": [*to_jpeg, "{input}", "{output}"]}
    message = failure(tmp_path, source, [tool, {"op": "output"}])
    assert (
        f"the tool {sys.executable!r} wrote a file that is not a PNG image (it looks like "
        in message
    )
    assert "JPEG data); check the tool and its arguments in pipeline test-pipeline." in message


def test_a_tool_output_in_an_unsupported_mode_is_refused(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    to_float = write_script(
        tmp_path / "tools",
        "to_float.py",
        "import sys\nfrom PIL import Image\n"
        "Image.open(sys.argv[1]).convert('F').save(sys.argv[2], 'TIFF')\n",
    )
    tool = {"op": "external", "args": [*to_float, "{input}", "{output}"], "output_format": "tiff"}
    message = failure(tmp_path, source, [tool, {"op": "output"}])
    assert message == (
        f"PL_DXB191_front.png, step 1 (external): the tool {sys.executable!r} wrote an image in "
        "the colour mode F, which batchdesk cannot process; check the tool and its arguments in "
        "pipeline test-pipeline."
    )


def test_a_tool_output_over_the_pixel_limit_is_refused(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    grow = write_script(
        tmp_path / "tools",
        "grow.py",
        "import sys\nfrom PIL import Image\n"
        "Image.open(sys.argv[1]).resize((200, 200)).save(sys.argv[2])\n",
    )
    tool = {"op": "external", "args": [*grow, "{input}", "{output}"]}
    message = failure(tmp_path, source, [tool, {"op": "output"}], max_pixels=10_000)
    assert (
        "wrote an image of 200 × 200 pixels (0.04 megapixels), more than the 0.01-megapixel"
        in message
    )


# -- stopping ---------------------------------------------------------------------------------


def stop_after(calls: int) -> Callable[[], bool]:
    """Return a should_stop that says no `calls` times, then yes."""
    answers = iter([False] * calls)
    return lambda: next(answers, True)


def test_should_stop_is_checked_between_steps(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    work = tmp_path / "work"
    work.mkdir()
    spec = parse_pipeline("p", "", 1, [{"op": "output"}, {"op": "output", "format": "jpeg"}])
    # Asked before the decode, before step 1, then before step 2: stop there.
    with pytest.raises(StopRequested):
        run_pipeline(spec, source, work, file_name=FILE, should_stop=stop_after(2))
    written = sorted(p.name for p in work.rglob("*") if p.is_file())
    assert written == ["1.png"]


def test_should_stop_is_checked_before_the_decode(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    with pytest.raises(StopRequested):
        run(tmp_path, source, [{"op": "output"}], should_stop=lambda: True)


def test_a_stop_request_ends_a_running_tool(tmp_path: Path) -> None:
    source = make_png(tmp_path / "in")
    args = [sys.executable, "-c", "import time; time.sleep(60)", "{input}", "{output}"]
    deadline = time.monotonic() + 0.5
    began = time.monotonic()
    with pytest.raises(StopRequested):
        run(
            tmp_path,
            source,
            [{"op": "external", "args": args}, {"op": "output"}],
            should_stop=lambda: time.monotonic() > deadline,
        )
    assert time.monotonic() - began < 10


# -- a full disk ------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_disk(folder: Path) -> Iterator[Path]:
    """Mount a 64 KB tmpfs on `folder` for the duration (root only)."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root and mount(8) to mount a small tmpfs")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("step_list", [[], [{"op": "output"}]], ids=["original", "output"])
def test_a_full_disk_fails_the_job_with_where_to_free_space(
    tmp_path: Path, step_list: list[dict[str, Any]]
) -> None:
    source = make_noise_png(tmp_path / "in" / FILE)  # ~120 KB: more than the disk holds
    with tiny_disk(tmp_path / "disk") as disk:
        spec = parse_pipeline("p", "", 1, step_list)
        with pytest.raises(JobFailed) as caught:
            run_pipeline(spec, source, disk, file_name=FILE)
        assert not [p for p in disk.rglob("*") if p.is_file()]  # no half-written output left
    where = "PL_DXB191_front.png" if not step_list else "PL_DXB191_front.png, step 1 (output)"
    assert str(caught.value) == (
        f"{where}: disk full while writing PL_DXB191_front.png; free space in {disk} and retry "
        "the batch."
    )
    assert caught.value.retryable


def test_a_full_disk_is_reported_whatever_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image_pipeline, "save_image", no_space)
    source = make_png(tmp_path / "in")
    message = failure(tmp_path, source, [{"op": "output", "format": "jpeg", "suffix": "_web"}])
    assert message.startswith(
        "PL_DXB191_front.png, step 1 (output): disk full while writing PL_DXB191_front_web.jpg; "
    )


# -- sizes for the runner ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_read_png_size_reads_the_header_only(tmp_path: Path, kind: str) -> None:
    source = make_png(tmp_path / "in", kind)
    with Image.open(source) as image:
        assert read_png_size(source) == (64, 48, image.mode)


def test_read_png_size_refuses_what_is_not_a_png(tmp_path: Path) -> None:
    source = tmp_path / FILE
    Image.new("RGB", SIZE).save(source, format="JPEG")
    with pytest.raises(JobFailed, match="it looks like JPEG data"):
        read_png_size(source)


def test_steps_never_hold_pillow_s_gil_bound_calls_on_whole_images() -> None:
    # alpha_composite and blend hold the GIL for 60-110 ms on 12 MP; only a region may see them.
    calls = [
        (ast.unparse(node.func), ast.unparse(node))
        for module in (steps, image_pipeline, working_image, external_step, image_input)
        for node in ast.walk(ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
    ]
    names = {name for name, _ in calls}
    assert not names & {"Image.blend", "io.BytesIO", "BytesIO"}
    assert not [name for name in names if name.startswith("ImageChops.")]
    composites = [call for name, call in calls if name == "Image.alpha_composite"]
    assert composites == ["Image.alpha_composite(region, mark)"]
