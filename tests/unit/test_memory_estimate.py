"""The memory a job needs, estimated from its input's header and its pipeline's steps.

The runner starts jobs only while their estimates fit in the budget, so an estimate that is too
low lets a worker run out of memory: the last test runs real pipelines in a child process and
checks that what they held at their peak stays within the estimate.
"""

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchdesk.jobs.memory_estimate import MemoryEstimate, estimate_job_memory
from batchdesk.jobs.pipeline_spec import parse_pipeline

MB = 1_000_000


def estimate(steps: list[dict[str, Any]], width: int, height: int, mode: str) -> MemoryEstimate:
    return estimate_job_memory(parse_pipeline("test", "", 1, steps), width, height, mode)


def test_a_big_canvas_makes_the_peak_whatever_the_input() -> None:
    found = estimate(
        [{"op": "pad", "width": 30000, "height": 30000}, {"op": "output"}], 32, 32, "RGB"
    )
    # An opaque canvas of 900 megapixels in RGB, which Pillow keeps in four bytes a pixel.
    assert 3_600 * MB <= found.peak < 3_700 * MB
    assert (found.step, found.op, found.size) == (1, "pad", (30000, 30000))


def test_a_transparent_canvas_for_a_grey_image_is_still_four_bytes_a_pixel() -> None:
    opaque = estimate([{"op": "pad", "width": 10000, "height": 10000}, {"op": "output"}], 8, 8, "L")
    clear = estimate(
        [
            {"op": "pad", "width": 10000, "height": 10000, "background": "transparent"},
            {"op": "output"},
        ],
        8,
        8,
        "L",
    )
    assert 100 * MB <= opaque.peak < 110 * MB  # an L canvas: one byte a pixel
    assert 400 * MB <= clear.peak < 410 * MB  # LA: four


def test_shrinking_first_makes_the_input_the_peak() -> None:
    found = estimate(
        [{"op": "fit", "mode": "long_edge", "size": 1000}, {"op": "output", "format": "jpeg"}],
        10000,
        8000,
        "RGB",
    )
    assert found.step == 1
    assert found.size == (10000, 8000)
    # The decoded input (320 MB), a third of it reduced, a Lanczos pass and the result.
    assert 320 * MB < found.peak < 2 * 320 * MB


def test_the_original_pipeline_holds_no_image() -> None:
    assert estimate([], 20000, 10000, "RGBA").peak == 0


def test_a_webp_output_counts_its_encoder() -> None:
    png = estimate([{"op": "output"}], 4000, 3000, "RGB")
    webp = estimate([{"op": "output", "format": "webp"}], 4000, 3000, "RGB")
    assert png.peak == 48 * MB  # the decoded image only
    assert webp.peak > 10 * png.peak


def test_steps_after_a_shrink_are_counted_at_the_new_size() -> None:
    found = estimate(
        [
            {"op": "fit", "mode": "long_edge", "size": 100},
            {"op": "pad", "width": 200, "height": 200},
            {"op": "output"},
        ],
        4000,
        4000,
        "RGBA",
    )
    assert (found.step, found.op) == (1, "fit")


# -- the estimate against what Pillow really holds --------------------------------------------

MEASURE = """
import json, sys
from pathlib import Path
from PIL import Image
from batchdesk.jobs.image_pipeline import run_pipeline
from batchdesk.jobs.pipeline_spec import parse_pipeline

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key))

source, work, steps = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
spec = parse_pipeline("measured", "", 1, steps)
# The same steps on a tiny image first, so that code loaded on first use is not counted.
with Image.open(source) as image:
    Image.new(image.mode, (4, 4)).save(work / "tiny.png")
run_pipeline(spec, work / "tiny.png", work, file_name="tiny.png")
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the high-water mark starts again from here
run_pipeline(spec, source, work, file_name=source.name)
print(status("VmHWM") - before)
"""
PIPELINES = {
    "pad": [{"op": "pad", "width": 3000, "height": 3000}, {"op": "output", "format": "jpeg"}],
    "upscale": [
        {"op": "fit", "mode": "long_edge", "size": 3000, "upscale": True},
        {"op": "output"},
    ],
    "trim-sharpen": [{"op": "trim"}, {"op": "sharpen"}, {"op": "output"}],
    "webp": [{"op": "output", "format": "webp", "lossless": True}],
    "jpeg-thumbnail": [{"op": "output", "format": "jpeg"}, {"op": "thumbnail", "size": 500}],
    "shrink-pad": [
        {"op": "fit", "mode": "long_edge", "size": 500},
        {"op": "pad", "width": 2500, "height": 2500},
        {"op": "output"},
    ],
}
CASES = [
    ("RGB", "pad"),
    ("RGB", "webp"),
    ("RGB", "shrink-pad"),
    ("RGBA", "upscale"),
    ("RGBA", "trim-sharpen"),
    ("RGBA", "jpeg-thumbnail"),
    ("P", "pad"),
    ("P", "jpeg-thumbnail"),
    ("I;16", "trim-sharpen"),
    ("I;16", "upscale"),
]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize(("mode", "pipeline"), CASES)
def test_what_a_pipeline_really_holds_stays_within_its_estimate(
    tmp_path: Path, mode: str, pipeline: str
) -> None:
    size = (2000, 1500)
    noise = Image.frombytes("RGB", size, random.Random(1).randbytes(size[0] * size[1] * 3))
    image = (
        noise.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else noise.convert(mode)
    )
    source = tmp_path / "PL_DXB191_front.png"
    image.save(source, compress_level=1)
    steps = PIPELINES[pipeline]
    src = Path(__file__).resolve().parents[2] / "src"
    # Every image in memory of its own, given back when freed (glibc would otherwise keep a
    # freed image's memory for the next one): the peak is then the images alive at once, which
    # is what the estimate counts.
    environment = {"PYTHONPATH": str(src), "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, str(source), str(tmp_path), json.dumps(steps)],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    held = int(measured.stdout)
    estimated = estimate(steps, *size, mode).peak
    # A megabyte of slack for the interpreter's own allocations on the way.
    assert held <= estimated + MB, f"held {held / MB:.1f} MB, estimated {estimated / MB:.1f} MB"
