"""Benchmark: the `original` pipeline's pixel-data check against the full decode other pipelines do.

Target (hardening issue, item 2): checking that a PNG decodes without decoding it (inflating its
pixel data as a stream, `png_structure.pixel_data_fault`) must cost less than decoding it.

Two renders are generated once, outside the timed parts: a 4K (3840 x 2160) RGB and a 12-megapixel
(4000 x 3000) RGBA image, gradients and shapes under a little noise, saved at Pillow's default
compression (about 11 and 18 MB). For each, both parts run `image_input.read_input` on the same
file, in alternating order, `--repeat` times:

- baseline: `decode=True`, what every pipeline with steps does (open, verify, full decode);
- check: `decode=False`, what `original` does (open, verify, inflate the pixel data as a stream,
  read the chunks after it), holding a quarter of a megabyte instead of the image.

Reported: the median of each, and the ratio check/baseline per image.

    .venv/bin/python bench/bench_png_check.py [--repeat 7]
"""

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from batchdesk.jobs.image_input import read_input
from benchsupport import median, seconds, verdict

TARGET = 1.0


def make_render(path: Path, size: tuple[int, int], mode: str) -> Path:
    """Write a render-like PNG: smooth areas and edges, with a little sensor-like noise."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", (gradient, gradient.rotate(90).resize(size), gradient.transpose(0)))
    draw = ImageDraw.Draw(image)
    chances = random.Random(size[0])
    for _ in range(300):
        x, y = chances.randrange(width), chances.randrange(height)
        box = (x, y, x + chances.randrange(50, 600), y + chances.randrange(50, 600))
        draw.ellipse(box, fill=(chances.randrange(256),) * 3)
    image = image.filter(ImageFilter.GaussianBlur(2))
    noise = Image.effect_noise(size, 10)
    bands = [ImageChops.add(band, noise, 1, -128) for band in image.split()]
    if mode == "RGBA":
        bands.append(gradient)
    Image.merge(mode, bands).save(path, format="PNG")
    return path


def timed(path: Path, *, decode: bool) -> float:
    began = time.perf_counter()
    read_input(path, path.name, 200_000_000, decode=decode)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-bench-png-"))
    met = True
    try:
        renders = [
            make_render(folder / "4k.png", (3840, 2160), "RGB"),
            make_render(folder / "12mp.png", (4000, 3000), "RGBA"),
        ]
        for path in renders:
            decodes: list[float] = []
            checks: list[float] = []
            for round_number in range(args.repeat):
                order = [True, False] if round_number % 2 == 0 else [False, True]
                for decode in order:
                    (decodes if decode else checks).append(timed(path, decode=decode))
            ratio = median(checks) / median(decodes)
            met = met and ratio <= TARGET
            with Image.open(path) as image:
                what = f"{image.width} x {image.height} {image.mode}"
            print(
                f"{path.name:9} {what:17} {path.stat().st_size / 1e6:5.1f} MB   "
                f"decode {seconds(median(decodes)):>9}   check {seconds(median(checks)):>9}   "
                f"ratio {ratio:.2f} (target <= {TARGET:.1f}) {verdict(ratio, TARGET)}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
